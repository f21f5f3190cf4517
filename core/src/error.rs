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
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
