//! Step 1, the trusted head: the block header whose hash a quorum of the configured RPC
//! endpoints agree on, at `latest − confirmations`, fresh by the device clock and never behind
//! the highest block the device already trusted.
//!
//! Attacks stopped: a lying endpoint (its header is decoded from RLP and its hash recomputed,
//! never taken from the node: [`HeaderFault::HashMismatch`]); a minority of endpoints on a fork or
//! lying in concert ([`Error::NoQuorum`]); an endpoint serving another block than asked
//! ([`HeaderFault::WrongNumber`]); a frozen view of the chain ([`Error::StaleHead`], and
//! [`Error::HeadInFuture`] when the device clock is too far behind to judge); a rewind to
//! an older state after a newer one was seen ([`Error::HeadBehindHighestSeen`]).
//!
//! Not stopped: a quorum of endpoints that collude on a fabricated chain. The quorum is a trust
//! setting: choose endpoints run by independent operators.

use alloc::{string::ToString, vec::Vec};

pub use alloy_consensus::Header;
use alloy_primitives::B256;
use alloy_rlp::Decodable;

use crate::{Error, HeaderFault, Limits, Result};

/// One endpoint's answer for a block: its RLP-encoded header and the hash the endpoint claims
/// for it. Both are untrusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// The hash the endpoint reported for the block.
    pub claimed_hash: B256,
    /// The header, RLP-encoded.
    pub rlp: Vec<u8>,
}

/// The header the device trusts, and the fields it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedHead {
    /// The block number.
    pub number: u64,
    /// keccak256 of the header, recomputed by the device.
    pub hash: B256,
    /// The state root every proof is verified against.
    pub state_root: B256,
    /// The block's timestamp.
    pub timestamp: u64,
}

/// The block to ask every endpoint for: the k-th highest reported latest block minus the
/// confirmations. With a strict-majority k, endpoints reporting a too-high or too-low latest
/// block cannot move the choice unless k of them do.
pub fn target_block(latests: &[Option<u64>], limits: &Limits) -> Result<u64> {
    let needed = limits.quorum.k();
    let mut reported: Vec<u64> = latests.iter().flatten().copied().collect();
    if latests.len() != limits.quorum.n() {
        return Err(Error::AnswerCount {
            given: latests.len(),
            configured: limits.quorum.n(),
        });
    }
    if reported.len() < needed {
        return Err(Error::NotEnoughLatest {
            reported: reported.len(),
            needed,
        });
    }
    reported.sort_unstable_by(|a, b| b.cmp(a));
    let latest = reported[needed - 1];
    latest
        .checked_sub(limits.confirmations)
        .ok_or(Error::ChainTooShort {
            latest,
            confirmations: limits.confirmations,
        })
}

/// Decodes one endpoint's header and checks it is block `number` with the hash it claims.
pub fn check_header(
    endpoint: usize,
    number: u64,
    raw: &RawHeader,
    limits: &Limits,
) -> Result<TrustedHead, HeaderFault> {
    if raw.rlp.len() > limits.max_header_size {
        return Err(HeaderFault::TooLarge {
            endpoint,
            size: raw.rlp.len(),
            max: limits.max_header_size,
        });
    }
    let mut buf = raw.rlp.as_slice();
    let header = Header::decode(&mut buf).map_err(|e| HeaderFault::Decode {
        endpoint,
        reason: e.to_string(),
    })?;
    if !buf.is_empty() {
        return Err(HeaderFault::Decode {
            endpoint,
            reason: alloc::format!("{} bytes after the header", buf.len()),
        });
    }
    // The block hash is keccak256 of the canonical encoding; a non-canonical encoding of the same
    // fields would hash differently from what was signed into the chain.
    let computed = header.hash_slow();
    if alloy_primitives::keccak256(&raw.rlp) != computed {
        return Err(HeaderFault::Decode {
            endpoint,
            reason: "non-canonical header encoding".to_string(),
        });
    }
    if computed != raw.claimed_hash {
        return Err(HeaderFault::HashMismatch {
            endpoint,
            claimed: raw.claimed_hash,
            computed,
        });
    }
    if header.number != number {
        return Err(HeaderFault::WrongNumber {
            endpoint,
            requested: number,
            got: header.number,
        });
    }
    Ok(TrustedHead {
        number: header.number,
        hash: computed,
        state_root: header.state_root,
        timestamp: header.timestamp,
    })
}

/// Step 1: the head a quorum agrees on at block `number`, given every endpoint's answer (in
/// configuration order; `Err` = the endpoint failed), checked against the device clock `now`
/// (unix seconds) and the highest block the device trusted before.
pub fn trusted_head(
    limits: &Limits,
    number: u64,
    answers: &[core::result::Result<RawHeader, alloc::string::String>],
    now: u64,
    highest_seen: u64,
) -> Result<TrustedHead> {
    if answers.len() != limits.quorum.n() {
        return Err(Error::AnswerCount {
            given: answers.len(),
            configured: limits.quorum.n(),
        });
    }
    let mut faults = Vec::new();
    let mut valid: Vec<(TrustedHead, usize)> = Vec::new();
    for (endpoint, answer) in answers.iter().enumerate() {
        let checked = match answer {
            Ok(raw) => check_header(endpoint, number, raw, limits),
            Err(reason) => Err(HeaderFault::Unavailable {
                endpoint,
                reason: reason.clone(),
            }),
        };
        match checked {
            Ok(head) => match valid.iter_mut().find(|(h, _)| h.hash == head.hash) {
                Some((_, votes)) => *votes += 1,
                None => valid.push((head, 1)),
            },
            Err(fault) => faults.push(fault),
        }
    }
    let best = valid.iter().max_by_key(|(_, votes)| *votes);
    let agreeing = best.map_or(0, |(_, votes)| *votes);
    let Some((head, _)) = best.filter(|_| agreeing >= limits.quorum.k()) else {
        return Err(Error::NoQuorum {
            number,
            agreeing,
            needed: limits.quorum.k(),
            faults,
        });
    };
    check_fresh(head, limits, now, highest_seen)?;
    Ok(head.clone())
}

/// The checks a trusted head passes at device time `now` besides the vote: not older than
/// `max_age` (freeze), not ahead of the clock by more than the skew, not below the highest
/// block trusted before (rollback of the head). Run again when a head is reused
/// ([`crate::Checker::resume`]).
pub fn check_fresh(head: &TrustedHead, limits: &Limits, now: u64, highest_seen: u64) -> Result<()> {
    let age = now.saturating_sub(head.timestamp);
    if age > limits.max_age_secs {
        return Err(Error::StaleHead {
            number: head.number,
            timestamp: head.timestamp,
            now,
            age,
            max_age: limits.max_age_secs,
        });
    }
    if head.timestamp > now.saturating_add(limits.max_clock_skew_secs) {
        return Err(Error::HeadInFuture {
            number: head.number,
            timestamp: head.timestamp,
            now,
            max_skew: limits.max_clock_skew_secs,
        });
    }
    if head.number < highest_seen {
        return Err(Error::HeadBehindHighestSeen {
            number: head.number,
            highest_seen,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quorum;
    use alloy_rlp::Encodable;

    fn header(number: u64, timestamp: u64, state_root: B256) -> RawHeader {
        let h = Header {
            number,
            timestamp,
            state_root,
            ..Default::default()
        };
        let mut rlp = Vec::new();
        h.encode(&mut rlp);
        RawHeader {
            claimed_hash: h.hash_slow(),
            rlp,
        }
    }

    fn limits(k: usize, n: usize) -> Limits {
        Limits::new(Quorum::new(k, n).unwrap())
    }

    #[test]
    fn target_is_the_kth_highest_latest_minus_confirmations() {
        let l = limits(2, 3);
        // One endpoint far ahead, one far behind: neither moves the target.
        assert_eq!(
            target_block(&[Some(1_000_000), Some(100), Some(1)], &l).unwrap(),
            100 - l.confirmations
        );
        assert!(matches!(
            target_block(&[Some(100), None, None], &l),
            Err(Error::NotEnoughLatest {
                reported: 1,
                needed: 2
            })
        ));
        assert!(matches!(
            target_block(&[Some(3), Some(3), None], &l),
            Err(Error::ChainTooShort { latest: 3, .. })
        ));
    }

    #[test]
    fn majority_hash_wins_and_faults_are_named() {
        let l = limits(2, 3);
        let good = header(10, 1000, B256::repeat_byte(1));
        let fork = header(10, 1000, B256::repeat_byte(2));
        let head = trusted_head(
            &l,
            10,
            &[Ok(good.clone()), Ok(fork), Ok(good.clone())],
            1000,
            0,
        )
        .unwrap();
        assert_eq!(head.state_root, B256::repeat_byte(1));

        let mut lying = good.clone();
        lying.claimed_hash = B256::repeat_byte(9);
        let err =
            trusted_head(&l, 10, &[Ok(good), Ok(lying), Err("down".into())], 1000, 0).unwrap_err();
        let Error::NoQuorum {
            agreeing: 1,
            needed: 2,
            faults,
            ..
        } = err
        else {
            panic!("{err:?}")
        };
        assert!(matches!(
            faults[0],
            HeaderFault::HashMismatch { endpoint: 1, .. }
        ));
        assert!(matches!(
            faults[1],
            HeaderFault::Unavailable { endpoint: 2, .. }
        ));
    }

    #[test]
    fn wrong_number_stale_and_rewound_heads_are_refused() {
        let l = limits(1, 1);
        let old = header(9, 1000, B256::ZERO);
        let err = trusted_head(&l, 10, &[Ok(old)], 1000, 0).unwrap_err();
        assert!(matches!(
            err,
            Error::NoQuorum { ref faults, .. }
                if matches!(faults[0], HeaderFault::WrongNumber { requested: 10, got: 9, .. })
        ));
        let h = header(10, 1000, B256::ZERO);
        assert!(trusted_head(&l, 10, &[Ok(h.clone())], 1000 + l.max_age_secs, 10).is_ok());
        assert!(matches!(
            trusted_head(&l, 10, &[Ok(h.clone())], 1001 + l.max_age_secs, 0),
            Err(Error::StaleHead { age, .. }) if age == l.max_age_secs + 1
        ));
        // A device clock far behind the chain (reset, never set) cannot judge freshness.
        assert!(trusted_head(&l, 10, &[Ok(h.clone())], 1000 - l.max_clock_skew_secs, 0).is_ok());
        assert!(matches!(
            trusted_head(&l, 10, &[Ok(h.clone())], 0, 0),
            Err(Error::HeadInFuture {
                now: 0,
                timestamp: 1000,
                ..
            })
        ));
        assert!(matches!(
            trusted_head(&l, 10, &[Ok(h)], 1000, 11),
            Err(Error::HeadBehindHighestSeen {
                number: 10,
                highest_seen: 11
            })
        ));
    }

    #[test]
    fn trailing_oversized_and_non_canonical_rlp_is_refused() {
        let l = limits(1, 1);
        let mut h = header(10, 1000, B256::ZERO);
        h.rlp.push(0);
        assert!(matches!(
            check_header(0, 10, &h, &l),
            Err(HeaderFault::Decode { .. })
        ));
        let big = RawHeader {
            claimed_hash: B256::ZERO,
            rlp: alloc::vec![0; l.max_header_size + 1],
        };
        assert!(matches!(
            check_header(0, 10, &big, &l),
            Err(HeaderFault::TooLarge { .. })
        ));
    }
}
