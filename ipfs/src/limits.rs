//! Limits the verifier enforces against untrusted DAGs.

/// Largest block the verifier accepts: 2 MiB, the size IPFS implementations exchange.
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;
/// Default largest number of links in one dag-pb node (IPIP-499's 1024 links is the widest profile).
pub const MAX_LINKS_PER_NODE: usize = 1024;
/// Default deepest level a block may sit at (the root is depth 0; the leaves of a balanced
/// 174-wide DAG of 1 TiB sit at depth 3).
pub const MAX_DEPTH: usize = 32;
/// Default largest file when the expected size is unknown: 64 GiB.
pub const MAX_TOTAL_SIZE: u64 = 64 * 1024 * 1024 * 1024;

/// Bounds on what an untrusted DAG may make the verifier do.
///
/// They protect a device against endless data (`max_total_size`, set from the size the chain
/// records), oversized blocks and link bombs (`max_block_size`, `max_links_per_node`) and deep
/// recursion (`max_depth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file size the DAG may declare or yield, in bytes.
    pub max_total_size: u64,
    /// Largest block, in bytes (default 2 MiB).
    pub max_block_size: usize,
    /// Largest number of links in one node (default 1024).
    pub max_links_per_node: usize,
    /// Deepest level a block may sit at (the root is depth 0; default 32).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total_size: MAX_TOTAL_SIZE,
            max_block_size: MAX_BLOCK_SIZE,
            max_links_per_node: MAX_LINKS_PER_NODE,
            max_depth: MAX_DEPTH,
        }
    }
}

impl Limits {
    /// The default limits with `max_total_size` set to the size known in advance (from the chain).
    pub fn for_size(expected_size: u64) -> Self {
        Self {
            max_total_size: expected_size,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_size_only_changes_total() {
        let l = Limits::for_size(42);
        assert_eq!(l.max_total_size, 42);
        assert_eq!(l.max_block_size, MAX_BLOCK_SIZE);
        assert_eq!(Limits::default().max_links_per_node, 1024);
    }
}
