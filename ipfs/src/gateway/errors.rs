//! Error kinds of the trustless gateway and the status code each maps to.
//!
//! Client errors keep their status and say what was wrong; internal errors are
//! logged once and answered with a bare 500 so storage paths do not leak.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cid::Cid;

/// Why the gateway refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GatewayError {
    /// The path segment is not a CID (400).
    #[error("invalid cid {value:?}: {reason}")]
    InvalidCid { value: String, reason: String },
    /// A query parameter or `Accept` parameter has a value the spec does not allow (400).
    #[error("invalid {name}={value:?}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// Neither `Accept` nor `?format=` asked for a trustless response type (400, per the spec
    /// for gateways without deserialized responses).
    #[error(
        "missing Accept header: ask for application/vnd.ipld.raw or application/vnd.ipld.car (or ?format=raw|car)"
    )]
    MissingAccept,
    /// A content path below the CID (400: this gateway serves files by root CID only).
    #[error("content paths are not supported: request /ipfs/{{cid}} only")]
    PathNotSupported,
    /// `?format=` names a response type this gateway does not produce (406).
    #[error("unsupported format {0:?}: this trustless gateway serves raw and car")]
    UnsupportedFormat(String),
    /// No type in `Accept` is one this gateway produces (406).
    #[error(
        "not acceptable: {0:?}; supported: application/vnd.ipld.raw, application/vnd.ipld.car; version=1; order=dfs; dups=n"
    )]
    NotAcceptable(String),
    /// The root block is not in the store (404).
    #[error("block {0} not found")]
    NotFound(Cid),
    /// `Cache-Control: only-if-cached` and the root block is not here (412).
    #[error("block {0} not cached")]
    NotCached(Cid),
    /// The byte range lies outside the file (400).
    #[error("entity-bytes {from}:{to} is outside the {size}-byte entity")]
    RangeOutside { from: String, to: String, size: u64 },
    /// No slot for the request: the queue is full or it waited too long (429).
    #[error("gateway busy: {0}; retry later")]
    Busy(Busy),
    /// The response could not be started within the request timeout (504).
    #[error("timed out preparing the response")]
    Timeout,
    /// Storage or internal failure (500; details only in the log).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a request got no slot (see `gateway::limit`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Busy {
    /// The gateway's slots and queue are all taken.
    #[error("{queued} requests in flight or queued")]
    QueueFull { queued: usize },
    /// This client's share of slots and its queue are all taken.
    #[error("{queued} requests of this client in flight or queued")]
    ClientQueueFull { queued: usize },
    /// No slot freed up within the queue timeout.
    #[error("no free slot within {waited:?}")]
    WaitedTooLong { waited: std::time::Duration },
}

impl GatewayError {
    /// The HTTP status for this error kind.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::InvalidCid { .. }
            | Self::InvalidParam { .. }
            | Self::MissingAccept
            | Self::PathNotSupported
            | Self::RangeOutside { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedFormat(_) | Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::NotCached(_) => StatusCode::PRECONDITION_FAILED,
            Self::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "gateway internal error");
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        let mut resp = (status, format!("{message}\n")).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_spec() {
        assert_eq!(GatewayError::MissingAccept.status(), 400);
        assert_eq!(
            GatewayError::NotAcceptable("text/html".into()).status(),
            406
        );
        assert_eq!(GatewayError::UnsupportedFormat("tar".into()).status(), 406);
        let busy = GatewayError::Busy(Busy::QueueFull { queued: 576 });
        assert_eq!(busy.status(), 429);
        assert_eq!(
            busy.to_string(),
            "gateway busy: 576 requests in flight or queued; retry later"
        );
        assert_eq!(GatewayError::Timeout.status(), 504);
    }

    #[test]
    fn internal_details_are_not_sent() {
        let resp = GatewayError::Internal("/secret/path".into()).into_response();
        assert_eq!(resp.status(), 500);
    }
}
