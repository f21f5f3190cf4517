//! `release create --api`: the bundle is also added to the manufacturer's Kubo node and pinned
//! there, and only under the CID the manifest names. No Kubo runs here, so a stand-in answers
//! `POST /api/v0/add` as Kubo's RPC reference documents it (NDJSON `{Name, Hash, Size}`), with
//! the CID of the bytes it received as this project's Kubo-identical importer computes it (the
//! `ipfs` crate checks that importer against Kubo's own outputs), and records each request:
//! the CLI must ask for kubo-v1 (`cid-version=1`, `raw-leaves=true`) and a pin, send the bundle
//! byte for byte, and refuse a node that stores it under another CID.

mod support;

use std::sync::{Arc, Mutex};

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::HeaderMap,
    routing::post,
};
use serde_json::Value;

/// What the stand-in saw, and whether it lies about the CID.
#[derive(Default)]
struct Node {
    queries: Vec<String>,
    files: Vec<Vec<u8>>,
    lie: bool,
}

/// The file part of a `multipart/form-data` body.
fn file_part(headers: &HeaderMap, body: &[u8]) -> (String, Vec<u8>) {
    let ct = headers["content-type"].to_str().unwrap();
    let boundary = format!("--{}", ct.split("boundary=").nth(1).unwrap());
    let text = body;
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let start = find(text, boundary.as_bytes(), 0).unwrap() + boundary.len();
    let headers_end = find(text, b"\r\n\r\n", start).unwrap();
    let part_headers = String::from_utf8_lossy(&text[start..headers_end]).into_owned();
    let end = find(text, format!("\r\n{boundary}").as_bytes(), headers_end).unwrap();
    let name = part_headers
        .split("filename=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (name, text[headers_end + 4..end].to_vec())
}

async fn add(
    State(node): State<Arc<Mutex<Node>>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> String {
    let (name, bytes) = file_part(&headers, &body);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(&name);
    std::fs::write(&path, &bytes).unwrap();
    let imported = otaledger_ipfs::import_path(
        &path,
        &otaledger_ipfs::ImportOptions::profile(otaledger_ipfs::Profile::KuboV1),
        &mut otaledger_ipfs::NullSink,
        &mut |_| {},
    )
    .unwrap();
    let mut node = node.lock().unwrap();
    node.queries.push(query.unwrap_or_default());
    node.files.push(bytes.clone());
    // A node with other Import settings (chunker, leaves) stores another DAG under another CID.
    let hash = if node.lie {
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e".to_owned()
    } else {
        imported.root.to_string()
    };
    format!(
        "{{\"Name\":\"\",\"Bytes\":{}}}\n{{\"Name\":\"{name}\",\"Hash\":\"{hash}\",\"Size\":\"{}\"}}\n",
        bytes.len(),
        bytes.len() + 100
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_create_adds_and_pins_the_bundle_on_kubo_under_the_manifests_cid() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (_demo, _out, paused) = tokio::task::block_in_place(|| {
        support::paused_demo(2, &["--no-purchase", "--unclaimed", "0"], &state)
    });
    let rpc = support::field(&paused, "rpc");
    let node = Arc::new(Mutex::new(Node::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/api/v0/add", post(add))
        .with_state(node.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let image = tmp.path().join("image.bin");
    std::fs::write(
        &image,
        (0..600_000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let create = |version: u64, out: &str| {
        support::release_create(
            &state,
            &rpc,
            version,
            &image,
            &tmp.path().join(out),
            &["--api", &api],
        )
    };
    let out = tokio::task::block_in_place(|| create(2, "v2"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["pinnedOn"], api.as_str(), "{created}");
    {
        let node = node.lock().unwrap();
        let q = &node.queries[0];
        for want in ["cid-version=1", "raw-leaves=true", "pin=true"] {
            assert!(q.contains(want), "{want} in {q}");
        }
        let bundle = std::fs::read(tmp.path().join("v2/bundle.bin")).unwrap();
        assert_eq!(node.files[0], bundle, "the bundle, byte for byte");
    }

    // A node that stores it under another CID is refused by name.
    node.lock().unwrap().lie = true;
    let out = tokio::task::block_in_place(|| create(3, "v3"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "stored the bundle as bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        ) && err.contains("the manifest names bafy"),
        "{err}"
    );
}
