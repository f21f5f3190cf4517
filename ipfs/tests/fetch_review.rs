//! Attacks on the verified-fetch client by a gateway the user lists, from a second review of the
//! bounded reads (issue 17): each test runs a real HTTP server on 127.0.0.1 that does what a
//! hostile gateway would, and checks the client refuses it and the next gateway completes.
#![cfg(all(feature = "server", feature = "client"))]

mod net_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use net_support::bad_gateway::{self, Behavior};
use net_support::fixture;
use otaledger_ipfs::fetch::{AttemptError, FetchMode, probe_size};
use otaledger_ipfs::{FetchOptions, fetch};

const SIZE: usize = 2 * 262_144 + 17;

/// A server that counts the requests it gets and answers each with a 404.
async fn counting_server() -> (url::Url, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    let app = Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            StatusCode::NOT_FOUND
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/").parse().unwrap(), hits)
}

/// A gateway that answers every request with `302 Found` to `location` (which may be itself).
async fn redirecting_gateway(location: Option<String>) -> (url::Url, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Without a target it redirects to itself, forever.
    let location = location.unwrap_or_else(|| format!("http://{addr}/ipfs/loop?format=car"));
    let app = Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        let location = location.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/").parse().unwrap(), hits)
}

/// A listed gateway cannot send the client to a host the user did not list (a device's LAN, a
/// cloud metadata address): redirects are not followed, the 3xx is that gateway's failure, and
/// the next listed gateway completes the file.
#[tokio::test]
async fn redirects_to_unlisted_hosts_are_not_followed() {
    let fx = fixture(SIZE);
    let (internal, internal_hits) = counting_server().await;
    let target = format!("{internal}admin/reboot?confirm=1");
    let (hostile, hostile_hits) = redirecting_gateway(Some(target)).await;
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("firmware.bin");
    let report = fetch(
        fx.root,
        SIZE as u64,
        &[hostile.clone(), honest.url.clone()],
        &out,
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    assert!(std::fs::read(&out).unwrap() == fx.bytes);
    assert_eq!(report.completed_by, (honest.url.clone(), FetchMode::Car));
    assert_eq!(report.failures.len(), 1);
    assert!(
        matches!(
            report.failures[0].error,
            AttemptError::HttpStatus { status: 302 }
        ),
        "{:?}",
        report.failures[0].error
    );
    assert_eq!(hostile_hits.load(Ordering::SeqCst), 1);
    assert_eq!(internal_hits.load(Ordering::SeqCst), 0);

    // The same for the size probe.
    let size = probe_size(
        fx.root,
        &[hostile.clone(), honest.url.clone()],
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(size, SIZE as u64);
    assert_eq!(hostile_hits.load(Ordering::SeqCst), 2);
    assert_eq!(internal_hits.load(Ordering::SeqCst), 0);
}

/// A gateway redirecting to itself costs one request, not a loop.
#[tokio::test]
async fn a_redirect_loop_costs_one_request() {
    let fx = fixture(SIZE);
    let (hostile, hits) = redirecting_gateway(None).await;
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&hostile),
        &dir.path().join("firmware.bin"),
        &FetchOptions::default(),
    )
    .await
    .unwrap_err();
    let otaledger_ipfs::FetchError::AllGatewaysFailed { failures, .. } = err else {
        panic!("{err:?}")
    };
    assert!(matches!(
        failures[0].error,
        AttemptError::HttpStatus { status: 302 }
    ));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// CRC-32 (IEEE) of `data`, bit by bit: gzip's trailer.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid gzip member holding `data` in stored (uncompressed) deflate blocks.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Responses are not decompressed, so every limit counts the bytes that arrive (no gzip bomb):
/// a gateway sending the file's honest CAR gzipped, with `Content-Encoding: gzip`, fails on the
/// CAR framing of the compressed bytes, having read exactly those; the next gateway completes.
#[tokio::test]
async fn compressed_responses_are_not_decompressed() {
    let fx = fixture(SIZE);
    let mut car = otaledger_ipfs::car::CarWriter::new(Vec::new(), &[fx.root]).unwrap();
    for (cid, block) in net_support::dfs_blocks(&fx.store, &fx.root) {
        car.write_block(&cid, &block).unwrap();
    }
    let gz = gzip_stored(&car.finish().unwrap());
    let len = gz.len() as u64;
    let app = Router::new().fallback(move || {
        let gz = gz.clone();
        async move {
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.ipld.car; version=1; order=dfs; dups=n",
                    ),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                gz,
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hostile: url::Url = format!("http://{addr}/").parse().unwrap();
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("firmware.bin");
    let report = fetch(
        fx.root,
        SIZE as u64,
        &[hostile, honest.url.clone()],
        &out,
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    assert!(std::fs::read(&out).unwrap() == fx.bytes);
    assert_eq!(report.completed_by, (honest.url.clone(), FetchMode::Car));
    let failure = &report.failures[0];
    // 0x1f 0x8b is read as a CAR header length and refused: the gzip was not undone.
    assert!(
        matches!(failure.error, AttemptError::Car(_)),
        "{:?}",
        failure.error
    );
    assert!(failure.received <= len, "{} of {len}", failure.received);
}
