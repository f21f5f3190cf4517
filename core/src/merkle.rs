//! Device provisioning batches: leaves, the Merkle tree the registry stores the
//! root of, and the proofs owners claim devices with.
//!
//! Leaf = `keccak256(keccak256(abi.encode(uint64 position, address device, uint32 modelId)))`
//! where `position` is the device's place in its batch (double hashed, so a
//! leaf can never be mistaken for an inner node). The device's global index is
//! `firstIndex + position`, with `firstIndex` from the `DevicesProvisioned`
//! event: the tree is built before the index range is known. Inner
//! node = `keccak256(min(a, b) ‖ max(a, b))` (sorted pairs, as OpenZeppelin's
//! `MerkleProof` verifies). Levels are built left to right; an odd node moves
//! up unchanged.

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::SolValue,
};

use crate::{Error, Result};

/// One device of a provisioning batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLeaf {
    /// The device's place in its batch (0-based); its global index is the batch's `firstIndex` plus this.
    pub position: u64,
    /// The device's secp256k1 identity address.
    pub device: Address,
    /// The model it is.
    pub model_id: u32,
}

impl DeviceLeaf {
    /// The leaf hash the contract recomputes in `claimDevice`.
    pub fn hash(&self) -> B256 {
        keccak256(keccak256(
            (self.position, self.device, self.model_id).abi_encode(),
        ))
    }
}

/// A batch's Merkle tree over its device leaves.
#[derive(Debug, Clone)]
pub struct DeviceTree {
    /// levels[0] = leaf hashes in batch order, last level = [root].
    levels: Vec<Vec<B256>>,
}

fn hash_pair(a: B256, b: B256) -> B256 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(lo.as_slice());
    buf[32..].copy_from_slice(hi.as_slice());
    keccak256(buf)
}

impl DeviceTree {
    /// Builds the tree over `leaves` (in batch order).
    pub fn new(leaves: &[DeviceLeaf]) -> Result<Self> {
        if leaves.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let mut levels = vec![leaves.iter().map(DeviceLeaf::hash).collect::<Vec<_>>()];
        while let Some(level) = levels.last().filter(|l| l.len() > 1) {
            let next = level
                .chunks(2)
                .map(|pair| {
                    if let [a, b] = pair {
                        hash_pair(*a, *b)
                    } else {
                        pair[0]
                    }
                })
                .collect();
            levels.push(next);
        }
        Ok(Self { levels })
    }

    /// The root the registry stores for the batch.
    pub fn root(&self) -> B256 {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// How many leaves.
    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    /// Whether the tree has no leaves (never: construction rejects that).
    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// The proof for the leaf at `position` (0-based within the batch).
    pub fn proof(&self, position: usize) -> Result<Vec<B256>> {
        if position >= self.len() {
            return Err(Error::LeafOutOfRange {
                position,
                len: self.len(),
            });
        }
        let mut proof = Vec::with_capacity(self.levels.len());
        let mut i = position;
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(i ^ 1) {
                proof.push(*sibling);
            }
            i /= 2;
        }
        Ok(proof)
    }
}

/// Recomputes the root from a leaf and its proof (what the contract does).
pub fn verify_proof(leaf: &DeviceLeaf, proof: &[B256], root: B256) -> bool {
    proof
        .iter()
        .fold(leaf.hash(), |acc, sibling| hash_pair(acc, *sibling))
        == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<DeviceLeaf> {
        (0..n)
            .map(|i| DeviceLeaf {
                position: i,
                device: Address::with_last_byte(i as u8 + 1),
                model_id: 7,
            })
            .collect()
    }

    #[test]
    fn every_proof_verifies_for_many_sizes() {
        for n in [1, 2, 3, 5, 8, 13, 100] {
            let ls = leaves(n);
            let tree = DeviceTree::new(&ls).unwrap();
            for (i, leaf) in ls.iter().enumerate() {
                assert!(
                    verify_proof(leaf, &tree.proof(i).unwrap(), tree.root()),
                    "n={n} i={i}"
                );
            }
        }
    }

    #[test]
    fn a_changed_leaf_or_root_fails() {
        let ls = leaves(6);
        let tree = DeviceTree::new(&ls).unwrap();
        let proof = tree.proof(2).unwrap();
        let mut other = ls[2];
        other.model_id = 8;
        assert!(!verify_proof(&other, &proof, tree.root()));
        assert!(!verify_proof(&ls[2], &proof, B256::ZERO));
        assert!(matches!(
            tree.proof(6),
            Err(Error::LeafOutOfRange {
                position: 6,
                len: 6
            })
        ));
        assert!(matches!(DeviceTree::new(&[]), Err(Error::EmptyBatch)));
    }
}
