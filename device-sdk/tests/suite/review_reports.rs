//! Review of step 9 (issue 14, second engineer): only the receivers' contract answer `202`
//! means "stored". A `200` from something that is not an indexer (a captive portal, a proxy's
//! error page, a misconfigured URL answering every request) must not make the device drop its
//! signed reports as delivered.

use axum::{Router, routing::any};
use otaledger_device_sdk::client::{HttpReportSink, ReportQueue, ReportSink, SinkAnswer};

use crate::fleet::serve;

#[tokio::test]
async fn review_a_200_from_something_that_is_not_an_indexer_keeps_the_report() {
    let portal = serve(Router::new().fallback(any(|| async {
        "<html>Please log in to the hotel Wi-Fi</html>"
    })))
    .await;
    let sink = HttpReportSink::new(&portal).unwrap();
    assert_eq!(
        sink.post("{}".into()).await.unwrap(),
        SinkAnswer::Retry(200)
    );

    let dir = tempfile::tempdir().unwrap();
    let queue = ReportQueue::new(dir.path().join("reports.json"));
    let key = alloy::signers::local::PrivateKeySigner::random();
    queue
        .push(
            &key,
            31337,
            alloy::primitives::Address::repeat_byte(1),
            7,
            alloy::primitives::B256::repeat_byte(2),
            1,
            otaledger_core::report::Outcome::Installed,
            "",
            10,
            1_700_000_000,
        )
        .unwrap();
    let sinks: Vec<Box<dyn ReportSink>> = vec![Box::new(sink)];
    let round = queue.deliver(&sinks).await.unwrap();
    assert_eq!((round.delivered, round.queued), (0, 1));
    assert_eq!(
        queue.queued().unwrap().len(),
        1,
        "still queued for a real receiver"
    );
}

/// An attacker who keeps the receivers unreachable and makes every check refuse (here a key
/// service answering garbage, as a network attacker can) must not flush the evidence already
/// queued (the install of version 1) out of the bounded queue with one repeated refusal.
#[tokio::test]
async fn review_a_repeated_refusal_does_not_flush_earlier_reports_from_the_queue() {
    use otaledger_core::report::Outcome as ReportOutcome;
    use otaledger_device_sdk::client::{MAX_QUEUED_REPORTS, Outcome, Updater};

    let f = crate::fleet::Fleet::new().await;
    let first = f.publish(1, 20_000).await;
    f.issue(first.release_id, first.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut updater = f.updater(dir.path());
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::Updated { version: 1, .. }
    ));
    drop(updater);
    let second = f.publish(2, 20_000).await;
    f.issue(second.release_id, second.release_id);
    let mut parts = f.parts(dir.path());
    parts.key_services = vec![Box::new(crate::review_keys::Garbage)];
    let mut updater = Updater::new(parts);
    for _ in 0..MAX_QUEUED_REPORTS + 4 {
        let err = updater.run_once().await.unwrap_err();
        assert_eq!(err.step(), Some(5), "{err}");
    }
    let queued = updater.parts().reports.queued().unwrap();
    let kept: Vec<_> = queued
        .iter()
        .map(|r| (r.report.version, r.report.outcome))
        .collect();
    assert_eq!(
        kept,
        vec![(1, ReportOutcome::Installed), (2, ReportOutcome::Refused)],
        "one report per distinct event, the latest occurrence kept"
    );
    // The kept refusal is the latest one: nonces still strictly increase.
    assert!(queued[1].report.nonce > MAX_QUEUED_REPORTS as u64);
}

/// A receiver that fails its first request (a timeout, a 503 during a restart) and then accepts,
/// recording the nonces it stored, refusing (409) any nonce not above the highest as the
/// indexer does.
#[derive(Default)]
struct Flaky {
    calls: std::sync::Mutex<Vec<u64>>,
    stored: std::sync::Mutex<Vec<u64>>,
}

/// The sink the device holds; the test keeps the other handle.
struct Shared(std::sync::Arc<Flaky>);

impl ReportSink for Shared {
    fn post(&self, json: String) -> otaledger_device_sdk::client::RpcFuture<'_, SinkAnswer> {
        Box::pin(async move {
            let nonce = otaledger_core::report::SignedReport::from_json(json.as_bytes())
                .unwrap()
                .report
                .nonce;
            let first = {
                let mut calls = self.0.calls.lock().unwrap();
                calls.push(nonce);
                calls.len() == 1
            };
            if first {
                return Err("timed out".into());
            }
            let mut stored = self.0.stored.lock().unwrap();
            if stored.last().is_some_and(|&h| nonce <= h) {
                return Ok(SinkAnswer::Duplicate);
            }
            stored.push(nonce);
            Ok(SinkAnswer::Accepted)
        })
    }
}

/// A receiver that failed a report is not sent the later ones in the same round: it would
/// store them, then answer 409 to the earlier one, which the device drops as "already stored"
/// (a report lost), and an unreachable receiver would cost one timeout per queued report.
#[tokio::test]
async fn review_a_receiver_that_failed_gets_no_later_report_in_the_same_round() {
    let dir = tempfile::tempdir().unwrap();
    let queue = ReportQueue::new(dir.path().join("reports.json"));
    let key = alloy::signers::local::PrivateKeySigner::random();
    for version in 1..=3 {
        queue
            .push(
                &key,
                31337,
                alloy::primitives::Address::repeat_byte(1),
                7,
                alloy::primitives::B256::repeat_byte(2),
                version,
                otaledger_core::report::Outcome::Refused,
                "stale-head",
                10,
                1_700_000_000,
            )
            .unwrap();
    }
    let flaky = std::sync::Arc::new(Flaky::default());
    let sinks: Vec<Box<dyn ReportSink>> = vec![Box::new(Shared(flaky.clone()))];
    let round = queue.deliver(&sinks).await.unwrap();
    assert_eq!(
        *flaky.calls.lock().unwrap(),
        [1],
        "one failure ends the round"
    );
    assert_eq!((round.delivered, round.queued), (0, 3));
    let round = queue.deliver(&sinks).await.unwrap();
    assert_eq!((round.delivered, round.queued), (3, 0));
    assert_eq!(
        *flaky.stored.lock().unwrap(),
        [1, 2, 3],
        "all stored, in order"
    );
}
