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
    encode_dag_pb, encode_unixfs_file, fetch, fetch_into,
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

// ---- Review of the SHA-256 computed as the file is written (second engineer) ----
//
// Every test below checks the security property of `FetchReport::sha256`: it is the SHA-256 of
// exactly the bytes in the file at the destination (which are the original bytes), whatever the
// gateways send; or the fetch fails and nothing is at the destination.

/// A hand-built UnixFS file DAG: a raw leaf, or a dag-pb node with inline data and children.
enum Tree {
    Leaf(Vec<u8>),
    Node(Vec<u8>, Vec<Tree>),
}

/// A built DAG: its root, sizes, file bytes and every block in DFS order (duplicates included).
struct Built {
    cid: Cid,
    size: u64,
    tsize: u64,
    bytes: Vec<u8>,
    dfs: Vec<(Cid, Vec<u8>)>,
}

fn build(tree: &Tree) -> Built {
    match tree {
        Tree::Leaf(data) => {
            let cid = block_cid(cid_v1(), RAW, data);
            Built {
                cid,
                size: data.len() as u64,
                tsize: data.len() as u64,
                bytes: data.clone(),
                dfs: vec![(cid, data.clone())],
            }
        }
        Tree::Node(inline, children) => {
            let kids: Vec<Built> = children.iter().map(build).collect();
            let sizes: Vec<u64> = kids.iter().map(|k| k.size).collect();
            let size = inline.len() as u64 + sizes.iter().sum::<u64>();
            let data = encode_unixfs_file(inline, size, &sizes);
            let links: Vec<PbLink<'static>> = kids.iter().map(|k| link(k.cid, k.tsize)).collect();
            let block = encode_dag_pb(&links, Some(&data));
            let cid = block_cid(cid_v1(), DAG_PB, &block);
            let mut bytes = inline.clone();
            let mut dfs = vec![(cid, block.clone())];
            let mut tsize = block.len() as u64;
            for k in kids {
                bytes.extend_from_slice(&k.bytes);
                dfs.extend(k.dfs);
                tsize += k.tsize;
            }
            Built {
                cid,
                size,
                tsize,
                bytes,
                dfs,
            }
        }
    }
}

/// Blocks with their CIDs, in the order a CAR sends them.
type Blocks = Vec<(Cid, Vec<u8>)>;

/// The blocks as a `dups=n` CAR sends them: every CID once, at its first occurrence.
fn dedup(blocks: &[(Cid, Vec<u8>)]) -> Vec<(Cid, Vec<u8>)> {
    let mut seen = std::collections::HashSet::new();
    blocks
        .iter()
        .filter(|(cid, _)| seen.insert(*cid))
        .cloned()
        .collect()
}

/// A built DAG stored for the honest gateways.
struct Stored {
    _dir: tempfile::TempDir,
    store: otaledger_ipfs::Blockstore,
    dag: Built,
}

fn stored(tree: &Tree) -> Stored {
    let dag = build(tree);
    let dir = tempfile::tempdir().unwrap();
    let store = otaledger_ipfs::Blockstore::open(dir.path().join("store")).unwrap();
    for (cid, block) in &dag.dfs {
        store.put(cid, block).unwrap();
    }
    Stored {
        _dir: dir,
        store,
        dag,
    }
}

fn leaf(len: usize, seed: u64) -> Tree {
    Tree::Leaf(net_support::data(len, seed))
}

/// Repeats everywhere: a repeated leaf inside a repeated subtree, a repeated subtree inside
/// another that is itself repeated, a repeated subtree larger than the copy buffer (64 KiB),
/// empty raw and dag-pb leaves (repeated), inline data in interior nodes, runs of zeros. It ends
/// with bytes: a zero-size subtree at the very end is another matter (see
/// `resumed_just_before_trailing_empty_subtrees_an_honest_gateway_completes`).
fn repeats_tree() -> Tree {
    let a = || leaf(700, 1);
    let b = || leaf(300, 2);
    let empty = || Tree::Leaf(Vec::new());
    let empty_pb = || Tree::Node(Vec::new(), Vec::new());
    let zeros = || Tree::Leaf(vec![0u8; 1000]);
    let s = || Tree::Node(Vec::new(), vec![a(), b(), a(), empty(), zeros()]);
    let i = || Tree::Node(b"inline bytes".to_vec(), vec![s(), b(), empty_pb()]);
    let big = || Tree::Node(Vec::new(), vec![leaf(40_000, 5), leaf(40_000, 6), zeros()]);
    Tree::Node(
        b"root inline".to_vec(),
        vec![
            s(),
            i(),
            a(),
            big(),
            s(),
            Tree::Node(Vec::new(), vec![i(), zeros(), i(), big()]),
            empty(),
            Tree::Node(Vec::new(), vec![empty(), empty_pb()]),
            empty(),
            big(),
            zeros(),
        ],
    )
}

/// Byte offsets of a CAR body worth cutting at: 0, every section boundary and one byte either
/// side of it, and the middle of every section.
fn cut_offsets(root: &Cid, blocks: &[(Cid, Vec<u8>)]) -> Vec<usize> {
    let mut offsets = vec![0];
    let mut at = car(root, &[]).len();
    for (cid, block) in blocks {
        let len = bad_gateway::section(cid, block).len();
        offsets.extend([at.saturating_sub(1), at, at + 1, at + len / 2]);
        at += len;
    }
    offsets.extend([at - 1, at]);
    offsets.sort_unstable();
    offsets.dedup();
    offsets
}

/// The file is at the destination, holds `expected`, and the report's SHA-256 is the file's;
/// nothing else is left in the directory.
fn assert_file_and_hash(
    dir: &Path,
    report: &otaledger_ipfs::FetchReport,
    expected: &[u8],
    at: &str,
) {
    let got = std::fs::read(out_path(dir)).unwrap();
    assert_eq!(
        report.sha256,
        sha256(&got),
        "{at}: reported hash is not the file's"
    );
    assert!(got == expected, "{at}: the file differs from the original");
    assert_eq!(report.path, out_path(dir), "{at}");
    let entries = std::fs::read_dir(dir).unwrap().count();
    assert_eq!(entries, 1, "{at}: temporary files left");
}

/// A CAR gateway dying at every interesting byte offset of a `dups=n` CAR of a DAG full of
/// repeated subtrees, then another resuming (by CAR with `entity-bytes`, or block by block after
/// a refused CAR), durable or not: the resumed walk copies repeats whose first occurrence was
/// written by the dead gateway's attempt.
#[tokio::test]
async fn resumed_at_every_offset_of_a_dag_with_repeats_the_hash_is_the_files() {
    let st = stored(&repeats_tree());
    cut_at_every_offset(&st, async |n, after, gateways| {
        let dir = tempfile::tempdir().unwrap();
        let report = fetch(
            st.dag.cid,
            st.dag.size,
            &gateways,
            &out_path(dir.path()),
            &FetchOptions {
                durable: n % 3 != 0,
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("cut at {after}: {e:?}"));
        assert_file_and_hash(
            dir.path(),
            &report,
            &st.dag.bytes,
            &format!("cut at {after}"),
        );
    })
    .await;
}

/// For every offset of `cut_offsets` in the `dups=n` CAR of `st`'s DAG (which must repeat
/// subtrees): a gateway dying there, then another resuming, by CAR (with `entity-bytes`) or
/// block by block, in turn; `check(n, after, [dying, next])` fetches from them.
async fn cut_at_every_offset(st: &Stored, mut check: impl AsyncFnMut(usize, usize, [url::Url; 2])) {
    let root = st.dag.cid;
    let blocks = dedup(&st.dag.dfs);
    assert!(
        blocks.len() < st.dag.dfs.len(),
        "the DAG must repeat subtrees"
    );
    let body = car(&root, &blocks);
    let car_gw = bad_gateway::start(Behavior::Real(st.store.clone())).await;
    let raw_gw = bad_gateway::start(Behavior::NoCar(st.store.clone())).await;
    for (n, after) in cut_offsets(&root, &blocks).into_iter().enumerate() {
        let dying = bad_gateway::start(Behavior::DieAfter {
            body: body.clone(),
            after,
        })
        .await;
        let next = if n % 2 == 0 { &car_gw } else { &raw_gw };
        check(n, after, [dying.url.clone(), next.url.clone()]).await;
    }
}

/// A DAG that ends with a zero-size subtree (valid UnixFS: an empty raw leaf and an empty dag-pb
/// leaf under a node of size 0): a gateway dies anywhere in the CAR, and this crate's own honest
/// gateway must complete the resumed fetch (`entity-bytes=<from>:*`).
#[tokio::test]
async fn resumed_just_before_trailing_empty_subtrees_an_honest_gateway_completes() {
    let tree = Tree::Node(
        Vec::new(),
        vec![
            leaf(1000, 9),
            leaf(500, 10),
            Tree::Node(
                Vec::new(),
                vec![Tree::Leaf(Vec::new()), Tree::Node(Vec::new(), Vec::new())],
            ),
        ],
    );
    let st = stored(&tree);
    let (root, expected) = (st.dag.cid, &st.dag.bytes);
    let blocks = dedup(&st.dag.dfs);
    let body = car(&root, &blocks);
    let honest = bad_gateway::start(Behavior::Real(st.store.clone())).await;
    let mut failed = Vec::new();
    for after in cut_offsets(&root, &blocks) {
        let dying = bad_gateway::start(Behavior::DieAfter {
            body: body.clone(),
            after,
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        match fetch(
            root,
            st.dag.size,
            &[dying.url.clone(), honest.url.clone()],
            &out_path(dir.path()),
            &FetchOptions::default(),
        )
        .await
        {
            Ok(report) => {
                assert_file_and_hash(dir.path(), &report, expected, &format!("cut at {after}"));
            }
            Err(FetchError::AllGatewaysFailed { failures, .. }) => {
                // Failing closed at least: nothing at the destination.
                assert_nothing_written(dir.path());
                let last = failures.last().unwrap();
                failed.push(format!(
                    "cut at {after}: from {}: {}",
                    last.from, last.error
                ));
            }
            Err(e) => panic!("cut at {after}: {e:?}"),
        }
    }
    assert!(
        failed.is_empty(),
        "the honest gateway could not complete:\n{}",
        failed.join("\n")
    );
}

const CAR_DUPS_Y: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=y";

/// A `dups=y` CAR that sends every repeated subtree again in full (the client skips the
/// duplicates and copies the first occurrence), whole or dying at every offset before an honest
/// gateway resumes.
#[tokio::test]
async fn dups_y_car_with_every_duplicate_sent_whole_or_cut_the_hash_is_the_files() {
    let st = stored(&repeats_tree());
    let (root, expected) = (st.dag.cid, &st.dag.bytes);
    let body = car(&root, &st.dag.dfs);
    let honest = bad_gateway::start(Behavior::Real(st.store.clone())).await;
    for after in cut_offsets(&root, &st.dag.dfs) {
        let dying = bad_gateway::start(Behavior::DieAfterTyped {
            body: body.clone(),
            after,
            content_type: CAR_DUPS_Y,
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let report = fetch(
            root,
            st.dag.size,
            &[dying.url.clone(), honest.url.clone()],
            &out_path(dir.path()),
            &FetchOptions {
                durable: false,
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("cut at {after}: {e:?}"));
        assert_file_and_hash(dir.path(), &report, expected, &format!("cut at {after}"));
    }
}

/// Bad CARs after a good prefix: a block out of order, a duplicate in a `dups=n` CAR, a tampered
/// block inside a repeated subtree, a block claiming another's CID. Alone each fails and leaves
/// nothing; followed by an honest gateway the verified prefix is kept and the file is exact.
#[tokio::test]
async fn bad_blocks_after_a_good_prefix_fail_closed_or_resume_exactly() {
    let st = stored(&repeats_tree());
    let (root, expected) = (st.dag.cid, &st.dag.bytes);
    let good = dedup(&st.dag.dfs);
    let honest = bad_gateway::start(Behavior::Real(st.store.clone())).await;
    let mut attacks: Vec<(String, Blocks)> = Vec::new();
    for i in 1..good.len() - 1 {
        let mut swapped = good.clone();
        swapped.swap(i, i + 1);
        attacks.push((format!("blocks {i} and {} swapped", i + 1), swapped));
        let mut dup = good.clone();
        dup.insert(i + 1, good[i].clone());
        attacks.push((format!("block {i} sent twice"), dup));
        let mut tampered = good.clone();
        if let Some(b) = tampered[i].1.last_mut() {
            *b ^= 0x80;
            attacks.push((format!("block {i} tampered"), tampered));
        }
        let mut wrong = good.clone();
        wrong[i].1 = good[i + 1].1.clone();
        attacks.push((format!("block {i} has block {}'s bytes", i + 1), wrong));
    }
    for (n, (what, blocks)) in attacks.into_iter().enumerate() {
        let body = car(&root, &blocks);
        let opts = FetchOptions {
            durable: n % 2 == 0,
            ..FetchOptions::default()
        };
        // Alone: refused, nothing written.
        let bad = bad_gateway::start(canned_car(body.clone())).await;
        let dir = tempfile::tempdir().unwrap();
        let err = fetch(
            root,
            st.dag.size,
            std::slice::from_ref(&bad.url),
            &out_path(dir.path()),
            &opts,
        )
        .await;
        assert!(err.is_err(), "{what}: accepted");
        assert_nothing_written(dir.path());
        // Then an honest gateway resumes.
        let bad = bad_gateway::start(canned_car(body)).await;
        let dir = tempfile::tempdir().unwrap();
        let report = fetch(
            root,
            st.dag.size,
            &[bad.url.clone(), honest.url.clone()],
            &out_path(dir.path()),
            &opts,
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(report.failures.len(), 1, "{what}");
        assert_file_and_hash(dir.path(), &report, expected, &what);
    }
}

/// Block by block (raw fallback) after a partial CAR, with one leaf inside a repeated subtree
/// served tampered, truncated, extended or empty by the first raw gateway; a second raw gateway
/// completes. And the raw fallback alone with the bad leaf fails and leaves nothing.
#[tokio::test]
async fn raw_fallback_after_a_partial_car_with_a_bad_leaf_then_an_honest_one() {
    let st = stored(&repeats_tree());
    let (root, expected) = (st.dag.cid, &st.dag.bytes);
    let blocks = dedup(&st.dag.dfs);
    let body = car(&root, &blocks);
    let honest_raw = bad_gateway::start(Behavior::NoCar(st.store.clone())).await;
    let leaves: Vec<&(Cid, Vec<u8>)> = blocks
        .iter()
        .filter(|(c, b)| c.codec() == RAW && !b.is_empty())
        .collect();
    let cuts = cut_offsets(&root, &blocks);
    for (n, (target, data)) in leaves.into_iter().enumerate() {
        let mut variants = vec![
            ("tampered", data.clone()),
            ("truncated", data[..data.len() - 1].to_vec()),
            ("extended", [data.as_slice(), b"!"].concat()),
            ("empty", Vec::new()),
        ];
        variants[0].1[0] ^= 1;
        for (m, (how, bad_body)) in variants.into_iter().enumerate() {
            let at = format!("leaf {target} {how}");
            let after = cuts[(n * 4 + m) % cuts.len()];
            let dying = bad_gateway::start(Behavior::DieAfter {
                body: body.clone(),
                after,
            })
            .await;
            let bad_raw = bad_gateway::start(Behavior::NoCarWrong {
                store: st.store.clone(),
                target: *target,
                body: bad_body,
            })
            .await;
            let opts = FetchOptions {
                durable: m % 2 == 0,
                ..FetchOptions::default()
            };
            let dir = tempfile::tempdir().unwrap();
            let err = fetch(
                root,
                st.dag.size,
                &[dying.url.clone(), bad_raw.url.clone()],
                &out_path(dir.path()),
                &opts,
            )
            .await;
            assert!(err.is_err(), "{at}: accepted");
            assert_nothing_written(dir.path());
            let dir = tempfile::tempdir().unwrap();
            let report = fetch(
                root,
                st.dag.size,
                &[
                    dying.url.clone(),
                    bad_raw.url.clone(),
                    honest_raw.url.clone(),
                ],
                &out_path(dir.path()),
                &opts,
            )
            .await
            .unwrap_or_else(|e| panic!("{at}: {e:?}"));
            assert_eq!(report.completed_by.1, FetchMode::Raw, "{at}");
            assert_file_and_hash(dir.path(), &report, expected, &at);
        }
    }
}

/// Files of 0 and 1 bytes, one chunk less one, exactly one chunk, one more, exactly a full
/// level of links (174 chunks) and one more: fetched whole durable and not (the same file and
/// hash), and resumed after gateways dying one after the other every `step` bytes of their
/// (ranged) CAR responses.
#[tokio::test]
async fn edge_sizes_whole_or_resumed_through_a_chain_of_dying_gateways() {
    const CHUNK: usize = 64;
    for len in [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        174 * CHUNK,
        174 * CHUNK + 1,
    ] {
        let fx = net_support::fixture_with(
            net_support::data(len, len as u64 + 3),
            otaledger_ipfs::Profile::KuboV1,
            Some(CHUNK),
        );
        let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
        let mut hashes = Vec::new();
        for durable in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let report = fetch(
                fx.root,
                len as u64,
                std::slice::from_ref(&honest.url),
                &out_path(dir.path()),
                &FetchOptions {
                    durable,
                    ..FetchOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{len} bytes, durable {durable}: {e:?}"));
            assert_file_and_hash(dir.path(), &report, &fx.bytes, &format!("{len} {durable}"));
            hashes.push(report.sha256);
        }
        assert_eq!(hashes[0], hashes[1], "{len}: durable or not, another hash");
        assert_eq!(hashes[0], sha256(&fx.bytes));
        for step in [1, 37, 300, 1000] {
            let mut gateways = Vec::new();
            for _ in 0..6 {
                let gw = bad_gateway::start(Behavior::RealDieAfter {
                    store: fx.store.clone(),
                    after: step,
                })
                .await;
                gateways.push(gw.url);
            }
            gateways.push(honest.url.clone());
            let dir = tempfile::tempdir().unwrap();
            let at = format!("{len} bytes, dying every {step}");
            let report = fetch(
                fx.root,
                len as u64,
                &gateways,
                &out_path(dir.path()),
                &FetchOptions {
                    durable: step % 2 == 0,
                    ..FetchOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{at}: {e:?}"));
            assert_file_and_hash(dir.path(), &report, &fx.bytes, &at);
        }
    }
}

/// A CAR extended past the end of the DAG (garbage, a block of another file, the root again,
/// every leaf again): the file and hash are exact.
#[tokio::test]
async fn extended_car_bodies_do_not_reach_the_file_or_the_hash() {
    let fx = fixture(SIZE);
    let blocks = dfs_blocks(&fx.store, &fx.root);
    let other = fixture(1000);
    let full = car(&fx.root, &blocks);
    let mut twice = blocks.clone();
    twice.extend(blocks[1..].iter().cloned());
    let bodies = [
        ("garbage", [full.as_slice(), &[0xffu8; 4096][..]].concat()),
        (
            "another file's block",
            [
                full.as_slice(),
                &bad_gateway::section(&other.root, &other.bytes),
            ]
            .concat(),
        ),
        (
            "the root again",
            [
                full.as_slice(),
                &bad_gateway::section(&blocks[0].0, &blocks[0].1),
            ]
            .concat(),
        ),
        // The verifier is done before the second copies are read.
        ("every leaf again", car(&fx.root, &twice)),
    ];
    for (what, body) in bodies {
        let gw = bad_gateway::start(canned_car(body)).await;
        let dir = tempfile::tempdir().unwrap();
        let report = fetch(
            fx.root,
            SIZE as u64,
            std::slice::from_ref(&gw.url),
            &out_path(dir.path()),
            &FetchOptions {
                durable: false,
                ..FetchOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_file_and_hash(dir.path(), &report, &fx.bytes, what);
    }
}

/// A fetch whose future is dropped (a timeout around it) while its blocking job is still
/// reading leaves nothing behind: the job finishes its attempt, sees the caller is gone and
/// neither renames the file into place nor keeps the temporary file, even though every byte
/// arrived and verified.
#[tokio::test]
async fn a_dropped_fetch_leaves_nothing_behind() {
    let fx = fixture(SIZE);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    // About 1.2 s for the whole file, well above the minimum rate.
    let slow = Behavior::Slow {
        body,
        chunk: 16 * 1024,
        pause: Duration::from_millis(25),
    };
    let gw = bad_gateway::start(slow).await;
    let dir = tempfile::tempdir().unwrap();
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        fetch(
            fx.root,
            SIZE as u64,
            std::slice::from_ref(&gw.url),
            &out_path(dir.path()),
            &FetchOptions::default(),
        ),
    )
    .await;
    assert!(
        dropped.is_err(),
        "the fetch must still be running at 200 ms"
    );
    // The temporary file exists while the job reads; wait (up to 30 s) until the job is done.
    let entries = || std::fs::read_dir(dir.path()).unwrap().count();
    for _ in 0..600 {
        if entries() == 0 || out_path(dir.path()).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_nothing_written(dir.path());
}

// ---- Second engineer's attacks on the dropped-fetch guard. Each drop is made deterministic by
// a progress callback that, once the position reaches `at`, tells the test and then holds the
// blocking job (inside its attempt) until the test has dropped the fetch's future.

/// Holds the job in its progress callback at a position until released.
struct Pause {
    at: u64,
    reached: std::sync::atomic::AtomicBool,
    released: std::sync::atomic::AtomicBool,
}

impl Pause {
    fn new(at: u64) -> Arc<Self> {
        Arc::new(Self {
            at,
            reached: Default::default(),
            released: Default::default(),
        })
    }

    fn opts(self: &Arc<Self>) -> FetchOptions {
        let me = Arc::clone(self);
        FetchOptions {
            progress: Some(Arc::new(move |p: FetchProgress| {
                if me.released.load(Ordering::SeqCst) {
                    return;
                }
                if p.position < me.at || me.reached.swap(true, Ordering::SeqCst) {
                    return;
                }
                // Bounded: 30 s at most, then the job goes on (and the test fails on its own).
                for _ in 0..3000 {
                    if me.released.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })),
            ..FetchOptions::default()
        }
    }

    /// Wait (up to 30 s) until the job is held.
    async fn wait_reached(&self) {
        for _ in 0..3000 {
            if self.reached.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the job never reached position {}", self.at);
    }

    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }
}

/// Spawn `fetch` as a task, wait until `pause` holds its job, abort the task (its future is
/// dropped), then let the job go on; returns once the task is gone.
async fn drop_while_held(pause: &Arc<Pause>, root: Cid, gateways: Vec<url::Url>, out: PathBuf) {
    let opts = pause.opts();
    let task = tokio::spawn(async move { fetch(root, SIZE as u64, &gateways, &out, &opts).await });
    pause.wait_reached().await;
    task.abort();
    let joined = task.await;
    assert!(
        joined.as_ref().is_err_and(|e| e.is_cancelled()),
        "the task must have been cancelled while the job was held: {joined:?}"
    );
    pause.release();
}

/// Wait (up to 30 s) until the directory holds exactly `n` entries.
async fn wait_entries(dir: &Path, n: usize) {
    for _ in 0..3000 {
        if std::fs::read_dir(dir).unwrap().count() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    panic!("expected {n} entries, found {left:?}");
}

/// Dropped while the second gateway (resuming after the first died halfway) is delivering the
/// rest: it would complete the file, yet nothing is kept.
#[tokio::test]
async fn dropped_during_the_second_gateway_that_would_complete() {
    let fx = fixture(SIZE);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    let half = body.len() / 2;
    let dying = bad_gateway::start(Behavior::DieAfter { body, after: half }).await;
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    // The first gateway leaves 262,144 verified bytes; 524,288 is inside the second's attempt.
    let pause = Pause::new(2 * 262_144);
    drop_while_held(
        &pause,
        fx.root,
        vec![dying.url.clone(), honest.url.clone()],
        out_path(dir.path()),
    )
    .await;
    wait_entries(dir.path(), 0).await;
    assert_nothing_written(dir.path());
    assert_eq!(honest.requests().len(), 1);
}

/// Dropped inside the second gateway's attempt, which then fails: the third (honest) gateway
/// must never be asked, and nothing is kept.
#[tokio::test]
async fn dropped_during_a_failing_gateway_the_next_is_never_asked() {
    let fx = fixture(SIZE);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    let half = body.len() / 2;
    let dying = bad_gateway::start(Behavior::DieAfter { body, after: half }).await;
    // The resumed CAR: the root, leaf 1 whole, then the connection breaks inside leaf 2.
    let dying_too = bad_gateway::start(Behavior::RealDieAfter {
        store: fx.store.clone(),
        after: 300_000,
    })
    .await;
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let pause = Pause::new(2 * 262_144);
    drop_while_held(
        &pause,
        fx.root,
        vec![dying.url.clone(), dying_too.url.clone(), honest.url.clone()],
        out_path(dir.path()),
    )
    .await;
    wait_entries(dir.path(), 0).await;
    assert_nothing_written(dir.path());
    assert_eq!(dying_too.requests().len(), 1);
    assert!(
        honest.requests().is_empty(),
        "a gateway asked for a gone caller: {:?}",
        honest.requests()
    );
}

/// Dropped during the raw block-by-block fallback (a gateway without CAR support).
#[tokio::test]
async fn dropped_during_the_raw_fallback() {
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(Behavior::NoCar(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let pause = Pause::new(262_144);
    drop_while_held(&pause, fx.root, vec![gw.url.clone()], out_path(dir.path())).await;
    wait_entries(dir.path(), 0).await;
    assert_nothing_written(dir.path());
    // The 406, the root, then the leaves (the attempt ran on for the gone caller).
    assert!(gw.requests().len() >= 3, "{:?}", gw.requests());
}

/// Dropped with every byte written (held on the last progress call, just before the rename),
/// while a second fetch to the same path completes: the second's file stays, the same file
/// (not replaced by the first job's rename) with the right bytes, and no temporary is left.
#[tokio::test]
async fn a_dropped_fetch_does_not_replace_or_remove_the_next_fetchs_file() {
    use std::os::unix::fs::MetadataExt;
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let pause = Pause::new(SIZE as u64);
    drop_while_held(
        &pause.clone(),
        fx.root,
        vec![gw.url.clone()],
        out_path(dir.path()),
    )
    .await;
    // `drop_while_held` released the first job; hold nothing more, run the second fetch now
    // (the first may still be finishing its attempt, or already gone).
    let report = fetch(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&gw.url),
        &out_path(dir.path()),
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    let ino = std::fs::metadata(&report.path).unwrap().ino();
    // The first job's temporary file goes; only the second's file is left.
    wait_entries(dir.path(), 1).await;
    assert_eq!(std::fs::metadata(out_path(dir.path())).unwrap().ino(), ino);
    assert!(std::fs::read(out_path(dir.path())).unwrap() == fx.bytes);
    assert_eq!(report.sha256, sha256(&fx.bytes));
}

/// The same, but the second fetch runs and completes entirely while the first job is still
/// held just before its rename; then the first is dropped and released.
#[tokio::test]
async fn a_held_then_dropped_fetch_leaves_the_completed_one_alone() {
    use std::os::unix::fs::MetadataExt;
    let fx = fixture(SIZE);
    let gw = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let pause = Pause::new(SIZE as u64);
    let opts = pause.opts();
    let (root, url, out) = (fx.root, gw.url.clone(), out_path(dir.path()));
    let first = tokio::spawn(async move { fetch(root, SIZE as u64, &[url], &out, &opts).await });
    pause.wait_reached().await;
    let report = fetch(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&gw.url),
        &out_path(dir.path()),
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    let ino = std::fs::metadata(&report.path).unwrap().ino();
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    pause.release();
    wait_entries(dir.path(), 1).await;
    assert_eq!(std::fs::metadata(out_path(dir.path())).unwrap().ino(), ino);
    assert!(std::fs::read(out_path(dir.path())).unwrap() == fx.bytes);
}

/// A fetch whose future is left unpolled (another `select!` branch won) but not dropped, then
/// awaited again, completes: the guard fires only on drop. And fetches that complete normally,
/// by CAR, after a resume and block by block, never report a cancellation.
#[tokio::test]
async fn a_fetch_not_dropped_is_never_reported_cancelled() {
    let fx = fixture(SIZE);
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let pause = Pause::new(SIZE as u64);
    let opts = pause.opts();
    let gateways = [honest.url.clone()];
    let out = out_path(dir.path());
    let mut f = std::pin::pin!(fetch(fx.root, SIZE as u64, &gateways, &out, &opts));
    tokio::select! {
        r = &mut f => panic!("the job is held, the fetch cannot be done: {r:?}"),
        () = pause.wait_reached() => {}
    }
    pause.release();
    let report = f.await.unwrap();
    assert_eq!(report.sha256, sha256(&fx.bytes));
    assert!(std::fs::read(&out).unwrap() == fx.bytes);

    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    let half = body.len() / 2;
    let dying = bad_gateway::start(Behavior::DieAfter { body, after: half }).await;
    let nocar = bad_gateway::start(Behavior::NoCar(fx.store.clone())).await;
    for round in 0..10 {
        for gateways in [
            vec![honest.url.clone()],
            vec![dying.url.clone(), honest.url.clone()],
            vec![nocar.url.clone()],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let report = fetch(
                fx.root,
                SIZE as u64,
                &gateways,
                &out_path(dir.path()),
                &FetchOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(report.sha256, sha256(&fx.bytes));
        }
    }
}

// ---- Verified fetch into a caller's sink (`fetch_into`) ----
//
// The same guards as the file fetch; what changes is that the sink cannot be rewound or read
// back: it must be handed every byte exactly once, in order, each only after its block
// verified, whatever the gateways do.

/// A sink that records what it was handed where the test still sees it after the fetch dropped
/// the sink (a failed fetch does not give it back).
#[derive(Clone, Default)]
struct Recorder(Arc<std::sync::Mutex<Vec<u8>>>);

impl Recorder {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl std::io::Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `got` is a strict prefix of `file` (a failed fetch handed on only verified bytes, not all).
fn assert_strict_prefix(got: &[u8], file: &[u8], at: &str) {
    assert!(got.len() < file.len(), "{at}: the sink got the whole file");
    assert!(
        got == &file[..got.len()],
        "{at}: the sink got bytes that are not the file's"
    );
}

/// A DAG full of repeated subtrees from this crate's honest gateway (a `dups=n` CAR sends every
/// block once): the sink keeps nothing to copy a repeat from, so each repeated block is asked
/// for again (one raw request per block occurrence the CAR left out) and verified again.
#[tokio::test]
async fn a_sink_gets_a_dag_with_repeats_whole_the_repeated_blocks_fetched_again() {
    let st = stored(&repeats_tree());
    let omitted = st.dag.dfs.len() - dedup(&st.dag.dfs).len();
    assert!(omitted > 0, "the DAG must repeat subtrees");
    let gw = bad_gateway::start(Behavior::Real(st.store.clone())).await;
    let report = fetch_into(
        st.dag.cid,
        st.dag.size,
        std::slice::from_ref(&gw.url),
        Vec::new(),
        &FetchOptions::default(),
    )
    .await
    .unwrap();
    assert!(report.sink == st.dag.bytes, "the sink did not get the file");
    assert_eq!(report.size, st.dag.size);
    assert!(report.failures.is_empty());
    assert_eq!(report.completed_by, (gw.url.clone(), FetchMode::Car));
    let asked = gw.requests();
    assert_eq!(asked.len(), 1 + omitted, "{asked:?}");
    assert!(
        asked[1..].iter().all(|r| r.contains("format=raw")),
        "{asked:?}"
    );
}

/// A gateway dying at every interesting byte offset of a `dups=n` CAR of a DAG full of repeats,
/// then another resuming (by CAR with `entity-bytes`, or block by block): the sink sees the file
/// exactly once (a byte handed twice or skipped would make it longer, shorter or different).
#[tokio::test]
async fn a_sink_gets_every_byte_exactly_once_across_a_gateway_dying_at_every_offset() {
    let st = stored(&repeats_tree());
    cut_at_every_offset(&st, async |_, after, gateways| {
        let report = fetch_into(
            st.dag.cid,
            st.dag.size,
            &gateways,
            Vec::new(),
            &FetchOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("cut at {after}: {e:?}"));
        assert!(report.sink == st.dag.bytes, "cut at {after}: not the file");
        if let Some(failure) = report.failures.first() {
            assert_eq!(failure.gateway, gateways[0], "cut at {after}");
        }
    })
    .await;
}

/// Bad blocks after a good prefix (a tampered block, a block of another CID, a duplicate in a
/// `dups=n` CAR, a CAR cut inside a block): alone, the fetch fails and the sink got a verified
/// prefix only; followed by an honest gateway, the sink gets the file exactly once.
#[tokio::test]
async fn a_sink_gets_only_verified_bytes_from_a_bad_gateway_and_the_rest_from_the_next() {
    let fx = fixture(SIZE);
    let good = dfs_blocks(&fx.store, &fx.root);
    let honest = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let mut tampered = good.clone();
    tampered[3].1[100] ^= 1;
    let mut wrong = good.clone();
    wrong[3].1 = good[2].1.clone();
    let mut dup = good.clone();
    dup.insert(3, good[2].clone());
    let whole = car(&fx.root, &good);
    let attacks = [
        ("tampered block 3", car(&fx.root, &tampered)),
        ("block 3 with block 2's bytes", car(&fx.root, &wrong)),
        ("block 2 sent twice", car(&fx.root, &dup)),
        (
            "cut inside the last block",
            whole[..whole.len() - 100].to_vec(),
        ),
    ];
    for (what, body) in attacks {
        let bad = bad_gateway::start(canned_car(body.clone())).await;
        let sink = Recorder::default();
        let err = fetch_into(
            fx.root,
            SIZE as u64,
            std::slice::from_ref(&bad.url),
            sink.clone(),
            &FetchOptions::default(),
        )
        .await
        .expect_err(what);
        let FetchError::AllGatewaysFailed {
            position, failures, ..
        } = &err
        else {
            panic!("{what}: {err:?}")
        };
        assert_eq!(failures.len(), 1, "{what}");
        let got = sink.bytes();
        assert_eq!(got.len() as u64, *position, "{what}");
        assert_strict_prefix(&got, &fx.bytes, what);

        let bad = bad_gateway::start(canned_car(body)).await;
        let report = fetch_into(
            fx.root,
            SIZE as u64,
            &[bad.url.clone(), honest.url.clone()],
            Vec::new(),
            &FetchOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert!(report.sink == fx.bytes, "{what}: not the file");
        assert_eq!(report.failures.len(), 1, "{what}");
        assert_eq!(report.failures[0].from, 0, "{what}");
    }
}

/// More bytes than expected (the root declares more than the chain's size), fewer (the root
/// declares less), a stream ending between blocks: refused, the sink handed a prefix at most
/// (nothing at all where the root is refused).
#[tokio::test]
async fn a_sink_gets_nothing_beyond_the_expected_size_and_no_truncated_file() {
    let fx = fixture(SIZE);
    let blocks = dfs_blocks(&fx.store, &fx.root);
    let body = car(&fx.root, &blocks);
    let cases: [(&str, Vec<u8>, u64); 3] = [
        (
            "root larger than expected",
            body.clone(),
            SIZE as u64 - 1000,
        ),
        ("root smaller than expected", body, SIZE as u64 + 1),
        (
            "ends between blocks",
            car(&fx.root, &blocks[..3]),
            SIZE as u64,
        ),
    ];
    for (what, body, size) in cases {
        let gw = bad_gateway::start(canned_car(body)).await;
        let sink = Recorder::default();
        let err = fetch_into(
            fx.root,
            size,
            std::slice::from_ref(&gw.url),
            sink.clone(),
            &FetchOptions::default(),
        )
        .await
        .expect_err(what);
        let FetchError::AllGatewaysFailed { failures, .. } = &err else {
            panic!("{what}: {err:?}")
        };
        let got = sink.bytes();
        match &failures[0].error {
            AttemptError::Verify(VerifyError::TotalSizeExceeded { .. })
            | AttemptError::SizeMismatch { .. } => assert!(got.is_empty(), "{what}"),
            AttemptError::Truncated { position, .. } => {
                assert_eq!(*position, 2 * 262_144, "{what}");
                assert_strict_prefix(&got, &fx.bytes, what);
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// A sink that refuses bytes ends the fetch at once (`FetchError::Sink`, the offset it refused
/// at): no other gateway is asked, nothing is handed to it again.
#[tokio::test]
async fn a_failing_sink_stops_the_fetch() {
    struct FailAt(u64, u64);
    impl std::io::Write for FailAt {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 + buf.len() as u64 > self.1 {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let fx = fixture(SIZE);
    let a = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let b = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let err = fetch_into(
        fx.root,
        SIZE as u64,
        &[a.url.clone(), b.url.clone()],
        FailAt(0, 262_144 + 1),
        &FetchOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Sink {
                position: 262_144,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(b.requests().is_empty());
}

/// A sink that sleeps `stall` inside the writes numbered in `at` (the device's slot writer
/// held up by its flash), recording what it was handed.
struct StallingSink {
    got: Recorder,
    writes: usize,
    at: &'static [usize],
    stall: Duration,
}

impl std::io::Write for StallingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.at.contains(&self.writes) {
            std::thread::sleep(self.stall);
        }
        self.writes += 1;
        self.got.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sink that blocks for 2.5 rate windows, twice (at its first write and mid-file), behind a
/// fast local gateway and a minimum rate the blocking alone would break (3 MiB per 1 s window:
/// more than the fetch can read ahead while the sink blocks, about 2 MiB): the time inside the
/// sink is not the gateway's, so the fetch completes from the first gateway, no rate error, no
/// switch to the second, every byte once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_blocking_longer_than_the_rate_window_is_not_the_gateways_fault() {
    let size = 16 * 262_144;
    let fx = fixture(size);
    let a = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let b = bad_gateway::start(Behavior::Real(fx.store.clone())).await;
    let grace = Duration::from_secs(1);
    let opts = FetchOptions {
        min_rate: 3 << 20,
        rate_grace: grace,
        ..FetchOptions::default()
    };
    let sink = StallingSink {
        got: Recorder::default(),
        writes: 0,
        at: &[0, 8],
        stall: grace * 5 / 2,
    };
    let report = fetch_into(
        fx.root,
        size as u64,
        &[a.url.clone(), b.url.clone()],
        sink,
        &opts,
    )
    .await
    .unwrap_or_else(|e| panic!("a blocking sink failed the gateway: {e:?}"));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.completed_by, (a.url.clone(), FetchMode::Car));
    assert!(report.sink.got.bytes() == fx.bytes, "not the file");
    assert!(report.sink.writes >= 9, "the sink did not block twice");
    assert_eq!(a.requests().len(), 1);
    assert!(b.requests().is_empty(), "the second gateway was asked");
}

/// A gateway that sends its first 600 KB at once, then trickles (64 bytes every 20 ms, about
/// 3 KiB/s against a minimum of 1 MiB/s over 200 ms windows), into a sink that blocks longer
/// than a window at every write: the sink's time is left out of the window, the gateway's own
/// slowness is not, so the fetch still fails with the rate error, the sink holding a verified
/// prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_gateway_still_fails_the_rate_guard_while_the_sink_blocks() {
    let fx = fixture(SIZE);
    let body = car(&fx.root, &dfs_blocks(&fx.store, &fx.root));
    let gw = bad_gateway::start(Behavior::SlowAfter {
        body,
        fast: 600_000,
        chunk: 64,
        pause: Duration::from_millis(20),
    })
    .await;
    let opts = FetchOptions {
        min_rate: 1 << 20,
        rate_grace: Duration::from_millis(200),
        raw_fallback: false,
        ..FetchOptions::default()
    };
    let got = Recorder::default();
    let sink = StallingSink {
        got: got.clone(),
        writes: 0,
        at: &[0, 1, 2, 3],
        stall: Duration::from_millis(500),
    };
    let err = fetch_into(
        fx.root,
        SIZE as u64,
        std::slice::from_ref(&gw.url),
        sink,
        &opts,
    )
    .await
    .expect_err("a slow gateway must fail");
    let FetchError::AllGatewaysFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(failures[0].error, AttemptError::TooSlow { min_rate, .. } if min_rate == 1 << 20),
        "{err:?}"
    );
    let got = got.bytes();
    assert!(!got.is_empty(), "the sink never ran");
    assert_strict_prefix(&got, &fx.bytes, "slow gateway");
}
