//! No read from a gateway is unbounded: stub gateways (real HTTP servers on 127.0.0.1) answer
//! with bodies that never end and carry no `Content-Length`, for (a) the root block in raw mode
//! (`probe_size`, as `otaledger ipfs get` without `--size` does, and the raw fallback), (b) a
//! leaf in the raw fallback, (c) a CAR header and (d) an error response. Each is refused with its
//! typed error; the bytes the client read (its own count, `GatewayFailure::received`, and the
//! stub's count of what it managed to send, which also includes what the kernel's socket buffers
//! took) stay bounded; nothing reaches the output; and the next gateway then completes the file.
#![cfg(all(feature = "server", feature = "client"))]

mod net_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use net_support::bad_gateway::{self, BadGateway, Behavior, FLOOD_CAP, Flood, kernel_slack};
use net_support::{dfs_blocks, fixture};
use otaledger_ipfs::car::MAX_HEADER_SIZE;
use otaledger_ipfs::fetch::{AttemptError, FetchMode, GatewayFailure, probe_size};
use otaledger_ipfs::{CarError, FetchError, FetchOptions, MAX_BLOCK_SIZE, fetch};

/// 3 full leaves and a partial one under one root.
const SIZE: usize = 3 * 262_144 + 5000;
/// The most one network read can add past a limit: hyper's read buffer grows to at most
/// 8 KiB + 400 KiB.
const MAX_NETWORK_READ: u64 = 512 * 1024;
const RAW: &str = "application/vnd.ipld.raw";
const CAR: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";

fn out_path(dir: &Path) -> PathBuf {
    dir.join("firmware.bin")
}

fn assert_nothing_written(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left after a failed fetch: {left:?}");
}

/// The client stopped reading: it holds at most `limit` plus one network read, the stub saw the
/// connection go (before its cap) and could not push more than that plus the kernel's buffers.
async fn assert_bounded(flood: &Flood, received: u64, limit: u64) {
    assert!(
        received <= limit + MAX_NETWORK_READ,
        "client read {received} bytes, limit {limit}"
    );
    assert!(
        flood.wait_ended().await,
        "the stub's endless body is still being read"
    );
    assert!(!flood.capped.load(Ordering::SeqCst), "the stub hit its cap");
    let sent = flood.sent();
    assert!(
        sent <= received + kernel_slack() && sent < FLOOD_CAP,
        "stub sent {sent} bytes, client read {received}"
    );
}

/// Fetch from `hostile` alone (must fail, leaving nothing), returning the failure; the flood is
/// reset first.
async fn fetch_alone(hostile: &BadGateway, fx: &net_support::Fixture) -> GatewayFailure {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&hostile.url),
        &out_path(dir.path()),
        &FetchOptions::default(),
    )
    .await
    .expect_err("the hostile gateway alone cannot deliver the file");
    assert_nothing_written(dir.path());
    let FetchError::AllGatewaysFailed { mut failures, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(failures.len(), 1);
    failures.pop().unwrap()
}

/// Fetch from `hostile` then an honest gateway: the file is complete and equal to the original;
/// returns the hostile gateway's failure and what the honest one was asked.
async fn fetch_then_honest(
    hostile: &BadGateway,
    fx: &net_support::Fixture,
) -> (GatewayFailure, Vec<String>) {
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let mut report = fetch(
        fx.root,
        SIZE as u64,
        &[hostile.url.clone(), honest.url.clone()],
        &out_path(dir.path()),
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    assert!(std::fs::read(out_path(dir.path())).unwrap() == fx.bytes);
    assert_eq!(report.completed_by, (honest.url.clone(), FetchMode::Car));
    assert_eq!(report.failures.len(), 1);
    (report.failures.pop().unwrap(), honest.requests())
}

fn flood(status: u16, content_type: &'static str, prefix: Vec<u8>) -> (Behavior, Arc<Flood>) {
    let flood = Arc::new(Flood::default());
    let behavior = Behavior::Flood {
        status,
        content_type,
        prefix,
        flood: Arc::clone(&flood),
    };
    (behavior, flood)
}

#[tokio::test]
async fn a_root_block_without_end_is_refused_by_probe_size() {
    let fx = fixture(SIZE);
    let (behavior, flood) = flood(200, RAW, Vec::new());
    let hostile = bad_gateway::start(behavior).await;
    let opts = FetchOptions::default();
    let err = probe_size(fx.root, std::slice::from_ref(&hostile.url), &opts)
        .await
        .unwrap_err();
    let FetchError::AllGatewaysFailed { failures, .. } = err else {
        panic!("{err:?}")
    };
    let f = &failures[0];
    let max = MAX_BLOCK_SIZE as u64;
    let AttemptError::BlockTooLarge {
        cid,
        max: m,
        read,
        declared: None,
    } = f.error
    else {
        panic!("{:?}", f.error)
    };
    assert_eq!((cid, m), (fx.root, max));
    // What was seen is reported as such: more than the limit, and how much was read.
    assert!(read > max, "{read}");
    assert_eq!(read, f.received);
    assert_eq!(
        f.error.to_string(),
        format!("block {} is more than {max} bytes (read {read})", fx.root)
    );
    assert_bounded(&flood, f.received, max).await;
    // The next gateway answers.
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let (behavior, _) = self::flood(200, RAW, Vec::new());
    let hostile = bad_gateway::start(behavior).await;
    let size = probe_size(fx.root, &[hostile.url, honest.url], &opts)
        .await
        .unwrap();
    assert_eq!(size, SIZE as u64);
}

#[tokio::test]
async fn a_declared_oversized_root_is_refused_unread() {
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(Behavior::Canned {
        status: 200,
        content_type: RAW,
        body: vec![0u8; MAX_BLOCK_SIZE + 1],
    })
    .await;
    let err = probe_size(
        fx.root,
        std::slice::from_ref(&gw.url),
        &FetchOptions::default(),
    )
    .await
    .unwrap_err();
    let FetchError::AllGatewaysFailed { failures, .. } = err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(
            failures[0].error,
            AttemptError::BlockTooLarge { read: 0, declared: Some(n), .. } if n == MAX_BLOCK_SIZE as u64 + 1
        ),
        "{:?}",
        failures[0].error
    );
    assert_eq!(failures[0].received, 0);
}

#[tokio::test]
async fn a_root_block_without_end_is_refused_in_the_raw_fallback() {
    let fx = fixture(SIZE);
    let flood = Arc::new(Flood::default());
    let hostile = bad_gateway::start(Behavior::NoCarFlood {
        store: fx.store.clone(),
        target: fx.root,
        flood: Arc::clone(&flood),
    })
    .await;
    let f = fetch_alone(&hostile, &fx).await;
    assert_eq!(f.mode, FetchMode::Raw);
    assert!(
        matches!(f.error, AttemptError::BlockTooLarge { cid, read, .. } if cid == fx.root && read == f.received),
        "{:?}",
        f.error
    );
    assert_bounded(&flood, f.received, MAX_BLOCK_SIZE as u64).await;

    let flood = Arc::new(Flood::default());
    let hostile = bad_gateway::start(Behavior::NoCarFlood {
        store: fx.store.clone(),
        target: fx.root,
        flood: Arc::clone(&flood),
    })
    .await;
    let (f, asked) = fetch_then_honest(&hostile, &fx).await;
    assert!(matches!(f.error, AttemptError::BlockTooLarge { .. }));
    // Nothing was kept from the hostile gateway: the honest one is asked for the whole file.
    assert_eq!(asked.len(), 1);
    assert!(!asked[0].contains("entity-bytes"), "{asked:?}");
    assert_bounded(&flood, f.received, MAX_BLOCK_SIZE as u64).await;
}

#[tokio::test]
async fn a_leaf_without_end_is_refused_in_the_raw_fallback() {
    let fx = fixture(SIZE);
    let blocks = dfs_blocks(&fx.store, &fx.root);
    // The root and the first leaf are honest, the second leaf never ends.
    let leaf = blocks[2].0;
    let honest_part = (blocks[0].1.len() + blocks[1].1.len()) as u64;
    let flood = Arc::new(Flood::default());
    let hostile = bad_gateway::start(Behavior::NoCarFlood {
        store: fx.store.clone(),
        target: leaf,
        flood: Arc::clone(&flood),
    })
    .await;
    let f = fetch_alone(&hostile, &fx).await;
    let AttemptError::BlockTooLarge { cid, read, .. } = f.error else {
        panic!("{:?}", f.error)
    };
    assert_eq!(cid, leaf);
    assert_eq!(f.received, honest_part + read);
    assert_bounded(&flood, read, MAX_BLOCK_SIZE as u64).await;

    let flood = Arc::new(Flood::default());
    let hostile = bad_gateway::start(Behavior::NoCarFlood {
        store: fx.store.clone(),
        target: leaf,
        flood: Arc::clone(&flood),
    })
    .await;
    let (f, asked) = fetch_then_honest(&hostile, &fx).await;
    assert!(matches!(f.error, AttemptError::BlockTooLarge { cid, .. } if cid == leaf));
    // The verified first leaf was kept, nothing of the endless one: the honest gateway is asked
    // from the end of the first leaf.
    assert_eq!(asked.len(), 1);
    assert!(asked[0].contains("entity-bytes=262144:*"), "{asked:?}");
    assert_bounded(&flood, f.received - honest_part, MAX_BLOCK_SIZE as u64).await;
}

/// The largest CAR body the fetch accepts for the whole file.
fn car_limit() -> u64 {
    let o = FetchOptions::default();
    SIZE as u64 + (SIZE as u64 / 100 * o.max_overhead_percent).max(1 << 20)
}

#[tokio::test]
async fn a_car_header_without_end_is_refused() {
    let fx = fixture(SIZE);
    // A header declared at the largest size allowed, which then never ends (0xff is no valid
    // dag-cbor start).
    let mut header_len = Vec::new();
    let mut v = MAX_HEADER_SIZE;
    while v >= 0x80 {
        header_len.push((v as u8) | 0x80);
        v >>= 7;
    }
    header_len.push(v as u8);
    let (behavior, flood) = flood(200, CAR, header_len.clone());
    let f = fetch_alone(&bad_gateway::start(behavior).await, &fx).await;
    assert!(
        matches!(f.error, AttemptError::Car(CarError::BadHeader { .. })),
        "{:?}",
        f.error
    );
    assert_bounded(&flood, f.received, car_limit()).await;

    // A header length that never ends (a varint of continuation bytes).
    let (behavior, flood) = self::flood(200, CAR, vec![0x80; 4096]);
    let f = fetch_alone(&bad_gateway::start(behavior).await, &fx).await;
    assert!(
        matches!(
            f.error,
            AttemptError::Car(CarError::BadVarint { offset: 0 })
        ),
        "{:?}",
        f.error
    );
    assert_bounded(&flood, f.received, car_limit()).await;

    let (behavior, flood) = self::flood(200, CAR, header_len);
    let (f, asked) = fetch_then_honest(&bad_gateway::start(behavior).await, &fx).await;
    assert!(matches!(
        f.error,
        AttemptError::Car(CarError::BadHeader { .. })
    ));
    assert_eq!(f.from, 0);
    assert!(!asked[0].contains("entity-bytes"), "{asked:?}");
    assert_bounded(&flood, f.received, car_limit()).await;
}

#[tokio::test]
async fn an_error_response_without_end_is_not_read() {
    let fx = fixture(SIZE);
    let (behavior, flood) = flood(500, "text/plain", b"internal error: ".to_vec());
    let f = fetch_alone(&bad_gateway::start(behavior).await, &fx).await;
    assert!(
        matches!(f.error, AttemptError::HttpStatus { status: 500 }),
        "{:?}",
        f.error
    );
    // The body of an error response is never read; the connection is dropped.
    assert_eq!(f.received, 0);
    assert_bounded(&flood, 0, 0).await;

    let (behavior, flood) = self::flood(503, "text/html", Vec::new());
    let (f, asked) = fetch_then_honest(&bad_gateway::start(behavior).await, &fx).await;
    assert!(matches!(f.error, AttemptError::HttpStatus { status: 503 }));
    assert_eq!(f.received, 0);
    assert!(!asked[0].contains("entity-bytes"), "{asked:?}");
    assert_bounded(&flood, 0, 0).await;
}
