//! Unavailable leaf lists and pins back off exponentially up to a cap (each
//! test on SQLite and PostgreSQL), against a real HTTP gateway that fails
//! (503) until the test lets it serve: while a row backs off, a round asks the
//! gateway nothing; each failure doubles the wait up to the cap; `/metrics`
//! shows how many rows wait and the longest wait; once the gateway serves and
//! the wait is over, the list is verified and the CID pinned.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use axum::{
    body::Body,
    http::{Request, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use common::{Kind, TestDb, config};
use http_body_util::BodyExt;
use otaledger_core::{
    bindings::registry::UpdateRegistry,
    key_delivery::identity_public_key,
    leaves::{LeafEntry, leaves_root},
    test_support::{Chain, Scenario},
};
use otaledger_indexer::{
    Indexer,
    api::app,
    backoff::Backoff,
    leaves::{LeafSource, check_pending},
    pins::{self, PinTarget, pin_pending},
};
use otaledger_ipfs::{Blockstore, ImportOptions, Profile, import_path};
use sqlx::Row as _;
use tower::ServiceExt as _;

const FIRST: Duration = Duration::from_millis(300);
const CAP: Duration = Duration::from_millis(600);

/// A gateway over `store` that answers 503 until `serving` is set, counting
/// the requests it got.
async fn flaky_gateway(store: Blockstore) -> (String, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let serving = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let (s, r) = (serving.clone(), requests.clone());
    let app = otaledger_ipfs::router(store).layer(middleware::from_fn(
        move |request: Request<Body>, next: Next| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                if s.load(Ordering::SeqCst) {
                    next.run(request).await
                } else {
                    Response::from(StatusCode::SERVICE_UNAVAILABLE.into_response())
                }
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    (url, serving, requests)
}

/// (status, attempts, next_attempt_at) of the batch leaf list row of `cid`.
async fn leaf_row(indexer: &Indexer, cid: &str) -> (String, i64, i64) {
    let r = sqlx::query(
        "SELECT status, attempts, next_attempt_at FROM batch_leaves WHERE leaves_cid = $1",
    )
    .bind(cid.to_owned())
    .fetch_one(indexer.pool())
    .await
    .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

async fn pin_row(indexer: &Indexer, cid: &str) -> (String, i64, i64) {
    let r = sqlx::query("SELECT status, attempts, next_attempt_at FROM pins WHERE cid = $1")
        .bind(cid.to_owned())
        .fetch_one(indexer.pool())
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `/metrics` samples of the backoff gauges: (waiting, seconds) for `kind`.
async fn backoff_metrics(indexer: &Indexer, kind: &str) -> (f64, f64) {
    let response = app(indexer.api_state(u64::MAX))
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let sample = |name: &str| -> f64 {
        let prefix = format!("{name}{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
            .parse()
            .unwrap()
    };
    (
        sample("otaledger_indexer_ipfs_backoff_waiting"),
        sample("otaledger_indexer_ipfs_backoff_seconds"),
    )
}

/// One leaf list round and one pin round; returns the wait each stored
/// (next_attempt_at minus the time around the call: (low, high) bounds in ms).
async fn failing_round(
    indexer: &Indexer,
    source: &LeafSource,
    target: &PinTarget,
    backoff: &Backoff,
    cid: &str,
) -> ((i64, i64), (i64, i64)) {
    let before = now_ms();
    check_pending(indexer.pool(), source, backoff)
        .await
        .unwrap();
    pin_pending(indexer.pool(), target, backoff).await.unwrap();
    let after = now_ms();
    let (status, _, leaf_next) = leaf_row(indexer, cid).await;
    assert_eq!(status, "unavailable");
    let (status, _, pin_next) = pin_row(indexer, cid).await;
    assert_eq!(status, "unavailable");
    (
        (leaf_next - after, leaf_next - before),
        (pin_next - after, pin_next - before),
    )
}

async fn unavailable_lists_back_off_then_recover(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let scenario = Scenario::register(&chain).await.unwrap();
    // A true leaf list, in the gateway's store only.
    let store_dir = tempfile::tempdir().unwrap();
    let mut store = Blockstore::open(store_dir.path()).unwrap();
    let leaves: Vec<LeafEntry> = (0..3)
        .map(|i| {
            let key = PrivateKeySigner::random();
            LeafEntry {
                position: i,
                device: key.address(),
                model_id: 1,
                public_key: identity_public_key(&key).into(),
            }
        })
        .collect();
    let file = tempfile::tempdir().unwrap();
    let path = file.path().join("leaves.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&leaves).unwrap()).unwrap();
    let cid = import_path(
        &path,
        &ImportOptions::profile(Profile::KuboV1),
        &mut store,
        &mut |_| {},
    )
    .unwrap()
    .root
    .to_string();
    UpdateRegistry::new(chain.deployment.registry, &chain.provider)
        .provisionDevices(
            scenario.manufacturer,
            leaves_root(&leaves).unwrap(),
            3,
            cid.clone(),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let (gateway, serving, requests) = flaky_gateway(store).await;

    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    indexer.sync().await.unwrap();
    let source = LeafSource {
        store: None,
        gateways: vec![gateway.parse().unwrap()],
    };
    let pinned_dir = tempfile::tempdir().unwrap();
    let target = PinTarget::Store {
        dir: pinned_dir.path().to_path_buf(),
        gateways: vec![gateway.parse().unwrap()],
    };
    let backoff = Backoff {
        first: FIRST,
        cap: CAP,
    };
    let (first, cap) = (FIRST.as_millis() as i64, CAP.as_millis() as i64);

    // First failure: unavailable, the next try `first` later.
    let (leaf, pin) = failing_round(&indexer, &source, &target, &backoff, &cid).await;
    for (low, high) in [leaf, pin] {
        assert!(low <= first && first <= high, "{low}..{high} ms");
    }
    assert!(requests.load(Ordering::SeqCst) > 0);
    // Visible in /metrics while it waits.
    for kind in ["leaves", "pins"] {
        let (waiting, seconds) = backoff_metrics(&indexer, kind).await;
        assert_eq!(waiting, 1.0, "{kind}");
        assert!(
            seconds > 0.0 && seconds <= FIRST.as_secs_f64(),
            "{kind}: {seconds}"
        );
    }
    // Within the wait, a round asks the gateway nothing and records nothing.
    let asked = requests.load(Ordering::SeqCst);
    assert_eq!(
        check_pending(indexer.pool(), &source, &backoff)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        pin_pending(indexer.pool(), &target, &backoff)
            .await
            .unwrap(),
        0
    );
    assert_eq!(requests.load(Ordering::SeqCst), asked);
    assert_eq!(leaf_row(&indexer, &cid).await.1, 1);
    assert_eq!(pin_row(&indexer, &cid).await.1, 1);

    // Second failure after the wait: the wait doubles (to the cap here) ...
    tokio::time::sleep(FIRST + Duration::from_millis(100)).await;
    let (leaf, pin) = failing_round(&indexer, &source, &target, &backoff, &cid).await;
    for (low, high) in [leaf, pin] {
        assert!(low <= 2 * first && 2 * first <= high, "{low}..{high} ms");
    }
    // ... and a third stays at the cap.
    tokio::time::sleep(CAP + Duration::from_millis(100)).await;
    let (leaf, pin) = failing_round(&indexer, &source, &target, &backoff, &cid).await;
    for (low, high) in [leaf, pin] {
        assert!(low <= cap && cap <= high, "{low}..{high} ms");
    }
    assert_eq!(leaf_row(&indexer, &cid).await.1, 3);

    // The gateway serves again: after the wait, verified and pinned.
    serving.store(true, Ordering::SeqCst);
    tokio::time::sleep(CAP + Duration::from_millis(100)).await;
    check_pending(indexer.pool(), &source, &backoff)
        .await
        .unwrap();
    pin_pending(indexer.pool(), &target, &backoff)
        .await
        .unwrap();
    assert_eq!(leaf_row(&indexer, &cid).await.0, "verified");
    assert_eq!(
        pins::status(indexer.pool(), &cid)
            .await
            .unwrap()
            .unwrap()
            .status,
        "pinned"
    );
    for kind in ["leaves", "pins"] {
        assert_eq!(backoff_metrics(&indexer, kind).await, (0.0, 0.0), "{kind}");
    }
    drop(indexer);
    db.remove().await;
}

both_databases! {
    unavailable_lists_back_off_then_recover,
}
