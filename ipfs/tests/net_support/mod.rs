//! Shared helpers of the gateway/fetch/kubo tests: deterministic files imported into a
//! temporary blockstore, and the blocks of a file in DFS order.
#![allow(dead_code, unreachable_pub)]

pub mod bad_gateway;

use otaledger_ipfs::traverse::{DagScope, blocks_for};
use otaledger_ipfs::{Blockstore, Cid, ImportOptions, Profile, import};

/// Deterministic pseudo-random bytes (xorshift64), so failures are reproducible.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A file imported into a fresh store.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Blockstore,
    pub root: Cid,
    pub bytes: Vec<u8>,
}

/// Import `bytes` with `profile` (optionally another chunk size) into a new temporary store.
pub fn fixture_with(bytes: Vec<u8>, profile: Profile, chunk_size: Option<usize>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path().join("store")).unwrap();
    let opts = ImportOptions {
        chunk_size,
        ..ImportOptions::profile(profile)
    };
    let mut sink = &store;
    let imported = import(&bytes[..], &opts, &mut sink, &mut |_| {}).unwrap();
    Fixture {
        dir,
        store,
        root: imported.root,
        bytes,
    }
}

/// A `len`-byte file in the project's default profile (kubo-v1: raw leaves, 256 KiB chunks).
pub fn fixture(len: usize) -> Fixture {
    fixture_with(data(len, len as u64 + 7), Profile::KuboV1, None)
}

/// The file's blocks in DFS order, as an honest gateway sends them.
pub fn dfs_blocks(store: &Blockstore, root: &Cid) -> Vec<(Cid, Vec<u8>)> {
    blocks_for(store, root, DagScope::Entity, None)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}
