//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `otaledger-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A deployment file is not valid JSON of the expected shape.
    #[error("deployment file {path} is invalid: {source}")]
    DeploymentFile {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// A deployment file names another chain than the one it is filed under.
    #[error("deployment file {path} is for chain {found}, expected chain {expected}")]
    ChainIdMismatch {
        /// The file.
        path: PathBuf,
        /// The chain id the file name promises.
        expected: u64,
        /// The chain id inside the file.
        found: u64,
    },
    /// A Foundry binary (anvil, forge, cast) could not be found.
    #[error("{tool} not found: set {env} or run `npm ci` in the repository (looked in: {looked})")]
    ToolNotFound {
        /// The tool's name.
        tool: &'static str,
        /// The environment variable that overrides the search.
        env: &'static str,
        /// The places searched.
        looked: String,
    },
    /// A signer set is empty, has duplicates or the zero address, or its threshold is 0 or above its size.
    #[error(
        "invalid signer set: {signers} signers (duplicates: {duplicate}), threshold {threshold}"
    )]
    InvalidSignerSet {
        /// Number of signers given.
        signers: usize,
        /// Threshold given.
        threshold: u8,
        /// Whether an address appeared twice.
        duplicate: bool,
    },
    /// Fewer distinct keys than the threshold were given to sign.
    #[error("{given} distinct signing keys given, the threshold is {threshold}")]
    NotEnoughSigners {
        /// Distinct keys given.
        given: usize,
        /// The set's threshold.
        threshold: u8,
    },
    /// A key that is not in the signer set was asked to sign an approval.
    #[error("{address} is not a member of the signer set")]
    NotASigner {
        /// The key's address.
        address: alloy::primitives::Address,
    },
    /// A key failed to sign.
    #[error("signer {signer} failed to sign: {reason}")]
    Signing {
        /// The key's address.
        signer: alloy::primitives::Address,
        /// What the signer said.
        reason: String,
    },
    /// A provisioning batch must contain at least one device.
    #[error("a provisioning batch needs at least one device")]
    EmptyBatch,
    /// A Merkle proof was asked for a position outside the batch.
    #[error("leaf position {position} is outside the batch of {len}")]
    LeafOutOfRange {
        /// The position asked for.
        position: usize,
        /// The batch's size.
        len: usize,
    },
    /// A JSON-RPC call failed.
    #[error("rpc error during {during}: {reason}")]
    Rpc {
        /// What was being done.
        during: &'static str,
        /// What the node or transport said.
        reason: String,
    },
    /// The chain has no CREATE2 deployer at its well-known address.
    #[error(
        "no CREATE2 deployer at {address} on this chain; deploy it first (see docs/contracts.md)"
    )]
    NoCreate2Deployer {
        /// Where it was expected.
        address: alloy::primitives::Address,
    },
    /// A deployment transaction did not create the contract.
    #[error("deploying {contract} failed in transaction {tx}")]
    DeploymentFailed {
        /// The contract.
        contract: &'static str,
        /// The transaction.
        tx: alloy::primitives::B256,
    },
    /// A local node could not be started.
    #[error("could not start {path}: {reason}")]
    NodeSpawn {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The follower was given no RPC URL.
    #[error("no rpc url given")]
    NoRpcUrl,
    /// A JSON-RPC request failed on every try and every endpoint.
    #[error("rpc {during} failed {attempts} times, last: {last}")]
    RpcExhausted {
        /// What was being done.
        during: &'static str,
        /// Tries made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The chain no longer has any block hash the follower kept: the reorg is
    /// deeper than its window, and continuing would serve data the chain does
    /// not have.
    #[error(
        "reorg deeper than the window of {window} blocks: block {block} (stored hash {stored}) is no longer on the chain"
    )]
    ReorgTooDeep {
        /// The oldest kept block, which the chain replaced too.
        block: u64,
        /// Its hash as stored.
        stored: alloy::primitives::B256,
        /// The follower's window (finality depth).
        window: u64,
    },
    /// The follower's store failed.
    #[error("store: {source}")]
    Store {
        /// The store's error.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A block range yielded no block (an internal invariant).
    #[error("block range {from}..={to} is empty")]
    EmptyRange {
        /// First block.
        from: u64,
        /// Last block.
        to: u64,
    },
    /// Logs of a final block range name another hash for its last block than
    /// its head does: the node's view changed below the finality depth.
    #[error("logs of blocks {from}..={to} disagree with the head of block {to}")]
    InconsistentRange {
        /// First block.
        from: u64,
        /// Last block.
        to: u64,
    },
    /// Bytes claimed to be a `format` object do not start with its magic.
    #[error("not a {format}: bad magic {found}")]
    BadMagic {
        /// Which format was expected.
        format: &'static str,
        /// The first bytes found, hex.
        found: String,
    },
    /// A `format` object has a format version this build does not read.
    #[error("{format} format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// Which format.
        format: &'static str,
        /// The version found.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// Input ended inside a `format` object.
    #[error("{format} truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Which format.
        format: &'static str,
        /// Bytes needed to go on.
        needed: u64,
        /// Bytes there were.
        available: u64,
    },
    /// A length or size field is outside its documented bounds.
    #[error("{format} field {field} is {value}, must be within {min}..={max}")]
    FieldOutOfRange {
        /// Which format.
        format: &'static str,
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// Bytes follow a complete `format` object that must stand alone.
    #[error("{extra} unexpected bytes after the {format}")]
    TrailingBytes {
        /// Which format.
        format: &'static str,
        /// How many bytes follow.
        extra: u64,
    },
    /// A bundle header names an AEAD this build does not know.
    #[error("unknown aead algorithm {id} in the bundle header")]
    UnsupportedAead {
        /// The algorithm id found.
        id: u8,
    },
    /// The bundle header's policy text is not valid UTF-8 or does not parse.
    #[error("bundle header policy text is invalid: {reason}")]
    PolicyText {
        /// What is wrong.
        reason: String,
    },
    /// The header's policy text is not the canonical text of the capsule's policy.
    #[error("bundle header policy {text:?} is not the capsule's policy {capsule:?}")]
    PolicyMismatch {
        /// The header's text.
        text: String,
        /// The capsule's policy, canonical text.
        capsule: String,
    },
    /// The bundle's CP-ABE capsule does not decode.
    #[error("bundle capsule is invalid: {source}")]
    Capsule {
        /// What the CP-ABE decoder said.
        source: otaledger_cpabe::Error,
    },
    /// A CP-ABE operation failed (for decryption: the key's attributes do not satisfy the policy).
    #[error("cp-abe {during} failed: {source}")]
    CpAbe {
        /// What was being done.
        during: &'static str,
        /// What the CP-ABE crate said.
        source: otaledger_cpabe::Error,
    },
    /// The content key does not match the header's key commitment: the header or
    /// the capsule was altered, or the key comes from another authority.
    #[error(
        "the bundle header's key commitment does not match (header or capsule altered, or a foreign key)"
    )]
    KeyCommitment,
    /// A segment failed authentication at its position and at every other position
    /// checked: its bytes were altered.
    #[error("bundle segment {index} failed authentication (altered)")]
    SegmentTampered {
        /// Segment position in the stream (0-based).
        index: u32,
    },
    /// A segment authenticates, but at a later position: segments were reordered.
    #[error("bundle segment at position {position} belongs at position {belongs_at} (reordered)")]
    SegmentReordered {
        /// Where it was found.
        position: u32,
        /// Where it belongs.
        belongs_at: u32,
    },
    /// A segment authenticates, but at an earlier position: a segment was duplicated.
    #[error("bundle segment at position {position} is a copy of segment {copy_of} (duplicated)")]
    SegmentDuplicated {
        /// Where it was found.
        position: u32,
        /// The position it is a copy of.
        copy_of: u32,
    },
    /// The encrypted stream ended before its last segment.
    #[error("bundle stream truncated: {expected} encrypted bytes expected, {received} received")]
    StreamTruncated {
        /// Encrypted bytes the header promises.
        expected: u64,
        /// Encrypted bytes received.
        received: u64,
    },
    /// Bytes follow the stream's last segment.
    #[error("bundle stream extended: bytes follow the last segment (stream length is {expected})")]
    StreamExtended {
        /// Encrypted bytes the header promises.
        expected: u64,
    },
    /// The image reader gave another number of bytes than declared.
    #[error("image length mismatch: declared {declared} bytes, read {actual}")]
    ImageLength {
        /// The declared length.
        declared: u64,
        /// Bytes actually read (stops one past the declared length).
        actual: u64,
    },
    /// Reading or writing a stream failed.
    #[error("i/o error while {during}: {source}")]
    Stream {
        /// What was being done.
        during: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A secp256k1 key (identity, key-service) is not valid.
    #[error("invalid secp256k1 {what}")]
    InvalidKey {
        /// Which key.
        what: &'static str,
    },
    /// A 64-byte EIP-2098 signature whose `s` is above secp256k1n/2: the high-s
    /// twin of a signature recovers to the same signer, so it is refused to keep
    /// one encoding per signature (the registry refuses it too).
    #[error("signature has s above secp256k1n/2 (the malleable twin of a low-s signature)")]
    MalleableSignature,
    /// A key delivery is not signed by the expected key service.
    #[error("key delivery signed by {recovered:?}, expected key service {expected}")]
    KeyDeliverySigner {
        /// The signer recovered from the signature, if any.
        recovered: Option<alloy::primitives::Address>,
        /// The key service the device trusts.
        expected: alloy::primitives::Address,
    },
    /// A key delivery is addressed to another device or chain.
    #[error("key delivery is for {field} {found}, this device expects {expected}")]
    KeyDeliveryMismatch {
        /// The field that differs.
        field: &'static str,
        /// What the delivery says.
        found: String,
        /// What the device expected.
        expected: String,
    },
    /// The ECIES layer of a key delivery did not decrypt (wrong identity key or altered ciphertext).
    #[error("key delivery ciphertext does not decrypt with this identity key")]
    KeyDeliveryDecrypt,
    /// ECIES encryption failed.
    #[error("ecies encryption failed: {reason}")]
    Ecies {
        /// What the ECIES crate said.
        reason: String,
    },
    /// A manifest file is not valid JSON of the documented shape.
    #[error("manifest file {path} is invalid: {source}")]
    ManifestFile {
        /// The file.
        path: PathBuf,
        /// What the parser said (names the field and position).
        source: serde_json::Error,
    },
    /// A JSON document of a versioned format has another format tag.
    #[error("{path}: format {found:?} is not {expected:?}")]
    FormatTag {
        /// The file.
        path: PathBuf,
        /// The tag found.
        found: String,
        /// The tag this build reads.
        expected: &'static str,
    },
    /// A bundle file is not the one a manifest names, or was sealed for another
    /// release or policy than the manifest's (`ManifestFile::check_bundle`).
    #[error(
        "{bundle} does not match the manifest: {field} is {in_manifest} in the manifest, {in_bundle} in the bundle"
    )]
    ManifestBundleMismatch {
        /// The bundle file.
        bundle: PathBuf,
        /// The manifest field that disagrees.
        field: &'static str,
        /// The manifest's value.
        in_manifest: String,
        /// The bundle's value (its size, hash, or header field).
        in_bundle: String,
    },
    /// A derived field of a manifest or signature file disagrees with the fields it derives from.
    #[error("{path}: field {field} is {found}, but the manifest gives {expected}")]
    DerivedFieldMismatch {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What the file says.
        found: String,
        /// What it must be.
        expected: String,
    },
    /// A signature file's signature does not recover to the signer it names.
    #[error("{path}: signature recovers to {recovered}, the file names signer {signer}")]
    SignatureSigner {
        /// The file.
        path: PathBuf,
        /// The signer the file names.
        signer: alloy::primitives::Address,
        /// Who actually signed.
        recovered: alloy::primitives::Address,
    },
    /// An install report is malformed (the field and what is wrong with it).
    #[error("invalid install report: {field}: {reason}")]
    InvalidReport {
        /// The field (`body` for the document as a whole).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A batch's leaf list (`leaves.json`) is malformed, too large, or does
    /// not match its devices (see `leaves`).
    #[error("invalid leaf list: {reason}")]
    LeafList {
        /// What is wrong (with the position of the entry, where one is at fault).
        reason: String,
    },
    /// A `device.toml` is missing a field, has an unknown one, or fails a check.
    #[error("device file {path}: {reason}")]
    DeviceFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the field).
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
