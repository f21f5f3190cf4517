//! The per-release report counts of `GET /v1/releases` and
//! `GET /v1/releases/{id}` count devices, not report rows: one device that
//! reports the same outcome many times (a retry loop, a device re-sending
//! after every boot) counts once, on SQLite and on PostgreSQL.

mod common;

use alloy::{primitives::B256, signers::local::PrivateKeySigner};
use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use common::{Kind, TestDb, config};
use http_body_util::BodyExt;
use otaledger_core::{
    report::{Outcome, Report},
    test_support::{Chain, Scenario},
};
use otaledger_indexer::{
    Indexer,
    api::{ApiState, app},
};
use serde_json::Value;
use tower::ServiceExt;

async fn call(state: &ApiState, request: Request<Body>) -> (StatusCode, Value) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POSTs a report of `device` (signed by `key`) about `release`; asserts 202.
#[allow(clippy::too_many_arguments)]
async fn send(
    state: &ApiState,
    chain: &Chain,
    device: u64,
    key: &PrivateKeySigner,
    release: B256,
    version: u64,
    outcome: Outcome,
    nonce: u64,
) {
    let report = Report {
        chain_id: chain.deployment.chain_id,
        registry: chain.deployment.registry,
        device_index: device,
        release_id: release,
        version,
        outcome,
        detail: if outcome == Outcome::Installed {
            String::new()
        } else {
            "image-hash".into()
        },
        block_number: 1,
        timestamp: 1_764_950_400,
        nonce,
    };
    let request = Request::post("/v1/reports")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(report.sign(key).unwrap().to_json()))
        .unwrap();
    let (status, body) = call(state, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "nonce {nonce}: {body}");
}

async fn repeated_reports_count_once(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    scenario.round(&chain).await.unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 5)).await.unwrap();
    indexer.sync().await.unwrap();
    let state = indexer.api_state(2);
    let (v1, m1) = scenario.releases[0].clone();
    let (d0, k0, _) = scenario.devices[0].clone();
    let (d1, k1, _) = scenario.devices[1].clone();

    // Device 0: five refusals (a retry loop), then an install; device 1: one
    // install sent three times (new nonces each time).
    for nonce in 1..=5 {
        send(
            &state,
            &chain,
            d0,
            &k0,
            v1,
            m1.version,
            Outcome::Refused,
            nonce,
        )
        .await;
    }
    send(
        &state,
        &chain,
        d0,
        &k0,
        v1,
        m1.version,
        Outcome::Installed,
        6,
    )
    .await;
    for nonce in 1..=3 {
        send(
            &state,
            &chain,
            d1,
            &k1,
            v1,
            m1.version,
            Outcome::Installed,
            nonce,
        )
        .await;
    }

    // All nine rows are listed ...
    let (status, all) = call(
        &state,
        Request::get("/v1/reports?limit=100")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["items"].as_array().unwrap().len(), 9);

    // ... but the counts are devices: two installed, one refused, two in all
    // (device 0 counts once per outcome it reported, once in the total).
    let (status, release) = call(
        &state,
        Request::get(format!("/v1/releases/{v1:#x}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{release}");
    let counts = &release["reports"];
    assert_eq!(counts["installed"], 2, "{counts}");
    assert_eq!(counts["refused"], 1, "{counts}");
    assert_eq!(counts["failed"], 0, "{counts}");
    assert_eq!(counts["total"], 2, "{counts}");

    let (status, list) = call(
        &state,
        Request::get("/v1/releases").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["release_id"] == format!("{v1:#x}"))
        .unwrap_or_else(|| panic!("{v1:#x} not listed: {list}"));
    assert_eq!(item["reports"], *counts, "{list}");

    drop(indexer);
    db.remove().await;
}

both_databases! {
    repeated_reports_count_once,
}
