//! The auditors' read API (axum, JSON under `/v1`): manufacturers, models,
//! releases, devices and purchases, each row with its block and transaction,
//! cursor pagination; the manifest and approval of one (model, version) as the
//! device SDK's release source decodes them
//! (`/v1/models/{model}/releases/{version}`); signed install reports (`POST`/`GET /v1/reports`),
//! alerts (`/v1/alerts`), Prometheus `/metrics`; `/healthz`, `/readyz`, and the OpenAPI document at
//! `/v1/openapi.json` (utoipa). Handler tests run the router
//! in-process with `app(state).oneshot(request)`.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use alloy::{
    primitives::{Address, B256, Bytes},
    sol_types::SolValue,
};
use axum::{
    Router,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use otaledger_core::{
    bindings::registry::IUpdateRegistry::{Approval, Manifest},
    report::{MAX_REPORT_JSON, Outcome},
};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use sqlx::AnyPool;

use crate::error::db as db_error;
use crate::{
    Error, alerts, db,
    db::Filter,
    reports,
    rows::{self, Row, Table, Value},
};

/// Largest page; the default is 50.
pub const MAX_PAGE: i64 = 500;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The mirror, through the writer's pool: for the handlers that write
    /// (reports, sign-in) and what must read the writer's own view.
    pub pool: AnyPool,
    /// The mirror's read-only pool (`db::connect_reader`): every read handler uses
    /// it, so on SQLite reads no longer queue for the one writer connection.
    pub reader: AnyPool,
    /// The newest chain head the follower saw (0 until it saw one).
    pub head: Arc<AtomicU64>,
    /// `/readyz` answers 200 only when the checkpoint is at most this many blocks behind the head.
    pub max_lag: u64,
    /// Metrics, alert rules and what reports must name.
    pub monitor: Arc<alerts::Monitor>,
}

/// An error a handler answers with: client errors keep their status and say
/// why; internal errors are logged once and answered with a bare 500.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 404: no such thing.
    NotFound(String),
    /// 500: the database failed.
    Internal(Error),
    /// Another client error with its status (403, 409, 413) and why.
    Refused(StatusCode, String),
    /// 429 with `Retry-After`: a rate limit (`crate::limit`) refused the
    /// request; why, and the seconds until the next one is allowed.
    RateLimited(String, u64),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Busy { .. } => ApiError::Refused(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            e => ApiError::Internal(e),
        }
    }
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Refused(status, m) => (status, m),
            ApiError::RateLimited(m, retry_after) => {
                let mut r = json_response(StatusCode::TOO_MANY_REQUESTS, &json!({ "error": m }));
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
                return r;
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "api request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        json_response(status, &json!({ "error": message }))
    }
}

type ApiResult = Result<Response, ApiError>;

/// The router: every route of the API over `state`.
pub fn app(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/manufacturers", get(manufacturers))
        .route("/v1/models", get(models))
        .route("/v1/releases", get(releases))
        .route("/v1/releases/{id}", get(release))
        .route("/v1/models/{model}/releases/{version}", get(model_release))
        .route("/v1/devices", get(devices))
        .route("/v1/devices/{index}", get(device))
        .route("/v1/devices/{index}/update", get(update))
        .route("/v1/purchases", get(purchases))
        .route("/v1/reports", get(list_reports).post(post_report))
        .route("/v1/devices/{index}/reports", get(device_reports))
        .route("/v1/alerts", get(list_alerts))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .with_state(state)
}

/// The OpenAPI document of this API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "OTA Ledger indexer",
        description = "Read API over the mirror of UpdateRegistry and UpdateMarket events."
    ),
    paths(
        healthz,
        readyz,
        manufacturers,
        models,
        releases,
        release,
        model_release,
        devices,
        device,
        update,
        purchases,
        post_report,
        list_reports,
        device_reports,
        list_alerts,
        metrics,
        crate::auth::nonce,
        crate::auth::login,
        crate::auth::logout,
        crate::auth::session_info,
        crate::private::put_label,
        crate::private::stats
    )
)]
pub struct ApiDoc;

async fn openapi() -> Response {
    use utoipa::OpenApi;
    match serde_json::to_value(ApiDoc::openapi())
        .map(crate::openapi::with_schemas)
        .and_then(|doc| serde_json::to_string(&doc))
    {
        Ok(doc) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            doc,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serialising the openapi document failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn to_json(row: &Row) -> Json {
    let mut object = Map::new();
    for (column, value) in row.table.column_names().zip(&row.values) {
        let v = match value {
            Value::Null => Json::Null,
            Value::Int(i) => json!(i),
            Value::Text(s) => json!(s),
        };
        object.insert(column.to_owned(), v);
    }
    Json::Object(object)
}

fn list(rows: &[Row]) -> Json {
    Json::Array(rows.iter().map(to_json).collect())
}

/// Pagination and filters of list endpoints.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Opaque cursor from a previous page's `next`.
    after: Option<String>,
    /// Page size (1..=500, default 50).
    limit: Option<i64>,
    /// Filter: manufacturer id.
    manufacturer: Option<i64>,
    /// Filter: model id.
    model: Option<i64>,
    /// Filter: release id.
    release: Option<String>,
    /// Filter: buyer address.
    buyer: Option<String>,
}

fn cursor_of(row: &Row) -> String {
    match (&row.values[0], &row.values[3]) {
        (Value::Int(b), Value::Int(l)) => format!("{b}.{l}"),
        _ => String::new(),
    }
}

fn parse_cursor(cursor: &str) -> Result<(i64, i64), ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid cursor {cursor:?}"));
    let (b, l) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((b.parse().map_err(|_| bad())?, l.parse().map_err(|_| bad())?))
}

fn hex_id(s: &str, bytes: usize, what: &str) -> Result<Value, ApiError> {
    hex_text(s, bytes, what).map(Value::Text)
}

/// `s` as `0x` and `2 × bytes` lowercase hex digits (as the mirror stores ids and addresses),
/// or a 400 naming `what`.
fn hex_text(s: &str, bytes: usize, what: &str) -> Result<String, ApiError> {
    let lower = s.to_ascii_lowercase();
    let ok = lower.len() == 2 + 2 * bytes
        && lower.starts_with("0x")
        && lower[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "{what} must be 0x and {} hex digits, got {s:?}",
            2 * bytes
        )));
    }
    Ok(lower)
}

async fn page(
    state: &ApiState,
    table: &'static Table,
    filters: Vec<Filter>,
    p: &Page,
) -> ApiResult {
    let limit = page_limit(p.limit)?;
    let after = p.after.as_deref().map(parse_cursor).transpose()?;
    let rows = db::select(&state.reader, table, &filters, after, Some(limit)).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(cursor_of))
        .flatten();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "items": list(&rows), "next": next }),
    ))
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the database answers"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn healthz(State(state): State<ApiState>) -> ApiResult {
    db::ping(&state.reader).await?;
    Ok(json_response(StatusCode::OK, &json!({ "status": "ok" })))
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "caught up"), (status = 503, description = "not caught up"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn readyz(State(state): State<ApiState>) -> ApiResult {
    let head = state.head.load(Ordering::Relaxed);
    let checkpoint = db::checkpoint(&state.reader).await?.map(|c| c.number);
    let ready = head > 0 && checkpoint.is_some_and(|c| head.saturating_sub(c) <= state.max_lag);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json_response(
        status,
        &json!({ "ready": ready, "head": head, "checkpoint": checkpoint }),
    ))
}

#[utoipa::path(get, path = "/v1/manufacturers", params(Page), responses((status = 200, description = "a page of manufacturer registrations"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn manufacturers(State(state): State<ApiState>, Query(p): Query<Page>) -> ApiResult {
    let mut filters = Vec::new();
    if let Some(m) = p.manufacturer {
        filters.push(Filter {
            column: "manufacturer_id",
            value: Value::Int(m),
        });
    }
    page(&state, &rows::MANUFACTURERS, filters, &p).await
}

#[utoipa::path(get, path = "/v1/models", params(Page), responses((status = 200, description = "a page of models"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn models(State(state): State<ApiState>, Query(p): Query<Page>) -> ApiResult {
    let mut filters = Vec::new();
    if let Some(m) = p.manufacturer {
        filters.push(Filter {
            column: "manufacturer_id",
            value: Value::Int(m),
        });
    }
    page(&state, &rows::MODELS, filters, &p).await
}

#[utoipa::path(get, path = "/v1/releases", params(Page), responses((status = 200, description = "a page of releases with their manifests"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn releases(State(state): State<ApiState>, Query(p): Query<Page>) -> ApiResult {
    let mut filters = Vec::new();
    if let Some(m) = p.model {
        filters.push(Filter {
            column: "model_id",
            value: Value::Int(m),
        });
    }
    let limit = page_limit(p.limit)?;
    let after = p.after.as_deref().map(parse_cursor).transpose()?;
    let rows = db::select(&state.reader, &rows::RELEASES, &filters, after, Some(limit)).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(cursor_of))
        .flatten();
    let ids: Vec<String> = rows.iter().filter_map(|r| text(r, "release_id")).collect();
    let counts = reports::counts(&state.reader, &ids).await?;
    let items: Vec<Json> = rows
        .iter()
        .map(|r| {
            let mut item = to_json(r);
            item["reports"] = text(r, "release_id")
                .and_then(|id| counts.get(&id).cloned())
                .unwrap_or(Json::Null);
            item
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "items": items, "next": next }),
    ))
}

#[utoipa::path(get, path = "/v1/purchases", params(Page), responses((status = 200, description = "a page of purchases"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn purchases(State(state): State<ApiState>, Query(p): Query<Page>) -> ApiResult {
    let mut filters = Vec::new();
    if let Some(r) = &p.release {
        filters.push(Filter {
            column: "release_id",
            value: hex_id(r, 32, "release")?,
        });
    }
    if let Some(b) = &p.buyer {
        filters.push(Filter {
            column: "buyer",
            value: hex_id(b, 20, "buyer")?,
        });
    }
    page(&state, &rows::PURCHASES, filters, &p).await
}

/// One release: its row, approval (with signers), revocations and purchases.
#[utoipa::path(get, path = "/v1/releases/{id}", params(("id" = String, Path, description = "release id, 0x and 64 hex digits")), responses((status = 200, description = "the release with its approval, revocations and purchases"), (status = 404, description = "unknown release"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn release(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let id = hex_id(&id, 32, "release id")?;
    let by_id = || {
        vec![Filter {
            column: "release_id",
            value: id.clone(),
        }]
    };
    let pool = &state.reader;
    let found = db::select(pool, &rows::RELEASES, &by_id(), None, Some(1)).await?;
    let Some(release) = found.first() else {
        return Err(ApiError::NotFound(format!("no release {id}")));
    };
    let approval = db::select(pool, &rows::RELEASE_APPROVALS, &by_id(), None, Some(1)).await?;
    let signers = db::select(pool, &rows::RELEASE_APPROVAL_SIGNERS, &by_id(), None, None).await?;
    let revocations = db::select(pool, &rows::REVOCATIONS, &by_id(), None, None).await?;
    let purchases = db::select(pool, &rows::PURCHASES, &by_id(), None, None).await?;
    let mut body = to_json(release);
    body["approval"] = approval.first().map(to_json).unwrap_or(Json::Null);
    if let Some(a) = body["approval"].as_object_mut() {
        let addresses: Vec<Json> = signers
            .iter()
            .map(|s| {
                s.values
                    .last()
                    .map(|v| json!(v.to_string().trim_matches('"')))
                    .unwrap_or_default()
            })
            .collect();
        a.insert("signers".into(), Json::Array(addresses));
    }
    body["revocations"] = list(&revocations);
    body["purchases"] = list(&purchases);
    // The pin follower's view of the bundle CID (null when not looked at).
    let key = crate::pins::bundle_key(&text(release, "bundle_cid").unwrap_or_default());
    body["pin"] = match crate::pins::status(pool, &key).await? {
        Some(p) => json!({"cid": key, "status": p.status, "detail": p.detail}),
        None => Json::Null,
    };
    let key = id.to_string().trim_matches('"').to_owned();
    let counts = reports::counts(pool, std::slice::from_ref(&key)).await?;
    body["reports"] = counts.get(&key).cloned().unwrap_or(Json::Null);
    Ok(json_response(StatusCode::OK, &body))
}

/// The manifest of a `releases` row, rebuilt from its columns (the inverse of
/// `rows::decode`'s `ReleasePublished` arm).
fn manifest_of(row: &Row) -> Result<Manifest, String> {
    fn column<T>(row: &Row, name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, String> {
        text(row, name)
            .as_deref()
            .and_then(parse)
            .ok_or_else(|| format!("column {name} does not decode"))
    }
    let b256 = |s: &str| s.parse::<B256>().ok();
    let int = |s: &str| s.parse::<u64>().ok();
    Ok(Manifest {
        modelId: int_of(row, "model_id")
            .and_then(|m| u32::try_from(m).ok())
            .ok_or("column model_id does not decode")?,
        version: column(row, "version", int)?,
        bundleSha256: column(row, "bundle_sha256", b256)?,
        bundleSize: column(row, "bundle_size", int)?,
        bundleCid: column(row, "bundle_cid", |s| s.parse::<Bytes>().ok())?,
        imageSha256: column(row, "image_sha256", b256)?,
        price: column(row, "price", |s| s.parse::<u128>().ok())?,
        paymentToken: column(row, "payment_token", |s| s.parse::<Address>().ok())?,
        policyId: column(row, "policy_id", b256)?,
        expiry: column(row, "expiry", int)?,
        metadataHash: column(row, "metadata_hash", b256)?,
    })
}

/// The manifest and approval of release `version` of `model`, ABI-encoded as
/// the registry received them (`abi.encode(manifest)`, `abi.encode(approval)`),
/// with the chain id and registry this indexer mirrors. This is what the device
/// SDK's `IndexerSource` asks; the device checks the answer names what it
/// asked for, then proves the release id and the signatures against the chain,
/// so nothing here is trusted. 404 when the release is unknown or its approval
/// was not recorded (published through a contract, not a direct call).
#[utoipa::path(
    get,
    path = "/v1/models/{model}/releases/{version}",
    params(
        ("model" = u32, Path, description = "model id"),
        ("version" = u64, Path, description = "release version")
    ),
    responses(
        (status = 200, description = "{chain_id, registry, model_id, version, release_id, manifest, approval, block_number, tx_hash}: manifest and approval as 0x-hex ABI encodings (IUpdateRegistry.Manifest, IUpdateRegistry.Approval); release_id is the manifest's EIP-712 struct hash"),
        (status = 404, description = "no such release, or its approval is not recorded"),
        (status = 400, description = "malformed request"),
        (status = 500, description = "database failure")
    )
)]
async fn model_release(
    State(state): State<ApiState>,
    Path((model, version)): Path<(String, String)>,
) -> ApiResult {
    let model: u32 = model
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("model must be a number, got {model:?}")))?;
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("version must be a number, got {version:?}")))?;
    let pool = &state.reader;
    let f = |column, value| Filter { column, value };
    let found = db::select(
        pool,
        &rows::RELEASES,
        &[
            f("model_id", Value::Int(i64::from(model))),
            f("version", rows::padded(version)),
        ],
        None,
        Some(1),
    )
    .await?;
    let Some(release) = found.first() else {
        return Err(ApiError::NotFound(format!(
            "no release {version} of model {model}"
        )));
    };
    let id = text(release, "release_id").unwrap_or_default();
    let by_id = || vec![f("release_id", Value::Text(id.clone()))];
    let approvals = db::select(pool, &rows::RELEASE_APPROVALS, &by_id(), None, Some(1)).await?;
    let Some(approval) = approvals.first() else {
        return Err(ApiError::NotFound(format!(
            "release {version} of model {model} ({id}) has no recorded approval"
        )));
    };
    let signers = db::select(pool, &rows::RELEASE_APPROVAL_SIGNERS, &by_id(), None, None).await?;
    // The rows were written from a decoded event and calldata; one that does not
    // decode back means a corrupted mirror: refused loudly, never answered.
    let inconsistent = |reason: String| {
        tracing::error!(release = %id, %reason, "stored release does not decode");
        ApiError::Refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the mirror's rows of release {id} are inconsistent"),
        )
    };
    let manifest = manifest_of(release).map_err(inconsistent)?;
    let approval = Approval {
        signers: signers
            .iter()
            .map(|r| text(r, "signer").and_then(|s| s.parse::<Address>().ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| inconsistent("a signer does not decode".into()))?,
        threshold: int_of(approval, "threshold")
            .and_then(|t| u8::try_from(t).ok())
            .ok_or_else(|| inconsistent("threshold does not decode".into()))?,
        signatures: text(approval, "signatures")
            .and_then(|s| s.parse::<Bytes>().ok())
            .ok_or_else(|| inconsistent("signatures do not decode".into()))?,
    };
    let computed = otaledger_core::signing::release_id(&manifest);
    if format!("{computed:#x}") != id {
        return Err(inconsistent(format!(
            "the manifest hashes to {computed:#x}"
        )));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "chain_id": state.monitor.chain_id,
            "registry": state.monitor.registry,
            "model_id": model,
            "version": version,
            "release_id": id,
            "manifest": Bytes::from(manifest.abi_encode()),
            "approval": Bytes::from(approval.abi_encode()),
            "block_number": int_of(release, "block_number"),
            "tx_hash": text(release, "tx_hash"),
        }),
    ))
}

fn text(row: &Row, column: &str) -> Option<String> {
    let i = row.table.column_names().position(|c| c == column)?;
    match &row.values[i] {
        Value::Text(t) => Some(t.clone()),
        _ => None,
    }
}

fn int_of(row: &Row, column: &str) -> Option<i64> {
    let i = row.table.column_names().position(|c| c == column)?;
    match &row.values[i] {
        Value::Int(v) => Some(*v),
        _ => None,
    }
}

fn parse_index(index: &str) -> Result<i64, ApiError> {
    non_negative(index, "device index")
}

/// The devices' update question: the newest release of the device's model it
/// may install (not revoked, at or above the model's floor, bought for this
/// device and not refunded), with what the device needs to verify it: the
/// manifest, the approval, the bundle CID and the manufacturer's current
/// signer set. An untrusted hint: the device proves all of it against the chain.
#[utoipa::path(get, path = "/v1/devices/{index}/update", params(("index" = u64, Path, description = "device index")), responses((status = 200, description = "the newest installable release"), (status = 404, description = "device never claimed, or no installable release"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn update(State(state): State<ApiState>, Path(index): Path<String>) -> ApiResult {
    let index = parse_index(&index)?;
    let pool = &state.reader;
    let f = |column, value| Filter { column, value };
    // The device's model, its manufacturer and its floor (the model's first floor or the
    // highest raised since: versions are zero-padded text, so MAX orders them).
    // (model, manufacturer, the model's first floor, the highest floor raised since)
    type DeviceRow = (i64, Option<i64>, Option<String>, Option<String>);
    let device: Option<DeviceRow> = sqlx::query_as(
        "SELECT c.model_id, m.manufacturer_id, m.min_version, \
         (SELECT MAX(f.min_version) FROM floors f WHERE f.model_id = c.model_id) \
         FROM claims c LEFT JOIN models m ON m.model_id = c.model_id \
         WHERE c.device_index = $1 ORDER BY c.block_number, c.log_index LIMIT 1",
    )
    .bind(index)
    .fetch_optional(pool)
    .await
    .map_err(db_error("reading a device's model and floor"))?;
    let (model, manufacturer, floor) = device
        .map(|(model, manufacturer, first, raised)| (model, manufacturer, first.max(raised)))
        .ok_or_else(|| ApiError::NotFound(format!("device {index} was never claimed")))?;
    let floor = floor.unwrap_or_default();
    // The newest release of the model at or above the floor, not revoked, bought for this
    // device more often than refunded (ties in version: the first published), in one
    // statement rather than three queries per older release.
    let id: Option<String> = sqlx::query_scalar(
        "SELECT r.release_id FROM releases r \
         WHERE r.model_id = $1 AND r.version >= $2 \
         AND NOT EXISTS (SELECT 1 FROM revocations x WHERE x.release_id = r.release_id) \
         AND (SELECT COUNT(*) FROM purchase_devices p \
              WHERE p.release_id = r.release_id AND p.device_index = $3) \
           > (SELECT COUNT(*) FROM refund_devices d \
              WHERE d.release_id = r.release_id AND d.device_index = $4) \
         ORDER BY r.version DESC, r.block_number, r.log_index LIMIT 1",
    )
    .bind(model)
    .bind(floor)
    .bind(index)
    .bind(index)
    .fetch_optional(pool)
    .await
    .map_err(db_error("choosing a device's update"))?;
    let no_update = || ApiError::NotFound(format!("no installable release for device {index}"));
    let id = id.ok_or_else(no_update)?;
    let by_id = || vec![f("release_id", Value::Text(id.clone()))];
    let release = db::select(pool, &rows::RELEASES, &by_id(), None, Some(1))
        .await?
        .into_iter()
        .next()
        .ok_or_else(no_update)?;
    let approval = db::select(pool, &rows::RELEASE_APPROVALS, &by_id(), None, Some(1)).await?;
    let signers = db::select(pool, &rows::RELEASE_APPROVAL_SIGNERS, &by_id(), None, None).await?;
    let mut signer_set = Json::Null;
    if let Some(m) = manufacturer {
        // The manufacturer's current set: its newest rotation (or registration).
        let current: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT block_number, log_index, threshold FROM signer_sets \
             WHERE manufacturer_id = $1 ORDER BY block_number DESC, log_index DESC LIMIT 1",
        )
        .bind(m)
        .fetch_optional(pool)
        .await
        .map_err(db_error("reading a manufacturer's signer set"))?;
        if let Some((block, log, threshold)) = current {
            let members = db::select(
                pool,
                &rows::SIGNER_SET_MEMBERS,
                &[
                    f("block_number", Value::Int(block)),
                    f("log_index", Value::Int(log)),
                ],
                None,
                None,
            )
            .await?;
            signer_set = json!({
                "manufacturer_id": m,
                "threshold": threshold,
                "signers": members.iter().filter_map(|r| text(r, "signer")).collect::<Vec<_>>(),
                "block_number": block,
            });
        }
    }
    let mut approval_json = approval.first().map(to_json).unwrap_or(Json::Null);
    if let Some(a) = approval_json.as_object_mut() {
        a.insert(
            "signers".into(),
            json!(
                signers
                    .iter()
                    .filter_map(|r| text(r, "signer"))
                    .collect::<Vec<_>>()
            ),
        );
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "device_index": index,
            "bundle_cid": text(&release, "bundle_cid"),
            "release": to_json(&release),
            "approval": approval_json,
            "signer_set": signer_set,
        }),
    ))
}

/// Query of the device list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Filter: current owner (0x and 40 hex digits, any case).
    owner: Option<String>,
    /// Filter: model id.
    model: Option<String>,
    /// Filter: manufacturer id (of the device's model).
    manufacturer: Option<String>,
    /// Filter: current status, `active` or `deactivated`.
    status: Option<String>,
    /// Cursor from a previous page's `next` (a device index).
    after: Option<String>,
    /// Page size (1..=500, default 50).
    limit: Option<i64>,
}

fn non_negative(s: &str, what: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i >= 0)
        .ok_or_else(|| ApiError::BadRequest(format!("{what} must be a number, got {s:?}")))
}

/// Claimed devices with their current owner and status, by index.
#[utoipa::path(get, path = "/v1/devices", params(DeviceQuery), responses((status = 200, description = "{items: [{device_index, device, model_id, manufacturer_id, batch_id, owner, status (1 active, 2 deactivated), claimed_block, claimed_tx}], next}: a page of claimed devices by index; `next` is the `after` of the next page, null on the last"), (status = 400, description = "malformed owner, id, status, cursor or limit"), (status = 500, description = "database failure")))]
async fn devices(State(state): State<ApiState>, Query(q): Query<DeviceQuery>) -> ApiResult {
    let limit = page_limit(q.limit)?;
    let owner = q
        .owner
        .as_deref()
        .map(|o| hex_text(o, 20, "owner"))
        .transpose()?;
    let status = q
        .status
        .as_deref()
        .map(|s| match s {
            "active" => Ok(1),
            "deactivated" => Ok(2),
            other => Err(ApiError::BadRequest(format!(
                "status must be active or deactivated, got {other:?}"
            ))),
        })
        .transpose()?;
    let filter = crate::devices::DeviceFilter {
        owner,
        model: q
            .model
            .as_deref()
            .map(|m| non_negative(m, "model"))
            .transpose()?,
        manufacturer: q
            .manufacturer
            .as_deref()
            .map(|m| non_negative(m, "manufacturer"))
            .transpose()?,
        status,
    };
    let after = q
        .after
        .as_deref()
        .map(|a| non_negative(a, "cursor"))
        .transpose()?;
    let items = crate::devices::list(&state.reader, &filter, after, limit).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|d| d.device_index.to_string()))
        .flatten();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "items": items, "next": next }),
    ))
}

/// One device: its claim, transfers, status changes and purchases (its audit trail).
#[utoipa::path(get, path = "/v1/devices/{index}", params(("index" = u64, Path, description = "device index")), responses((status = 200, description = "the device's audit trail"), (status = 404, description = "device never claimed"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn device(State(state): State<ApiState>, Path(index): Path<String>) -> ApiResult {
    let index = parse_index(&index)?;
    let by_index = || {
        vec![Filter {
            column: "device_index",
            value: Value::Int(index),
        }]
    };
    let pool = &state.reader;
    let claims = db::select(pool, &rows::CLAIMS, &by_index(), None, Some(1)).await?;
    let Some(claim) = claims.first() else {
        return Err(ApiError::NotFound(format!(
            "device {index} was never claimed"
        )));
    };
    let transfers = db::select(pool, &rows::TRANSFERS, &by_index(), None, None).await?;
    let statuses = db::select(pool, &rows::STATUS_CHANGES, &by_index(), None, None).await?;
    let purchases = db::select(pool, &rows::PURCHASE_DEVICES, &by_index(), None, None).await?;
    let refunds = db::select(pool, &rows::REFUND_DEVICES, &by_index(), None, None).await?;
    let owner = transfers
        .last()
        .map(|t| to_json(t)["to_address"].clone())
        .unwrap_or_else(|| to_json(claim)["owner"].clone());
    let status = statuses
        .last()
        .map(|s| to_json(s)["status"].clone())
        .unwrap_or(json!(1));
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "device_index": index,
            "owner": owner,
            "status": status,
            "claim": to_json(claim),
            "transfers": list(&transfers),
            "status_changes": list(&statuses),
            "purchases": list(&purchases),
            "refunds": list(&refunds),
        }),
    ))
}

/// Query of the report lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Filter: device index.
    device: Option<String>,
    /// Filter: release id (0x and 64 hex digits).
    release: Option<String>,
    /// Filter: outcome (`installed`, `refused`, `failed`, `rolled-back`).
    outcome: Option<String>,
    /// Opaque cursor from a previous page's `next`.
    cursor: Option<String>,
    /// Page size (1..=500, default 50).
    limit: Option<i64>,
}

fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1..={MAX_PAGE}, got {limit}"
        )));
    }
    Ok(limit)
}

fn report_filter(q: &ReportQuery, device: Option<i64>) -> Result<reports::ReportFilter, ApiError> {
    let device = match (device, &q.device) {
        (Some(d), _) => Some(d),
        (None, Some(d)) => Some(parse_index(d)?),
        (None, None) => None,
    };
    let release = q
        .release
        .as_deref()
        .map(|r| hex_text(r, 32, "release"))
        .transpose()?;
    let outcome = q
        .outcome
        .as_deref()
        .map(|o| {
            o.parse::<Outcome>()
                .map_err(|_| ApiError::BadRequest(format!("unknown outcome {o:?}")))
        })
        .transpose()?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            let bad = || ApiError::BadRequest(format!("invalid cursor {c:?}"));
            let parts: Vec<i64> = c
                .split('.')
                .map(|p| p.parse().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            match parts[..] {
                [t, d, n] => Ok((t, d, n)),
                _ => Err(bad()),
            }
        })
        .transpose()?;
    Ok(reports::ReportFilter {
        device,
        release,
        outcome,
        after,
        limit: page_limit(q.limit)?,
    })
}

async fn report_page(state: &ApiState, f: reports::ReportFilter) -> ApiResult {
    let items = reports::list(&state.reader, &f).await?;
    let next = (items.len() as i64 == f.limit)
        .then(|| items.last().map(reports::cursor_of))
        .flatten();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "items": items, "next": next }),
    ))
}

/// Stores a signed install report (`core::report` JSON form, at most
/// `MAX_REPORT_JSON` = 4096 bytes).
#[utoipa::path(post, path = "/v1/reports", request_body(content = String, content_type = "application/json", description = "SignedReport::to_json()"), responses((status = 202, description = "stored: {accepted, device, nonce}"), (status = 400, description = "malformed, fails Report::check, or another chain id or registry"), (status = 403, description = "the signature does not recover to the device's identity address"), (status = 404, description = "device unknown to the indexer (yet)"), (status = 409, description = "nonce not above the highest accepted for the device"), (status = 413, description = "body larger than MAX_REPORT_JSON"), (status = 500, description = "database failure")))]
async fn post_report(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult {
    use crate::metrics::ReportAnswer as A;
    let m = &state.monitor.metrics;
    let too_large = |n: usize| {
        m.report(A::TooLarge);
        ApiError::Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("report body of {n} bytes or more, at most {MAX_REPORT_JSON}"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_REPORT_JSON as u64) {
        return Err(too_large(usize::try_from(n).unwrap_or(usize::MAX)));
    }
    // Never more than MAX_REPORT_JSON bytes are read, whatever the header says.
    let bytes = match axum::body::to_bytes(body, MAX_REPORT_JSON).await {
        Ok(b) => b,
        Err(e) => {
            let inner = e.into_inner();
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large(MAX_REPORT_JSON + 1));
                }
                source = s.source();
            }
            m.report(A::Malformed);
            return Err(ApiError::BadRequest(format!("reading the body: {inner}")));
        }
    };
    match reports::accept(&state.pool, &state.monitor, &bytes).await {
        Ok(a) => {
            m.report(A::Accepted);
            Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({ "accepted": true, "device": a.device, "nonce": a.nonce }),
            ))
        }
        Err(e) => {
            let (answer, err) = match e {
                reports::Rejection::Malformed(msg) => (A::Malformed, ApiError::BadRequest(msg)),
                reports::Rejection::WrongSigner(msg) => (
                    A::WrongSigner,
                    ApiError::Refused(StatusCode::FORBIDDEN, msg),
                ),
                e @ reports::Rejection::UnknownDevice(_) => {
                    (A::UnknownDevice, ApiError::NotFound(e.to_string()))
                }
                e @ reports::Rejection::Replayed { .. } => (
                    A::Replayed,
                    ApiError::Refused(StatusCode::CONFLICT, e.to_string()),
                ),
                e @ reports::Rejection::TooLarge(_) => (
                    A::TooLarge,
                    ApiError::Refused(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
                ),
                reports::Rejection::Internal(e) => return Err(ApiError::Internal(e)),
            };
            m.report(answer);
            Err(err)
        }
    }
}

/// Stored install reports, in the order received.
#[utoipa::path(get, path = "/v1/reports", params(ReportQuery), responses((status = 200, description = "a page of reports"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn list_reports(State(state): State<ApiState>, Query(q): Query<ReportQuery>) -> ApiResult {
    let f = report_filter(&q, None)?;
    report_page(&state, f).await
}

/// One device's install reports.
#[utoipa::path(get, path = "/v1/devices/{index}/reports", params(("index" = u64, Path, description = "device index"), ReportQuery), responses((status = 200, description = "a page of the device's reports"), (status = 404, description = "device never claimed"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn device_reports(
    State(state): State<ApiState>,
    Path(index): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult {
    let index = parse_index(&index)?;
    if reports::device_identity(&state.reader, index)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "device {index} was never claimed"
        )));
    }
    let f = report_filter(&q, Some(index))?;
    report_page(&state, f).await
}

/// Query of `/v1/alerts`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Filter: rule name.
    rule: Option<String>,
    /// Filter: severity (`low`, `medium`, `high`).
    severity: Option<String>,
    /// Filter: source (`chain`, `report`).
    source: Option<String>,
    /// Opaque cursor from a previous page's `next`.
    cursor: Option<String>,
    /// Page size (1..=500, default 50).
    limit: Option<i64>,
}

/// Alerts of the anomaly rules, by block.
#[utoipa::path(get, path = "/v1/alerts", params(AlertQuery), responses((status = 200, description = "a page of alerts with severity, evidence and links"), (status = 400, description = "malformed request"), (status = 500, description = "database failure")))]
async fn list_alerts(State(state): State<ApiState>, Query(q): Query<AlertQuery>) -> ApiResult {
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            let bad = || ApiError::BadRequest(format!("invalid cursor {c:?}"));
            let (b, id) = c.split_once(':').ok_or_else(bad)?;
            Ok::<_, ApiError>((b.parse::<i64>().map_err(|_| bad())?, id.to_owned()))
        })
        .transpose()?;
    if let Some(s) = q.severity.as_deref()
        && !["low", "medium", "high"].contains(&s)
    {
        return Err(ApiError::BadRequest(format!("unknown severity {s:?}")));
    }
    if let Some(s) = q.source.as_deref()
        && !["chain", "report"].contains(&s)
    {
        return Err(ApiError::BadRequest(format!("unknown source {s:?}")));
    }
    let f = alerts::AlertFilter {
        rule: q.rule.clone(),
        severity: q.severity.clone(),
        source: q.source.clone(),
        after,
        limit: page_limit(q.limit)?,
    };
    let items = alerts::list(&state.reader, &f).await?;
    let next = (items.len() as i64 == f.limit)
        .then(|| {
            items.last().map(|a| {
                format!(
                    "{}:{}",
                    a["block_number"],
                    a["id"].as_str().unwrap_or_default()
                )
            })
        })
        .flatten();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "items": items, "next": next }),
    ))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format 0.0.4"), (status = 500, description = "database failure")))]
async fn metrics(State(state): State<ApiState>) -> ApiResult {
    let snapshot = crate::metrics::Snapshot {
        head: state.head.load(Ordering::Relaxed),
        checkpoint: db::checkpoint(&state.reader).await?.map(|c| c.number),
        rpc_errors: state.monitor.rpc.endpoint_errors(),
        alerts_stored: alerts::counts(&state.reader).await?,
        ipfs_backoff: crate::backoff::waiting(&state.reader).await?,
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.monitor.metrics.render(&snapshot),
    )
        .into_response())
}
