//! Verified fetch under attack: one test per misbehaviour, each against a real HTTP server on
//! 127.0.0.1 that misbehaves on purpose (`net_support::bad_gateway`), asserting the error
//! variant and that nothing was left at the output path (nor any temporary file beside it).
#![cfg(all(feature = "server", feature = "client"))]

mod net_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use net_support::bad_gateway::{self, Behavior, car};
use net_support::{dfs_blocks, fixture};
use otaledger_ipfs::fetch::{AttemptError, FetchMode, FetchProgress};
use otaledger_ipfs::{
    CarError, Cid, DAG_PB, FetchError, FetchOptions, PbLink, RAW, VerifyError, block_cid,
    encode_dag_pb, encode_unixfs_file, fetch,
};

/// 3 full leaves and a partial one under one root.
const SIZE: usize = 3 * 262_144 + 5000;

fn out_path(dir: &Path) -> PathBuf {
    dir.join("firmware.bin")
}

/// Nothing at the output path and no temporary file left in its directory.
fn assert_nothing_written(dir: &Path) {
    assert!(
        !out_path(dir).exists(),
        "output must not exist after a failed fetch"
    );
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// Fetch from one gateway that must fail; returns its attempt error.
async fn fetch_failing(
    behavior: Behavior,
    root: Cid,
    size: u64,
    opts: &FetchOptions,
) -> AttemptError {
    let gw = bad_gateway::start(behavior).await;
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(
        root,
        size,
        std::slice::from_ref(&gw.url),
        &out_path(dir.path()),
        opts,
    )
    .await
    .expect_err("fetch must fail");
    assert_nothing_written(dir.path());
    match err {
        FetchError::AllGatewaysFailed { mut failures, .. } => {
            assert_eq!(failures.len(), 1);
            failures.pop().unwrap().error
        }
        other => panic!("unexpected error {other:?}"),
    }
}

fn canned_car(body: Vec<u8>) -> Behavior {
    Behavior::Canned {
        status: 200,
        content_type: "application/vnd.ipld.car; version=1; order=dfs; dups=n",
        body,
    }
}

#[tokio::test]
async fn honest_gateway_delivers_the_file_with_progress() {
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = Arc::clone(&seen);
    let opts = FetchOptions {
        progress: Some(Arc::new(move |p: FetchProgress| {
            assert_eq!(p.total, SIZE as u64);
            seen2.store(p.position, Ordering::SeqCst);
        })),
        ..FetchOptions::default()
    };
    let report = fetch(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&gw.url),
        &out_path(dir.path()),
        &opts,
    )
    .await
    .unwrap();
    assert!(std::fs::read(out_path(dir.path())).unwrap() == fx.bytes);
    assert_eq!(report.sha256, sha256(&fx.bytes));
    assert_eq!(report.completed_by.1, FetchMode::Car);
    assert!(report.failures.is_empty());
    assert_eq!(seen.load(Ordering::SeqCst), SIZE as u64);
    assert_eq!(gw.requests().len(), 1);
}

#[tokio::test]
async fn tampered_block() {
    let fx = fixture(SIZE);
    let mut blocks = dfs_blocks(&fx.store, &fx.root);
    blocks[2].1[100] ^= 1;
    let err = fetch_failing(
        canned_car(car(&fx.root, &blocks)),
        fx.root,
        SIZE as u64,
        &FetchOptions::default(),
    )
    .await;
    assert!(
        matches!(err, AttemptError::Verify(VerifyError::HashMismatch { cid }) if cid == blocks[2].0),
        "{err:?}"
    );
}

#[tokio::test]
async fn block_of_another_cid() {
    let fx = fixture(SIZE);
    let other = fixture(1000);
    let mut blocks = dfs_blocks(&fx.store, &fx.root);
    let expected = blocks[2].0;
    blocks[2] = dfs_blocks(&other.store, &other.root).remove(0);
    let err = fetch_failing(
        canned_car(car(&fx.root, &blocks)),
        fx.root,
        SIZE as u64,
        &FetchOptions::default(),
    )
    .await;
    assert!(
        matches!(err, AttemptError::Verify(VerifyError::UnexpectedBlock { expected: e, got }) if e == expected && got == other.root),
        "{err:?}"
    );
}

#[tokio::test]
async fn truncated_car_inside_a_block() {
    let fx = fixture(SIZE);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    let cut = body[..body.len() - 100].to_vec();
    let err = fetch_failing(
        canned_car(cut),
        fx.root,
        SIZE as u64,
        &FetchOptions::default(),
    )
    .await;
    assert!(
        matches!(err, AttemptError::Car(CarError::Truncated { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn truncated_car_between_blocks() {
    let fx = fixture(SIZE);
    let blocks = dfs_blocks(&fx.store, &fx.root);
    let body = car(&fx.root, &blocks[..3]);
    let err = fetch_failing(
        canned_car(body),
        fx.root,
        SIZE as u64,
        &FetchOptions::default(),
    )
    .await;
    assert!(
        matches!(err, AttemptError::Truncated { position, expected } if position == 2 * 262_144 && expected == SIZE as u64),
        "{err:?}"
    );
}

#[tokio::test]
async fn extra_block() {
    let fx = fixture(SIZE);
    let other = fixture(1000);
    let mut blocks = dfs_blocks(&fx.store, &fx.root);
    blocks.insert(2, dfs_blocks(&other.store, &other.root).remove(0));
    let err = fetch_failing(
        canned_car(car(&fx.root, &blocks)),
        fx.root,
        SIZE as u64,
        &FetchOptions::default(),
    )
    .await;
    assert!(
        matches!(
            err,
            AttemptError::Verify(VerifyError::UnexpectedBlock { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn duplicate_block_in_a_dups_n_car() {
    let fx = fixture(SIZE);
    let mut blocks = dfs_blocks(&fx.store, &fx.root);
    let dup = blocks[1].clone();
    blocks.insert(2, dup.clone());
    let err = fetch_failing(
        canned_car(car(&fx.root, &blocks)),
        fx.root,
        SIZE as u64,
        &FetchOptions::default(),
    )
    .await;
    assert!(
        matches!(err, AttemptError::Verify(VerifyError::DuplicateBlock { cid }) if cid == dup.0),
        "{err:?}"
    );
}

#[tokio::test]
async fn endless_stream_of_duplicates() {
    let fx = fixture(SIZE);
    let blocks = dfs_blocks(&fx.store, &fx.root);
    // The root and the first leaf, then the first leaf again forever (declared dups=y, so the
    // client may skip duplicates, but not without end).
    let prefix = car(&fx.root, &blocks[..2]);
    let repeat = bad_gateway::section(&blocks[1].0, &blocks[1].1);
    let err = fetch_failing(
        Behavior::Endless { prefix, repeat },
        fx.root,
        SIZE as u64,
        &FetchOptions::default(),
    )
    .await;
    let limit = FetchOptions::default().max_overhead_percent * SIZE as u64 / 100;
    assert!(
        matches!(err, AttemptError::EndlessData { limit: l, read } if l >= SIZE as u64 && l <= SIZE as u64 + limit.max(1 << 20) && read > l && read <= l + (512 << 10)),
        "{err:?}"
    );
}

#[tokio::test]
async fn file_larger_than_the_expected_size() {
    // The chain says 1000 bytes less than the DAG holds: the root's declared size is refused
    // before any leaf is read.
    let fx = fixture(SIZE);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    let err = fetch_failing(
        canned_car(body),
        fx.root,
        SIZE as u64 - 1000,
        &FetchOptions::default(),
    )
    .await;
    assert!(
        matches!(
            err,
            AttemptError::Verify(VerifyError::TotalSizeExceeded { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn file_smaller_than_the_expected_size() {
    // A one-block file whose root declares 1000 bytes when the chain says 1001.
    let fx = fixture(1000);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    let err = fetch_failing(canned_car(body), fx.root, 1001, &FetchOptions::default()).await;
    assert!(
        matches!(
            err,
            AttemptError::SizeMismatch {
                expected: 1001,
                declared: 1000
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unixfs_sizes_that_lie() {
    // A root whose blocksizes say 100 + 100 over leaves of 100 and 120 bytes.
    let a = vec![1u8; 100];
    let b = vec![2u8; 120];
    let (ca, cb) = (block_cid(cid_v1(), RAW, &a), block_cid(cid_v1(), RAW, &b));
    let data = encode_unixfs_file(&[], 200, &[100, 100]);
    let links = [link(ca, 100), link(cb, 120)];
    let root_block = encode_dag_pb(&links, Some(&data));
    let root = block_cid(cid_v1(), DAG_PB, &root_block);
    let body = car(&root, &[(root, root_block), (ca, a), (cb, b)]);
    let err = fetch_failing(canned_car(body), root, 200, &FetchOptions::default()).await;
    assert!(
        matches!(err, AttemptError::Verify(VerifyError::SizeMismatch { cid, .. }) if cid == cb),
        "{err:?}"
    );
}

#[tokio::test]
async fn dag_deeper_than_the_limit() {
    let opts = FetchOptions::default();
    let depth = opts.limits.max_depth + 2;
    let leaf = b"deep leaf!".to_vec();
    let leaf_cid = block_cid(cid_v1(), RAW, &leaf);
    let mut chain = vec![(leaf_cid, leaf.clone())];
    let (mut child, mut child_tsize) = (leaf_cid, leaf.len() as u64);
    for _ in 0..depth {
        let data = encode_unixfs_file(&[], leaf.len() as u64, &[leaf.len() as u64]);
        let block = encode_dag_pb(&[link(child, child_tsize)], Some(&data));
        let cid = block_cid(cid_v1(), DAG_PB, &block);
        child_tsize += block.len() as u64;
        child = cid;
        chain.push((cid, block));
    }
    chain.reverse();
    let root = chain[0].0;
    let err = fetch_failing(
        canned_car(car(&root, &chain)),
        root,
        leaf.len() as u64,
        &opts,
    )
    .await;
    assert!(
        matches!(err, AttemptError::Verify(VerifyError::TooDeep { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn slow_gateway_below_the_minimum_rate() {
    let fx = fixture(SIZE);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    // 64 bytes every 20 ms is about 3 KiB/s against a minimum of 1 MiB/s over 200 ms windows.
    let opts = FetchOptions {
        min_rate: 1 << 20,
        rate_grace: Duration::from_millis(200),
        ..FetchOptions::default()
    };
    let slow = Behavior::Slow {
        body,
        chunk: 64,
        pause: Duration::from_millis(20),
    };
    let err = fetch_failing(slow, fx.root, SIZE as u64, &opts).await;
    assert!(
        matches!(err, AttemptError::TooSlow { min_rate, .. } if min_rate == 1 << 20),
        "{err:?}"
    );
}

#[tokio::test]
async fn silent_gateway_is_too_slow() {
    let fx = fixture(SIZE);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    let opts = FetchOptions {
        min_rate: 1024,
        rate_grace: Duration::from_millis(200),
        ..FetchOptions::default()
    };
    // The first bytes, then silence far longer than the window.
    let silent = Behavior::Slow {
        body,
        chunk: 100_000,
        pause: Duration::from_secs(30),
    };
    let err = fetch_failing(silent, fx.root, SIZE as u64, &opts).await;
    assert!(
        matches!(err, AttemptError::TooSlow { bytes: 0, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn html_with_status_200() {
    let fx = fixture(SIZE);
    let html = Behavior::Canned {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: b"<html><body>Welcome to our gateway!</body></html>".to_vec(),
    };
    let err = fetch_failing(html, fx.root, SIZE as u64, &FetchOptions::default()).await;
    assert!(
        matches!(&err, AttemptError::WrongContentType { got, .. } if got.starts_with("text/html")),
        "{err:?}"
    );
}

#[tokio::test]
async fn http_error_status() {
    let fx = fixture(SIZE);
    let e500 = Behavior::Canned {
        status: 502,
        content_type: "text/plain",
        body: b"bad gateway".to_vec(),
    };
    let err = fetch_failing(e500, fx.root, SIZE as u64, &FetchOptions::default()).await;
    assert!(
        matches!(err, AttemptError::HttpStatus { status: 502 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn gateway_dies_halfway_and_the_next_resumes() {
    let fx = fixture(SIZE);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    let half = body.len() / 2;
    let dying = bad_gateway::start(Behavior::DieAfter { body, after: half }).await;
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let report = fetch(
        fx.root,
        SIZE as u64,
        &[dying.url.clone(), honest.url.clone()],
        &out_path(dir.path()),
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    assert!(std::fs::read(out_path(dir.path())).unwrap() == fx.bytes);
    // The hash computed as written covers the resumed file exactly.
    assert_eq!(report.sha256, sha256(&fx.bytes));
    assert_eq!(report.failures.len(), 1);
    let failure = &report.failures[0];
    assert_eq!(failure.gateway, dying.url);
    assert!(
        matches!(failure.error, AttemptError::Transport(_)),
        "{:?}",
        failure.error
    );
    // The honest gateway was asked only for what was still missing: the verified prefix is kept.
    let asked = honest.requests();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].contains("entity-bytes=262144:*"), "{asked:?}");
    assert_eq!(report.completed_by.0, honest.url);
}

#[tokio::test]
async fn gateway_without_car_support_is_fetched_block_by_block() {
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(Behavior::NoCar(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let report = fetch(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&gw.url),
        &out_path(dir.path()),
        // Not durable (as a device's download): the same file, the same hash.
        &FetchOptions {
            durable: false,
            ..FetchOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(std::fs::read(out_path(dir.path())).unwrap() == fx.bytes);
    assert_eq!(report.sha256, sha256(&fx.bytes));
    assert_eq!(report.completed_by.1, FetchMode::Raw);
    // One refused CAR request, then the root and 4 leaves.
    assert_eq!(gw.requests().len(), 1 + 5);
}

#[tokio::test]
async fn every_gateway_failing_leaves_nothing() {
    let fx = fixture(SIZE);
    let mut blocks = dfs_blocks(&fx.store, &fx.root);
    blocks[3].1[0] ^= 0xff;
    let a = bad_gateway::start(canned_car(car(&fx.root, &blocks))).await;
    let b = bad_gateway::start(Behavior::Canned {
        status: 404,
        content_type: "text/plain",
        body: vec![],
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(
        fx.root,
        SIZE as u64,
        &[a.url, b.url],
        &out_path(dir.path()),
        &FetchOptions::default(),
    )
    .await
    .unwrap_err();
    assert_nothing_written(dir.path());
    let FetchError::AllGatewaysFailed {
        failures, position, ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[1].from, position);
    assert!(matches!(
        failures[1].error,
        AttemptError::HttpStatus { status: 404 }
    ));
}

#[tokio::test]
async fn unsupported_roots_and_gateways_are_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(dir.path());
    let gw: url::Url = "http://127.0.0.1:9/".parse().unwrap();
    // A dag-cbor root: not a UnixFS file this client can verify.
    let cbor = otaledger_ipfs::Cid::new_v1(0x71, otaledger_ipfs::sha256_multihash(b"x"));
    let err = fetch(
        cbor,
        1,
        std::slice::from_ref(&gw),
        &out,
        &FetchOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Root {
                source: VerifyError::UnsupportedCodec { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let root = fixture(10).root;
    let err = fetch(root, 10, &[], &out, &FetchOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::NoGateways));
    let ftp: url::Url = "ftp://example.com/".parse().unwrap();
    let err = fetch(root, 10, &[ftp], &out, &FetchOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::InvalidGateway { .. }));
    assert_nothing_written(dir.path());
}

fn cid_v1() -> otaledger_ipfs::cid::Version {
    otaledger_ipfs::cid::Version::V1
}

fn link(hash: Cid, tsize: u64) -> PbLink<'static> {
    PbLink {
        hash,
        name: Some(""),
        tsize: Some(tsize),
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
