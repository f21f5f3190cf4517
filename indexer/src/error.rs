//! The crate's error type.

use alloy::primitives::{Address, B256};

/// Everything that can go wrong in `otaledger-indexer`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused a statement or could not be reached.
    #[error("database error during {during}: {source}")]
    Database {
        /// What was being done.
        during: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The start-up migrations failed.
    #[error("database migration failed: {source}")]
    Migrate {
        /// The migrator's error.
        source: sqlx::migrate::MigrateError,
    },
    /// The database URL names no supported database.
    #[error("unsupported database url {url:?}: use sqlite://PATH or postgres://…")]
    UnsupportedDatabase {
        /// The URL, without credentials.
        url: String,
    },
    /// The database mirrors another chain or deployment.
    #[error(
        "the database mirrors chain {stored_chain} registry {stored_registry}, not chain {chain} registry {registry}"
    )]
    OtherDeployment {
        /// Chain id in the database.
        stored_chain: i64,
        /// Registry in the database.
        stored_registry: String,
        /// Chain id asked for.
        chain: u64,
        /// Registry asked for.
        registry: Address,
    },
    /// The checkpoint moved under a write (another writer on the same database).
    #[error("checkpoint moved: expected block {expected}, found {found}")]
    CheckpointMoved {
        /// The checkpoint the batch follows.
        expected: i64,
        /// The checkpoint in the database.
        found: i64,
    },
    /// A log of a followed contract does not decode as any of its events.
    #[error("log {log_index} of transaction {tx} does not decode: {reason}")]
    UndecodableLog {
        /// Its transaction.
        tx: B256,
        /// Its index in the block.
        log_index: u64,
        /// What the decoder said.
        reason: String,
    },
    /// A log from a contract that is not followed.
    #[error("log from {address}, which is neither the registry nor the market")]
    ForeignLog {
        /// Its address.
        address: Address,
    },
    /// A log without block hash, number, transaction hash or index.
    #[error("log of transaction {tx:?} lacks its block position")]
    IncompleteLog {
        /// Its transaction, if given.
        tx: Option<B256>,
    },
    /// A value does not fit the column's BIGINT.
    #[error("{column} value {value} does not fit a BIGINT")]
    ValueOutOfRange {
        /// The column.
        column: &'static str,
        /// The value.
        value: u64,
    },
    /// The pin follower could not start (its HTTP client).
    #[error("pin follower: {reason}")]
    Pin {
        /// What failed.
        reason: String,
    },
    /// A bounded resource stayed busy too long (answered 503).
    #[error("{what} busy; try again later")]
    Busy {
        /// What was busy.
        what: &'static str,
    },
    /// The chain follower failed (RPC, reorg deeper than the window, store).
    #[error(transparent)]
    Follow {
        /// The follower's error.
        #[from]
        source: otaledger_core::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error of a statement that failed while doing `during` (`.map_err(db("…"))`).
pub(crate) fn db(during: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Database { during, source }
}
