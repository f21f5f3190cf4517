//! The fleet dashboard served by the indexer: the page and its assets
//! (embedded at build time, strict CSP), `GET /v1/fleet` (every claimed
//! device with its update status, one query), `GET /v1/fleet/stream` (SSE:
//! the devices that changed since a cursor, polled from the database),
//! `GET /v1/fleet/devices/{index}` (a device's audit trail) and
//! `GET /v1/manufacturers/{id}/signers` (signer history) and
//! `GET /v1/deployment` (the chain id and contract addresses a wallet on the
//! page must use). Design in `docs/dashboard.md`.

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    path::Path as FsPath,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sqlx::{AnyPool, Row as _};
use tokio::sync::{Mutex, watch};

use crate::api::{self, ApiState};
use crate::error::db as db_err;

/// The page's Content-Security-Policy: nothing from outside, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The embedded assets: path under `/assets/`, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/app.js"),
    ),
    (
        "abi.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/abi.js"),
    ),
    (
        "dapp.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/dapp.js"),
    ),
    (
        "wallet.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/wallet.js"),
    ),
    (
        "policy.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/policy.js"),
    ),
    (
        "permit.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/permit.js"),
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/map.js"),
    ),
    (
        "session.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/session.js"),
    ),
    (
        "publish.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/publish.js"),
    ),
    (
        "claim.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/claim.js"),
    ),
    (
        "keccak.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/keccak.js"),
    ),
    (
        "setup.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/setup.js"),
    ),
    (
        "checks.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/checks.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../dashboard/style.css"),
    ),
];
const INDEX_HTML: &str = include_str!("../../dashboard/index.html");

/// Largest `--fleet-map` file read.
pub const MAX_MAP_BYTES: u64 = 16 * 1024 * 1024;
/// Most entries a fleet map may hold.
pub const MAX_MAP_ENTRIES: usize = 1_000_000;

/// What can go wrong setting up the dashboard.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The fleet map file could not be read.
    #[error("reading fleet map {path}: {source}")]
    MapIo {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The fleet map is larger than [`MAX_MAP_BYTES`].
    #[error("fleet map {path} is {size} bytes, more than the {max} allowed")]
    MapTooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The fleet map is not what `docs/dashboard.md` describes.
    #[error("fleet map is invalid: {0}")]
    MapInvalid(String),
}

/// How device positions are read: `[x, y]` on a plane (y down) or `[lat, lon]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Projection {
    /// `[x, y]`, y growing downwards.
    Xy,
    /// `[latitude, longitude]` in degrees.
    Latlon,
}

/// Device positions from a `--fleet-map` file.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetMap {
    /// How the pairs are read.
    pub projection: Projection,
    /// Device index → the pair as given.
    pub positions: HashMap<u64, [f64; 2]>,
}

impl FleetMap {
    /// Parses a map: a JSON object whose keys are device indexes (decimal)
    /// and values `[a, b]` pairs of finite numbers, plus an optional
    /// `"projection": "xy" | "latlon"` (default `xy`; latitudes must be in
    /// -90..=90 and longitudes in -180..=180). At most [`MAX_MAP_ENTRIES`].
    pub fn parse(bytes: &[u8]) -> Result<Self, DashboardError> {
        let bad = |m: String| DashboardError::MapInvalid(m);
        let value: serde_json::Map<String, Json> =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        if value.len() > MAX_MAP_ENTRIES + 1 {
            return Err(bad(format!(
                "{} entries, at most {MAX_MAP_ENTRIES} allowed",
                value.len()
            )));
        }
        let projection = match value.get("projection") {
            None => Projection::Xy,
            Some(Json::String(s)) if s == "xy" => Projection::Xy,
            Some(Json::String(s)) if s == "latlon" => Projection::Latlon,
            Some(other) => {
                return Err(bad(format!(
                    "projection must be \"xy\" or \"latlon\", got {other}"
                )));
            }
        };
        let mut positions = HashMap::with_capacity(value.len());
        for (key, v) in &value {
            if key == "projection" {
                continue;
            }
            let index: u64 = key
                .parse()
                .map_err(|_| bad(format!("key {key:?} is not a device index")))?;
            let pair = v
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| Some([a[0].as_f64()?, a[1].as_f64()?]))
                .filter(|p| p.iter().all(|c| c.is_finite()))
                .ok_or_else(|| {
                    bad(format!(
                        "device {index}: expected [a, b] of finite numbers, got {v}"
                    ))
                })?;
            if projection == Projection::Latlon
                && !((-90.0..=90.0).contains(&pair[0]) && (-180.0..=180.0).contains(&pair[1]))
            {
                return Err(bad(format!(
                    "device {index}: [{}, {}] is no [lat, lon]",
                    pair[0], pair[1]
                )));
            }
            positions.insert(index, pair);
        }
        Ok(Self {
            projection,
            positions,
        })
    }

    /// Reads and parses `path` (refusing files over [`MAX_MAP_BYTES`]).
    pub fn load(path: &FsPath) -> Result<Self, DashboardError> {
        let shown = path.display().to_string();
        let io = |source| DashboardError::MapIo {
            path: shown.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_MAP_BYTES {
            return Err(DashboardError::MapTooLarge {
                path: shown,
                size,
                max: MAX_MAP_BYTES,
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::parse(&bytes)
    }
}

/// The deterministic layout of devices without a map position: a sunflower
/// (Vogel) spiral by index, `[x, y]` on the plane.
pub fn default_position(index: u64) -> [f64; 2] {
    const GOLDEN_ANGLE: f64 = 2.399_963_229_728_653;
    let i = index as f64;
    let r = (i + 0.5).sqrt();
    let theta = i * GOLDEN_ANGLE;
    [r * theta.cos(), r * theta.sin()]
}

/// The dashboard's settings.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Device positions (`None`: [`default_position`] for all).
    pub map: Option<Arc<FleetMap>>,
    /// How often the stream re-reads the fleet.
    pub poll: Duration,
    /// Most concurrent `/v1/fleet/stream` clients; more get 503.
    pub max_clients: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            map: None,
            poll: Duration::from_millis(1000),
            max_clients: 64,
        }
    }
}

/// One device of the fleet as `/v1/fleet` and the stream show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetDevice {
    /// Device index.
    pub index: i64,
    /// Model id.
    pub model: i64,
    /// Manufacturer id (-1 when the model is unknown).
    pub manufacturer: i64,
    /// Current owner (last transfer, else the claimer).
    pub owner: String,
    /// Chain status: 1 active, 2 deactivated.
    pub chain_status: i64,
    /// `red` (lacks the latest release), `amber` (entitled, no install report
    /// yet), `green` (verified install of the latest), `grey` (refused),
    /// `none` (the model has no installable release).
    pub status: &'static str,
    /// Position `[a, b]` (see the fleet's `projection`): the owner's (set
    /// through `PUT /v1/devices/{index}/label`), else the map's, else the spiral's.
    pub position: [f64; 2],
    /// The owner's label, shown while the address that wrote it owns the device.
    pub label: Option<String>,
    /// Newest version with an `installed` report (padded decimal), if any.
    pub installed: Option<String>,
    /// The model's latest installable version (not revoked, at or above the floor).
    pub latest: Option<String>,
    /// Its release id.
    pub latest_release: Option<String>,
    /// The outcome of the device's last report, if any.
    pub verdict: Option<String>,
    /// The refusal class (`detail`) when the last report refused.
    pub refusal: Option<String>,
}

/// One install report as [`read_reports`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    /// Device index.
    pub device_index: i64,
    /// Release id (0x hex).
    pub release_id: String,
    /// Version (20-digit padded decimal).
    pub version: String,
    /// `installed`, `refused`, `failed` or `rolled-back`.
    pub outcome: String,
    /// The refusal class or failure detail.
    pub detail: String,
    /// The block the device checked against.
    pub block_number: i64,
    /// The device's time (unix seconds).
    pub timestamp: i64,
    /// Per-device nonce (strictly increasing).
    pub nonce: i64,
}

fn is_missing_table(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code().as_deref() == Some("42P01") || d.message().contains("no such table")
        }
        _ => false,
    }
}

/// Every install report (or one device's), oldest first per device. All the
/// SQL that reads reports is here. It expects a table `reports` with the
/// columns of `otaledger_core::report::Report` that matter here:
/// `device_index BIGINT`, `release_id TEXT` (0x hex), `version TEXT`
/// (20-digit padded decimal), `outcome TEXT` (`Outcome::as_str`), `detail
/// TEXT`, `block_number BIGINT`, `report_time BIGINT`, `nonce BIGINT`. A
/// database without the table has no reports (an empty list, no error).
pub async fn read_reports(pool: &AnyPool, device: Option<i64>) -> crate::Result<Vec<ReportRow>> {
    let sql = "SELECT device_index, release_id, version, outcome, detail, block_number, report_time, nonce \
               FROM reports WHERE ($1 < 0 OR device_index = $1) ORDER BY device_index, nonce";
    let rows = match sqlx::query(sql)
        .bind(device.unwrap_or(-1))
        .fetch_all(pool)
        .await
    {
        Ok(rows) => rows,
        Err(e) if is_missing_table(&e) => return Ok(Vec::new()),
        Err(e) => return Err(db_err("reading install reports")(e)),
    };
    rows.iter()
        .map(|r| {
            Ok(ReportRow {
                device_index: r.try_get(0)?,
                release_id: r.try_get(1)?,
                version: r.try_get(2)?,
                outcome: r.try_get(3)?,
                detail: r.try_get(4)?,
                block_number: r.try_get(5)?,
                timestamp: r.try_get(6)?,
                nonce: r.try_get(7)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_err("decoding install reports"))
}

/// The fleet's chain state in one statement: every claimed device with its
/// model, manufacturer, current owner and status, its model's latest
/// installable release (newest version not revoked and at or above the
/// floor) and whether it is entitled to it (bought more often than refunded).
const FLEET_SQL: &str = "
WITH fl AS (
  SELECT model_id, MAX(min_version) AS v FROM (
    SELECT model_id, min_version FROM models UNION ALL SELECT model_id, min_version FROM floors
  ) f GROUP BY model_id),
ok AS (
  SELECT r.model_id, r.version, r.release_id FROM releases r JOIN fl ON fl.model_id = r.model_id
  WHERE r.version >= fl.v AND NOT EXISTS (SELECT 1 FROM revocations x WHERE x.release_id = r.release_id)),
lv AS (SELECT model_id, MAX(version) AS version FROM ok GROUP BY model_id),
lr AS (
  SELECT ok.model_id, ok.version, MIN(ok.release_id) AS release_id FROM ok
  JOIN lv ON lv.model_id = ok.model_id AND lv.version = ok.version GROUP BY ok.model_id, ok.version)
SELECT c.device_index, c.model_id, COALESCE(m.manufacturer_id, -1),
  COALESCE((SELECT t.to_address FROM transfers t WHERE t.device_index = c.device_index
            ORDER BY t.block_number DESC, t.log_index DESC LIMIT 1), c.owner),
  COALESCE((SELECT s.status FROM status_changes s WHERE s.device_index = c.device_index
            ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1), 1),
  COALESCE(lr.version, ''), COALESCE(lr.release_id, ''),
  (SELECT COUNT(*) FROM purchase_devices p WHERE p.device_index = c.device_index AND p.release_id = lr.release_id),
  (SELECT COUNT(*) FROM refund_devices d WHERE d.device_index = c.device_index AND d.release_id = lr.release_id)
FROM claims c
LEFT JOIN (SELECT model_id, MIN(manufacturer_id) AS manufacturer_id FROM models GROUP BY model_id) m
  ON m.model_id = c.model_id
LEFT JOIN lr ON lr.model_id = c.model_id
ORDER BY c.device_index, c.block_number, c.log_index";

/// Every claimed device with its status (the one fleet query plus [`read_reports`]).
pub async fn read_fleet(pool: &AnyPool, map: Option<&FleetMap>) -> crate::Result<Vec<FleetDevice>> {
    let rows = sqlx::query(FLEET_SQL)
        .fetch_all(pool)
        .await
        .map_err(db_err("reading the fleet"))?;
    let reports = read_reports(pool, None).await?;
    let labels = read_labels(pool).await?;
    let mut by_device: HashMap<i64, Vec<&ReportRow>> = HashMap::new();
    for r in &reports {
        by_device.entry(r.device_index).or_default().push(r);
    }
    let mut devices: BTreeMap<i64, FleetDevice> = BTreeMap::new();
    for r in &rows {
        let decode = || -> Result<_, sqlx::Error> {
            Ok((
                r.try_get::<i64, _>(0)?,
                r.try_get::<i64, _>(1)?,
                r.try_get::<i64, _>(2)?,
                r.try_get::<String, _>(3)?,
                r.try_get::<i64, _>(4)?,
                r.try_get::<String, _>(5)?,
                r.try_get::<String, _>(6)?,
                r.try_get::<i64, _>(7)?,
                r.try_get::<i64, _>(8)?,
            ))
        };
        let (index, model, manufacturer, owner, chain_status, latest, latest_id, bought, refunded) =
            decode().map_err(db_err("decoding the fleet"))?;
        let latest = (!latest.is_empty()).then_some(latest);
        let latest_release = (!latest_id.is_empty()).then_some(latest_id);
        let reports = by_device.get(&index).map(Vec::as_slice).unwrap_or(&[]);
        let installed = reports
            .iter()
            .filter(|r| r.outcome == "installed")
            .map(|r| r.version.clone())
            .max();
        let last = reports.last();
        let installed_latest = reports
            .iter()
            .any(|r| r.outcome == "installed" && Some(&r.release_id) == latest_release.as_ref());
        let refused = last.is_some_and(|r| r.outcome == "refused");
        let status = if latest_release.is_none() {
            "none"
        } else if installed_latest {
            "green"
        } else if refused {
            "grey"
        } else if bought > refunded {
            "amber"
        } else {
            "red"
        };
        // An owner's label and place count only while that owner owns the device.
        let labelled = labels
            .get(&index)
            .filter(|l| l.owner.eq_ignore_ascii_case(&owner));
        let position = labelled
            .and_then(|l| l.position)
            .or_else(|| {
                map.and_then(|m| u64::try_from(index).ok().and_then(|i| m.positions.get(&i)))
                    .copied()
            })
            .unwrap_or_else(|| default_position(index as u64));
        let label = labelled.map(|l| l.label.clone()).filter(|l| !l.is_empty());
        devices.insert(
            index,
            FleetDevice {
                index,
                model,
                manufacturer,
                owner,
                chain_status,
                status,
                position,
                label,
                installed,
                latest,
                latest_release,
                verdict: last.map(|r| r.outcome.clone()),
                refusal: last
                    .filter(|r| r.outcome == "refused")
                    .map(|r| r.detail.clone()),
            },
        );
    }
    Ok(devices.into_values().collect())
}

/// An owner's label of a device (table `device_labels`).
#[derive(Debug, Clone)]
struct Label {
    owner: String,
    label: String,
    position: Option<[f64; 2]>,
}

async fn read_labels(pool: &AnyPool) -> crate::Result<HashMap<i64, Label>> {
    let rows =
        sqlx::query("SELECT device_index, owner, label, position_a, position_b FROM device_labels")
            .fetch_all(pool)
            .await
            .map_err(db_err("reading device labels"))?;
    rows.iter()
        .map(|r| {
            let a: Option<f64> = r.try_get(3)?;
            let b: Option<f64> = r.try_get(4)?;
            Ok((
                r.try_get::<i64, _>(0)?,
                Label {
                    owner: r.try_get(1)?,
                    label: r.try_get(2)?,
                    position: a.zip(b).map(|(a, b)| [a, b]),
                },
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_err("decoding device labels"))
}

/// One published state of the fleet: its generation and, per device, the
/// generation it last changed in.
#[derive(Debug, Default)]
struct Snapshot {
    generation: u64,
    devices: Vec<FleetDevice>,
    changed: Vec<u64>,
}

#[derive(Debug)]
struct Shared {
    api: ApiState,
    config: DashboardConfig,
    epoch: u64,
    refresh: Mutex<()>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    clients: AtomicUsize,
}

/// The dashboard's state (cheap to clone).
#[derive(Debug, Clone)]
pub struct DashboardState {
    shared: Arc<Shared>,
}

impl DashboardState {
    /// The dashboard over `api`'s database with `config`.
    pub fn new(api: ApiState, config: DashboardConfig) -> Self {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Self {
            shared: Arc::new(Shared {
                api,
                config,
                epoch,
                refresh: Mutex::new(()),
                snapshot: watch::channel(Arc::new(Snapshot::default())).0,
                clients: AtomicUsize::new(0),
            }),
        }
    }

    fn cursor(&self, generation: u64) -> String {
        format!("{}-{generation}", self.shared.epoch)
    }

    /// Re-reads the fleet; a changed fleet becomes a new generation.
    async fn refresh(&self) -> crate::Result<Arc<Snapshot>> {
        let s = &self.shared;
        let _one = s.refresh.lock().await;
        let devices = read_fleet(&s.api.reader, s.config.map.as_deref()).await?;
        let old = s.snapshot.borrow().clone();
        if old.generation > 0 && old.devices == devices {
            return Ok(old);
        }
        let generation = old.generation + 1;
        let before: HashMap<i64, &FleetDevice> = old.devices.iter().map(|d| (d.index, d)).collect();
        let old_changed: HashMap<i64, u64> = old
            .devices
            .iter()
            .zip(&old.changed)
            .map(|(d, c)| (d.index, *c))
            .collect();
        let changed = devices
            .iter()
            .map(|d| match before.get(&d.index) {
                Some(b) if *b == d => old_changed[&d.index],
                _ => generation,
            })
            .collect();
        let snapshot = Arc::new(Snapshot {
            generation,
            devices,
            changed,
        });
        s.snapshot.send_replace(snapshot.clone());
        Ok(snapshot)
    }

    fn parse_cursor(&self, cursor: &str) -> u64 {
        cursor
            .split_once('-')
            .filter(|(e, _)| e.parse() == Ok(self.shared.epoch))
            .and_then(|(_, g)| g.parse().ok())
            .unwrap_or(0)
    }
}

/// The API's router with the dashboard's routes merged in.
pub fn app(api: ApiState, config: DashboardConfig) -> Router {
    let state = DashboardState::new(api.clone(), config);
    api::app(api).merge(routes(state))
}

/// [`app`] plus Sign-In with Ethereum and the endpoints behind it
/// ([`crate::auth`], `docs/auth.md`), with roles read through the indexer's
/// RPC client.
pub fn app_with_auth(
    api: ApiState,
    config: DashboardConfig,
    auth: crate::auth::AuthConfig,
) -> Router {
    let projection = config.map.as_ref().map_or(Projection::Xy, |m| m.projection);
    let auth_state = crate::auth::AuthState::new(
        api.pool.clone(),
        crate::roles::ChainRoles::new(api.monitor.rpc.clone(), api.monitor.registry),
        api.monitor.chain_id,
        auth,
        projection,
    );
    app(api, config).merge(crate::auth::routes(auth_state))
}

/// The dashboard's routes alone.
pub fn routes(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/v1/fleet", get(fleet))
        .route("/v1/fleet/stream", get(stream))
        .route("/v1/fleet/devices/{index}", get(trail))
        .route("/v1/manufacturers/{id}/signers", get(signers))
        .route("/v1/deployment", get(deployment))
        .with_state(state)
}

fn page_headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 6] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

async fn index() -> Response {
    (page_headers("text/html; charset=utf-8"), INDEX_HTML).into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (page_headers(content_type), *body).into_response(),
        None => api::ApiError::NotFound(format!("no asset {name:?}")).into_response(),
    }
}

fn json_ok(body: &Json) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn fleet(State(state): State<DashboardState>) -> Result<Response, api::ApiError> {
    let snapshot = state.refresh().await?;
    let projection = state
        .shared
        .config
        .map
        .as_ref()
        .map_or(Projection::Xy, |m| m.projection);
    Ok(json_ok(&json!({
        "cursor": state.cursor(snapshot.generation),
        "projection": projection,
        "devices": snapshot.devices,
    })))
}

/// `?cursor=` of the stream.
#[derive(Debug, Deserialize)]
struct StreamQuery {
    cursor: Option<String>,
}

struct ClientSlot(Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn stream(
    State(state): State<DashboardState>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    let shared = state.shared.clone();
    let n = shared.clients.fetch_add(1, Ordering::SeqCst);
    let slot = ClientSlot(shared.clone());
    if n >= shared.config.max_clients {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "error": format!("too many stream clients (at most {})", shared.config.max_clients) })
                .to_string(),
        )
            .into_response();
    }
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let since = q
        .cursor
        .or(last_event)
        .map_or(0, |c| state.parse_cursor(&c));
    let poll = shared.config.poll;
    let events = futures_util::stream::unfold(
        (state, since, slot, true),
        move |(state, since, slot, first)| async move {
            loop {
                if !first {
                    tokio::time::sleep(poll).await;
                }
                let snapshot = match state.refresh().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "fleet stream refresh failed");
                        tokio::time::sleep(poll).await;
                        continue;
                    }
                };
                let changed: Vec<&FleetDevice> = snapshot
                    .devices
                    .iter()
                    .zip(&snapshot.changed)
                    .filter(|(_, c)| **c > since)
                    .map(|(d, _)| d)
                    .collect();
                if changed.is_empty() && !first {
                    continue;
                }
                let cursor = state.cursor(snapshot.generation);
                let data = json!({ "cursor": cursor, "devices": changed }).to_string();
                let event = Event::default().event("devices").id(cursor).data(data);
                let generation = snapshot.generation;
                return Some((Ok::<_, Infallible>(event), (state, generation, slot, false)));
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn rows_json(pool: &AnyPool, sql: &'static str, key: i64) -> crate::Result<Vec<Json>> {
    let rows = sqlx::query(sql)
        .bind(key)
        .fetch_all(pool)
        .await
        .map_err(db_err("reading an audit trail"))?;
    rows.iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for (i, c) in r.columns().iter().enumerate() {
                use sqlx::Column as _;
                let v = match r.try_get::<Option<i64>, _>(i) {
                    Ok(v) => json!(v),
                    Err(_) => json!(r.try_get::<Option<String>, _>(i)?),
                };
                o.insert(c.name().to_owned(), v);
            }
            Ok(Json::Object(o))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_err("decoding an audit trail"))
}

/// A device's audit trail: provisioned (its batch), claimed, transfers,
/// status changes, purchases, refunds (each with block and transaction), then
/// its install reports; in chain order.
async fn trail(
    State(state): State<DashboardState>,
    Path(index): Path<String>,
) -> Result<Response, api::ApiError> {
    let index: i64 = index.parse().ok().filter(|i| *i >= 0).ok_or_else(|| {
        api::ApiError::BadRequest(format!("device index must be a number, got {index:?}"))
    })?;
    let pool = &state.shared.api.reader;
    let claims = rows_json(pool, "SELECT 'claimed' AS kind, block_number, log_index, tx_hash, owner, device, model_id, batch_id FROM claims WHERE device_index = $1", index).await?;
    let Some(claim) = claims.first() else {
        return Err(api::ApiError::NotFound(format!(
            "device {index} was never claimed"
        )));
    };
    let batch = claim["batch_id"].as_i64().unwrap_or(-1);
    let mut events = rows_json(pool, "SELECT 'provisioned' AS kind, block_number, log_index, tx_hash, batch_id, manufacturer_id, first_index, device_count FROM batches WHERE batch_id = $1", batch).await?;
    events.extend(claims);
    for sql in [
        "SELECT 'transferred' AS kind, block_number, log_index, tx_hash, from_address, to_address FROM transfers WHERE device_index = $1",
        "SELECT 'status' AS kind, block_number, log_index, tx_hash, status FROM status_changes WHERE device_index = $1",
        "SELECT 'purchased' AS kind, p.block_number, p.log_index, p.tx_hash, p.release_id, r.version FROM purchase_devices p LEFT JOIN releases r ON r.release_id = p.release_id WHERE p.device_index = $1",
        "SELECT 'refunded' AS kind, block_number, log_index, tx_hash, release_id FROM refund_devices WHERE device_index = $1",
    ] {
        events.extend(rows_json(pool, sql, index).await?);
    }
    events.sort_by_key(|e| {
        (
            e["block_number"].as_i64().unwrap_or(0),
            e["log_index"].as_i64().unwrap_or(0),
        )
    });
    for r in read_reports(pool, Some(index)).await? {
        let mut v = serde_json::to_value(&r).unwrap_or_default();
        v["kind"] = json!("report");
        events.push(v);
    }
    Ok(json_ok(&json!({ "device_index": index, "events": events })))
}

/// The deployment this indexer mirrors (its claimed `sync_state`): chain id,
/// `UpdateRegistry` and `UpdateMarket` addresses and the checkpoint block. The
/// page compares a wallet's chain with `chain_id` before it asks for any
/// signature (a local node signs typed data for any chain id).
async fn deployment(State(state): State<DashboardState>) -> Result<Response, api::ApiError> {
    let row =
        sqlx::query("SELECT chain_id, registry, market, block_number FROM sync_state WHERE id = 1")
            .fetch_optional(&state.shared.api.reader)
            .await
            .map_err(db_err("reading the deployment"))?;
    let Some(row) = row else {
        return Err(api::ApiError::NotFound(
            "the indexer has not claimed a deployment yet".into(),
        ));
    };
    let decode = || -> Result<_, sqlx::Error> {
        Ok((
            row.try_get::<i64, _>(0)?,
            row.try_get::<String, _>(1)?,
            row.try_get::<String, _>(2)?,
            row.try_get::<i64, _>(3)?,
        ))
    };
    let (chain_id, registry, market, checkpoint) =
        decode().map_err(db_err("decoding the deployment"))?;
    Ok(json_ok(&json!({
        "chain_id": chain_id,
        "registry": registry,
        "market": market,
        "checkpoint": checkpoint,
    })))
}

/// A manufacturer's signer history: every set (registration and rotations)
/// with its members, threshold, block and transaction, oldest first.
async fn signers(
    State(state): State<DashboardState>,
    Path(id): Path<String>,
) -> Result<Response, api::ApiError> {
    let id: i64 = id.parse().ok().filter(|i| *i >= 0).ok_or_else(|| {
        api::ApiError::BadRequest(format!("manufacturer id must be a number, got {id:?}"))
    })?;
    let pool = &state.shared.api.reader;
    let mut sets = rows_json(pool, "SELECT block_number, log_index, tx_hash, nonce, threshold FROM signer_sets WHERE manufacturer_id = $1 ORDER BY block_number, log_index", id).await?;
    let members = rows_json(pool, "SELECT block_number, log_index, position, signer FROM signer_set_members WHERE manufacturer_id = $1 ORDER BY block_number, log_index, position", id).await?;
    for set in &mut sets {
        let list: Vec<Json> = members
            .iter()
            .filter(|m| {
                m["block_number"] == set["block_number"] && m["log_index"] == set["log_index"]
            })
            .map(|m| m["signer"].clone())
            .collect();
        set["signers"] = Json::Array(list);
    }
    Ok(json_ok(
        &json!({ "manufacturer_id": id, "signer_sets": sets }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_parses_and_rejects_mutations() {
        let good = br#"{"0": [1.5, 2], "7": [-3, 4e2]}"#;
        let map = FleetMap::parse(good).unwrap();
        assert_eq!(map.projection, Projection::Xy);
        assert_eq!(map.positions[&7], [-3.0, 400.0]);
        let geo = FleetMap::parse(br#"{"projection": "latlon", "1": [48.1, 11.5]}"#).unwrap();
        assert_eq!(geo.projection, Projection::Latlon);
        for bad in [
            &br#"{"x": [1, 2]}"#[..],
            br#"{"-1": [1, 2]}"#,
            br#"{"1": [1]}"#,
            br#"{"1": [1, 2, 3]}"#,
            br#"{"1": ["1", 2]}"#,
            br#"{"1": {"a": 1}}"#,
            br#"[1, 2]"#,
            br#"{"projection": "mercator"}"#,
            br#"{"projection": "latlon", "1": [91, 0]}"#,
            br#"{"projection": "latlon", "1": [0, 181]}"#,
            br#"{"1": [1e999, 2]}"#,
        ] {
            assert!(
                FleetMap::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Every truncation of a valid map is refused or parses to fewer entries.
        for cut in 0..good.len() {
            if let Ok(m) = FleetMap::parse(&good[..cut]) {
                panic!("truncated map parsed: {m:?}");
            }
        }
        // Every single-byte mutation either fails cleanly or yields a valid map.
        for i in 0..good.len() {
            for b in [b'x', b'-', b'9', b'"', b']', 0xff] {
                let mut m = good.to_vec();
                m[i] = b;
                if let Ok(map) = FleetMap::parse(&m) {
                    assert!(map.positions.values().flatten().all(|c| c.is_finite()));
                }
            }
        }
    }

    #[test]
    fn map_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.json");
        let e = FleetMap::load(&missing).unwrap_err();
        assert!(matches!(e, DashboardError::MapIo { .. }), "{e}");
        assert!(e.to_string().contains("none.json"));
        let big = dir.path().join("big.json");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_MAP_BYTES + 1).unwrap();
        let e = FleetMap::load(&big).unwrap_err();
        assert!(matches!(e, DashboardError::MapTooLarge { .. }), "{e}");
        let ok = dir.path().join("ok.json");
        std::fs::write(&ok, br#"{"3": [1, 2]}"#).unwrap();
        assert_eq!(FleetMap::load(&ok).unwrap().positions[&3], [1.0, 2.0]);
    }

    #[test]
    fn default_layout_is_deterministic_and_distinct() {
        assert_eq!(default_position(42), default_position(42));
        let a = default_position(1);
        let b = default_position(2);
        assert!((a[0] - b[0]).abs() + (a[1] - b[1]).abs() > 0.5);
    }
}
