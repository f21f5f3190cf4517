//! A batch's leaf list (`leaves.json`, written by `device provision`) read
//! from the local IPFS block store by its on-chain `leavesCid` and checked
//! against the batch's on-chain Merkle root before any public key in it is
//! used: a leaf list that does not hash to the root is refused, so a tampered
//! store cannot redirect a key to another identity key.

use otaledger_core::{
    key_delivery::public_key_address,
    merkle::{DeviceLeaf, DeviceTree},
};
use otaledger_ipfs::{Blockstore, Cid, Limits, Pushed, Verifier};

use super::store::BatchRow;
use crate::{Error, Result, device::LeafEntry};

/// Largest leaf list read: `device provision` writes at most 100,000 leaves
/// of about 250 bytes.
pub const MAX_LEAVES_BYTES: u64 = 64 * 1024 * 1024;

/// Why a leaf list is unusable.
#[derive(Debug)]
pub enum LeavesError {
    /// Not (completely) in the block store yet: try again later.
    Missing(String),
    /// Present but wrong (does not match the chain): never usable.
    Invalid(String),
}

/// Reads the file under `cid` from `store`, verifying every block, at most
/// [`MAX_LEAVES_BYTES`].
fn read_file(store: &Blockstore, cid: &Cid) -> Result<Vec<u8>, LeavesError> {
    let limits = Limits {
        max_total_size: MAX_LEAVES_BYTES,
        ..Limits::default()
    };
    let invalid = |e: &dyn std::fmt::Display| LeavesError::Invalid(format!("leaf list {cid}: {e}"));
    let mut verifier = Verifier::new(*cid, limits).map_err(|e| invalid(&e))?;
    let mut out = Vec::new();
    while let Some(next) = verifier.next_needed().copied() {
        let block = match store.get(&next) {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(LeavesError::Missing(format!(
                    "block {next} of leaf list {cid} is not in the block store"
                )));
            }
            Err(e) => return Err(LeavesError::Missing(format!("leaf list {cid}: {e}"))),
        };
        match verifier.push(&next, &block).map_err(|e| invalid(&e))? {
            Pushed::Data(d) => out.extend_from_slice(d),
            Pushed::Node => {}
        }
        while let Some(repeat) = verifier.repeat().map_err(|e| invalid(&e))? {
            let (from, len) = (repeat.offset as usize, repeat.len as usize);
            let bytes = out
                .get(from..from.saturating_add(len))
                .ok_or_else(|| invalid(&"a repeated subtree outside the file"))?
                .to_vec();
            out.extend_from_slice(&bytes);
        }
    }
    Ok(out)
}

/// The leaves of `batch`, from the block store, checked against the batch's
/// count and Merkle root and each public key against its address.
pub fn load(store: &Blockstore, batch: &BatchRow) -> Result<Vec<LeafEntry>, LeavesError> {
    let cid: Cid = batch.leaves_cid.parse().map_err(|e| {
        LeavesError::Invalid(format!(
            "batch {}: leavesCid {:?} is not a CID: {e}",
            batch.batch_id, batch.leaves_cid
        ))
    })?;
    let bytes = read_file(store, &cid)?;
    parse(&bytes, batch).map_err(|e| LeavesError::Invalid(e.to_string()))
}

/// Parses and checks a leaf list's bytes against `batch`.
pub fn parse(bytes: &[u8], batch: &BatchRow) -> Result<Vec<LeafEntry>> {
    let bad = |reason: String| Error::Input {
        field: "leaves.json",
        reason: format!("batch {}: {reason}", batch.batch_id),
    };
    let leaves: Vec<LeafEntry> =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a leaf list: {e}")))?;
    if leaves.len() as u64 != batch.count {
        return Err(bad(format!(
            "{} leaves, the batch on chain has {}",
            leaves.len(),
            batch.count
        )));
    }
    let mut tree_leaves = Vec::with_capacity(leaves.len());
    for (i, leaf) in leaves.iter().enumerate() {
        if leaf.position != i as u64 {
            return Err(bad(format!("entry {i} has position {}", leaf.position)));
        }
        let address = public_key_address(&leaf.public_key)?;
        if address != leaf.device {
            return Err(bad(format!(
                "the public key of position {i} is {address}'s, not {}'s",
                leaf.device
            )));
        }
        tree_leaves.push(DeviceLeaf {
            position: leaf.position,
            device: leaf.device,
            model_id: leaf.model_id,
        });
    }
    let root = DeviceTree::new(&tree_leaves)?.root();
    if root != batch.root {
        return Err(bad(format!(
            "the leaves hash to root {root}, the batch on chain has {}",
            batch.root
        )));
    }
    Ok(leaves)
}
