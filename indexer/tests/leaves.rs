//! Batch leaf lists fetched through IPFS and checked against the on-chain
//! root (each test on SQLite and PostgreSQL): a true list from the local store
//! or a real gateway is `verified` and its devices stored; a tampered list is
//! recorded as `mismatch` with its root and nothing of it is stored; a CID no
//! one has is `unavailable`, a non-CID `invalid`. The pin follower copies
//! every block of the lists into an empty store from a gateway and records
//! each CID's availability, shown with the release in the API.

mod common;

use common::{Kind, TestDb, config};

use alloy::{primitives::B256, signers::local::PrivateKeySigner};
use otaledger_core::{
    bindings::registry::UpdateRegistry,
    key_delivery::identity_public_key,
    leaves::{LeafEntry, leaves_root},
    test_support::{Chain, Scenario},
};
use otaledger_indexer::{
    Indexer,
    backoff::Backoff,
    leaves::{LeafSource, check_pending},
    pins::{self, PinTarget, pin_pending},
};
use otaledger_ipfs::{Blockstore, ImportOptions, NullSink, Profile, import_path};
use sqlx::Row as _;
use tower::ServiceExt as _;

fn list(n: usize) -> Vec<LeafEntry> {
    (0..n)
        .map(|i| {
            let key = PrivateKeySigner::random();
            LeafEntry {
                position: i as u64,
                device: key.address(),
                model_id: 1,
                public_key: identity_public_key(&key).into(),
            }
        })
        .collect()
}

/// Imports `leaves` as `leaves.json` (into `store` if given) and returns its CID.
fn import(leaves: &[LeafEntry], store: Option<&Blockstore>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leaves.json");
    std::fs::write(&path, serde_json::to_vec_pretty(leaves).unwrap()).unwrap();
    let opts = ImportOptions::profile(Profile::KuboV1);
    let imported = match store {
        Some(mut s) => import_path(&path, &opts, &mut s, &mut |_| {}),
        None => import_path(&path, &opts, &mut NullSink, &mut |_| {}),
    };
    imported.unwrap().root.to_string()
}

async fn provision(chain: &Chain, manufacturer: u32, root: B256, count: u32, cid: &str) -> u64 {
    let registry = UpdateRegistry::new(chain.deployment.registry, &chain.provider);
    let receipt = registry
        .provisionDevices(manufacturer, root, count, cid.to_owned())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    receipt
        .decoded_log::<UpdateRegistry::DevicesProvisioned>()
        .unwrap()
        .firstIndex
}

async fn statuses(indexer: &Indexer) -> Vec<(String, String, Option<String>)> {
    sqlx::query("SELECT leaves_cid, status, computed_root FROM batch_leaves ORDER BY block_number")
        .fetch_all(indexer.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn identities(indexer: &Indexer) -> Vec<(i64, String)> {
    sqlx::query("SELECT device_index, device FROM device_identities ORDER BY device_index")
        .fetch_all(indexer.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn leaf_lists_are_checked_against_the_root(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    // A round provisions a batch whose leavesCid is no CID.
    scenario.round(&chain).await.unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(store_dir.path()).unwrap();

    // The true list of batch A.
    let a = list(3);
    let a_cid = import(&a, Some(&store));
    let a_first = provision(
        &chain,
        scenario.manufacturer,
        leaves_root(&a).unwrap(),
        3,
        &a_cid,
    )
    .await;
    // Batch B: the chain has the root of one list, the store a tampered one
    // (one device replaced).
    let b = list(3);
    let mut tampered = b.clone();
    tampered[1] = list(2)
        .pop()
        .map(|mut e| {
            e.position = 1;
            e
        })
        .unwrap();
    let b_cid = import(&tampered, Some(&store));
    provision(
        &chain,
        scenario.manufacturer,
        leaves_root(&b).unwrap(),
        3,
        &b_cid,
    )
    .await;
    // Batch C: a list nobody has.
    let c = list(2);
    let c_cid = import(&c, None);
    provision(
        &chain,
        scenario.manufacturer,
        leaves_root(&c).unwrap(),
        2,
        &c_cid,
    )
    .await;

    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    indexer.sync().await.unwrap();
    let source = LeafSource {
        store: Some(store_dir.path().to_path_buf()),
        gateways: vec![],
    };
    assert_eq!(
        check_pending(indexer.pool(), &source, &Backoff::NONE)
            .await
            .unwrap(),
        4
    );
    let got = statuses(&indexer).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0].1, "invalid", "{got:?}");
    assert_eq!(
        got[1],
        (
            a_cid.clone(),
            "verified".into(),
            Some(leaves_root(&a).unwrap().to_string())
        )
    );
    assert_eq!(got[2].1, "mismatch");
    assert_eq!(got[2].2, Some(leaves_root(&tampered).unwrap().to_string()));
    assert_eq!(got[3].1, "unavailable");
    // Only the verified batch's devices, at their global indexes.
    let expected: Vec<(i64, String)> = a
        .iter()
        .map(|l| {
            (
                (a_first + l.position) as i64,
                format!("0x{}", alloy::hex::encode(l.device)),
            )
        })
        .collect();
    assert_eq!(identities(&indexer).await, expected);
    // A second round retries only the unavailable list.
    assert_eq!(
        check_pending(indexer.pool(), &source, &Backoff::NONE)
            .await
            .unwrap(),
        1
    );

    // Over a real gateway serving the store (no local store): verified too.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let app = otaledger_ipfs::router(Blockstore::open(store_dir.path()).unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let db2 = TestDb::new(kind).await;
    let mut other = Indexer::open(config(&chain, &db2, 3)).await.unwrap();
    other.sync().await.unwrap();
    let by_gateway = LeafSource {
        store: None,
        gateways: vec![gateway.parse().unwrap()],
    };
    check_pending(other.pool(), &by_gateway, &Backoff::NONE)
        .await
        .unwrap();
    let got2 = statuses(&other).await;
    assert_eq!(
        got2.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(),
        ["invalid", "verified", "mismatch", "unavailable"]
    );
    assert_eq!(identities(&other).await, expected);

    // The pin follower: into an empty store, blocks fetched from the gateway.
    let pinned_dir = tempfile::tempdir().unwrap();
    let target = PinTarget::Store {
        dir: pinned_dir.path().to_path_buf(),
        gateways: vec![gateway.parse().unwrap()],
    };
    pin_pending(other.pool(), &target, &Backoff::NONE)
        .await
        .unwrap();
    let pin_of = |cid: String| {
        let pool = other.pool().clone();
        async move { pins::status(&pool, &cid).await.unwrap().unwrap().status }
    };
    assert_eq!(pin_of(a_cid.clone()).await, "pinned");
    assert_eq!(pin_of(b_cid.clone()).await, "pinned");
    assert_eq!(pin_of(c_cid.clone()).await, "unavailable");
    assert_eq!(pin_of("bafyleaves-1".into()).await, "invalid");
    // Its blocks are now in the target store: the list reads from there alone.
    let pinned_only = LeafSource {
        store: Some(pinned_dir.path().to_path_buf()),
        gateways: vec![],
    };
    let root = leaves_root(&a).unwrap();
    assert!(matches!(
        otaledger_indexer::leaves::check_list(&pinned_only, &a_cid, root, 3).await,
        otaledger_indexer::leaves::Outcome::Verified(_)
    ));
    // A second round retries only the unavailable CID.
    assert_eq!(
        pin_pending(other.pool(), &target, &Backoff::NONE)
            .await
            .unwrap(),
        1
    );
    // The API shows a release's pin status (the scenario's bundle CIDs are no CIDs).
    let release: String = sqlx::query("SELECT release_id FROM releases LIMIT 1")
        .fetch_one(other.pool())
        .await
        .unwrap()
        .get(0);
    let response = otaledger_indexer::api::app(other.api_state(100))
        .oneshot(
            axum::http::Request::get(format!("/v1/releases/{release}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["pin"]["status"], "invalid", "{body}");

    drop(indexer);
    drop(other);
    db.remove().await;
    db2.remove().await;
}

/// A verified batch that a reorg removes takes its leaf record and device
/// identities with it.
async fn a_reorg_removes_the_batch_s_identities(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let scenario = Scenario::register(&chain).await.unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(store_dir.path()).unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 8)).await.unwrap();
    indexer.sync().await.unwrap();
    let snapshot = chain
        .raw("evm_snapshot", serde_json::json!([]))
        .await
        .unwrap();
    let a = list(2);
    let a_cid = import(&a, Some(&store));
    provision(
        &chain,
        scenario.manufacturer,
        leaves_root(&a).unwrap(),
        2,
        &a_cid,
    )
    .await;
    indexer.sync().await.unwrap();
    let source = LeafSource {
        store: Some(store_dir.path().to_path_buf()),
        gateways: vec![],
    };
    assert_eq!(
        check_pending(indexer.pool(), &source, &Backoff::NONE)
            .await
            .unwrap(),
        1
    );
    assert_eq!(identities(&indexer).await.len(), 2);
    chain
        .raw("evm_revert", serde_json::json!([snapshot]))
        .await
        .unwrap();
    for i in 0..3 {
        scenario.touch(&chain, &format!("other-{i}")).await.unwrap();
    }
    assert!(indexer.sync().await.unwrap().reorg_depth > 0);
    assert!(statuses(&indexer).await.is_empty());
    assert!(identities(&indexer).await.is_empty());
    assert!(indexer.verify().await.unwrap().is_clean());
    drop(indexer);
    db.remove().await;
}

both_databases! {
    leaf_lists_are_checked_against_the_root,
    a_reorg_removes_the_batch_s_identities,
}
