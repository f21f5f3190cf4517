//! Install reports, anomaly rules, the alert webhook and `/metrics`, on a
//! real anvil history, on SQLite and on PostgreSQL: reports valid, signed by
//! the wrong key, from an unregistered device, replayed, oversized, for
//! another chain or registry, and byte-mutated; each rule firing on its
//! scenario and silent on normal traffic; alerts delivered to a real local
//! HTTP server (after a refused first attempt); chain alerts rewound by a
//! reorg while reports stay; `/metrics` parsing and moving.

mod common;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use common::{Kind, TestDb, config};
use http_body_util::BodyExt;
use otaledger_core::{
    report::{MAX_REPORT_JSON, Outcome, Report},
    test_support::{Chain, Scenario},
};
use otaledger_indexer::{
    Indexer,
    alerts::AlertConfig,
    api::{ApiState, app},
};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(state: &ApiState, request: Request<Body>) -> (StatusCode, String) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get(state: &ApiState, uri: &str) -> (StatusCode, Value) {
    let (status, body) = call(state, Request::get(uri).body(Body::empty()).unwrap()).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

async fn post(state: &ApiState, body: impl Into<Vec<u8>>) -> (StatusCode, Value) {
    let request = Request::post("/v1/reports")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.into()))
        .unwrap();
    let (status, body) = call(state, request).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// A report of `device` about `release` on `chain`.
fn report(
    chain: &Chain,
    device: u64,
    release: B256,
    version: u64,
    outcome: Outcome,
    detail: &str,
    nonce: u64,
) -> Report {
    Report {
        chain_id: chain.deployment.chain_id,
        registry: chain.deployment.registry,
        device_index: device,
        release_id: release,
        version,
        outcome,
        detail: detail.into(),
        block_number: 1,
        timestamp: 1_764_950_400,
        nonce,
    }
}

fn signed(r: Report, key: &PrivateKeySigner) -> String {
    r.sign(key).unwrap().to_json()
}

/// A chain with one round of real use, indexed.
async fn setup(kind: Kind, alerts: AlertConfig) -> (Chain, Scenario, TestDb, Indexer) {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    scenario.round(&chain).await.unwrap();
    let db = TestDb::new(kind).await;
    let mut c = config(&chain, &db, 5);
    c.alerts = alerts;
    let mut indexer = Indexer::open(c).await.unwrap();
    indexer.sync().await.unwrap();
    (chain, scenario, db, indexer)
}

async fn alerts(state: &ApiState) -> Vec<Value> {
    let (status, body) = get(state, "/v1/alerts?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn of_rule<'a>(alerts: &'a [Value], rule: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

fn rules(alerts: &[Value]) -> BTreeSet<String> {
    alerts
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_owned())
        .collect()
}

async fn mine(chain: &Chain, blocks: u64) {
    chain
        .raw("anvil_mine", json!([format!("0x{blocks:x}")]))
        .await
        .unwrap();
}

async fn reports_are_checked(kind: Kind) {
    let (chain, scenario, db, indexer) = setup(kind, AlertConfig::default()).await;
    let state = indexer.api_state(2);
    let (device, key, _) = scenario.devices[0].clone();
    let (v1, m1) = scenario.releases[0].clone();
    let good = |nonce| {
        report(
            &chain,
            device,
            v1,
            m1.version,
            Outcome::Installed,
            "",
            nonce,
        )
    };

    // Valid: 202 with the device and nonce.
    let (status, body) = post(&state, signed(good(3), &key)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        json!({"accepted": true, "device": device, "nonce": 3})
    );

    // Replayed (same nonce) and older nonces: 409.
    for nonce in [3, 2, 0] {
        let (status, body) = post(&state, signed(good(nonce), &key)).await;
        assert_eq!(status, StatusCode::CONFLICT, "nonce {nonce}: {body}");
    }
    // Signed by another key: 403.
    let (status, body) = post(&state, signed(good(4), &PrivateKeySigner::random())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("identity"),
        "{body}"
    );
    // Another device's key: 403 as well.
    let (status, _) = post(&state, signed(good(4), &scenario.devices[1].1)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Unregistered device: 404.
    let mut unknown = good(4);
    unknown.device_index = 999_999;
    let (status, body) = post(&state, signed(unknown, &key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Other chain, other registry: 400 naming the field.
    let mut other_chain = good(4);
    other_chain.chain_id += 1;
    let (status, body) = post(&state, signed(other_chain, &key)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("chainId"),
        "{body}"
    );
    let mut other_registry = good(4);
    other_registry.registry = Address::repeat_byte(0x42);
    let (status, body) = post(&state, signed(other_registry, &key)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("registry"),
        "{body}"
    );
    // Malformed: 400.
    for bad in ["{", "", "[]", "{\"format\":\"otaledger-report/1\"}"] {
        let (status, body) = post(&state, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // Oversized: 413, whether the length is declared or not (never read past the bound).
    let mut big = signed(good(4), &key).into_bytes();
    big.resize(MAX_REPORT_JSON + 1, b' ');
    let (status, body) = post(&state, big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let declared = Request::post("/v1/reports")
        .header(header::CONTENT_LENGTH, "100000000")
        .body(Body::from(big.clone()))
        .unwrap();
    assert_eq!(
        call(&state, declared).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let stream =
        futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let chunked = Request::post("/v1/reports")
        .body(Body::from_stream(stream))
        .unwrap();
    assert_eq!(call(&state, chunked).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    // Every one-byte mutation of a valid report is refused, or is the same
    // report (same content and signer); never a server error.
    let valid = signed(good(9), &key);
    for i in 0..valid.len() {
        for replacement in [b'0', b'"', b'f'] {
            let mut mutated = valid.clone().into_bytes();
            if mutated[i] == replacement {
                continue;
            }
            mutated[i] = replacement;
            let (status, body) = post(&state, mutated.clone()).await;
            assert!(
                [
                    StatusCode::BAD_REQUEST,
                    StatusCode::FORBIDDEN,
                    StatusCode::NOT_FOUND,
                    StatusCode::CONFLICT
                ]
                .contains(&status),
                "byte {i}: {status} {body} for {}",
                String::from_utf8_lossy(&mutated)
            );
        }
    }
    // No mutant was stored — not even another encoding of the same
    // signature (a v byte of 0/1 is refused as non-canonical): the original is
    // still accepted.
    assert_eq!(post(&state, valid).await.0, StatusCode::ACCEPTED);

    // Listing: filters, the device's own list, pagination with the cursor.
    let refused = report(
        &chain,
        device,
        v1,
        m1.version,
        Outcome::Refused,
        "image-hash",
        10,
    );
    assert_eq!(
        post(&state, signed(refused, &key)).await.0,
        StatusCode::ACCEPTED
    );
    let (d1, k1, _) = scenario.devices[1].clone();
    let other = report(&chain, d1, v1, m1.version, Outcome::Installed, "", 1);
    assert_eq!(
        post(&state, signed(other, &k1)).await.0,
        StatusCode::ACCEPTED
    );
    let (status, all) = get(&state, "/v1/reports").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["nonce"], 3);
    assert_eq!(items[0]["signer"], format!("{:#x}", key.address()));
    assert_eq!(items[0]["signed"]["report"]["nonce"], 3);
    let of_device = get(&state, &format!("/v1/devices/{device}/reports"))
        .await
        .1;
    assert_eq!(of_device["items"].as_array().unwrap().len(), 3);
    let refusals = get(
        &state,
        &format!("/v1/reports?release={v1:#x}&outcome=refused"),
    )
    .await
    .1;
    assert_eq!(refusals["items"].as_array().unwrap().len(), 1);
    assert_eq!(refusals["items"][0]["detail"], "image-hash");
    let mut seen = Vec::new();
    let mut uri = "/v1/reports?limit=3".to_owned();
    loop {
        let (status, page) = get(&state, &uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push((item["device_index"].to_string(), item["nonce"].to_string()));
        }
        match page["next"].as_str() {
            Some(next) => uri = format!("/v1/reports?limit=3&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 4);
    for bad in [
        "/v1/reports?outcome=exploded",
        "/v1/reports?device=x",
        "/v1/reports?release=0x12",
        "/v1/reports?cursor=1.2",
        "/v1/reports?limit=0",
        "/v1/devices/abc/reports",
    ] {
        assert_eq!(get(&state, bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        get(&state, "/v1/devices/999999/reports").await.0,
        StatusCode::NOT_FOUND
    );

    // Counts on the release endpoints.
    let (_, release) = get(&state, &format!("/v1/releases/{v1:#x}")).await;
    // Devices, not rows (report_counts.rs): device 0 installed twice and
    // refused once, device 1 installed once.
    assert_eq!(release["reports"]["installed"], 2, "{release}");
    assert_eq!(release["reports"]["refused"], 1);
    assert_eq!(release["reports"]["total"], 2);
    let (_, list) = get(&state, "/v1/releases").await;
    assert_eq!(list["items"][0]["reports"]["total"], 2, "{list}");
    assert_eq!(list["items"][1]["reports"]["total"], 0);

    // The OpenAPI document lists the new routes.
    let doc = get(&state, "/v1/openapi.json").await.1;
    for route in [
        "/v1/reports",
        "/v1/devices/{index}/reports",
        "/v1/alerts",
        "/metrics",
    ] {
        assert!(doc["paths"].get(route).is_some(), "{route} missing");
    }
    assert!(doc["paths"]["/v1/reports"].get("post").is_some());
    drop(indexer);
    db.remove().await;
}

/// A local HTTP server recording alert deliveries; refuses the first one
/// (503) so that the retry is exercised.
async fn webhook_server() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let refused_once = Arc::new(Mutex::new(false));
    let recorder = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let recorder = recorder.clone();
            let refused_once = refused_once.clone();
            async move {
                let mut refused = refused_once.lock().unwrap();
                if !*refused {
                    *refused = true;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                recorder
                    .lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap());
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// Every metric line parses: `name{labels} value` with a float value.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            let bare = name.split('{').next().unwrap();
            assert!(
                bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            if name.contains('{') {
                assert!(name.ends_with('}'), "{line}");
            }
            (name.to_owned(), value)
        })
        .collect()
}

fn metric(samples: &[(String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{name} missing"))
}

async fn scrape(state: &ApiState) -> Vec<(String, f64)> {
    let (status, body) = call(state, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    parse_metrics(&body)
}

async fn each_rule_fires(kind: Kind) {
    let (url, delivered) = webhook_server().await;
    let alert_config = AlertConfig {
        failure_threshold: 2,
        surge_threshold: 2,
        silent_window_blocks: 30,
        webhook: Some(url),
        ..AlertConfig::default()
    };
    let (chain, mut scenario, db, mut indexer) = setup(kind, alert_config).await;
    let state = indexer.api_state(2);
    let (v1, m1) = scenario.releases[0].clone();
    let (v2, _) = scenario.releases[1].clone();
    let (v3, _) = scenario.releases[2].clone();
    let before = scrape(&state).await;

    let found = alerts(&state).await;
    // Emergency revocation of v3 (v2 was revoked with signatures: no alert).
    let emergency = of_rule(&found, "emergency_revocation");
    assert_eq!(emergency.len(), 1, "{found:?}");
    assert_eq!(emergency[0]["evidence"]["release_id"], format!("{v3:#x}"));
    assert_eq!(emergency[0]["severity"], "high");
    assert_eq!(
        emergency[0]["links"]["release"],
        format!("/v1/releases/{v3:#x}")
    );
    assert!(
        !found
            .iter()
            .any(|a| a["evidence"]["release_id"] == format!("{v2:#x}"))
    );
    // Surges: three claims by one owner, two purchases by one buyer (threshold 2).
    assert_eq!(of_rule(&found, "claim_surge").len(), 1, "{found:?}");
    assert_eq!(of_rule(&found, "purchase_surge").len(), 1, "{found:?}");
    // Nothing else yet.
    assert_eq!(
        rules(&found),
        ["claim_surge", "emergency_revocation", "purchase_surge"]
            .map(String::from)
            .into()
    );

    // A publish right after the rotation that ended the round, approved by
    // keys 0 and 2 (the first release under the new set: the baseline), then
    // one by keys 1 and 2: a combination never used under this set.
    let first = scenario.publish_next(&chain, &[0, 2]).await.unwrap();
    let second = scenario.publish_next(&chain, &[1, 2]).await.unwrap();
    indexer.sync().await.unwrap();
    let found = alerts(&state).await;
    let rotation = of_rule(&found, "rotation_then_publish");
    assert_eq!(rotation.len(), 2, "{found:?}");
    assert_eq!(rotation[0]["evidence"]["release_id"], format!("{first:#x}"));
    let combination = of_rule(&found, "new_signer_combination");
    assert_eq!(combination.len(), 1, "{found:?}");
    assert_eq!(
        combination[0]["evidence"]["release_id"],
        format!("{second:#x}")
    );
    let used = combination[0]["evidence"]["masks_used_before"].clone();
    assert_eq!(used.as_array().unwrap().len(), 1, "{used}");
    assert_ne!(used[0], combination[0]["evidence"]["signer_mask"]);

    // Device 0 reports v1 installed; device 1 (also bought v1) never does:
    // once the window has passed, only device 1 is silent (device 0's v2 was refunded).
    let (d0, k0, _) = scenario.devices[0].clone();
    let (d1, _, _) = scenario.devices[1].clone();
    let (d2, k2, _) = scenario.devices[2].clone();
    let installed = report(&chain, d0, v1, m1.version, Outcome::Installed, "", 1);
    assert_eq!(
        post(&state, signed(installed, &k0)).await.0,
        StatusCode::ACCEPTED
    );
    mine(&chain, 40).await;
    indexer.sync().await.unwrap();
    let found = alerts(&state).await;
    let silent = of_rule(&found, "silent_device");
    assert_eq!(silent.len(), 1, "{silent:?}");
    assert_eq!(silent[0]["evidence"]["device_index"], d1);
    assert_eq!(silent[0]["evidence"]["release_id"], format!("{v1:#x}"));
    assert_eq!(silent[0]["severity"], "low");

    // Two devices refuse v1 with the same class: install failures (once).
    for (nonce, (device, key)) in [(2, (d0, &k0)), (1, (d2, &k2))] {
        let r = report(
            &chain,
            device,
            v1,
            m1.version,
            Outcome::Refused,
            "image-hash",
            nonce,
        );
        assert_eq!(post(&state, signed(r, key)).await.0, StatusCode::ACCEPTED);
    }
    // A version never published, and an unknown release.
    let wrong_version = report(&chain, d0, v1, 77, Outcome::Installed, "", 3);
    assert_eq!(
        post(&state, signed(wrong_version, &k0)).await.0,
        StatusCode::ACCEPTED
    );
    let unknown = report(
        &chain,
        d0,
        B256::repeat_byte(7),
        1,
        Outcome::Installed,
        "",
        4,
    );
    assert_eq!(
        post(&state, signed(unknown, &k0)).await.0,
        StatusCode::ACCEPTED
    );
    let found = alerts(&state).await;
    let failures = of_rule(&found, "install_failures");
    assert_eq!(failures.len(), 1, "{found:?}");
    assert_eq!(failures[0]["evidence"]["class"], "image-hash");
    assert_eq!(failures[0]["evidence"]["devices"], 2);
    assert_eq!(failures[0]["source"], "report");
    let unknown_version = of_rule(&found, "unknown_version");
    assert_eq!(unknown_version.len(), 2, "{found:?}");
    assert_eq!(unknown_version[0]["evidence"]["reported_version"], 77);

    // Filters and pagination of /v1/alerts.
    let high = get(&state, "/v1/alerts?severity=high&limit=500").await.1;
    assert!(
        high["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["severity"] == "high")
    );
    let mut paged = Vec::new();
    let mut uri = "/v1/alerts?limit=2".to_owned();
    loop {
        let (status, page) = get(&state, &uri).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].clone()),
        );
        match page["next"].as_str() {
            Some(next) => uri = format!("/v1/alerts?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged.len(), found.len());
    for bad in [
        "/v1/alerts?severity=urgent",
        "/v1/alerts?cursor=x",
        "/v1/alerts?limit=501",
    ] {
        assert_eq!(get(&state, bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Every alert reached the webhook (the first attempt was refused and retried).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = delivered.lock().unwrap().len();
        if got == found.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{got} of {} delivered",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: BTreeSet<String> = delivered
        .lock()
        .unwrap()
        .iter()
        .map(|a| a["id"].to_string())
        .collect();
    assert_eq!(ids, found.iter().map(|a| a["id"].to_string()).collect());

    // Metrics moved (the delivery counter moves once the server's answer is read).
    let delivered_metric = "otaledger_indexer_webhook_deliveries_total{result=\"delivered\"}";
    let after = loop {
        let after = scrape(&state).await;
        if metric(&after, delivered_metric) == found.len() as f64 {
            break after;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery counter stuck"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(metric(&after, "otaledger_indexer_events_total") > 0.0);
    assert!(
        metric(&after, "otaledger_indexer_db_write_seconds_count")
            > metric(&before, "otaledger_indexer_db_write_seconds_count")
    );
    assert_eq!(
        metric(&after, "otaledger_indexer_alerts{rule=\"unknown_version\"}"),
        2.0
    );
    assert_eq!(
        metric(
            &after,
            "otaledger_indexer_alerts_raised_total{rule=\"silent_device\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            "otaledger_indexer_reports_total{answer=\"accepted\"}"
        ),
        5.0
    );
    assert_eq!(metric(&after, "otaledger_indexer_head_lag_blocks"), 0.0);
    drop(indexer);
    db.remove().await;
}

async fn normal_traffic_is_silent(kind: Kind) {
    let (chain, mut scenario, db, mut indexer) = setup(kind, AlertConfig::default()).await;
    let state = indexer.api_state(2);
    let (v1, m1) = scenario.releases[0].clone();
    let (v3, _) = scenario.releases[2].clone();
    // Both buyers report v1 installed; one device refuses it (below the threshold).
    for (i, (device, key, _)) in scenario.devices.iter().enumerate() {
        let r = if i == 2 {
            report(
                &chain,
                *device,
                v1,
                m1.version,
                Outcome::Refused,
                "image-hash",
                1,
            )
        } else {
            report(&chain, *device, v1, m1.version, Outcome::Installed, "", 1)
        };
        assert_eq!(post(&state, signed(r, key)).await.0, StatusCode::ACCEPTED);
    }
    // A publish long after the rotation, then another with the same signers.
    mine(&chain, 301).await;
    scenario.publish_next(&chain, &[0, 2]).await.unwrap();
    scenario.publish_next(&chain, &[0, 2]).await.unwrap();
    indexer.sync().await.unwrap();
    // Only the round's emergency revocation (of v3) is an alert.
    let found = alerts(&state).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["rule"], "emergency_revocation");
    assert_eq!(found[0]["evidence"]["release_id"], format!("{v3:#x}"));
    drop(indexer);
    db.remove().await;
}

async fn reorgs_rewind_chain_alerts_not_reports(kind: Kind) {
    let (chain, mut scenario, db, mut indexer) = setup(kind, AlertConfig::default()).await;
    let state = indexer.api_state(2);
    let (v1, m1) = scenario.releases[0].clone();
    let (d0, k0, _) = scenario.devices[0].clone();
    let id = chain.raw("evm_snapshot", json!([])).await.unwrap();
    let lost = scenario.publish_next(&chain, &[0, 2]).await.unwrap();
    indexer.sync().await.unwrap();
    let r = report(&chain, d0, v1, m1.version, Outcome::Installed, "", 1);
    assert_eq!(post(&state, signed(r, &k0)).await.0, StatusCode::ACCEPTED);
    let found = alerts(&state).await;
    assert_eq!(
        of_rule(&found, "rotation_then_publish").len(),
        1,
        "{found:?}"
    );
    assert_eq!(
        of_rule(&found, "rotation_then_publish")[0]["evidence"]["release_id"],
        format!("{lost:#x}")
    );
    assert_eq!(
        chain.raw("evm_revert", json!([id])).await.unwrap(),
        json!(true)
    );
    scenario.touch(&chain, "kept-0").await.unwrap();
    scenario.touch(&chain, "kept-1").await.unwrap();
    let progress = indexer.sync().await.unwrap();
    assert!(progress.reorg_depth >= 1);
    let found = alerts(&state).await;
    assert!(
        of_rule(&found, "rotation_then_publish").is_empty(),
        "{found:?}"
    );
    // Below the ancestor, the emergency revocation's alert stays; the report stays.
    assert_eq!(of_rule(&found, "emergency_revocation").len(), 1);
    let reports = get(&state, "/v1/reports").await.1;
    assert_eq!(reports["items"].as_array().unwrap().len(), 1);
    let samples = scrape(&state).await;
    assert_eq!(metric(&samples, "otaledger_indexer_reorgs_total"), 1.0);
    assert!(
        metric(
            &samples,
            "otaledger_indexer_reorg_depth_blocks{which=\"max\"}"
        ) >= 1.0
    );
    drop(indexer);
    db.remove().await;
}

both_databases! {
    reports_are_checked,
    each_rule_fires,
    normal_traffic_is_silent,
    reorgs_rewind_chain_alerts_not_reports,
}
