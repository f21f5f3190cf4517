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
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
