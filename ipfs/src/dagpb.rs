//! Strict dag-pb codec: only the canonical encoding the dag-pb specification defines is accepted.
//!
//! ```text
//! message PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
//! message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }
//! ```
//! Canonical form: every link before the data, link fields in the order Hash, Name, Tsize, no
//! field twice, no unknown fields, minimal varints, links sorted by name, and a Hash in every link.

use alloc::vec::Vec;

use crate::{
    Cid,
    error::DecodeError,
    proto::{LEN, Reader, VARINT, put_bytes, put_key, put_varint},
};

const NODE: &str = "PBNode";
const LINK: &str = "PBLink";

/// One decoded dag-pb link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink<'a> {
    /// The CID the link points to.
    pub hash: Cid,
    /// The link name, if present (UnixFS file links carry an empty name).
    pub name: Option<&'a str>,
    /// The cumulative size of the target's DAG, if present.
    pub tsize: Option<u64>,
}

/// One decoded dag-pb node, borrowing from the block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PbNode<'a> {
    /// The links, in encoded order.
    pub links: Vec<PbLink<'a>>,
    /// The data field, if present.
    pub data: Option<&'a [u8]>,
}

/// Decodes a dag-pb block, accepting only the canonical encoding and at most `max_links` links.
pub fn decode_dag_pb(block: &[u8], max_links: usize) -> Result<PbNode<'_>, DecodeError> {
    let mut r = Reader::new(block);
    let mut node = PbNode::default();
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        match (field, wire_type) {
            (2, LEN) => {
                if node.data.is_some() {
                    return Err(DecodeError::FieldOrder {
                        message: NODE,
                        field,
                    });
                }
                if node.links.len() >= max_links {
                    return Err(DecodeError::TooManyLinks { max: max_links });
                }
                let index = node.links.len();
                let link = decode_link(r.bytes()?, index)?;
                if let Some(prev) = node.links.last() {
                    let prev_name = prev.name.unwrap_or("").as_bytes();
                    if link.name.unwrap_or("").as_bytes() < prev_name {
                        return Err(DecodeError::UnsortedLinks { index });
                    }
                }
                node.links.push(link);
            }
            (1, LEN) => {
                if node.data.is_some() {
                    return Err(DecodeError::FieldOrder {
                        message: NODE,
                        field,
                    });
                }
                node.data = Some(r.bytes()?);
            }
            _ => {
                return Err(DecodeError::UnknownField {
                    message: NODE,
                    field,
                    wire_type,
                });
            }
        }
    }
    Ok(node)
}

fn decode_link(buf: &[u8], index: usize) -> Result<PbLink<'_>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut hash = None;
    let mut name = None;
    let mut tsize = None;
    let mut last_field = 0;
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        if field <= last_field && matches!(field, 1..=3) {
            return Err(DecodeError::FieldOrder {
                message: LINK,
                field,
            });
        }
        match (field, wire_type) {
            (1, LEN) => {
                let bytes = r.bytes()?;
                let cid = Cid::try_from(bytes).map_err(|_| DecodeError::BadLinkCid { index })?;
                if cid.encoded_len() != bytes.len() {
                    return Err(DecodeError::BadLinkCid { index });
                }
                hash = Some(cid);
            }
            (2, LEN) => {
                let bytes = r.bytes()?;
                name = Some(
                    core::str::from_utf8(bytes).map_err(|_| DecodeError::BadLinkName { index })?,
                );
            }
            (3, VARINT) => tsize = Some(r.varint()?),
            _ => {
                return Err(DecodeError::UnknownField {
                    message: LINK,
                    field,
                    wire_type,
                });
            }
        }
        last_field = field;
    }
    let hash = hash.ok_or(DecodeError::MissingField {
        message: LINK,
        field: "Hash",
    })?;
    Ok(PbLink { hash, name, tsize })
}

/// Encodes a dag-pb node canonically (links first, then data).
pub fn encode_dag_pb(links: &[PbLink<'_>], data: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(links.len() * 48 + data.map_or(0, |d| d.len() + 8));
    let mut link_buf = Vec::with_capacity(64);
    for link in links {
        link_buf.clear();
        put_bytes(&mut link_buf, 1, &link.hash.to_bytes());
        if let Some(name) = link.name {
            put_bytes(&mut link_buf, 2, name.as_bytes());
        }
        if let Some(tsize) = link.tsize {
            put_key(&mut link_buf, 3, VARINT);
            put_varint(&mut link_buf, tsize);
        }
        put_bytes(&mut out, 2, &link_buf);
    }
    if let Some(data) = data {
        put_bytes(&mut out, 1, data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DAG_PB, RAW, block_cid};

    fn cid(n: u8) -> Cid {
        block_cid(cid::Version::V1, RAW, &[n])
    }

    #[test]
    fn roundtrip() {
        let links = [
            PbLink {
                hash: cid(1),
                name: Some(""),
                tsize: Some(1),
            },
            PbLink {
                hash: block_cid(cid::Version::V0, DAG_PB, b"x"),
                name: None,
                tsize: None,
            },
        ];
        let enc = encode_dag_pb(&links, Some(b"data"));
        let dec = decode_dag_pb(&enc, 10).unwrap();
        assert_eq!(dec.links, links);
        assert_eq!(dec.data, Some(&b"data"[..]));
        assert_eq!(decode_dag_pb(&[], 10).unwrap(), PbNode::default());
    }

    #[test]
    fn rejects_data_before_links() {
        let link = encode_dag_pb(
            &[PbLink {
                hash: cid(1),
                name: None,
                tsize: None,
            }],
            None,
        );
        let mut enc = Vec::new();
        put_bytes(&mut enc, 1, b"d");
        enc.extend_from_slice(&link);
        assert!(matches!(
            decode_dag_pb(&enc, 10),
            Err(DecodeError::FieldOrder { field: 2, .. })
        ));
    }

    #[test]
    fn rejects_unknown_and_duplicate_fields() {
        let mut enc = Vec::new();
        put_bytes(&mut enc, 3, b"?");
        assert!(matches!(
            decode_dag_pb(&enc, 10),
            Err(DecodeError::UnknownField { field: 3, .. })
        ));
        let mut enc = Vec::new();
        put_bytes(&mut enc, 1, b"a");
        put_bytes(&mut enc, 1, b"b");
        assert!(matches!(
            decode_dag_pb(&enc, 10),
            Err(DecodeError::FieldOrder { .. })
        ));
    }

    #[test]
    fn rejects_link_field_order_missing_hash_and_bad_cid() {
        let mut link = Vec::new();
        put_bytes(&mut link, 2, b"n");
        put_bytes(&mut link, 1, &cid(1).to_bytes());
        let mut enc = Vec::new();
        put_bytes(&mut enc, 2, &link);
        assert!(matches!(
            decode_dag_pb(&enc, 10),
            Err(DecodeError::FieldOrder { .. })
        ));

        let mut link = Vec::new();
        put_bytes(&mut link, 2, b"n");
        let mut enc = Vec::new();
        put_bytes(&mut enc, 2, &link);
        assert!(matches!(
            decode_dag_pb(&enc, 10),
            Err(DecodeError::MissingField { .. })
        ));

        let mut bytes = cid(1).to_bytes();
        bytes.push(0);
        let mut link = Vec::new();
        put_bytes(&mut link, 1, &bytes);
        let mut enc = Vec::new();
        put_bytes(&mut enc, 2, &link);
        assert!(matches!(
            decode_dag_pb(&enc, 10),
            Err(DecodeError::BadLinkCid { index: 0 })
        ));
    }

    #[test]
    fn rejects_unsorted_links_and_too_many() {
        let mk = |name| PbLink {
            hash: cid(1),
            name: Some(name),
            tsize: None,
        };
        let enc = encode_dag_pb(&[mk("b"), mk("a")], None);
        assert!(matches!(
            decode_dag_pb(&enc, 10),
            Err(DecodeError::UnsortedLinks { index: 1 })
        ));
        let enc = encode_dag_pb(&[mk("a"), mk("b")], None);
        assert!(matches!(
            decode_dag_pb(&enc, 1),
            Err(DecodeError::TooManyLinks { max: 1 })
        ));
    }
}
