//! Trustless gateway server (IPFS Trustless Gateway specification) over a [`Blockstore`].
//!
//! `GET`/`HEAD /ipfs/{cid}` answers with one raw block (`Accept: application/vnd.ipld.raw` or
//! `?format=raw`) or a CAR stream (`Accept: application/vnd.ipld.car` or `?format=car`, with
//! `dag-scope`, `entity-bytes`, `order=dfs`, `dups=n`). Nothing is deserialized: clients verify
//! what they get against the CID. Layout after boxo's gateway: request parsing (`request.rs`),
//! one file per response format (`block.rs`, `car.rs`), the headers (`headers.rs`), and one
//! error-to-status mapping (`errors.rs`).
//!
//! Limits a public gateway needs are in [`GatewayConfig`]: requests in flight, each client's share
//! of them and a bounded, timed wait for a slot (429 beyond; `limit.rs`), the time to start a
//! response (504), and how long a CAR stream may wait for a slow reader.

mod block;
mod car;
mod errors;
mod headers;
mod limit;
mod request;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Extensions, HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Blockstore;
use errors::GatewayError;
use limit::{ClientKey, Limiter};
use request::Format;

/// Default [`GatewayConfig::max_concurrent_requests`].
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;
/// Default [`GatewayConfig::max_requests_per_client`]: half the slots, so one client never holds
/// them all.
pub const DEFAULT_MAX_REQUESTS_PER_CLIENT: usize = 32;
/// Default [`GatewayConfig::max_queued_requests`].
pub const DEFAULT_MAX_QUEUED_REQUESTS: usize = 512;
/// Default [`GatewayConfig::max_queued_per_client`]: room for a block-by-block client's burst
/// (Helia sends about 175 raw-block requests at once for a 174-wide DAG level).
pub const DEFAULT_MAX_QUEUED_PER_CLIENT: usize = 256;
/// Default [`GatewayConfig::queue_timeout`].
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`GatewayConfig::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`GatewayConfig::stream_idle_timeout`].
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits of a gateway open to the public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Requests served at once (slots), CAR streams included until they end; more wait in the
    /// queue. Default 64.
    pub max_concurrent_requests: usize,
    /// Slots one client (peer IP; IPv6 by /64) may hold at once (at most all of them); its other
    /// requests wait. Default 32.
    pub max_requests_per_client: usize,
    /// Requests waiting for a slot, all clients together; more get `429 Too Many Requests` with
    /// `Retry-After` at once. Default 512.
    pub max_queued_requests: usize,
    /// Requests of one client waiting for a slot; more get 429 at once. Default 256.
    pub max_queued_per_client: usize,
    /// Longest wait for a slot; then 429. Default 10 s.
    pub queue_timeout: Duration,
    /// Time allowed to start a response (read the root, decide the status); `504` after. Default 30 s.
    pub request_timeout: Duration,
    /// A CAR stream is cut when the client takes no data for this long, so slow readers cannot
    /// hold a slot forever. Default 60 s.
    pub stream_idle_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_requests_per_client: DEFAULT_MAX_REQUESTS_PER_CLIENT,
            max_queued_requests: DEFAULT_MAX_QUEUED_REQUESTS,
            max_queued_per_client: DEFAULT_MAX_QUEUED_PER_CLIENT,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
struct GatewayState {
    store: Blockstore,
    config: GatewayConfig,
    limiter: Arc<Limiter>,
}

/// One request's view of the gateway, handed to the format handlers.
struct Ctx<'a> {
    store: Blockstore,
    headers: &'a HeaderMap,
    /// `HEAD`: headers only, no body and no traversal.
    head_only: bool,
    /// `Cache-Control: only-if-cached`: a missing root is 412, not 404.
    only_if_cached: bool,
}

/// The gateway's routes over `store` with the default [`GatewayConfig`].
pub fn router(store: Blockstore) -> Router {
    router_with(store, GatewayConfig::default())
}

/// The gateway's routes over `store` with `config`.
pub fn router_with(store: Blockstore, config: GatewayConfig) -> Router {
    let state = Arc::new(GatewayState {
        store,
        limiter: Limiter::new(config),
        config,
    });
    Router::new()
        .route("/ipfs/{cid}", get(handle))
        .route("/ipfs/{cid}/{*path}", get(content_path))
        .with_state(state)
}

/// Serve the gateway on `listener` until `shutdown` completes. Each peer's IP address is known
/// here, so the per-client share of [`GatewayConfig`] applies per client (a router used on its
/// own counts every request against one client).
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Blockstore,
    config: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router_with(store, config).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn content_path() -> Response {
    GatewayError::PathNotSupported.into_response()
}

async fn handle(
    State(state): State<Arc<GatewayState>>,
    Path(cid): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    method: Method,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let req = match request::parse(&cid, &query, accept) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let permit = match state.limiter.acquire(ClientKey::of(peer)).await {
        Ok(slot) => slot,
        Err(e) => {
            tracing::debug!(?peer, error = %e, "request refused");
            return e.into_response();
        }
    };
    let head_only = method == Method::HEAD;
    let only_if_cached = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"))
        });
    let ctx = Ctx {
        store: state.store.clone(),
        headers: &headers,
        head_only,
        only_if_cached,
    };
    let work = async {
        match req.format {
            Format::Raw => block::serve(&ctx, req.cid).await,
            Format::Car(car) => {
                car::serve(&ctx, req.cid, car, permit, state.config.stream_idle_timeout).await
            }
        }
    };
    match tokio::time::timeout(state.config.request_timeout, work).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(_) => GatewayError::Timeout.into_response(),
    }
}
