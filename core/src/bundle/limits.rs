//! Bounds of the bundle format, enforced by the encoder and the decoder before
//! any allocation, so no input makes a device buffer without bound.

/// Smallest segment size a header may declare. Small segments only cost
/// overhead (16 bytes per segment); 64 bytes lets test vectors have several.
pub const MIN_SEGMENT_SIZE: u32 = 64;
/// Largest segment size a header may declare: a decryptor buffers one segment.
pub const MAX_SEGMENT_SIZE: u32 = 4 * 1024 * 1024;
/// The segment size `release create` uses.
pub const DEFAULT_SEGMENT_SIZE: u32 = 64 * 1024;
/// Longest policy text in a header, in bytes.
pub const MAX_POLICY_TEXT_LEN: usize = 8 * 1024;
/// Longest capsule in a header, in bytes (a 64-leaf policy is about 9.6 KiB).
pub const MAX_CAPSULE_LEN: usize = 96 * 1024;
/// Longest header: fixed fields, policy text, capsule length and capsule.
pub const MAX_HEADER_LEN: usize =
    super::header::FIXED_LEN + MAX_POLICY_TEXT_LEN + 4 + MAX_CAPSULE_LEN;
/// Poly1305 tag bytes at the end of every segment.
pub const TAG_LEN: usize = 16;
/// Length of the key commitment between the header and the stream.
pub const COMMITMENT_LEN: usize = 32;
/// Positions tried to tell a reordered or duplicated segment from an altered
/// one when a segment fails (the nearest ones first); bounds the work an
/// altered bundle can cause.
pub const MAX_DIAGNOSE_TRIES: u32 = 1024;
