//! An independent IPFS client fetches files from our gateway: Helia (`@helia/verified-fetch`
//! 1.5.0 over `@helia/http`, run through Node with `tests/js/helia-fetch.mjs`). Its
//! trustless-gateway block broker asks for every block as its own `?format=raw` request, about
//! 175 at once for a 174-wide DAG level, and checks each block's hash; the file it assembles must
//! equal the original. A single-block file, a one-level and a two-level DAG (more than 174 leaves
//! of 256 KiB, so the root links interior nodes), each time from a freshly started gateway:
//! three times with the default limits, and once with only 4 slots (2 for one client), so that
//! most of Helia's requests must wait in the queue (a gateway that answered them 429 instead
//! makes this client fail).
//!
//! Needs `npm ci` at the repository root (the packages are devDependencies in package.json).
#![cfg(all(feature = "server", feature = "client"))]

mod net_support;

use std::path::{Path, PathBuf};

use otaledger_ipfs::gateway::GatewayConfig;
use otaledger_ipfs::{Blockstore, Cid, ImportOptions, Profile, import};
use sha2::{Digest, Sha256};

const LEAF: usize = 262_144;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fetch `cids` from `gateway` with Helia; its JSON answer, one object per CID.
async fn helia_fetch(gateway: &str, cids: &[Cid]) -> Vec<serde_json::Value> {
    let root = repo_root();
    for package in [
        "@helia/verified-fetch",
        "@helia/http",
        "@helia/block-brokers",
        "@helia/routers",
    ] {
        assert!(
            root.join("node_modules").join(package).exists(),
            "{package} is missing: run `npm ci` at the repository root first"
        );
    }
    let out = tokio::process::Command::new("node")
        .arg(root.join("ipfs/tests/js/helia-fetch.mjs"))
        .arg(gateway)
        .args(cids.iter().map(Cid::to_string))
        .current_dir(&root)
        .output()
        .await
        .expect("node is installed");
    assert!(
        out.status.success(),
        "helia failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "helia printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helia_fetches_single_block_one_level_and_two_level_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path().join("store")).unwrap();
    let files = [
        ("single block", net_support::data(1000, 1)),
        ("one level", net_support::data(5 * LEAF + 1000, 2)),
        ("two levels", net_support::data(176 * LEAF + 1000, 3)),
    ];
    let mut roots = Vec::new();
    for (name, bytes) in &files {
        let mut sink = &store;
        let opts = ImportOptions::profile(Profile::KuboV1);
        let root = import(&bytes[..], &opts, &mut sink, &mut |_| {})
            .unwrap()
            .root;
        let blocks = net_support::dfs_blocks(&store, &root).len();
        let leaves = bytes.len().div_ceil(LEAF);
        // The DAG shapes this test is about: a raw-leaf root; a root over the leaves; a root
        // over 2 interior nodes over the leaves.
        let expected = match leaves {
            1 => 1,
            n if n <= 174 => 1 + n,
            n => 1 + n.div_ceil(174) + n,
        };
        assert_eq!(blocks, expected, "{name}");
        roots.push(root);
    }
    let tight = GatewayConfig {
        max_concurrent_requests: 4,
        max_requests_per_client: 2,
        ..GatewayConfig::default()
    };
    let configs = [GatewayConfig::default(); 3].into_iter().chain([tight]);
    for (run, config) in configs.enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(otaledger_ipfs::serve(
            listener,
            store.clone(),
            config,
            async {
                let _ = stop_rx.await;
            },
        ));
        let got = helia_fetch(&format!("http://{addr}"), &roots).await;
        assert_eq!(got.len(), files.len(), "run {run}: {got:?}");
        for ((name, bytes), (root, answer)) in files.iter().zip(roots.iter().zip(&got)) {
            assert_eq!(answer["cid"], root.to_string(), "run {run}, {name}");
            assert_eq!(answer["status"], 200, "run {run}, {name}: {answer}");
            assert_eq!(answer["size"], bytes.len(), "run {run}, {name}");
            let sha = hex(&Sha256::digest(bytes));
            assert_eq!(answer["sha256"], sha, "run {run}, {name}");
        }
        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
