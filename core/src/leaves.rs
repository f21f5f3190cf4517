//! A provisioning batch's leaf list, `leaves.json`: one entry per device
//! (position, address, model and identity public key), written by `device
//! provision`, stored on IPFS under the batch's `leavesCid`, read by the key
//! service (to encrypt key deliveries) and by the indexer (to map devices to
//! their identities, after checking the list against the batch's on-chain root).
//!
//! The list is untrusted input: its size and entry count are bounded before
//! and while it is parsed, entries must be in batch order (`position` 0, 1, …),
//! and every public key must be the key of the entry's address.

use std::{io::Read, path::Path};

use alloy::primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    merkle::{DeviceLeaf, DeviceTree},
};

/// Most devices in one leaf list (the CLI provisions at most this many per batch).
pub const MAX_LEAVES: usize = 100_000;

/// Largest leaf list accepted, in bytes (a pretty-printed entry is about 280 bytes).
pub const MAX_LEAF_LIST_SIZE: u64 = 48 * 1024 * 1024;

/// Length of an uncompressed SEC1 secp256k1 public key.
const PUBLIC_KEY_LEN: usize = 65;

/// One entry of `leaves.json`: a leaf of the batch and the device's public key
/// (which the key service encrypts key deliveries to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeafEntry {
    /// Position in the batch.
    pub position: u64,
    /// The device's address.
    pub device: Address,
    /// Its model.
    pub model_id: u32,
    /// Its identity public key, uncompressed SEC1.
    pub public_key: Bytes,
}

impl LeafEntry {
    /// The Merkle leaf this entry stands for.
    pub fn leaf(&self) -> DeviceLeaf {
        DeviceLeaf {
            position: self.position,
            device: self.device,
            model_id: self.model_id,
        }
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::LeafList {
        reason: reason.into(),
    }
}

/// Parses and checks a leaf list: at most [`MAX_LEAF_LIST_SIZE`] bytes and
/// [`MAX_LEAVES`] entries, at least one entry, positions `0..n` in order, each
/// public key 65 bytes and the key of the entry's address.
pub fn parse_leaves(bytes: &[u8]) -> Result<Vec<LeafEntry>> {
    if bytes.len() as u64 > MAX_LEAF_LIST_SIZE {
        return Err(invalid(format!(
            "{} bytes, more than {MAX_LEAF_LIST_SIZE}",
            bytes.len()
        )));
    }
    // Count the entries before materialising them: a list of MAX_LEAVES + 1
    // tiny objects is refused without allocating MAX_LEAVES + 1 entries.
    let leaves: Vec<LeafEntry> = serde_json::from_slice::<Bounded>(bytes)
        .map_err(|e| invalid(e.to_string()))?
        .0;
    if leaves.is_empty() {
        return Err(invalid("no entries"));
    }
    for (i, leaf) in leaves.iter().enumerate() {
        if leaf.position != i as u64 {
            return Err(invalid(format!(
                "entry {i} has position {}: entries must be in batch order",
                leaf.position
            )));
        }
        if leaf.public_key.len() != PUBLIC_KEY_LEN {
            return Err(invalid(format!(
                "the public key of position {i} is {} bytes, not {PUBLIC_KEY_LEN}",
                leaf.public_key.len()
            )));
        }
        let address = crate::key_delivery::public_key_address(&leaf.public_key)
            .map_err(|_| invalid(format!("the public key of position {i} is not a valid key")))?;
        if address != leaf.device {
            return Err(invalid(format!(
                "the public key of position {i} is {address}'s, not {}'s",
                leaf.device
            )));
        }
    }
    Ok(leaves)
}

/// A JSON array of at most [`MAX_LEAVES`] entries, refused as soon as it is longer.
struct Bounded(Vec<LeafEntry>);

impl<'de> Deserialize<'de> for Bounded {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Bounded;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "an array of at most {MAX_LEAVES} leaf entries")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Bounded, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(entry) = seq.next_element::<LeafEntry>()? {
                    if out.len() == MAX_LEAVES {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_LEAVES} entries"
                        )));
                    }
                    out.push(entry);
                }
                Ok(Bounded(out))
            }
        }
        d.deserialize_seq(Visit)
    }
}

/// Reads and checks a leaf list file (see [`parse_leaves`]); a file larger
/// than [`MAX_LEAF_LIST_SIZE`] is refused without reading it whole.
pub fn load_leaves(path: &Path) -> Result<Vec<LeafEntry>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_LEAF_LIST_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    parse_leaves(&bytes).map_err(|e| match e {
        Error::LeafList { reason } => invalid(format!("{}: {reason}", path.display())),
        other => other,
    })
}

/// The Merkle root of a checked leaf list: what the batch's on-chain `root`
/// must equal.
pub fn leaves_root(leaves: &[LeafEntry]) -> Result<B256> {
    let leaves: Vec<DeviceLeaf> = leaves.iter().map(LeafEntry::leaf).collect();
    Ok(DeviceTree::new(&leaves)?.root())
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;

    use super::*;

    fn list(n: usize) -> Vec<LeafEntry> {
        (0..n)
            .map(|i| {
                let key = PrivateKeySigner::random();
                LeafEntry {
                    position: i as u64,
                    device: key.address(),
                    model_id: 7,
                    public_key: crate::key_delivery::identity_public_key(&key).into(),
                }
            })
            .collect()
    }

    fn reason(r: Result<Vec<LeafEntry>>) -> String {
        match r {
            Err(Error::LeafList { reason }) => reason,
            other => panic!("expected LeafList, got {other:?}"),
        }
    }

    #[test]
    fn a_written_list_round_trips_to_its_root() {
        let leaves = list(5);
        let bytes = serde_json::to_vec_pretty(&leaves).unwrap();
        let parsed = parse_leaves(&bytes).unwrap();
        assert_eq!(parsed, leaves);
        let tree =
            DeviceTree::new(&leaves.iter().map(LeafEntry::leaf).collect::<Vec<_>>()).unwrap();
        assert_eq!(leaves_root(&parsed).unwrap(), tree.root());
        // Another model changes the root.
        let mut other = parsed.clone();
        other[3].model_id = 8;
        assert_ne!(leaves_root(&other).unwrap(), tree.root());
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        let leaves = list(3);
        let mut swapped = leaves.clone();
        swapped.swap(0, 1);
        assert!(
            reason(parse_leaves(&serde_json::to_vec(&swapped).unwrap())).contains("batch order")
        );
        let mut wrong_key = leaves.clone();
        wrong_key[1].public_key = leaves[2].public_key.clone();
        assert!(
            reason(parse_leaves(&serde_json::to_vec(&wrong_key).unwrap())).contains("position 1")
        );
        let mut short_key = leaves.clone();
        short_key[2].public_key = Bytes::from(vec![4u8; 33]);
        assert!(
            reason(parse_leaves(&serde_json::to_vec(&short_key).unwrap())).contains("33 bytes")
        );
        assert!(reason(parse_leaves(b"[]")).contains("no entries"));
        assert!(!reason(parse_leaves(b"{\"a\": 1}")).is_empty());
        let too_big = vec![b' '; MAX_LEAF_LIST_SIZE as usize + 1];
        assert!(reason(parse_leaves(&too_big)).contains("more than"));
    }

    #[test]
    fn too_many_entries_are_refused_while_parsing() {
        let entry = serde_json::to_string(&list(1)[0]).unwrap();
        let mut text = String::from("[");
        for i in 0..=MAX_LEAVES {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&entry);
        }
        text.push(']');
        assert!(reason(parse_leaves(text.as_bytes())).contains("more than 100000 entries"));
    }

    #[test]
    fn mutated_lists_never_panic_and_keep_the_invariants() {
        let leaves = list(2);
        let bytes = serde_json::to_vec(&leaves).unwrap();
        let mut parsed_mutations = 0;
        for i in 0..bytes.len() {
            for delta in [1u8, 0x20, 0x80] {
                let mut m = bytes.clone();
                m[i] = m[i].wrapping_add(delta);
                // A mutation that still parses (a model id digit, hex case)
                // is a list whose every entry still holds its own key, in order.
                if let Ok(parsed) = parse_leaves(&m) {
                    parsed_mutations += 1;
                    for (p, leaf) in parsed.iter().enumerate() {
                        assert_eq!(leaf.position, p as u64);
                        assert_eq!(
                            crate::key_delivery::public_key_address(&leaf.public_key).unwrap(),
                            leaf.device
                        );
                    }
                }
            }
            assert!(parse_leaves(&bytes[..i]).is_err(), "cut {i}");
        }
        // Almost every mutation is refused.
        assert!(parsed_mutations < bytes.len() / 4, "{parsed_mutations}");
    }
}
