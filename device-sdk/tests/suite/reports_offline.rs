//! Install reports while the receivers are unreachable: signed, queued on disk with strictly
//! increasing nonces, and delivered once a receiver (implementing the reports contract: 202,
//! 403 for a foreign signature, 409 for a replayed nonce) is reachable; a later process
//! delivers what an earlier one queued.

use otaledger_core::report::Outcome as ReportOutcome;
use otaledger_device_sdk::client::{HttpReportSink, Outcome, ReportSink, Updater};

use crate::fleet::{Fleet, dead_url};

#[tokio::test]
async fn reports_queued_offline_are_delivered_later_in_order() {
    let f = Fleet::new().await;
    let first = f.publish(1, 20_000).await;
    f.issue(first.release_id, first.release_id);
    let dir = tempfile::tempdir().unwrap();
    let offline = || -> Vec<Box<dyn ReportSink>> {
        vec![Box::new(HttpReportSink::new(&dead_url()).unwrap())]
    };

    let mut parts = f.parts(dir.path());
    parts.sinks = offline();
    let mut updater = Updater::new(parts);
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::Updated { version: 1, .. }
    ));
    let second = f.publish(2, 20_000).await;
    f.issue(second.release_id, second.release_id);
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::Updated { version: 2, .. }
    ));
    let queued = updater.parts().reports.queued().unwrap();
    assert_eq!(
        queued
            .iter()
            .map(|r| (r.report.nonce, r.report.version))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 2)]
    );
    assert!(f.received().0.is_empty());
    drop(updater);

    // A new process, the receiver reachable (after an unreachable one): both delivered, in order.
    let mut parts = f.parts(dir.path());
    let mut sinks = offline();
    sinks.push(Box::new(HttpReportSink::new(&f.reports).unwrap()));
    parts.sinks = sinks;
    let mut updater = Updater::new(parts);
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::UpToDate { version: 2, .. }
    ));
    let (accepted, duplicates) = f.received();
    assert_eq!(
        accepted
            .iter()
            .map(|r| (r.report.nonce, r.report.outcome))
            .collect::<Vec<_>>(),
        vec![(1, ReportOutcome::Installed), (2, ReportOutcome::Installed)]
    );
    assert_eq!(duplicates, 0);
    assert!(updater.parts().reports.queued().unwrap().is_empty());

    // A replay of a delivered report is the receiver's to refuse (409), and the device drops it.
    let replay = accepted[0].to_json();
    let sink = HttpReportSink::new(&f.reports).unwrap();
    assert_eq!(
        sink.post(replay).await.unwrap(),
        otaledger_device_sdk::client::SinkAnswer::Duplicate
    );
    assert_eq!(f.received().1, 1);
}
