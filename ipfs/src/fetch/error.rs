//! Errors of a verified fetch: one per gateway attempt, and the fetch's own.

use std::time::Duration;

use cid::Cid;

use crate::{CarError, VerifyError};

/// How an attempt asked a gateway for data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchMode {
    /// One CAR stream (`?format=car&dag-scope=entity`).
    Car,
    /// One raw block request per block (`?format=raw`).
    Raw,
}

/// Why one gateway attempt failed. The fetch then resumes at the next gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// Connection refused or reset, DNS failure, broken body.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// No response headers within [`crate::FetchOptions::response_timeout`].
    #[error("no response within {0:?}")]
    ResponseTimeout(Duration),
    /// A status other than 200.
    #[error("http status {status}")]
    HttpStatus {
        /// The status.
        status: u16,
    },
    /// A 200 with a body that is not what was asked for (an HTML error page, a CAR variant
    /// that cannot be verified as it streams).
    #[error("content type {got:?}, expected {expected}")]
    WrongContentType {
        /// The `Content-Type` received.
        got: String,
        /// What was asked for.
        expected: &'static str,
    },
    /// The CAR stream is malformed or carries a block that does not match its CID.
    #[error("car: {0}")]
    Car(#[source] CarError),
    /// A block failed verification: wrong block, tampered block, sizes that lie, limits.
    #[error("verify: {0}")]
    Verify(#[source] VerifyError),
    /// The root declares a file size other than the one expected (from the chain).
    #[error("root declares {declared} bytes, expected {expected}")]
    SizeMismatch {
        /// The expected size.
        expected: u64,
        /// The size the root block declares.
        declared: u64,
    },
    /// The response ended before the file was complete.
    #[error("response ended at byte {position} of {expected}")]
    Truncated {
        /// Verified bytes when it ended.
        position: u64,
        /// The expected size.
        expected: u64,
    },
    /// The response carried more bytes than the file needs plus the allowed overhead.
    #[error("endless data: more than {limit} bytes in one response (read {read})")]
    EndlessData {
        /// The limit that was passed.
        limit: u64,
        /// Body bytes read when the client stopped (the limit plus at most one network read).
        read: u64,
    },
    /// A raw block response (`?format=raw`) longer than the block-size limit
    /// ([`crate::Limits::max_block_size`]), counted as it streamed or declared by
    /// `Content-Length`. The block's real size is unknown: reading stopped past the limit.
    #[error("block {cid} is more than {max} bytes (read {read}{})", declared_note(*.declared))]
    BlockTooLarge {
        /// The block asked for.
        cid: Cid,
        /// The limit.
        max: u64,
        /// Body bytes read before the client stopped (0 when `Content-Length` was refused).
        read: u64,
        /// The response's `Content-Length`, if it had one.
        declared: Option<u64>,
    },
    /// Fewer than `min_rate` bytes per second over a window of `window`.
    #[error("too slow: {bytes} bytes in {window:?}, minimum {min_rate} bytes/s")]
    TooSlow {
        /// Bytes received in the window.
        bytes: u64,
        /// The window (the grace period).
        window: Duration,
        /// The minimum rate.
        min_rate: u64,
    },
}

fn declared_note(declared: Option<u64>) -> String {
    declared.map_or_else(String::new, |n| format!(", content-length {n}"))
}

/// One failed attempt at one gateway.
#[derive(Debug)]
pub struct GatewayFailure {
    /// The gateway's base URL.
    pub gateway: url::Url,
    /// How it was asked.
    pub mode: FetchMode,
    /// The verified position the attempt started from.
    pub from: u64,
    /// Response body bytes the attempt read from the network, over all its requests (bodies of
    /// error responses are never read). Every read is bounded, so this is too.
    pub received: u64,
    /// What went wrong.
    pub error: AttemptError,
}

impl std::fmt::Display for GatewayFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            FetchMode::Car => "car",
            FetchMode::Raw => "raw",
        };
        write!(
            f,
            "{} ({mode} from byte {}): {}",
            self.gateway, self.from, self.error
        )
    }
}

/// Why a verified fetch failed. Nothing is left at the output path in any case (for
/// [`crate::fetch::fetch_into`]: the sink was handed only verified bytes, but not all of them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The gateway list is empty.
    #[error("no gateways given")]
    NoGateways,
    /// A gateway address cannot be used.
    #[error("invalid gateway url {url:?}: {reason}")]
    InvalidGateway {
        /// The address.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// The [`crate::FetchOptions`] cannot be used (see [`crate::FetchOptions::validate`]);
    /// refused before any request.
    #[error("invalid fetch option {field}: {reason}")]
    InvalidOptions {
        /// The field refused (`min_rate`, `rate_grace`).
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The root CID cannot name a UnixFS file this client verifies.
    #[error("cannot fetch {root}: {source}")]
    Root {
        /// The root.
        root: Cid,
        /// Why.
        #[source]
        source: VerifyError,
    },
    /// Every gateway failed; `failures` says how, in order.
    #[error("{root}: every gateway failed, verified {position} of {expected_size} bytes: {}", summary(.failures))]
    AllGatewaysFailed {
        /// The root.
        root: Cid,
        /// The expected size.
        expected_size: u64,
        /// Verified bytes when the last gateway failed (discarded).
        position: u64,
        /// Every attempt, in order.
        failures: Vec<GatewayFailure>,
    },
    /// Writing the temporary file or renaming it into place failed.
    #[error("output {path}: {source}")]
    Output {
        /// The path involved.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The caller's sink ([`crate::fetch::fetch_into`]) refused verified bytes: the fetch stops
    /// there (bytes a sink refused cannot be handed to it again).
    #[error("sink refused the bytes at {position}: {source}")]
    Sink {
        /// The file offset of the first byte refused.
        position: u64,
        /// The sink's error.
        #[source]
        source: std::io::Error,
    },
    /// The fetch task panicked or was cancelled, or a response's reader stopped before the end
    /// of the body (it panicked, or the runtime shut down): never taken for the body's end.
    #[error("fetch task failed: {0}")]
    Task(String),
}

fn summary(failures: &[GatewayFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
