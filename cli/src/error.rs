//! The error type of the `otaledger` library.

use std::path::PathBuf;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A protocol-level error (formats, files, signing).
    #[error(transparent)]
    Core(#[from] otaledger_core::Error),
    /// An IPFS import or store failed.
    #[error("ipfs {during}: {source}")]
    Ipfs {
        /// What was being done.
        during: &'static str,
        /// What the IPFS crate said (boxed: it is large).
        source: Box<otaledger_ipfs::Error>,
    },
    /// A transaction or call reverted; `error` is the contract's custom error with its values.
    #[error("{during} reverted: {error}")]
    Reverted {
        /// What was being done.
        during: String,
        /// The decoded custom error, e.g. `UpdateRegistryVersionNotIncreasing { modelId: 3, latest: 7, given: 7 }`.
        error: String,
    },
    /// A JSON-RPC request failed (not a revert).
    #[error("rpc error while {during}: {reason}")]
    Rpc {
        /// What was being done.
        during: String,
        /// What the node or transport said.
        reason: String,
    },
    /// No wallet was given to a command that sends transactions or signs.
    #[error(
        "no wallet: pass --private-key (or OTALEDGER_PRIVATE_KEY), or --keystore with --password-file"
    )]
    NoWallet,
    /// A keystore could not be decrypted or written.
    #[error("keystore {path}: {reason}")]
    Keystore {
        /// The keystore file.
        path: PathBuf,
        /// What went wrong (a wrong password says so).
        reason: String,
    },
    /// The chain id given with `--chain` is not the node's.
    #[error("--chain {given} but the node at --rpc-url is chain {node}")]
    ChainMismatch {
        /// `--chain`.
        given: u64,
        /// The node's `eth_chainId`.
        node: u64,
    },
    /// Neither `--chain` nor `--rpc-url` was given where one is needed.
    #[error("which chain? pass --chain <id> or --rpc-url <url>")]
    NoChain,
    /// A command that sends transactions got no `--rpc-url`.
    #[error("this command talks to a node: pass --rpc-url (or ETH_RPC_URL)")]
    NoRpc,
    /// Bad user input, naming the option or field.
    #[error("invalid {field}: {reason}")]
    Input {
        /// The option or field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An encrypted master-key file is malformed or the password is wrong.
    #[error("master key file {path}: {reason}")]
    MasterKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A device is not entitled to a release on chain: no key is issued.
    #[error("device {device_index} is not entitled to release {release_id}: no key issued")]
    NotEntitled {
        /// The release.
        release_id: alloy::primitives::B256,
        /// The device.
        device_index: u64,
    },
    /// Something expected on chain is not there.
    #[error("not found on chain: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The key service's SQLite database failed.
    #[error("key-service database, {during}: {source}")]
    Database {
        /// What was being done.
        during: &'static str,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// The key service's database schema could not be migrated.
    #[error("key-service database migrations: {source}")]
    Migrate {
        /// What sqlx said.
        source: sqlx::migrate::MigrateError,
    },
    /// The key-service database was made for another chain or registry.
    #[error(
        "the key-service database follows chain {stored_chain} registry {stored_registry}, not chain {chain} registry {registry}"
    )]
    OtherDeployment {
        /// Chain id in the database.
        stored_chain: i64,
        /// Registry in the database.
        stored_registry: String,
        /// The chain given.
        chain: u64,
        /// The registry given.
        registry: alloy::primitives::Address,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
