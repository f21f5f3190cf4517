//! A test gateway that misbehaves on purpose: a real HTTP server on 127.0.0.1:0.
//!
//! Each [`Behavior`] answers every `/ipfs/...` request the same (wrong) way; [`Behavior::Real`]
//! and [`Behavior::NoCar`] serve a store honestly through the crate's own gateway. Every request
//! (path and query) is logged so tests can check what a client asked for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use otaledger_ipfs::{Blockstore, Cid, car::encode_header};
use tower::ServiceExt;

/// What the gateway does with every request.
#[derive(Clone)]
pub enum Behavior {
    /// The crate's trustless gateway over this store.
    Real(Blockstore),
    /// 406 for CAR requests; raw blocks from the store (a gateway without CAR support).
    NoCar(Blockstore),
    /// This status, content type and body for everything.
    Canned {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A CAR body sent `chunk` bytes at a time with `pause` between chunks.
    Slow {
        body: Vec<u8>,
        chunk: usize,
        pause: Duration,
    },
    /// The first `fast` bytes of a CAR body at once, then the rest `chunk` bytes at a time with
    /// `pause` between chunks (a gateway that starts well, then trickles).
    SlowAfter {
        body: Vec<u8>,
        fast: usize,
        chunk: usize,
        pause: Duration,
    },
    /// `prefix`, then `repeat` over and over, forever (declared `dups=y`).
    Endless { prefix: Vec<u8>, repeat: Vec<u8> },
    /// The first `after` bytes of `body`, then the connection breaks.
    DieAfter { body: Vec<u8>, after: usize },
    /// This status and content type, `prefix`, then 0xff bytes without end (no
    /// `Content-Length`, chunked), counted in `flood`.
    Flood {
        status: u16,
        content_type: &'static str,
        prefix: Vec<u8>,
        flood: Arc<Flood>,
    },
    /// The crate's honest gateway over this store (the range asked for honoured), but every
    /// response body is cut after its first `after` bytes, then the connection breaks.
    RealDieAfter { store: Blockstore, after: usize },
    /// Like [`Behavior::NoCar`], but the raw block `target` is answered 200
    /// `application/vnd.ipld.raw` with `body` (tampered, truncated or extended bytes).
    NoCarWrong {
        store: Blockstore,
        target: Cid,
        body: Vec<u8>,
    },
    /// The first `after` bytes of `body` served with this CAR `content_type`, then the
    /// connection breaks (`after == body.len()`: the whole body, then the break).
    DieAfterTyped {
        body: Vec<u8>,
        after: usize,
        content_type: &'static str,
    },
    /// Like [`Behavior::NoCar`], but the raw block `target` is an endless 200
    /// `application/vnd.ipld.raw` body of 0xff bytes, counted in `flood`.
    NoCarFlood {
        store: Blockstore,
        target: Cid,
        flood: Arc<Flood>,
    },
}

/// The most an endless body sends before it gives up (so a client without a bound makes a test
/// fail instead of running forever).
pub const FLOOD_CAP: u64 = 96 << 20;
/// Size of each piece of an endless body.
const FLOOD_PIECE: usize = 64 * 1024;

/// What an endless body sent.
#[derive(Debug, Default)]
pub struct Flood {
    /// Bytes handed to the HTTP server for sending (the client read at most this; the kernel's
    /// socket buffers hold the difference).
    pub sent: AtomicU64,
    /// The body was dropped: the client closed the connection (or [`FLOOD_CAP`] was reached).
    pub ended: AtomicBool,
    /// [`FLOOD_CAP`] was reached.
    pub capped: AtomicBool,
}

impl Flood {
    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Wait (at most 20 s) until the body was dropped; whether it was.
    pub async fn wait_ended(&self) -> bool {
        for _ in 0..2000 {
            if self.ended.load(Ordering::SeqCst) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

/// Marks the flood ended when the body is dropped.
struct FloodGuard(Arc<Flood>);

impl Drop for FloodGuard {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::SeqCst);
    }
}

fn flood_body(prefix: Vec<u8>, flood: Arc<Flood>) -> Body {
    let piece = Bytes::from(vec![0xffu8; FLOOD_PIECE]);
    let first = (!prefix.is_empty()).then(|| Bytes::from(prefix));
    let stream = futures_util::stream::unfold((first, FloodGuard(flood)), move |(first, guard)| {
        let chunk = first.unwrap_or_else(|| piece.clone());
        async move {
            let before = guard.0.sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            if before >= FLOOD_CAP {
                guard.0.capped.store(true, Ordering::SeqCst);
                return None;
            }
            Some((Ok::<_, std::io::Error>(chunk), (None, guard)))
        }
    });
    Body::from_stream(stream)
}

/// The largest amount of data the kernel may hold between the stub and the client on loopback:
/// the largest TCP receive and send buffers (`tcp_rmem`, `tcp_wmem`; autotuning grows them up
/// to these), plus 1 MiB for the HTTP libraries' own buffers.
pub fn kernel_slack() -> u64 {
    let max = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok())
            .unwrap_or(32 << 20)
    };
    max("/proc/sys/net/ipv4/tcp_rmem") + max("/proc/sys/net/ipv4/tcp_wmem") + (1 << 20)
}

/// A running misbehaving gateway.
pub struct BadGateway {
    pub url: url::Url,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl BadGateway {
    /// Requests received so far, as `path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[derive(Clone)]
struct Ctx {
    behavior: Behavior,
    log: Arc<Mutex<Vec<String>>>,
}

/// Start a gateway with `behavior` on an ephemeral port (runs until the test's runtime ends).
pub async fn start(behavior: Behavior) -> BadGateway {
    let log = Arc::new(Mutex::new(Vec::new()));
    let ctx = Ctx {
        behavior,
        log: Arc::clone(&log),
    };
    let app = Router::new().fallback(handle).with_state(ctx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    BadGateway {
        url: format!("http://{addr}/").parse().unwrap(),
        log,
    }
}

const CAR_DUPS_N: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";
const CAR_DUPS_Y: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=y";

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let uri = req.uri().clone();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    ctx.log.lock().unwrap().push(path_and_query);
    let query = uri.query().unwrap_or_default().to_owned();
    match ctx.behavior {
        Behavior::Real(store) => otaledger_ipfs::router(store).oneshot(req).await.unwrap(),
        Behavior::NoCar(store) => {
            if query.contains("format=car") {
                return (StatusCode::NOT_ACCEPTABLE, "car not supported").into_response();
            }
            otaledger_ipfs::router(store).oneshot(req).await.unwrap()
        }
        Behavior::Canned {
            status,
            content_type,
            body,
        } => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap(),
        Behavior::Slow { body, chunk, pause } => {
            let chunks: Vec<Bytes> = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
            let stream =
                futures_util::stream::unfold(chunks.into_iter(), move |mut it| async move {
                    let next = it.next()?;
                    tokio::time::sleep(pause).await;
                    Some((Ok::<_, std::io::Error>(next), it))
                });
            car_response(CAR_DUPS_N, Body::from_stream(stream))
        }
        Behavior::SlowAfter {
            body,
            fast,
            chunk,
            pause,
        } => {
            let fast = fast.min(body.len());
            let first = Bytes::copy_from_slice(&body[..fast]);
            let rest: Vec<Bytes> = body[fast..]
                .chunks(chunk)
                .map(Bytes::copy_from_slice)
                .collect();
            let stream = futures_util::stream::once(async move { Ok(first) }).chain(
                futures_util::stream::unfold(rest.into_iter(), move |mut it| async move {
                    let next = it.next()?;
                    tokio::time::sleep(pause).await;
                    Some((Ok::<_, std::io::Error>(next), it))
                }),
            );
            car_response(CAR_DUPS_N, Body::from_stream(stream))
        }
        Behavior::Endless { prefix, repeat } => {
            let first = Bytes::from(prefix);
            let again = Bytes::from(repeat);
            let stream = futures_util::stream::unfold(Some(first), move |state| {
                let again = again.clone();
                async move {
                    let chunk = state.unwrap_or_else(|| again.clone());
                    Some((Ok::<_, std::io::Error>(chunk), None))
                }
            });
            car_response(CAR_DUPS_Y, Body::from_stream(stream))
        }
        Behavior::Flood {
            status,
            content_type,
            prefix,
            flood,
        } => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(flood_body(prefix, flood))
            .unwrap(),
        Behavior::NoCarFlood {
            store,
            target,
            flood,
        } => {
            if query.contains("format=car") {
                return (StatusCode::NOT_ACCEPTABLE, "car not supported").into_response();
            }
            if uri.path().ends_with(&format!("/ipfs/{target}")) {
                return Response::builder()
                    .header(header::CONTENT_TYPE, "application/vnd.ipld.raw")
                    .body(flood_body(Vec::new(), flood))
                    .unwrap();
            }
            otaledger_ipfs::router(store).oneshot(req).await.unwrap()
        }
        Behavior::DieAfter { body, after } => car_response(CAR_DUPS_N, dying_body(&body, after)),
        Behavior::DieAfterTyped {
            body,
            after,
            content_type,
        } => car_response(content_type, dying_body(&body, after)),
        Behavior::RealDieAfter { store, after } => {
            let resp = otaledger_ipfs::router(store).oneshot(req).await.unwrap();
            let (mut parts, body) = resp.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, dying_body(&body, after.min(body.len())))
        }
        Behavior::NoCarWrong {
            store,
            target,
            body,
        } => {
            if query.contains("format=car") {
                return (StatusCode::NOT_ACCEPTABLE, "car not supported").into_response();
            }
            if uri.path().ends_with(&format!("/ipfs/{target}")) {
                return Response::builder()
                    .header(header::CONTENT_TYPE, "application/vnd.ipld.raw")
                    .body(Body::from(body))
                    .unwrap();
            }
            otaledger_ipfs::router(store).oneshot(req).await.unwrap()
        }
    }
}

/// The first `after` bytes of `body`, then a broken connection.
fn dying_body(body: &[u8], after: usize) -> Body {
    let head = Bytes::copy_from_slice(&body[..after]);
    let items: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(head), Err(std::io::Error::other("gateway died"))];
    let stream = futures_util::stream::unfold(items.into_iter(), |mut it| async move {
        // Let the head reach the client before the break.
        tokio::time::sleep(Duration::from_millis(20)).await;
        it.next().map(|item| (item, it))
    });
    Body::from_stream(stream)
}

fn car_response(content_type: &'static str, body: Body) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap()
}

/// Encode a CAR v1 by hand (no checks: tests build wrong ones on purpose).
pub fn car(root: &Cid, sections: &[(Cid, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let header = encode_header(&[*root]);
    varint(&mut out, header.len() as u64);
    out.extend_from_slice(&header);
    for (cid, data) in sections {
        out.extend_from_slice(&section(cid, data));
    }
    out
}

/// One CAR section: varint(len) ‖ CID ‖ data.
pub fn section(cid: &Cid, data: &[u8]) -> Vec<u8> {
    let cid_bytes = cid.to_bytes();
    let mut out = Vec::new();
    varint(&mut out, (cid_bytes.len() + data.len()) as u64);
    out.extend_from_slice(&cid_bytes);
    out.extend_from_slice(data);
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
