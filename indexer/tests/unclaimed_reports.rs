//! Reports from devices provisioned but not yet claimed (each test on SQLite
//! and PostgreSQL): once a batch's leaf list is verified against the on-chain
//! root, its devices' identity addresses (`device_identities`) may sign
//! reports before any claim; a key of another leaf is refused (403), and a
//! device whose batch list was never verified stays unknown (404).

mod common;

use alloy::{primitives::B256, signers::local::PrivateKeySigner};
use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use common::{Kind, TestDb, config};
use otaledger_core::{
    bindings::registry::UpdateRegistry,
    key_delivery::identity_public_key,
    leaves::{LeafEntry, leaves_root},
    report::{Outcome, Report},
    test_support::{Chain, Scenario},
};
use otaledger_indexer::{
    Indexer,
    api::{ApiState, app},
    backoff::Backoff,
    leaves::{LeafSource, check_pending},
};
use otaledger_ipfs::{Blockstore, ImportOptions, Profile, import_path};
use tower::ServiceExt as _;

/// Provisions a batch of `keys` whose list is in `store` (if given); returns
/// its first device index.
async fn provision(
    chain: &Chain,
    manufacturer: u32,
    keys: &[PrivateKeySigner],
    store: Option<&Blockstore>,
) -> u64 {
    let leaves: Vec<LeafEntry> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| LeafEntry {
            position: i as u64,
            device: key.address(),
            model_id: 1,
            public_key: identity_public_key(key).into(),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leaves.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&leaves).unwrap()).unwrap();
    let opts = ImportOptions::profile(Profile::KuboV1);
    let cid = match store {
        Some(mut s) => import_path(&path, &opts, &mut s, &mut |_| {}),
        None => import_path(&path, &opts, &mut otaledger_ipfs::NullSink, &mut |_| {}),
    }
    .unwrap()
    .root
    .to_string();
    UpdateRegistry::new(chain.deployment.registry, &chain.provider)
        .provisionDevices(
            manufacturer,
            leaves_root(&leaves).unwrap(),
            keys.len() as u32,
            cid,
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
        .decoded_log::<UpdateRegistry::DevicesProvisioned>()
        .unwrap()
        .firstIndex
}

async fn post(state: &ApiState, chain: &Chain, device: u64, key: &PrivateKeySigner) -> StatusCode {
    let report = Report {
        chain_id: chain.deployment.chain_id,
        registry: chain.deployment.registry,
        device_index: device,
        release_id: B256::repeat_byte(7),
        version: 1,
        outcome: Outcome::Installed,
        detail: String::new(),
        block_number: 1,
        timestamp: 1_764_950_400,
        nonce: 1,
    };
    let request = Request::post("/v1/reports")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(report.sign(key).unwrap().to_json()))
        .unwrap();
    app(state.clone()).oneshot(request).await.unwrap().status()
}

async fn provisioned_devices_may_report_before_their_claim(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let scenario = Scenario::register(&chain).await.unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(store_dir.path()).unwrap();
    let keys: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    let first = provision(&chain, scenario.manufacturer, &keys, Some(&store)).await;
    // A second batch whose list no one has: never verified.
    let lost: Vec<PrivateKeySigner> = (0..2).map(|_| PrivateKeySigner::random()).collect();
    let lost_first = provision(&chain, scenario.manufacturer, &lost, None).await;

    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    indexer.sync().await.unwrap();
    let state = indexer.api_state(u64::MAX);
    // Before the list is verified, the unclaimed device is unknown.
    assert_eq!(
        post(&state, &chain, first, &keys[0]).await,
        StatusCode::NOT_FOUND
    );
    let source = LeafSource {
        store: Some(store_dir.path().to_path_buf()),
        gateways: vec![],
    };
    check_pending(indexer.pool(), &source, &Backoff::NONE)
        .await
        .unwrap();

    // Its own identity key: accepted; another leaf's key: 403.
    assert_eq!(
        post(&state, &chain, first + 1, &keys[1]).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post(&state, &chain, first + 2, &keys[0]).await,
        StatusCode::FORBIDDEN
    );
    // A device of a batch whose list was never verified: still 404.
    assert_eq!(
        post(&state, &chain, lost_first, &lost[0]).await,
        StatusCode::NOT_FOUND
    );
    drop(indexer);
    db.remove().await;
}

both_databases! {
    provisioned_devices_may_report_before_their_claim,
}
