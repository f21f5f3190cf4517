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
