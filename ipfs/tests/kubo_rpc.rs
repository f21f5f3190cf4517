//! Kubo RPC client against recorded responses.
//!
//! No Kubo with its HTTP RPC API can be installed here, so a local axum server answers with the
//! recorded bodies in `tests/data/kubo/` (in the formats Kubo's RPC reference documents) and
//! records every request, which the tests then assert: method (Kubo accepts only POST), path,
//! query parameters and, for `add`, the multipart body.
#![cfg(all(feature = "server", feature = "client"))]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use otaledger_ipfs::car::CarWriter;
use otaledger_ipfs::{
    Cid, ImportOptions, KUBO_MAX_BLOCK_SIZE, KUBO_MAX_JSON_SIZE, KUBO_MAX_STREAM_SIZE,
    KuboAddParams, KuboClient, KuboError, Profile,
};

const HELLO_V1: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
const HELLO_V0: &str = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD";

fn recorded(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/kubo")
            .join(name),
    )
    .unwrap()
}

/// One request as the fake Kubo saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    /// Multipart parts: (field name, file name, bytes).
    parts: Vec<(String, Option<String>, Vec<u8>)>,
}

/// The answer for one path: status, content type, body.
type Answer = (u16, &'static str, Vec<u8>);

#[derive(Clone)]
struct Fake {
    answers: Arc<BTreeMap<&'static str, Answer>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn answer(State(fake): State<Fake>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.to_str().unwrap().starts_with("multipart/form-data"));
    let mut parts = Vec::new();
    if is_multipart {
        let mut mp = Multipart::from_request(req, &()).await.unwrap();
        while let Some(field) = mp.next_field().await.unwrap() {
            let name = field.name().unwrap_or_default().to_owned();
            let file = field.file_name().map(str::to_owned);
            parts.push((name, file, field.bytes().await.unwrap().to_vec()));
        }
    }
    fake.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        query,
        parts,
    });
    // Like Kubo: the RPC API refuses anything but POST.
    if method != Method::POST {
        return Response::builder()
            .status(405)
            .body(Body::from("405 - Method Not Allowed"))
            .unwrap();
    }
    let (status, content_type, body) = fake.answers.get(path.as_str()).cloned().unwrap_or((
        404,
        "text/plain",
        b"404 page not found".to_vec(),
    ));
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

/// Start a fake Kubo answering `answers` by path; returns its client and the request log.
async fn fake_kubo(answers: Vec<(&'static str, Answer)>) -> (KuboClient, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        answers: Arc::new(answers.into_iter().collect()),
        seen: Arc::clone(&seen),
    };
    let app = Router::new().fallback(answer).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (KuboClient::new(&format!("http://{addr}")).unwrap(), seen)
}

fn hello_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hello.txt");
    std::fs::write(&path, b"hello world").unwrap();
    (dir, path)
}

fn q(seen: &Seen, key: &str) -> String {
    seen.query
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("missing query {key} in {:?}", seen.query))
}

#[tokio::test]
async fn version_is_parsed_strictly() {
    let (kubo, seen) = fake_kubo(vec![(
        "/api/v0/version",
        (200, "application/json", recorded("version.json")),
    )])
    .await;
    let v = kubo.version().await.unwrap();
    assert_eq!(v.version, "0.38.1");
    assert_eq!(v.system, "amd64/linux");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].path, "/api/v0/version");
}

#[tokio::test]
async fn add_sends_the_profile_parameters_and_the_file() {
    let (kubo, seen) = fake_kubo(vec![(
        "/api/v0/add",
        (200, "application/json", recorded("add_v1.ndjson")),
    )])
    .await;
    let (_dir, path) = hello_file();
    let params = KuboAddParams::from_import(&ImportOptions::profile(Profile::KuboV1));
    let added = kubo.add(&path, &params).await.unwrap();
    assert_eq!(added.cid.to_string(), HELLO_V1);
    assert_eq!(added.name, "hello.txt");
    assert_eq!(added.dag_size, 11);
    // The CID equals the one our importer computes for the same bytes and profile.
    let local = otaledger_ipfs::import(
        &b"hello world"[..],
        &ImportOptions::profile(Profile::KuboV1),
        &mut otaledger_ipfs::NullSink,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(local.root, added.cid);

    let seen = seen.lock().unwrap();
    let req = &seen[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, "/api/v0/add");
    assert_eq!(q(req, "cid-version"), "1");
    assert_eq!(q(req, "raw-leaves"), "true");
    assert_eq!(q(req, "chunker"), "size-262144");
    assert_eq!(q(req, "trickle"), "false");
    assert_eq!(q(req, "pin"), "true");
    assert_eq!(q(req, "only-hash"), "false");
    assert_eq!(req.parts.len(), 1);
    let (field, file, bytes) = &req.parts[0];
    assert_eq!(field, "file");
    assert_eq!(file.as_deref(), Some("hello.txt"));
    assert_eq!(bytes, b"hello world");
}

#[tokio::test]
async fn add_with_kubo_defaults_gives_cidv0() {
    let (kubo, seen) = fake_kubo(vec![(
        "/api/v0/add",
        (200, "application/json", recorded("add_v0.ndjson")),
    )])
    .await;
    let (_dir, path) = hello_file();
    let mut params = KuboAddParams::from_import(&ImportOptions::profile(Profile::Kubo));
    params.only_hash = true;
    params.pin = false;
    let added = kubo.add(&path, &params).await.unwrap();
    assert_eq!(added.cid.to_string(), HELLO_V0);
    assert_eq!(added.dag_size, 19);
    let seen = seen.lock().unwrap();
    assert_eq!(q(&seen[0], "cid-version"), "0");
    assert_eq!(q(&seen[0], "raw-leaves"), "false");
    assert_eq!(q(&seen[0], "only-hash"), "true");
    assert_eq!(q(&seen[0], "pin"), "false");
}

#[tokio::test]
async fn add_refuses_undocumented_fields() {
    let (kubo, _) = fake_kubo(vec![(
        "/api/v0/add",
        (
            200,
            "application/json",
            recorded("add_unknown_field.ndjson"),
        ),
    )])
    .await;
    let (_dir, path) = hello_file();
    let err = kubo
        .add(
            &path,
            &KuboAddParams::from_import(&ImportOptions::default()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KuboError::Malformed {
                endpoint: "/api/v0/add",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn add_reports_an_error_inside_the_stream() {
    let (kubo, _) = fake_kubo(vec![(
        "/api/v0/add",
        (200, "application/json", recorded("add_stream_error.ndjson")),
    )])
    .await;
    let (_dir, path) = hello_file();
    let err = kubo
        .add(
            &path,
            &KuboAddParams::from_import(&ImportOptions::default()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KuboError::Api { status: 200, message, .. } if message.contains("too large")),
        "{err:?}"
    );
}

#[tokio::test]
async fn add_refuses_a_cidv0_when_v1_was_asked() {
    let (kubo, _) = fake_kubo(vec![(
        "/api/v0/add",
        (200, "application/json", recorded("add_v0.ndjson")),
    )])
    .await;
    let (_dir, path) = hello_file();
    let err = kubo
        .add(
            &path,
            &KuboAddParams::from_import(&ImportOptions::profile(Profile::KuboV1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KuboError::Malformed { .. }), "{err:?}");
}

#[tokio::test]
async fn kubo_error_objects_become_api_errors() {
    let (kubo, _) = fake_kubo(vec![(
        "/api/v0/pin/add",
        (500, "application/json", recorded("error.json")),
    )])
    .await;
    let cid: Cid = HELLO_V1.parse().unwrap();
    let err = kubo.pin_add(&cid).await.unwrap_err();
    assert!(
        matches!(&err, KuboError::Api { status: 500, code: 0, message, .. } if message.starts_with("invalid path")),
        "{err:?}"
    );
}

#[tokio::test]
async fn other_statuses_are_unexpected() {
    let (kubo, _) = fake_kubo(vec![]).await;
    let err = kubo.version().await.unwrap_err();
    assert!(
        matches!(err, KuboError::UnexpectedStatus { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn pin_add_checks_the_pinned_cid() {
    let (kubo, seen) = fake_kubo(vec![(
        "/api/v0/pin/add",
        (200, "application/json", recorded("pin_add.json")),
    )])
    .await;
    let cid: Cid = HELLO_V1.parse().unwrap();
    kubo.pin_add(&cid).await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].path, "/api/v0/pin/add");
        assert_eq!(q(&seen[0], "arg"), HELLO_V1);
        assert_eq!(q(&seen[0], "recursive"), "true");
    }
    let other: Cid = HELLO_V0.parse().unwrap();
    assert!(matches!(
        kubo.pin_add(&other).await,
        Err(KuboError::Malformed { .. })
    ));
}

#[tokio::test]
async fn block_get_checks_the_hash() {
    let (kubo, seen) = fake_kubo(vec![(
        "/api/v0/block/get",
        (200, "text/plain", recorded("block_get.bin")),
    )])
    .await;
    let cid: Cid = HELLO_V1.parse().unwrap();
    assert_eq!(kubo.block_get(&cid).await.unwrap(), b"hello world");
    assert_eq!(q(&seen.lock().unwrap()[0], "arg"), HELLO_V1);
    let (liar, _) = fake_kubo(vec![(
        "/api/v0/block/get",
        (200, "text/plain", b"hello World".to_vec()),
    )])
    .await;
    assert!(matches!(
        liar.block_get(&cid).await,
        Err(KuboError::BlockHashMismatch { .. })
    ));
    let (huge, _) = fake_kubo(vec![(
        "/api/v0/block/get",
        (200, "text/plain", vec![0u8; 3 << 20]),
    )])
    .await;
    assert!(matches!(
        huge.block_get(&cid).await,
        Err(KuboError::BlockTooLarge { .. })
    ));
}

#[tokio::test]
async fn dag_export_streams_the_car() {
    let cid: Cid = HELLO_V1.parse().unwrap();
    let mut w = CarWriter::new(Vec::new(), &[cid]).unwrap();
    w.write_block(&cid, b"hello world").unwrap();
    let car = w.finish().unwrap();
    let (kubo, seen) = fake_kubo(vec![(
        "/api/v0/dag/export",
        (200, "application/vnd.ipld.car", car.clone()),
    )])
    .await;
    let mut out = Vec::new();
    let n = kubo.dag_export(&cid, &mut out, 1 << 20).await.unwrap();
    assert_eq!(n, car.len() as u64);
    assert_eq!(out, car);
    assert_eq!(q(&seen.lock().unwrap()[0], "arg"), HELLO_V1);
}

#[tokio::test]
async fn api_url_is_validated() {
    assert!(matches!(
        KuboClient::new("localhost:5001"),
        Err(KuboError::InvalidUrl { .. })
    ));
    assert!(matches!(
        KuboClient::new("http://h:5001/?x=1"),
        Err(KuboError::InvalidUrl { .. })
    ));
}

/// A fake Kubo whose every answer is `status` with `unit` repeated without end (chunked, no
/// `Content-Length`); returns its client and the count of bytes it handed to the server.
async fn endless_kubo(status: u16, unit: &'static [u8]) -> (KuboClient, Arc<AtomicU64>) {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    let app = Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            // 64 KiB pieces of whole units.
            let piece = Bytes::from(unit.repeat((64 * 1024 / unit.len()).max(1)));
            let stream = futures_util::stream::unfold((), move |()| {
                let piece = piece.clone();
                let counter = Arc::clone(&counter);
                async move {
                    // Stop at 96 MiB so a client without a bound fails the test instead of hanging.
                    let before = counter.fetch_add(piece.len() as u64, Ordering::SeqCst);
                    (before < 96 << 20).then_some((Ok::<_, std::io::Error>(piece), ()))
                }
            });
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (KuboClient::new(&format!("http://{addr}")).unwrap(), sent)
}

/// At most one network read (hyper's read buffer, at most 408 KiB) past a limit.
const MAX_NETWORK_READ: u64 = 512 * 1024;

fn assert_too_large(err: &KuboError, want_status: u16, want_limit: u64) {
    let KuboError::AnswerTooLarge {
        status,
        limit,
        read,
        ..
    } = *err
    else {
        panic!("{err:?}")
    };
    assert_eq!((status, limit), (want_status, want_limit), "{err:?}");
    assert!(read > limit && read <= limit + MAX_NETWORK_READ, "{err:?}");
}

#[tokio::test]
async fn endless_answers_are_refused_at_their_limits() {
    let json = KUBO_MAX_JSON_SIZE as u64;
    // A JSON body without end.
    let (kubo, sent) = endless_kubo(200, b"{\"Version\":\"0.38.1\",").await;
    assert_too_large(&kubo.version().await.unwrap_err(), 200, json);
    // An error body without end: refused the same way, the status kept.
    let (kubo, _) = endless_kubo(500, b"{\"Message\":\"xxxxxxxx").await;
    assert_too_large(&kubo.version().await.unwrap_err(), 500, json);
    let (kubo, _) = endless_kubo(500, b"x").await;
    let cid: Cid = HELLO_V1.parse().unwrap();
    assert_too_large(&kubo.pin_add(&cid).await.unwrap_err(), 500, json);
    // An NDJSON line without end, and endless short lines (progress objects).
    let (_dir, file) = hello_file();
    let params = KuboAddParams::from_import(&ImportOptions::profile(Profile::KuboV1));
    let (kubo, _) = endless_kubo(200, b"{\"Name\":\"").await;
    assert_too_large(&kubo.add(&file, &params).await.unwrap_err(), 200, json);
    let (kubo, _) = endless_kubo(200, b"{\"Name\":\"\",\"Bytes\":1}\n").await;
    assert_too_large(
        &kubo.add(&file, &params).await.unwrap_err(),
        200,
        KUBO_MAX_STREAM_SIZE,
    );
    // A block without end.
    let (kubo, _) = endless_kubo(200, b"\0").await;
    let err = kubo.block_get(&cid).await.unwrap_err();
    assert!(
        matches!(err, KuboError::BlockTooLarge { limit, read, .. }
            if limit == KUBO_MAX_BLOCK_SIZE && read > limit as u64 && read <= limit as u64 + MAX_NETWORK_READ),
        "{err:?}"
    );
    // An export without end: stopped at the caller's bound, no more written.
    let (kubo, _) = endless_kubo(200, b"\0").await;
    let mut out = Vec::new();
    let err = kubo.dag_export(&cid, &mut out, 1 << 20).await.unwrap_err();
    assert_too_large(&err, 200, 1 << 20);
    assert!(out.len() as u64 <= 1 << 20);
    // The first stub could push no more than the client read plus what the kernel's socket
    // buffers took: far from its 96 MiB cap.
    assert!(sent.load(Ordering::SeqCst) < 96 << 20);
}
