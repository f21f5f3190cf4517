//! Trustless gateway server (IPFS Trustless Gateway specification) over a [`Blockstore`].
//!
//! `GET`/`HEAD /ipfs/{cid}` answers with one raw block (`Accept: application/vnd.ipld.raw` or
//! `?format=raw`) or a CAR stream (`Accept: application/vnd.ipld.car` or `?format=car`, with
//! `dag-scope`, `entity-bytes`, `order=dfs`, `dups=n`). Nothing is deserialized: clients verify
//! what they get against the CID. Layout after boxo's gateway: request parsing (`request.rs`),
//! one file per response format (`block.rs`, `car.rs`), the headers (`headers.rs`), and one
//! error-to-status mapping (`errors.rs`).
//!
//! Limits a public gateway needs are in [`GatewayConfig`]: requests in flight (429 beyond), the
//! time to start a response (504), and how long a CAR stream may wait for a slow reader.

mod block;
mod car;
mod errors;
mod headers;
mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;

use crate::Blockstore;
use errors::GatewayError;
use request::Format;

/// Default [`GatewayConfig::max_concurrent_requests`].
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;
/// Default [`GatewayConfig::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`GatewayConfig::stream_idle_timeout`].
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits of a gateway open to the public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Requests served at once, CAR streams included until they end; more get
    /// `429 Too Many Requests` with `Retry-After` (boxo's in-flight limiter). Default 64.
    pub max_concurrent_requests: usize,
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
    in_flight: Arc<Semaphore>,
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
        in_flight: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        config,
    });
    Router::new()
        .route("/ipfs/{cid}", get(handle))
        .route("/ipfs/{cid}/{*path}", get(content_path))
        .with_state(state)
}

/// Serve the gateway on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Blockstore,
    config: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router_with(store, config))
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
) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let req = match request::parse(&cid, &query, accept) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let Ok(permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
        return GatewayError::Busy.into_response();
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
