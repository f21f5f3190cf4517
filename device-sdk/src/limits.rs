//! Trust settings and limits with documented safe defaults.

use crate::{Error, Result};

/// Default depth below the latest block at which the head is taken: 6 blocks (72 s on Ethereum
/// mainnet), so a short reorg does not change the state a device acted on.
pub const DEFAULT_CONFIRMATIONS: u64 = 6;

/// Default maximum age of the trusted head against the device clock: one hour. A frozen view of
/// the chain (an RPC or a network that keeps serving an old block, hiding a revocation or a
/// newer release) is refused once it is older than this.
pub const DEFAULT_MAX_AGE_SECS: u64 = 3600;

/// Default tolerance for a head timestamped after the device clock: 5 minutes. A larger gap
/// means the device clock is wrong (e.g. reset to 1970), which would also disable the freeze
/// check, so the device refuses rather than trusting a clock it cannot use.
pub const DEFAULT_MAX_CLOCK_SKEW_SECS: u64 = 300;

/// Default longest reuse of a voted head, by the device clock: 15 seconds. The release found
/// for a newer version is checked at the head that version was proven at (two requests per
/// endpoint fewer) only while the clock has moved at most this much since; later (a slow or
/// stalling release source), a new head is voted, so a source cannot choose to have the
/// release checked at a head from before a revocation it waited for. About one Ethereum block:
/// small beside the confirmations (72 s) every head already lags by.
pub const DEFAULT_HEAD_REUSE_SECS: u64 = 15;

/// Largest header RLP accepted: 4 KiB. Mainnet headers are about 600 bytes; the bound stops an
/// endpoint from making the device decode and hash unbounded data.
pub const MAX_HEADER_SIZE: usize = 4096;

/// Most nodes in one Merkle-Patricia proof: a path has at most 64 nibbles, so 64 branch nodes
/// plus a leaf, with room for extension nodes.
pub const MAX_PROOF_NODES: usize = 72;

/// Largest proof node: a full branch node is 17 items of up to 33 bytes plus its list header
/// (532 bytes); 1 KiB leaves room for a leaf holding a full account.
pub const MAX_PROOF_NODE_SIZE: usize = 1024;

/// How many of the configured RPC endpoints must agree on the head's hash.
///
/// `k` must be a strict majority of `n`, so two different hashes can never both reach it (a
/// minority on a fork is outvoted, never tied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    k: usize,
    n: usize,
}

impl Quorum {
    /// `k` of `n` endpoints; refused unless `0 < n`, `k ≤ n` and `2k > n`.
    pub fn new(k: usize, n: usize) -> Result<Self> {
        if n == 0 || k > n || 2 * k <= n {
            return Err(Error::InvalidQuorum { k, n });
        }
        Ok(Self { k, n })
    }

    /// The safe default for `n` endpoints: a strict majority (`n / 2 + 1`).
    pub fn majority(n: usize) -> Result<Self> {
        Self::new(n / 2 + 1, n)
    }

    /// How many must agree.
    pub fn k(&self) -> usize {
        self.k
    }

    /// How many endpoints are configured.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// The device's trust settings: how deep, how fresh and how agreed a head must be, and how much
/// untrusted data it decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Agreement needed on the head's hash.
    pub quorum: Quorum,
    /// The head is the block `latest − confirmations` ([`DEFAULT_CONFIRMATIONS`]).
    pub confirmations: u64,
    /// Maximum age of the head's timestamp against the device clock, in seconds
    /// ([`DEFAULT_MAX_AGE_SECS`]).
    pub max_age_secs: u64,
    /// How far the head's timestamp may be ahead of the device clock, in seconds
    /// ([`DEFAULT_MAX_CLOCK_SKEW_SECS`]).
    pub max_clock_skew_secs: u64,
    /// How long a voted head may be reused for the release's check, in seconds of the device
    /// clock ([`DEFAULT_HEAD_REUSE_SECS`]; 0: never reused).
    pub head_reuse_secs: u64,
    /// Largest header RLP accepted ([`MAX_HEADER_SIZE`]).
    pub max_header_size: usize,
    /// Most nodes per proof ([`MAX_PROOF_NODES`]).
    pub max_proof_nodes: usize,
    /// Largest proof node ([`MAX_PROOF_NODE_SIZE`]).
    pub max_proof_node_size: usize,
}

impl Limits {
    /// The safe defaults for `quorum`.
    pub fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            confirmations: DEFAULT_CONFIRMATIONS,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            max_clock_skew_secs: DEFAULT_MAX_CLOCK_SKEW_SECS,
            head_reuse_secs: DEFAULT_HEAD_REUSE_SECS,
            max_header_size: MAX_HEADER_SIZE,
            max_proof_nodes: MAX_PROOF_NODES,
            max_proof_node_size: MAX_PROOF_NODE_SIZE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_must_be_a_strict_majority() {
        assert!(Quorum::new(2, 3).is_ok());
        assert!(Quorum::new(1, 1).is_ok());
        assert!(Quorum::new(3, 3).is_ok());
        for (k, n) in [(1, 2), (2, 4), (0, 1), (4, 3), (0, 0)] {
            assert!(matches!(
                Quorum::new(k, n),
                Err(Error::InvalidQuorum { k: a, n: b }) if (a, b) == (k, n)
            ));
        }
        assert_eq!(Quorum::majority(4).unwrap().k(), 3);
        assert_eq!(Quorum::majority(5).unwrap().k(), 3);
    }
}
