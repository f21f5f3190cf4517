//! Strict UnixFS `Data` codec (the protobuf inside a dag-pb node's data field).
//!
//! ```text
//! message Data {
//!   required DataType Type = 1; optional bytes Data = 2; optional uint64 filesize = 3;
//!   repeated uint64 blocksizes = 4; optional uint64 hashType = 5; optional uint64 fanout = 6;
//!   optional uint32 mode = 7; optional UnixTime mtime = 8;
//! }
//! message UnixTime { required int64 Seconds = 1; optional fixed32 FractionalNanoseconds = 2; }
//! ```
//! Canonical form: fields in ascending order, each optional field at most once, `blocksizes`
//! unpacked (proto2), minimal varints, no unknown fields.

use alloc::vec::Vec;

use crate::{
    error::DecodeError,
    proto::{FIXED32, LEN, Reader, VARINT, put_bytes, put_key, put_varint},
};

const DATA: &str = "UnixFS Data";
const TIME: &str = "UnixTime";

/// The UnixFS node type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// Raw bytes (older leaves).
    Raw,
    /// A directory.
    Directory,
    /// A file (or file chunk).
    File,
    /// A metadata node.
    Metadata,
    /// A symbolic link.
    Symlink,
    /// A HAMT-sharded directory.
    HamtShard,
}

impl DataType {
    /// The name of the type, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Directory => "directory",
            Self::File => "file",
            Self::Metadata => "metadata",
            Self::Symlink => "symlink",
            Self::HamtShard => "hamt-shard",
        }
    }

    fn from_code(code: u64) -> Result<Self, DecodeError> {
        Ok(match code {
            0 => Self::Raw,
            1 => Self::Directory,
            2 => Self::File,
            3 => Self::Metadata,
            4 => Self::Symlink,
            5 => Self::HamtShard,
            value => {
                return Err(DecodeError::OutOfRange {
                    field: "Type",
                    value,
                });
            }
        })
    }
}

/// A decoded UnixFS `Data` message, borrowing from the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixFsData<'a> {
    /// The node type.
    pub kind: DataType,
    /// Inline file bytes, if present.
    pub data: Option<&'a [u8]>,
    /// Total file bytes under this node, if present.
    pub filesize: Option<u64>,
    /// File bytes under each link, in link order.
    pub blocksizes: Vec<u64>,
    /// HAMT hash function (directories only).
    pub hash_type: Option<u64>,
    /// HAMT fanout (directories only).
    pub fanout: Option<u64>,
    /// POSIX mode bits.
    pub mode: Option<u32>,
    /// Modification time: seconds and optional nanoseconds.
    pub mtime: Option<(i64, Option<u32>)>,
}

/// Decodes a UnixFS `Data` message strictly, accepting at most `max_blocksizes` blocksizes.
pub fn decode_unixfs(buf: &[u8], max_blocksizes: usize) -> Result<UnixFsData<'_>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut out = UnixFsData {
        kind: DataType::Raw,
        data: None,
        filesize: None,
        blocksizes: Vec::new(),
        hash_type: None,
        fanout: None,
        mode: None,
        mtime: None,
    };
    let mut last_field = 0u64;
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        let repeated_blocksize = field == 4 && last_field == 4;
        if field <= last_field && !repeated_blocksize && matches!(field, 1..=8) {
            return Err(DecodeError::FieldOrder {
                message: DATA,
                field,
            });
        }
        if last_field == 0 && field != 1 && matches!(field, 2..=8) {
            return Err(DecodeError::MissingField {
                message: DATA,
                field: "Type",
            });
        }
        match (field, wire_type) {
            (1, VARINT) => out.kind = DataType::from_code(r.varint()?)?,
            (2, LEN) => out.data = Some(r.bytes()?),
            (3, VARINT) => out.filesize = Some(r.varint()?),
            (4, VARINT) => {
                if out.blocksizes.len() >= max_blocksizes {
                    return Err(DecodeError::TooManyLinks {
                        max: max_blocksizes,
                    });
                }
                out.blocksizes.push(r.varint()?);
            }
            (5, VARINT) => out.hash_type = Some(r.varint()?),
            (6, VARINT) => out.fanout = Some(r.varint()?),
            (7, VARINT) => {
                let value = r.varint()?;
                out.mode = Some(u32::try_from(value).map_err(|_| DecodeError::OutOfRange {
                    field: "mode",
                    value,
                })?);
            }
            (8, LEN) => out.mtime = Some(decode_time(r.bytes()?)?),
            _ => {
                return Err(DecodeError::UnknownField {
                    message: DATA,
                    field,
                    wire_type,
                });
            }
        }
        last_field = field;
    }
    if last_field == 0 {
        return Err(DecodeError::MissingField {
            message: DATA,
            field: "Type",
        });
    }
    Ok(out)
}

fn decode_time(buf: &[u8]) -> Result<(i64, Option<u32>), DecodeError> {
    let mut r = Reader::new(buf);
    let mut seconds = None;
    let mut nanos = None;
    let mut last_field = 0u64;
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        if field <= last_field && matches!(field, 1..=2) {
            return Err(DecodeError::FieldOrder {
                message: TIME,
                field,
            });
        }
        match (field, wire_type) {
            // int64 is encoded as the two's complement bit pattern.
            (1, VARINT) => seconds = Some(r.varint()? as i64),
            (2, FIXED32) => {
                let n = r.fixed32()?;
                if n >= 1_000_000_000 {
                    return Err(DecodeError::OutOfRange {
                        field: "FractionalNanoseconds",
                        value: u64::from(n),
                    });
                }
                nanos = Some(n);
            }
            _ => {
                return Err(DecodeError::UnknownField {
                    message: TIME,
                    field,
                    wire_type,
                });
            }
        }
        last_field = field;
    }
    let seconds = seconds.ok_or(DecodeError::MissingField {
        message: TIME,
        field: "Seconds",
    })?;
    Ok((seconds, nanos))
}

/// Encodes a UnixFS file node the way Kubo and the JS importer do: `Type = File`, the data
/// (omitted when empty), `filesize`, then one unpacked `blocksizes` entry per link.
pub fn encode_unixfs_file(data: &[u8], filesize: u64, blocksizes: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16 + blocksizes.len() * 4);
    put_key(&mut out, 1, VARINT);
    put_varint(&mut out, 2);
    if !data.is_empty() {
        put_bytes(&mut out, 2, data);
    }
    put_key(&mut out, 3, VARINT);
    put_varint(&mut out, filesize);
    for &size in blocksizes {
        put_key(&mut out, 4, VARINT);
        put_varint(&mut out, size);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_node_bytes() {
        // Kubo's empty file: Type = File, filesize = 0.
        assert_eq!(encode_unixfs_file(b"", 0, &[]), [0x08, 0x02, 0x18, 0x00]);
    }

    #[test]
    fn roundtrip_file() {
        let enc = encode_unixfs_file(b"abc", 9, &[3, 3]);
        let d = decode_unixfs(&enc, 10).unwrap();
        assert_eq!(d.kind, DataType::File);
        assert_eq!(d.data, Some(&b"abc"[..]));
        assert_eq!(d.filesize, Some(9));
        assert_eq!(d.blocksizes, [3, 3]);
        assert!(matches!(
            decode_unixfs(&enc, 1),
            Err(DecodeError::TooManyLinks { max: 1 })
        ));
    }

    #[test]
    fn rejects_out_of_order_missing_type_unknown() {
        // filesize before Data
        let enc = [0x08, 0x02, 0x18, 0x01, 0x12, 0x01, 0x61];
        assert!(matches!(
            decode_unixfs(&enc, 10),
            Err(DecodeError::FieldOrder { field: 2, .. })
        ));
        assert!(matches!(
            decode_unixfs(&[0x18, 0x00], 10),
            Err(DecodeError::MissingField { .. })
        ));
        assert!(matches!(
            decode_unixfs(&[], 10),
            Err(DecodeError::MissingField { .. })
        ));
        assert!(matches!(
            decode_unixfs(&[0x08, 0x02, 0x48, 0x00], 10),
            Err(DecodeError::UnknownField { field: 9, .. })
        ));
        assert!(matches!(
            decode_unixfs(&[0x08, 0x09], 10),
            Err(DecodeError::OutOfRange { field: "Type", .. })
        ));
        // packed blocksizes (wire type 2) are not canonical for proto2
        assert!(matches!(
            decode_unixfs(&[0x08, 0x02, 0x22, 0x01, 0x01], 10),
            Err(DecodeError::UnknownField { field: 4, .. })
        ));
    }

    #[test]
    fn decodes_mode_and_mtime() {
        let enc = [
            0x08, 0x02, 0x38, 0xa4, 0x03, 0x42, 0x07, 0x08, 0x01, 0x15, 0x01, 0x00, 0x00, 0x00,
        ];
        let d = decode_unixfs(&enc, 0).unwrap();
        assert_eq!(d.mode, Some(0o644));
        assert_eq!(d.mtime, Some((1, Some(1))));
    }
}
