//! Trustless gateway: every status code and mandatory header, HEAD, ranges, conditional requests,
//! the concurrency limit, and one test on a real port. Handler tests use
//! `router().oneshot(request)` (no port).
#![cfg(all(feature = "server", feature = "client"))]

mod net_support;

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use net_support::{Fixture, fixture};
use otaledger_ipfs::car::CarReader;
use otaledger_ipfs::gateway::{GatewayConfig, router_with};
use otaledger_ipfs::{Cid, Limits, Pushed, Verifier, router};
use tower::ServiceExt;

const CAR_TYPE: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";
/// 4 full 256 KiB leaves and a partial one: a root with 5 links.
const SIZE: usize = 4 * 262_144 + 1000;

async fn send(
    app: axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

async fn get(
    fx: &Fixture,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    send(router(fx.store.clone()), "GET", uri, headers).await
}

fn h<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// Verify a CAR body against `root`, starting at `from`; returns the bytes and the CIDs sent.
fn verify_car(body: &[u8], root: Cid, from: u64) -> (Vec<u8>, Vec<Cid>) {
    let mut car = CarReader::new(body).unwrap();
    assert_eq!(car.roots(), &[root]);
    let mut v = Verifier::with_range(root, Limits::default(), from).unwrap();
    let mut out = Vec::new();
    let mut cids = Vec::new();
    while let Some((cid, block)) = car.next_block().unwrap() {
        cids.push(cid);
        if let Pushed::Data(d) = v.push(&cid, &block).unwrap() {
            out.extend_from_slice(d);
        }
    }
    (out, cids)
}

fn assert_common(headers: &HeaderMap, cid: &Cid) {
    assert_eq!(
        h(headers, "cache-control"),
        "public, max-age=29030400, immutable"
    );
    assert_eq!(h(headers, "x-content-type-options"), "nosniff");
    assert_eq!(h(headers, "x-ipfs-path"), format!("/ipfs/{cid}"));
    assert_eq!(h(headers, "vary"), "Accept");
    assert!(!h(headers, "etag").is_empty());
}

#[tokio::test]
async fn raw_block_by_format_and_by_accept() {
    let fx = fixture(SIZE);
    let root = fx.root;
    let want = fx.store.get(&root).unwrap().unwrap();
    for (uri, headers) in [
        (format!("/ipfs/{root}?format=raw"), vec![]),
        (
            format!("/ipfs/{root}"),
            vec![("accept", "application/vnd.ipld.raw")],
        ),
    ] {
        let (status, hdrs, body) = get(&fx, &uri, &headers).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, want);
        assert_eq!(h(&hdrs, "content-type"), "application/vnd.ipld.raw");
        assert_eq!(
            h(&hdrs, "content-disposition"),
            format!("attachment; filename=\"{root}.bin\"")
        );
        assert_eq!(h(&hdrs, "etag"), format!("\"{root}.raw\""));
        assert_eq!(h(&hdrs, "content-length"), want.len().to_string());
        assert_common(&hdrs, &root);
    }
}

#[tokio::test]
async fn head_gives_headers_without_body() {
    let fx = fixture(SIZE);
    let root = fx.root;
    let app = router(fx.store.clone());
    let (status, hdrs, body) = send(
        app.clone(),
        "HEAD",
        &format!("/ipfs/{root}?format=raw"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    let block_len = fx.store.get(&root).unwrap().unwrap().len();
    assert_eq!(h(&hdrs, "content-length"), block_len.to_string());
    let (status, hdrs, body) = send(
        app.clone(),
        "HEAD",
        &format!("/ipfs/{root}?format=car"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(h(&hdrs, "content-type"), CAR_TYPE);
    let missing = net_support::fixture(10).root;
    let (status, _, _) = send(app, "HEAD", &format!("/ipfs/{missing}?format=car"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn car_entity_streams_the_whole_file() {
    let fx = fixture(SIZE);
    let root = fx.root;
    for (uri, headers) in [
        (format!("/ipfs/{root}?format=car&dag-scope=entity"), vec![]),
        (
            format!("/ipfs/{root}?dag-scope=entity"),
            vec![(
                "accept",
                "application/vnd.ipld.car; version=1; order=dfs; dups=n",
            )],
        ),
        (format!("/ipfs/{root}?format=car"), vec![]),
    ] {
        let (status, hdrs, body) = get(&fx, &uri, &headers).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(h(&hdrs, "content-type"), CAR_TYPE);
        assert_eq!(
            h(&hdrs, "content-disposition"),
            format!("attachment; filename=\"{root}.car\"")
        );
        assert_common(&hdrs, &root);
        let (bytes, cids) = verify_car(&body, root, 0);
        assert!(bytes == fx.bytes);
        assert_eq!(cids.len(), 6);
    }
}

#[tokio::test]
async fn car_block_scope_sends_only_the_root() {
    let fx = fixture(SIZE);
    let (status, _, body) = get(
        &fx,
        &format!("/ipfs/{}?format=car&dag-scope=block", fx.root),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut car = CarReader::new(&body[..]).unwrap();
    let (cid, _) = car.next_block().unwrap().unwrap();
    assert_eq!(cid, fx.root);
    assert!(car.next_block().unwrap().is_none());
}

#[tokio::test]
async fn entity_bytes_sends_only_the_blocks_for_the_range() {
    let fx = fixture(SIZE);
    let root = fx.root;
    // Bytes 300000..=600000 lie in leaves 1 and 2.
    let (status, _, body) = get(
        &fx,
        &format!("/ipfs/{root}?format=car&entity-bytes=300000:600000"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (bytes, cids) = verify_car(&body, root, 300_000);
    assert_eq!(cids.len(), 3, "root + 2 leaves");
    assert!(bytes == fx.bytes[300_000..3 * 262_144]);

    // The last 1000 bytes: root + the last leaf.
    let (status, _, body) = get(
        &fx,
        &format!("/ipfs/{root}?format=car&entity-bytes=-1000:*"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (bytes, cids) = verify_car(&body, root, (SIZE - 1000) as u64);
    assert_eq!(cids.len(), 2);
    assert!(bytes == fx.bytes[SIZE - 1000..]);

    // Entirely outside the file: 400.
    let (status, _, _) = get(
        &fx,
        &format!("/ipfs/{root}?format=car&entity-bytes={SIZE}:*"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn etag_varies_with_scope_and_range_and_if_none_match_gives_304() {
    let fx = fixture(SIZE);
    let root = fx.root;
    let mut etags = Vec::new();
    for q in [
        "format=car",
        "format=car&dag-scope=entity",
        "format=car&dag-scope=block",
        "format=car&entity-bytes=0:10",
        "format=raw",
    ] {
        let (status, hdrs, _) = get(&fx, &format!("/ipfs/{root}?{q}"), &[]).await;
        assert_eq!(status, StatusCode::OK);
        etags.push(h(&hdrs, "etag").to_owned());
    }
    let mut unique = etags.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), etags.len(), "{etags:?}");
    let (status, hdrs, body) = get(
        &fx,
        &format!("/ipfs/{root}?format=car"),
        &[("if-none-match", &etags[0])],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(h(&hdrs, "etag"), etags[0]);
}

/// A request (uri, headers) and the status it must get.
type Case = (String, Vec<(&'static str, &'static str)>, StatusCode);

#[tokio::test]
async fn client_errors_map_to_the_spec_statuses() {
    let fx = fixture(1000);
    let root = fx.root;
    let missing = net_support::fixture(10).root;
    let cases: Vec<Case> = vec![
        (
            "/ipfs/not-a-cid?format=raw".into(),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (format!("/ipfs/{root}"), vec![], StatusCode::BAD_REQUEST),
        (
            format!("/ipfs/{root}"),
            vec![("accept", "text/html")],
            StatusCode::NOT_ACCEPTABLE,
        ),
        (
            format!("/ipfs/{root}?format=tar"),
            vec![],
            StatusCode::NOT_ACCEPTABLE,
        ),
        (
            format!("/ipfs/{root}?format=bogus"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ipfs/{root}"),
            vec![("accept", "application/vnd.ipld.car; version=2")],
            StatusCode::NOT_ACCEPTABLE,
        ),
        (
            format!("/ipfs/{root}?format=car&dag-scope=deep"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ipfs/{root}?format=car&entity-bytes=x:1"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ipfs/{root}/some/path?format=car"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/ipfs/{missing}?format=raw"),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/ipfs/{missing}?format=car"),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/ipfs/{missing}?format=raw"),
            vec![("cache-control", "only-if-cached")],
            StatusCode::PRECONDITION_FAILED,
        ),
    ];
    for (uri, headers, want) in cases {
        let (status, hdrs, body) = get(&fx, &uri, &headers).await;
        assert_eq!(
            status,
            want,
            "{uri} {headers:?}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(h(&hdrs, "x-content-type-options"), "nosniff");
        assert!(
            h(&hdrs, "cache-control").is_empty(),
            "errors must not be cached as immutable"
        );
    }
}

#[tokio::test]
async fn identity_probe_cid() {
    let fx = fixture(10);
    let (status, hdrs, body) = get(&fx, "/ipfs/bafkqaaa?format=raw", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(h(&hdrs, "content-type"), "application/vnd.ipld.raw");
    let (status, _, body) = get(&fx, "/ipfs/bafkqaaa?format=car", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let mut car = CarReader::new(&body[..]).unwrap();
    assert_eq!(car.roots()[0].to_string(), "bafkqaaa");
    assert!(car.next_block().unwrap().is_none());
}

#[tokio::test]
async fn concurrent_requests_are_served() {
    let fx = fixture(SIZE);
    let app = router(fx.store.clone());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = app.clone();
        let q = if i % 2 == 0 {
            "format=raw"
        } else {
            "format=car"
        };
        let uri = format!("/ipfs/{}?{q}", fx.root);
        tasks.push(tokio::spawn(
            async move { send(app, "GET", &uri, &[]).await },
        ));
    }
    for t in tasks {
        let (status, _, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(!body.is_empty());
    }
}

/// A request as if from `peer` (what `serve` adds to every request).
fn from_peer(uri: &str, peer: &str) -> Request<Body> {
    let mut req = Request::get(uri).body(Body::empty()).unwrap();
    let addr: std::net::SocketAddr = format!("{peer}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

/// Send `req`; status, headers and body.
async fn answer(app: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// Start a CAR stream that nobody reads: it holds its slot until dropped.
async fn hold_slot(app: &axum::Router, fx: &Fixture, peer: &str) -> axum::response::Response {
    let uri = format!("/ipfs/{}?format=car", fx.root);
    let held = app.clone().oneshot(from_peer(&uri, peer)).await.unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    held
}

fn small_queue() -> GatewayConfig {
    GatewayConfig {
        max_concurrent_requests: 4,
        max_requests_per_client: 2,
        max_queued_requests: 8,
        max_queued_per_client: 3,
        queue_timeout: Duration::from_secs(60),
        ..GatewayConfig::default()
    }
}

#[tokio::test]
async fn requests_wait_for_a_slot_and_a_flood_beyond_the_queue_gets_429() {
    let fx = fixture(SIZE);
    let app = router_with(fx.store.clone(), small_queue());
    let raw = format!("/ipfs/{}?format=raw", fx.root);
    // Client A holds its whole share (2 slots) with streams nobody reads.
    let held = [
        hold_slot(&app, &fx, "10.0.0.1").await,
        hold_slot(&app, &fx, "10.0.0.1").await,
    ];
    // A floods: 3 requests fit its queue and wait; the 4 beyond get 429 at once.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..7 {
        let (app, raw, tx) = (app.clone(), raw.clone(), tx.clone());
        tokio::spawn(async move {
            let _ = tx.send(answer(&app, from_peer(&raw, "10.0.0.1")).await);
        });
    }
    drop(tx);
    for _ in 0..4 {
        let (status, hdrs, body) = rx.recv().await.unwrap();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h(&hdrs, "retry-after"), "1");
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.contains("requests of this client in flight or queued"),
            "{text}"
        );
    }
    // Nothing else has answered: the 3 queued requests are still waiting.
    assert!(rx.try_recv().is_err());
    // Releasing A's slots serves every queued request.
    drop(held);
    for _ in 0..3 {
        let (status, _, body) = rx.recv().await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, fx.store.get(&fx.root).unwrap().unwrap());
    }
    assert!(rx.recv().await.is_none());
}

#[tokio::test]
async fn a_second_client_is_served_while_one_floods() {
    let fx = fixture(SIZE);
    let app = router_with(fx.store.clone(), small_queue());
    let raw = format!("/ipfs/{}?format=raw", fx.root);
    let _held = [
        hold_slot(&app, &fx, "10.0.0.1").await,
        hold_slot(&app, &fx, "10.0.0.1").await,
    ];
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let (app, raw) = (app.clone(), raw.clone());
        waiting.push(tokio::spawn(async move {
            answer(&app, from_peer(&raw, "10.0.0.1")).await.0
        }));
    }
    // Let the 3 tasks reach the queue (on this single-threaded runtime they run before the test
    // continues).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // A is at its share and its queue is full (a probe that was queued instead is given up after
    // a moment, which takes it out of the queue) ...
    let mut refused = None;
    for _ in 0..1000 {
        let probe = answer(&app, from_peer(&raw, "10.0.0.1"));
        if let Ok((status, _, body)) = tokio::time::timeout(Duration::from_millis(20), probe).await
        {
            refused = Some((status, String::from_utf8(body).unwrap()));
            break;
        }
    }
    let (status, text) = refused.expect("a flood beyond the queue is refused");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        text.contains("requests of this client in flight or queued"),
        "{text}"
    );
    // ... and client B (another IP; an IPv6 client too) is still served at once, in full.
    for peer in ["10.0.0.2", "[2001:db8::7]"] {
        let (status, _, body) = answer(&app, from_peer(&raw, peer)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, fx.store.get(&fx.root).unwrap().unwrap());
        let car = format!("/ipfs/{}?format=car", fx.root);
        let (status, _, body) = answer(&app, from_peer(&car, peer)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(verify_car(&body, fx.root, 0).0 == fx.bytes);
    }
    // A's queued requests were waiting all along.
    for w in waiting {
        assert!(!w.is_finished());
        w.abort();
    }
}

#[tokio::test]
async fn a_request_that_waits_too_long_gets_429() {
    let fx = fixture(SIZE);
    let config = GatewayConfig {
        max_concurrent_requests: 1,
        queue_timeout: Duration::from_millis(100),
        ..GatewayConfig::default()
    };
    let app = router_with(fx.store.clone(), config);
    let held = hold_slot(&app, &fx, "10.0.0.1").await;
    let raw = format!("/ipfs/{}?format=raw", fx.root);
    // Another client: the gateway's only slot is taken, so it waits, then gives up.
    let (status, hdrs, body) = answer(&app, from_peer(&raw, "10.0.0.2")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h(&hdrs, "retry-after"), "1");
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("no free slot within")
    );
    // Reading the stream to its end frees the slot.
    let body = held.into_body().collect().await.unwrap().to_bytes();
    assert!(verify_car(&body, fx.root, 0).0 == fx.bytes);
    let (status, _, _) = answer(&app, from_peer(&raw, "10.0.0.2")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_fetching_every_block_at_once_is_served_in_full() {
    // A two-level DAG: 400 leaves of 1 KiB under 3 interior nodes, fetched as a block-by-block
    // client does, every block at once (more than the slots and the client's share), over
    // real connections from one IP with the default limits.
    let fx = net_support::fixture_with(
        net_support::data(400 * 1024, 3),
        otaledger_ipfs::Profile::KuboV1,
        Some(1024),
    );
    let blocks = net_support::dfs_blocks(&fx.store, &fx.root);
    assert!(blocks.len() > 2 * GatewayConfig::default().max_concurrent_requests);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(otaledger_ipfs::serve(
        listener,
        fx.store.clone(),
        GatewayConfig::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for (cid, data) in blocks {
        let url = format!("http://{addr}/ipfs/{cid}?format=raw");
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let resp = client.get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{cid}");
            assert!(resp.bytes().await.unwrap() == data, "{cid}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn missing_child_block_cuts_the_stream() {
    let fx = fixture(SIZE);
    let blocks = net_support::dfs_blocks(&fx.store, &fx.root);
    fx.store.delete(&blocks[3].0).unwrap();
    let resp = router(fx.store.clone())
        .oneshot(
            Request::get(format!("/ipfs/{}?format=car", fx.root))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    // The root exists, so the status is already 200 (spec: streaming and missing child blocks) ...
    assert_eq!(resp.status(), StatusCode::OK);
    // ... and the body ends in an error instead of a complete CAR.
    assert!(resp.into_body().collect().await.is_err());
}

#[tokio::test]
async fn serves_on_a_real_port() {
    let fx = fixture(SIZE);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(otaledger_ipfs::serve(
        listener,
        fx.store.clone(),
        GatewayConfig::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let url = format!("http://{addr}/ipfs/{}?format=car&dag-scope=entity", fx.root);
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], CAR_TYPE);
    let body = resp.bytes().await.unwrap();
    assert!(verify_car(&body, fx.root, 0).0 == fx.bytes);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// Peak resident set of this process (VmHWM), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "256 MiB: cargo test --release -p otaledger-ipfs --all-features --test gateway_http -- --ignored"]
async fn gateway_streams_256_mib_with_flat_memory() {
    use std::io::Write;
    const SIZE: u64 = 256 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    {
        // Written in 1 MiB pieces: the file is never in memory.
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..(SIZE >> 20) {
            // Odd seeds: `data` forces the seed odd, so even ones would repeat the previous piece.
            f.write_all(&net_support::data(1 << 20, 2 * i + 1)).unwrap();
        }
    }
    let store = otaledger_ipfs::Blockstore::open(dir.path().join("store")).unwrap();
    let opts = otaledger_ipfs::ImportOptions::profile(otaledger_ipfs::Profile::KuboV1);
    let root = otaledger_ipfs::import_path(&path, &opts, &mut &store, &mut |_| {})
        .unwrap()
        .root;
    let before = peak_rss_kib();
    let resp = router(store)
        .oneshot(
            Request::get(format!("/ipfs/{root}?format=car&dag-scope=entity"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut streamed = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            streamed += data.len() as u64;
        }
    }
    let after = peak_rss_kib();
    assert!(streamed > SIZE, "{streamed}");
    // A few blocks in flight, not the file: the peak grows by far less than 256 MiB.
    assert!(
        after - before < 32 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    println!("streamed {streamed} bytes; peak RSS {before} KiB -> {after} KiB");
}

#[tokio::test]
async fn corrupt_block_in_the_store_is_a_bare_500() {
    let fx = fixture(1000);
    std::fs::write(fx.store.path_of(&fx.root), b"bit rot").unwrap();
    let (status, _, body) = get(&fx, &format!("/ipfs/{}?format=raw", fx.root), &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // Internals (paths, the store's error) stay in the log.
    assert_eq!(body, b"internal error\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn response_not_started_in_time_is_504() {
    let fx = fixture(1000);
    // A named pipe in place of the block: reading it blocks until a writer appears, so the
    // response cannot start within the timeout whatever the machine's speed.
    let block = fx.store.path_of(&fx.root);
    std::fs::remove_file(&block).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&block)
        .status()
        .unwrap();
    assert!(made.success());
    let config = GatewayConfig {
        request_timeout: Duration::from_millis(100),
        ..GatewayConfig::default()
    };
    let app = router_with(fx.store.clone(), config);
    let (status, _, _) = send(app, "GET", &format!("/ipfs/{}?format=raw", fx.root), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    // Release the reader still blocked on the pipe so the runtime can shut down.
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&block)
            .unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_without_end_is_not_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = fixture(SIZE);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(otaledger_ipfs::serve(
        listener,
        fx.store.clone(),
        GatewayConfig::default(),
        std::future::pending(),
    ));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "GET /ipfs/{}?format=raw HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n",
        fx.root
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    // A chunked body that never ends, until the server closes the connection (or 96 MiB).
    const CAP: u64 = 96 << 20;
    let writer = tokio::spawn(async move {
        let mut chunk = b"10000\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(b'x', 0x10000));
        chunk.extend_from_slice(b"\r\n");
        let mut sent = 0u64;
        while sent < CAP {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    // The answer comes without the body being read, and the connection is then closed.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let block = fx.store.get(&fx.root).unwrap().unwrap();
    assert!(answer.ends_with(&block));
    let sent = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("writing stops once the server closed")
        .unwrap();
    assert!(sent < CAP, "the server read the endless body: {sent} bytes");
}
