//! The key service's HTTP API (docs/cli.md, `keys serve`):
//! `GET /v1/keys/<release>/<device>`, `GET /healthz`, `GET /metrics`.

use std::sync::{Arc, atomic::Ordering};

use alloy::primitives::B256;
use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::{Shared, store};

/// The service's routes over `shared`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/keys/{release}/{device}", get(key))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    json(status, serde_json::json!({ "error": message }))
}

/// Parses `<release>`: `0x` + 64 hex digits (either case).
fn parse_release(text: &str) -> Option<B256> {
    let hex = text.strip_prefix("0x")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    hex.parse().ok()
}

/// Parses `<device>`: a decimal u64 (digits only, no sign).
fn parse_device(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

async fn key(
    State(shared): State<Arc<Shared>>,
    Path((release, device)): Path<(String, String)>,
) -> Response {
    let Some(release_id) = parse_release(&release) else {
        return error(
            StatusCode::BAD_REQUEST,
            "release: expected 0x followed by 64 hex digits".into(),
        );
    };
    let Some(device_index) = parse_device(&device) else {
        return error(
            StatusCode::BAD_REQUEST,
            "device: expected the device's global index in decimal".into(),
        );
    };
    match store::delivery(&shared.pool, release_id, device_index).await {
        Ok(Some(bytes)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!(
                "no key issued for device {device_index} and release {release_id} (not paid, not yet confirmed or unknown)"
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "reading a key");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the key database failed".into(),
            )
        }
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let m = &shared.metrics;
    let checkpoint = m.checkpoint.load(Ordering::Relaxed);
    json(
        StatusCode::OK,
        serde_json::json!({
            "status": "ok",
            "head": m.head.load(Ordering::Relaxed),
            "checkpoint": checkpoint,
        }),
    )
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let m = &shared.metrics;
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "otaledger_keys_issued_total",
        "counter",
        "Keys issued by this process.",
        m.issued.load(Ordering::Relaxed),
    );
    metric(
        "otaledger_keys_refused_total",
        "counter",
        "Purchases refused by this process (device of another manufacturer or model, revoked release, bad leaf list).",
        m.refused.load(Ordering::Relaxed),
    );
    metric(
        "otaledger_keys_failed_total",
        "counter",
        "Issuance attempts that failed and will be retried.",
        m.failed.load(Ordering::Relaxed),
    );
    metric(
        "otaledger_keys_stored",
        "gauge",
        "Keys in the database (issued by any run).",
        m.stored.load(Ordering::Relaxed),
    );
    metric(
        "otaledger_keys_pending",
        "gauge",
        "Confirmed purchases without a key or refusal yet.",
        m.pending.load(Ordering::Relaxed),
    );
    metric(
        "otaledger_keyservice_head",
        "gauge",
        "Chain head seen by the last follower pass.",
        m.head.load(Ordering::Relaxed),
    );
    metric(
        "otaledger_keyservice_checkpoint",
        "gauge",
        "Last block fully mirrored.",
        m.checkpoint.load(Ordering::Relaxed),
    );
    metric(
        "otaledger_keyservice_workers",
        "gauge",
        "Issuance worker threads.",
        m.workers.load(Ordering::Relaxed),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts_are_checked() {
        let id = format!("0x{}", "aB".repeat(32));
        assert!(parse_release(&id).is_some());
        assert!(parse_release(&id[2..]).is_none());
        assert!(parse_release(&format!("{id}0")).is_none());
        assert!(parse_release(&format!("0x{}", "g".repeat(64))).is_none());
        assert_eq!(parse_device("42"), Some(42));
        assert_eq!(parse_device("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_device("18446744073709551616"), None);
        assert_eq!(parse_device("+1"), None);
        assert_eq!(parse_device("-1"), None);
        assert_eq!(parse_device(""), None);
        assert_eq!(parse_device("0x1"), None);
    }
}
