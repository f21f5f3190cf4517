//! Errors of the crate: one enum per concern, wrapped by [`Error`].

use crate::Cid;

/// The crate's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A block or DAG failed verification.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A dag-pb or UnixFS block is not in canonical form.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A CAR stream is malformed.
    #[cfg(feature = "std")]
    #[error(transparent)]
    Car(#[from] CarError),
    /// The blockstore failed.
    #[cfg(feature = "std")]
    #[error(transparent)]
    Blockstore(#[from] BlockstoreError),
    /// Importing a file failed.
    #[cfg(feature = "std")]
    #[error(transparent)]
    Import(#[from] ImportError),
    /// An I/O error outside the blockstore (reading an input, writing a CAR).
    #[cfg(feature = "std")]
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A verified fetch from gateways failed.
    #[cfg(feature = "client")]
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    /// A Kubo RPC call failed.
    #[cfg(feature = "client")]
    #[error(transparent)]
    Kubo(#[from] crate::kubo::KuboError),
}

/// A dag-pb or UnixFS protobuf that is malformed or not canonically encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ended inside a field.
    #[error("truncated protobuf at byte {offset}")]
    Truncated {
        /// Offset where more bytes were needed.
        offset: usize,
    },
    /// A varint is longer than 10 bytes, overflows 64 bits or is not minimally encoded.
    #[error("invalid or non-minimal varint at byte {offset}")]
    BadVarint {
        /// Offset of the varint.
        offset: usize,
    },
    /// A field number or wire type that this message does not define.
    #[error("unknown field {field} (wire type {wire_type}) in {message}")]
    UnknownField {
        /// The protobuf message being decoded.
        message: &'static str,
        /// Field number.
        field: u64,
        /// Wire type.
        wire_type: u8,
    },
    /// Fields out of canonical order (or a non-repeated field repeated).
    #[error("field {field} out of canonical order in {message}")]
    FieldOrder {
        /// The protobuf message being decoded.
        message: &'static str,
        /// Field number.
        field: u64,
    },
    /// A required field is absent.
    #[error("missing required field {field} in {message}")]
    MissingField {
        /// The protobuf message being decoded.
        message: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// A link's hash is not a valid CID (or has trailing bytes).
    #[error("invalid cid in link {index}")]
    BadLinkCid {
        /// Index of the link in the node.
        index: usize,
    },
    /// A link name is not UTF-8.
    #[error("link {index} name is not utf-8")]
    BadLinkName {
        /// Index of the link in the node.
        index: usize,
    },
    /// Links are not sorted by name, as dag-pb requires.
    #[error("links not sorted by name at link {index}")]
    UnsortedLinks {
        /// Index of the first link out of order.
        index: usize,
    },
    /// More links (or UnixFS blocksizes) than allowed.
    #[error("more than {max} links in one node")]
    TooManyLinks {
        /// The limit.
        max: usize,
    },
    /// A value out of the range its field allows (UnixFS type, mode).
    #[error("value {value} out of range for {field}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// The value found.
        value: u64,
    },
}

/// Why a DAG or block failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The block's bytes do not hash to its CID.
    #[error("block {cid} does not match its hash")]
    HashMismatch {
        /// The CID the block was sent for.
        cid: Cid,
    },
    /// The block is not the one the DAG walk needs next.
    #[error("unexpected block {got}, expected {expected}")]
    UnexpectedBlock {
        /// The CID the walk needs.
        expected: Cid,
        /// The CID that was sent.
        got: Cid,
    },
    /// A block that was already verified was sent again out of turn (skippable).
    #[error("duplicate block {cid}")]
    DuplicateBlock {
        /// The repeated CID.
        cid: Cid,
    },
    /// The block exceeds [`crate::Limits::max_block_size`].
    #[error("block {cid} is {size} bytes, more than {max}")]
    BlockTooLarge {
        /// The block.
        cid: Cid,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A node has more links than [`crate::Limits::max_links_per_node`].
    #[error("node {cid} has more than {max} links")]
    TooManyLinks {
        /// The node.
        cid: Cid,
        /// The limit.
        max: usize,
    },
    /// The DAG is deeper than [`crate::Limits::max_depth`].
    #[error("node {cid} at depth {depth} has children, limit is {max}")]
    TooDeep {
        /// The node.
        cid: Cid,
        /// Its depth (the root is 0).
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// The file is larger than [`crate::Limits::max_total_size`].
    #[error("file is {size} bytes, more than {max}")]
    TotalSizeExceeded {
        /// The size the DAG declares or yields.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// UnixFS sizes that do not add up, or a child whose size differs from what its parent says.
    #[error("size mismatch in {cid}: {what} is {actual}, expected {expected}")]
    SizeMismatch {
        /// The node (or leaf) where the sizes disagree.
        cid: Cid,
        /// Which size.
        what: &'static str,
        /// The size expected from the parent or from the node's own fields.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// The block is not canonical dag-pb / UnixFS.
    #[error("block {cid}: {source}")]
    Decode {
        /// The block.
        cid: Cid,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// A codec other than dag-pb (0x70) and raw (0x55).
    #[error("unsupported codec {codec:#x} in {cid}")]
    UnsupportedCodec {
        /// The CID.
        cid: Cid,
        /// Its codec.
        codec: u64,
    },
    /// A multihash other than sha2-256 with a 32-byte digest.
    #[error("unsupported multihash {code:#x} (size {size}) in {cid}")]
    UnsupportedHash {
        /// The CID.
        cid: Cid,
        /// The multihash code.
        code: u64,
        /// The digest size.
        size: u8,
    },
    /// The DAG is not a UnixFS file (a directory, symlink, HAMT shard or metadata node).
    #[error("{cid} is not a file (unixfs type {kind})")]
    NotAFile {
        /// The node.
        cid: Cid,
        /// Its UnixFS type name.
        kind: &'static str,
    },
    /// A resume offset beyond the end of the file.
    #[error("range start {from} is beyond the file size {size}")]
    RangeNotSatisfiable {
        /// The requested start.
        from: u64,
        /// The file size.
        size: u64,
    },
    /// A block arrived after the DAG was complete.
    #[error("block {cid} after the dag was complete")]
    Finished {
        /// The extra block.
        cid: Cid,
    },
}

/// A malformed CAR v1 stream.
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CarError {
    /// Reading or writing the stream failed.
    #[error("car i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended inside a varint, header or section.
    #[error("car truncated at byte {offset}")]
    Truncated {
        /// Stream offset where more bytes were needed.
        offset: u64,
    },
    /// A varint that is too long, overflows or is not minimal.
    #[error("invalid varint at byte {offset}")]
    BadVarint {
        /// Stream offset of the varint.
        offset: u64,
    },
    /// The header is larger than [`crate::car::MAX_HEADER_SIZE`].
    #[error("car header of {size} bytes is larger than {max}")]
    HeaderTooLarge {
        /// Declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The header is not the dag-cbor `{roots: [CID, ...], version: 1}` map.
    #[error("invalid car header: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// The header has an empty roots list.
    #[error("car header has no roots")]
    NoRoots,
    /// A header version other than 1 (CARv2 is not supported).
    #[error("unsupported car version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: u64,
    },
    /// A section larger than the limit.
    #[error("car section of {size} bytes at byte {offset} is larger than {max}")]
    SectionTooLarge {
        /// Stream offset of the section.
        offset: u64,
        /// Declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A section whose CID does not parse.
    #[error("invalid cid in car section at byte {offset}")]
    BadCid {
        /// Stream offset of the section.
        offset: u64,
    },
    /// A block whose bytes do not match its CID (or an unsupported hash).
    #[error("car block: {0}")]
    Block(#[from] VerifyError),
}

/// A blockstore failure.
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockstoreError {
    /// A file system operation failed.
    #[error("blockstore i/o on {path}: {source}")]
    Io {
        /// The path involved.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A block given to `put` does not match its CID.
    #[error("refusing block: {0}")]
    Rejected(#[from] VerifyError),
    /// A stored block no longer matches its CID (disk corruption or tampering).
    #[error("stored block {cid} is corrupt")]
    Corrupt {
        /// The block.
        cid: Cid,
    },
    /// A needed block is not in the store.
    #[error("block {cid} not found")]
    NotFound {
        /// The block.
        cid: Cid,
    },
}

/// An import failure.
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The path is a directory or another non-file: only files are imported.
    #[error("{path} is not a regular file (directories are not supported)")]
    NotAFile {
        /// The path.
        path: std::path::PathBuf,
    },
    /// Reading the input failed.
    #[error("reading input: {0}")]
    Read(std::io::Error),
    /// An unknown profile name.
    #[error("unknown profile {0:?} (expected kubo, kubo-v1 or unixfs-v1-2025)")]
    UnknownProfile(String),
    /// A chunker string other than `size-N`.
    #[error("invalid chunker {0:?} (expected size-N)")]
    BadChunker(String),
    /// A chunk size of zero or above the 1 MiB Kubo allows.
    #[error("chunk size {size} out of range 1..={max}")]
    ChunkSize {
        /// The size requested.
        size: usize,
        /// The largest size allowed.
        max: usize,
    },
    /// A CID version other than 0 and 1.
    #[error("cid version {0} is not 0 or 1")]
    CidVersion(u8),
    /// Inconsistent import options or builder state.
    #[error("invalid import: {0}")]
    Options(&'static str),
    /// The sink refused a block.
    #[error("storing block {cid}: {source}")]
    Sink {
        /// The block.
        cid: Cid,
        /// The sink's error.
        source: Box<Error>,
    },
}
