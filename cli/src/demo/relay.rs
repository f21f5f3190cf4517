//! An HTTP relay between the simulated fleet and its RPC endpoint or gateway
//! (`otaledger fleet simulate`).
//!
//! It forwards every request to its upstream and counts what the devices asked: requests,
//! JSON-RPC methods, bytes sent back. With caching on it is the *untrusted HTTP cache* of
//! issue 15 §4: answers that cannot change are kept and served again to every device that asks
//! the same question, without asking the upstream:
//!
//! - JSON-RPC calls pinned to a block number (`eth_getBlockByNumber(N)`, `eth_getProof(…, N)`,
//!   `eth_getStorageAt`, `eth_call`, `eth_getBalance`, `eth_getCode` at `N`), `eth_chainId`, and
//!   lookups by hash once they found something (`eth_getTransactionByHash`,
//!   `eth_getTransactionReceipt`, `eth_getBlockByHash`); never `eth_blockNumber`, a `latest`
//!   tag or `eth_getLogs`;
//! - gateway `GET`s (content addressed: `/ipfs/<cid>` with the same query and `Accept`) that
//!   answered 200.
//!
//! The cache is not trusted and need not be: a device re-hashes every header and votes on it,
//! verifies every proof against the voted state root and every block against its CID. What a
//! lying or stale cache can do is what a lying endpoint can: make a device wait (a header
//! cached before a reorg is a stale fork, bounded by the device's header age and highest seen
//! block), never make it install. The relay is a benchmark instrument, not a production
//! proxy: it binds to loopback only.
//!
//! One request per key goes upstream at a time: devices asking the same question while it is
//! in flight wait for its answer (the first device of a block pays for the fleet).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use eyre::WrapErr;
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::{sync::OnceCell, task::JoinHandle};
use url::Url;

/// Largest request body relayed: 1 MiB (a device's largest request, a proof of a few slots,
/// is under 1 KiB).
const MAX_REQUEST: usize = 1 << 20;

/// Largest answer the cache keeps: 64 MiB. A larger one is relayed, not kept.
const MAX_CACHED_ITEM: usize = 64 << 20;

/// Bytes the cache holds at most: 512 MiB. When full it keeps no more answers.
const MAX_CACHED_TOTAL: usize = 512 << 20;

/// What the upstream is: it decides which answers may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upstream {
    /// A JSON-RPC endpoint (POST).
    Rpc,
    /// A trustless gateway (GET/HEAD).
    Gateway,
}

/// Counters of one relay.
#[derive(Debug, Default)]
pub(super) struct Stats {
    requests: AtomicU64,
    hits: AtomicU64,
    bytes_out: AtomicU64,
    bytes_upstream: AtomicU64,
    methods: Mutex<BTreeMap<String, (u64, u64)>>,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(super) struct Counts {
    /// Requests the devices sent.
    pub(super) requests: u64,
    /// Of those, answered from the cache.
    pub(super) cache_hits: u64,
    /// Response body bytes sent to the devices.
    pub(super) bytes_out: u64,
    /// Response body bytes read from the upstream.
    pub(super) bytes_upstream: u64,
    /// Per JSON-RPC method (RPC relays): requests and cache hits.
    pub(super) methods: BTreeMap<String, MethodCounts>,
}

/// Requests of one JSON-RPC method.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(super) struct MethodCounts {
    /// Requests sent.
    pub(super) requests: u64,
    /// Of those, answered from the cache.
    pub(super) cache_hits: u64,
}

impl Stats {
    /// The counters now.
    pub(super) fn counts(&self) -> Counts {
        let methods = self
            .methods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(m, &(requests, cache_hits))| {
                (
                    m.clone(),
                    MethodCounts {
                        requests,
                        cache_hits,
                    },
                )
            })
            .collect();
        Counts {
            requests: self.requests.load(Ordering::Relaxed),
            cache_hits: self.hits.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            bytes_upstream: self.bytes_upstream.load(Ordering::Relaxed),
            methods,
        }
    }

    fn method(&self, name: &str, hit: bool) {
        let mut methods = self.methods.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the methods a device sends are named; anything else is counted as "other"
        // (a client cannot grow the table without bound).
        let name = if name.len() <= 48 && name.starts_with("eth_") || name == "net_version" {
            name
        } else {
            "other"
        };
        let entry = methods.entry(name.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(hit);
    }
}

impl Counts {
    /// `self − earlier`: what happened between two snapshots.
    pub(super) fn since(&self, earlier: &Counts) -> Counts {
        let methods = self
            .methods
            .iter()
            .map(|(m, c)| {
                let e = earlier.methods.get(m).copied().unwrap_or_default();
                (
                    m.clone(),
                    MethodCounts {
                        requests: c.requests - e.requests,
                        cache_hits: c.cache_hits - e.cache_hits,
                    },
                )
            })
            .filter(|(_, c)| c.requests > 0)
            .collect();
        Counts {
            requests: self.requests - earlier.requests,
            cache_hits: self.cache_hits - earlier.cache_hits,
            bytes_out: self.bytes_out - earlier.bytes_out,
            bytes_upstream: self.bytes_upstream - earlier.bytes_upstream,
            methods,
        }
    }
}

/// A kept answer.
#[derive(Debug, Clone)]
enum Kept {
    /// A JSON-RPC `result`, as raw JSON text.
    Rpc(Bytes),
    /// A gateway answer: its headers and body.
    Http(Vec<(HeaderName, HeaderValue)>, Bytes),
}

/// One cache entry: filled once by the first request for its key.
type Slot = Arc<OnceCell<Option<Kept>>>;

struct Inner {
    upstream: Url,
    kind: Upstream,
    cache: bool,
    http: reqwest::Client,
    stats: Arc<Stats>,
    slots: Mutex<HashMap<Vec<u8>, Slot>>,
    cached_bytes: AtomicU64,
    /// Largest answer kept ([`MAX_CACHED_ITEM`]).
    item_limit: usize,
}

/// A running relay.
pub(super) struct Relay {
    /// Its URL (give this to the devices instead of the upstream's).
    pub(super) url: Url,
    /// Its counters.
    pub(super) stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Starts a relay to `upstream` on a free loopback port; `cache` turns the cache on.
    pub(super) async fn start(upstream: Url, kind: Upstream, cache: bool) -> eyre::Result<Self> {
        Self::start_with(upstream, kind, cache, MAX_CACHED_ITEM).await
    }

    /// [`Relay::start`] keeping answers up to `item_limit` bytes.
    async fn start_with(
        upstream: Url,
        kind: Upstream,
        cache: bool,
        item_limit: usize,
    ) -> eyre::Result<Self> {
        let http = otaledger_ipfs::http::shared_client(otaledger_ipfs::http::ClientSettings {
            connect_timeout: Some(Duration::from_secs(5)),
            timeout: None,
            follow_redirects: false,
        })
        .wrap_err("building the relay's HTTP client")?;
        let stats = Arc::new(Stats::default());
        let inner = Arc::new(Inner {
            upstream,
            kind,
            cache,
            http,
            stats: stats.clone(),
            slots: Mutex::default(),
            cached_bytes: AtomicU64::new(0),
            item_limit,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback(relay).with_state(inner);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("relay {addr}: {e}");
            }
        });
        Ok(Self {
            url: Url::parse(&format!("http://{addr}/"))?,
            stats,
            task,
        })
    }
}

fn bad_gateway(why: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_GATEWAY, format!("relay: {why}")).into_response()
}

async fn relay(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    inner.stats.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REQUEST).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("relay: request body over {MAX_REQUEST} bytes"),
            )
                .into_response();
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    match inner.kind {
        Upstream::Rpc => rpc(&inner, &parts.method, &parts.headers, &path, body).await,
        Upstream::Gateway => gateway(&inner, &parts.method, &parts.headers, &path, body).await,
    }
}

/// Forwards one request to the upstream.
async fn forward(
    inner: &Inner,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
) -> Result<reqwest::Response, Response> {
    let mut url = inner.upstream.clone();
    let (p, q) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    url.set_path(p);
    url.set_query(q);
    let mut request = inner.http.request(method.clone(), url).body(body);
    for name in [
        header::ACCEPT,
        header::CONTENT_TYPE,
        header::RANGE,
        header::IF_NONE_MATCH,
    ] {
        if let Some(v) = headers.get(&name) {
            request = request.header(name, v.clone());
        }
    }
    request
        .send()
        .await
        .map_err(|e| bad_gateway(e.without_url()))
}

/// Forwards one request and relays the answer as it streams.
async fn relayed(
    inner: &Inner,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
) -> Response {
    match forward(inner, method, headers, path, body).await {
        Ok(r) => streamed(inner, r),
        Err(r) => r,
    }
}

/// Response headers passed back (not the hop-by-hop ones, nor the length: the body sets it).
fn passed_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(n, _)| {
            ![
                header::CONNECTION,
                header::TRANSFER_ENCODING,
                header::CONTENT_LENGTH,
                header::DATE,
            ]
            .contains(n)
                && n.as_str() != "keep-alive"
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// `chunks` of an upstream answer, each counted as read from the upstream and sent on.
fn counted(
    stats: Arc<Stats>,
    chunks: impl futures_util::Stream<Item = reqwest::Result<Bytes>>,
) -> impl futures_util::Stream<Item = reqwest::Result<Bytes>> {
    chunks.map(move |chunk| {
        if let Ok(c) = &chunk {
            stats.bytes_out.fetch_add(c.len() as u64, Ordering::Relaxed);
            stats
                .bytes_upstream
                .fetch_add(c.len() as u64, Ordering::Relaxed);
        }
        chunk
    })
}

/// A response of `status` with `headers` and `body`.
fn response(status: StatusCode, headers: Vec<(HeaderName, HeaderValue)>, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().extend(headers);
    r
}

/// Relays an upstream answer as it streams, counting its bytes.
fn streamed(inner: &Inner, upstream: reqwest::Response) -> Response {
    let status = upstream.status();
    let headers = passed_headers(upstream.headers());
    let body = counted(inner.stats.clone(), upstream.bytes_stream());
    response(status, headers, Body::from_stream(body))
}

/// An upstream answer read for the cache.
enum Whole {
    /// All of it.
    Read(Bytes),
    /// Over the item limit: relayed to the asker as it streams (what was read first, then
    /// the rest), not kept.
    TooLarge(Response),
}

/// Reads a whole upstream answer, up to the relay's item limit.
async fn read_whole(inner: &Inner, upstream: reqwest::Response) -> Result<Whole, String> {
    if upstream
        .content_length()
        .is_some_and(|n| n > inner.item_limit as u64)
    {
        return Ok(Whole::TooLarge(streamed(inner, upstream)));
    }
    let status = upstream.status();
    let headers = passed_headers(upstream.headers());
    let mut body = Vec::new();
    let mut stream = upstream.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.without_url().to_string())?;
        inner
            .stats
            .bytes_upstream
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        body.extend_from_slice(&chunk);
        if body.len() > inner.item_limit {
            inner
                .stats
                .bytes_out
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            let rest = counted(inner.stats.clone(), stream);
            let first = futures_util::stream::once(async move { Ok(Bytes::from(body)) });
            return Ok(Whole::TooLarge(response(
                status,
                headers,
                Body::from_stream(first.chain(rest)),
            )));
        }
    }
    Ok(Whole::Read(Bytes::from(body)))
}

/// The cache slot of `key`, created if absent.
fn slot(inner: &Inner, key: Vec<u8>) -> Slot {
    inner
        .slots
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .clone()
}

/// Forgets `key` (its answer was not kept: the next request asks the upstream again).
fn forget(inner: &Inner, key: &[u8]) {
    inner
        .slots
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(key);
}

/// Whether the cache has room for `len` more bytes (and takes them if so).
fn reserve(inner: &Inner, len: usize) -> bool {
    inner
        .cached_bytes
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            (used + len as u64 <= MAX_CACHED_TOTAL as u64).then_some(used + len as u64)
        })
        .is_ok()
}

/// Whether a JSON-RPC call's answer cannot change: pinned to a block number, or by hash.
fn rpc_cacheable(method: &str, params: &Value) -> bool {
    let number_at = |i: usize| {
        params
            .get(i)
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with("0x"))
    };
    match method {
        "eth_chainId" => true,
        "eth_getBlockByNumber" => number_at(0),
        "eth_getBalance" | "eth_getCode" | "eth_getTransactionCount" | "eth_call" => number_at(1),
        "eth_getProof" | "eth_getStorageAt" => number_at(2),
        "eth_getBlockByHash" | "eth_getTransactionByHash" | "eth_getTransactionReceipt" => true,
        _ => false,
    }
}

/// What [`through_cache`] gave a request.
enum Answer {
    /// The kept answer, and whether this request found it kept (a cache hit).
    Kept(Kept, bool),
    /// This request's own response (the answer was not kept).
    Own(Response),
}

/// Single flight over `key`: the first request asks the upstream and, if `ok(status)`, `keep`
/// turns the answer into what is kept (or the asker's own response when it cannot be kept);
/// requests arriving meanwhile wait for it. A request that waited for an answer that was not
/// kept asks the upstream itself.
#[allow(clippy::too_many_arguments)]
async fn through_cache<F, Fut>(
    inner: &Inner,
    key: Vec<u8>,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
    ok: fn(StatusCode) -> bool,
    keep: F,
) -> Answer
where
    F: FnOnce(reqwest::Response) -> Fut,
    Fut: std::future::Future<Output = Result<Kept, Response>>,
{
    let slot = slot(inner, key.clone());
    let mut asked = false;
    let mut own: Option<Response> = None;
    let own_ref = &mut own;
    let sent = body.clone();
    let kept = slot
        .get_or_init(|| {
            asked = true;
            async move {
                let upstream = match forward(inner, method, headers, path, sent).await {
                    Ok(u) => u,
                    Err(r) => {
                        *own_ref = Some(r);
                        return None;
                    }
                };
                if !ok(upstream.status()) {
                    *own_ref = Some(streamed(inner, upstream));
                    return None;
                }
                match keep(upstream).await {
                    Ok(k) => Some(k),
                    Err(r) => {
                        *own_ref = Some(r);
                        None
                    }
                }
            }
        })
        .await
        .clone();
    match kept {
        Some(k) => Answer::Kept(k, !asked),
        None => {
            forget(inner, &key);
            Answer::Own(match own {
                Some(r) => r,
                None => relayed(inner, method, headers, path, body).await,
            })
        }
    }
}

/// A whole answer that is not kept, as the asker's own response (counted as sent).
fn own_answer(
    inner: &Inner,
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
) -> Response {
    inner
        .stats
        .bytes_out
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    response(status, headers, Body::from(body))
}

/// A kept answer as the response to a request (`id`: a JSON-RPC request's id).
fn respond(inner: &Inner, kept: Kept, id: &Value) -> Response {
    let (headers, body) = match kept {
        Kept::Rpc(result) => {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"#);
            let mut out = Vec::with_capacity(text.len() + result.len() + 1);
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(&result);
            out.push(b'}');
            (
                vec![(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                Bytes::from(out),
            )
        }
        Kept::Http(headers, body) => (headers, body),
    };
    own_answer(inner, StatusCode::OK, headers, body)
}

/// Reads a whole answer for the cache; an answer too large or cut off is the asker's own.
async fn whole(inner: &Inner, upstream: reqwest::Response) -> Result<Bytes, Response> {
    match read_whole(inner, upstream).await {
        Ok(Whole::Read(w)) => Ok(w),
        Ok(Whole::TooLarge(r)) => Err(r),
        Err(e) => Err(bad_gateway(e)),
    }
}

async fn rpc(
    inner: &Inner,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
) -> Response {
    let call: Option<Value> = serde_json::from_slice(&body).ok();
    let field = |name: &str| call.as_ref().and_then(|c| c.get(name)).cloned();
    let name = field("method")
        .and_then(|m| m.as_str().map(str::to_owned))
        .unwrap_or_else(|| "other".to_owned());
    let params = field("params").unwrap_or(Value::Null);
    let id = field("id").unwrap_or(Value::Null);
    if !(inner.cache && *method == Method::POST && rpc_cacheable(&name, &params)) {
        inner.stats.method(&name, false);
        return relayed(inner, method, headers, path, body).await;
    }
    let key = format!("{name}\n{params}").into_bytes();
    let answer = through_cache(
        inner,
        key,
        method,
        headers,
        path,
        body,
        |s| s.is_success(),
        |upstream| async move {
            let status = upstream.status();
            let whole = whole(inner, upstream).await?;
            // Kept: a result that is not null, from an answer without an error.
            let result = serde_json::from_slice::<Value>(&whole)
                .ok()
                .filter(|reply| reply.get("error").is_none())
                .and_then(|mut reply| reply.get_mut("result").map(Value::take))
                .filter(|result| !result.is_null())
                .map(|result| Bytes::from(result.to_string()));
            match result {
                Some(text) if reserve(inner, text.len()) => Ok(Kept::Rpc(text)),
                _ => Err(own_answer(
                    inner,
                    status,
                    vec![(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    whole,
                )),
            }
        },
    )
    .await;
    match answer {
        Answer::Kept(kept, hit) => {
            inner.stats.method(&name, hit);
            if hit {
                inner.stats.hits.fetch_add(1, Ordering::Relaxed);
            }
            respond(inner, kept, &id)
        }
        Answer::Own(r) => {
            inner.stats.method(&name, false);
            r
        }
    }
}

async fn gateway(
    inner: &Inner,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    body: Bytes,
) -> Response {
    if !(inner.cache && *method == Method::GET && headers.get(header::RANGE).is_none()) {
        return relayed(inner, method, headers, path, body).await;
    }
    let accept = headers
        .get(header::ACCEPT)
        .map_or(&b""[..], HeaderValue::as_bytes);
    let mut key = Vec::with_capacity(path.len() + accept.len() + 1);
    key.extend_from_slice(path.as_bytes());
    key.push(b'\n');
    key.extend_from_slice(accept);
    let answer = through_cache(
        inner,
        key,
        method,
        headers,
        path,
        body,
        |s| s == StatusCode::OK,
        |upstream| async move {
            let kept_headers = passed_headers(upstream.headers());
            let whole = whole(inner, upstream).await?;
            if reserve(inner, whole.len()) {
                Ok(Kept::Http(kept_headers, whole))
            } else {
                // The cache is full: this answer is the asker's alone.
                Err(own_answer(inner, StatusCode::OK, kept_headers, whole))
            }
        },
    )
    .await;
    match answer {
        Answer::Kept(kept, hit) => {
            if hit {
                inner.stats.hits.fetch_add(1, Ordering::Relaxed);
            }
            respond(inner, kept, &Value::Null)
        }
        Answer::Own(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_answers_that_cannot_change_are_cacheable() {
        assert!(rpc_cacheable(
            "eth_getBlockByNumber",
            &json!(["0x10", false])
        ));
        assert!(!rpc_cacheable(
            "eth_getBlockByNumber",
            &json!(["latest", false])
        ));
        assert!(rpc_cacheable(
            "eth_getProof",
            &json!(["0x00", ["0x01"], "0x10"])
        ));
        assert!(!rpc_cacheable(
            "eth_getProof",
            &json!(["0x00", ["0x01"], "pending"])
        ));
        assert!(!rpc_cacheable("eth_blockNumber", &json!([])));
        assert!(!rpc_cacheable(
            "eth_getLogs",
            &json!([{"fromBlock": "0x0"}])
        ));
        assert!(!rpc_cacheable("eth_call", &json!([{}])));
        assert!(rpc_cacheable("eth_chainId", &json!([])));
    }

    #[test]
    fn counts_subtract_per_method() {
        let stats = Stats::default();
        stats.method("eth_getProof", false);
        let before = stats.counts();
        stats.method("eth_getProof", true);
        stats.method("eth_blockNumber", false);
        stats.method(&"x".repeat(100), false);
        let d = stats.counts().since(&before);
        assert_eq!(d.methods["eth_getProof"].requests, 1);
        assert_eq!(d.methods["eth_getProof"].cache_hits, 1);
        assert_eq!(d.methods["eth_blockNumber"].requests, 1);
        assert_eq!(d.methods["other"].requests, 1);
    }
    /// An upstream that counts what reaches it: a JSON-RPC endpoint at `/` whose block number
    /// grows with every call, and a gateway at `/ipfs/…`.
    async fn upstream() -> (Url, Arc<AtomicU64>) {
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::post(move |body: Bytes| {
                    let n = s.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let call: Value = serde_json::from_slice(&body).unwrap();
                        let result = match call["method"].as_str().unwrap() {
                            "eth_blockNumber" => json!(format!("0x{n:x}")),
                            "eth_getTransactionByHash" => Value::Null,
                            _ => json!({"asked": call["params"], "n": n}),
                        };
                        json!({"jsonrpc": "2.0", "id": call["id"], "result": result}).to_string()
                    }
                }),
            )
            .route(
                "/ipfs/{cid}",
                axum::routing::get({
                    let s = seen.clone();
                    move |headers: HeaderMap| {
                        s.fetch_add(1, Ordering::Relaxed);
                        async move {
                            let accept = headers
                                .get(header::ACCEPT)
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default();
                            ([("x-ipfs-path", "/ipfs/x")], format!("blocks for {accept}"))
                        }
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (Url::parse(&format!("http://{addr}/")).unwrap(), seen)
    }

    async fn call(relay: &Relay, id: u64, method: &str, params: Value) -> Value {
        let text = reqwest::Client::new()
            .post(relay.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
            )
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    #[tokio::test]
    async fn the_cache_answers_pinned_calls_once_per_key_and_relays_the_rest() {
        let (url, seen) = upstream().await;
        let relay = Relay::start(url, Upstream::Rpc, true).await.unwrap();
        let proof = json!(["0x01", ["0x02"], "0x10"]);
        let first = call(&relay, 7, "eth_getProof", proof.clone()).await;
        let again = call(&relay, 8, "eth_getProof", proof.clone()).await;
        // The same answer, each with its own request's id.
        assert_eq!(first["result"], again["result"]);
        assert_eq!(
            (first["id"].clone(), again["id"].clone()),
            (json!(7), json!(8))
        );
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        // Another block is another key; `latest` and eth_blockNumber always go upstream.
        call(&relay, 1, "eth_getProof", json!(["0x01", ["0x02"], "0x11"])).await;
        call(
            &relay,
            1,
            "eth_getProof",
            json!(["0x01", ["0x02"], "latest"]),
        )
        .await;
        call(
            &relay,
            1,
            "eth_getProof",
            json!(["0x01", ["0x02"], "latest"]),
        )
        .await;
        let a = call(&relay, 1, "eth_blockNumber", json!([])).await;
        let b = call(&relay, 1, "eth_blockNumber", json!([])).await;
        assert_ne!(a["result"], b["result"]);
        assert_eq!(seen.load(Ordering::Relaxed), 6);
        // A lookup that found nothing is not kept: the transaction may be mined later.
        call(&relay, 1, "eth_getTransactionByHash", json!(["0xab"])).await;
        call(&relay, 1, "eth_getTransactionByHash", json!(["0xab"])).await;
        assert_eq!(seen.load(Ordering::Relaxed), 8);
        let c = relay.stats.counts();
        assert_eq!((c.requests, c.cache_hits), (9, 1));
        assert_eq!(c.methods["eth_getProof"].requests, 5);
        assert_eq!(c.methods["eth_getProof"].cache_hits, 1);
        assert!(c.bytes_out > c.bytes_upstream);
    }

    #[tokio::test]
    async fn concurrent_devices_asking_one_key_cost_one_upstream_request() {
        let (url, seen) = upstream().await;
        let relay = Relay::start(url, Upstream::Rpc, true).await.unwrap();
        let header = json!(["0x20", false]);
        let answers = futures_util::future::join_all(
            (0..32).map(|i| call(&relay, i, "eth_getBlockByNumber", header.clone())),
        )
        .await;
        assert!(answers.iter().all(|a| a["result"] == answers[0]["result"]));
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        assert_eq!(relay.stats.counts().cache_hits, 31);
    }

    #[tokio::test]
    async fn counting_without_the_cache_asks_the_upstream_every_time() {
        let (url, seen) = upstream().await;
        let relay = Relay::start(url.clone(), Upstream::Rpc, false)
            .await
            .unwrap();
        let proof = json!(["0x01", ["0x02"], "0x10"]);
        call(&relay, 1, "eth_getProof", proof.clone()).await;
        call(&relay, 1, "eth_getProof", proof).await;
        assert_eq!(seen.load(Ordering::Relaxed), 2);
        assert_eq!(relay.stats.counts().cache_hits, 0);
        let gateway = Relay::start(url, Upstream::Gateway, false).await.unwrap();
        let get = || reqwest::get(format!("{}ipfs/bafy", gateway.url));
        assert_eq!(get().await.unwrap().text().await.unwrap(), "blocks for */*");
        get().await.unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn the_gateway_cache_keys_on_the_path_and_the_accepted_type() {
        let (url, seen) = upstream().await;
        let relay = Relay::start(url, Upstream::Gateway, true).await.unwrap();
        let http = reqwest::Client::new();
        let get = |accept: &'static str| {
            http.get(format!("{}ipfs/bafy?dag-scope=entity", relay.url))
                .header(header::ACCEPT, accept)
                .send()
        };
        let car = get("application/vnd.ipld.car").await.unwrap();
        assert_eq!(car.headers()["x-ipfs-path"], "/ipfs/x");
        assert_eq!(
            car.text().await.unwrap(),
            "blocks for application/vnd.ipld.car"
        );
        let again = get("application/vnd.ipld.car").await.unwrap();
        assert_eq!(again.headers()["x-ipfs-path"], "/ipfs/x");
        assert_eq!(
            again.text().await.unwrap(),
            "blocks for application/vnd.ipld.car"
        );
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        let raw = get("application/vnd.ipld.raw").await.unwrap();
        assert_eq!(
            raw.text().await.unwrap(),
            "blocks for application/vnd.ipld.raw"
        );
        assert_eq!(seen.load(Ordering::Relaxed), 2);
        // Not found upstream: relayed as is, never kept.
        let missing = http
            .get(format!("{}nowhere", relay.url))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            seen.load(Ordering::Relaxed),
            2,
            "the 404 is the router's own"
        );
        let c = relay.stats.counts();
        assert_eq!((c.requests, c.cache_hits), (4, 1));
    }

    #[tokio::test]
    async fn an_answer_over_the_item_limit_is_relayed_whole_and_not_kept() {
        // A gateway answering 64 KiB in small chunks, without a length.
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let app = axum::Router::new().route(
            "/ipfs/{cid}",
            axum::routing::get(move || {
                s.fetch_add(1, Ordering::Relaxed);
                async {
                    let chunks =
                        (0..64u8).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i; 1024])));
                    Body::from_stream(futures_util::stream::iter(chunks))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = Url::parse(&format!("http://{addr}/")).unwrap();
        let relay = Relay::start_with(url, Upstream::Gateway, true, 4096)
            .await
            .unwrap();
        let want: Vec<u8> = (0..64u8).flat_map(|i| vec![i; 1024]).collect();
        for _ in 0..2 {
            let got = reqwest::get(format!("{}ipfs/big", relay.url))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(got.as_ref(), &want[..]);
        }
        assert_eq!(seen.load(Ordering::Relaxed), 2, "not kept: asked again");
        let c = relay.stats.counts();
        assert_eq!((c.bytes_out, c.bytes_upstream), (2 * 65536, 2 * 65536));
    }
}
