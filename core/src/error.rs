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
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
