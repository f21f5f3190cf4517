//! The honest path of a whole update (steps 1–9) against a real anvil, the real contracts, the
//! real gateway and a key service and report receiver implementing their contracts: an update
//! is verified, decrypted, installed A/B, confirmed and reported; then "up to date" is proven;
//! "not entitled yet" while the key is not issued.

use otaledger_core::report::Outcome as ReportOutcome;
use otaledger_device_sdk::client::{HttpReportSink, Outcome, Slot, Updater};

use crate::fleet::{Fleet, nothing_installed};

#[tokio::test]
async fn a_device_updates_itself_then_is_proven_up_to_date() {
    let f = Fleet::new().await;
    let release = f.publish(1, 300_000).await;
    let dir = tempfile::tempdir().unwrap();

    // Published and paid, but the key service has not issued the key yet: not entitled yet.
    let mut parts = f.parts(dir.path());
    parts.sinks = vec![Box::new(HttpReportSink::new(&f.reports).unwrap())];
    let mut updater = Updater::new(parts);
    let outcome = updater.run_once().await.unwrap();
    assert_eq!(
        outcome,
        Outcome::NotEntitled {
            version: 1,
            release_id: release.release_id
        }
    );
    nothing_installed(dir.path(), &updater, 0);

    f.issue(release.release_id, release.release_id);
    let Outcome::Updated {
        version,
        release_id,
        block,
    } = updater.run_once().await.unwrap()
    else {
        panic!("expected an update");
    };
    assert_eq!((version, release_id), (1, release.release_id));
    let p = updater.parts();
    let boot = p.installer.state().unwrap();
    assert_eq!(
        (boot.active, boot.active_version, boot.pending.clone()),
        (Slot::B, 1, None)
    );
    assert_eq!(
        std::fs::read(dir.path().join("slots/slot-b.img")).unwrap(),
        release.image
    );
    let state = p.client.state().unwrap();
    assert_eq!(state.installed_version, 1);
    assert!(state.highest_block >= block);

    // The signed report reached the receiver (signature checked there), nonce 1.
    let (accepted, _) = f.received();
    assert_eq!(accepted.len(), 1);
    let r = &accepted[0].report;
    assert_eq!(
        (r.outcome, r.version, r.release_id, r.nonce, r.device_index),
        (
            ReportOutcome::Installed,
            1,
            release.release_id,
            1,
            f.w.devices[0]
        )
    );
    assert!(p.reports.queued().unwrap().is_empty());

    // Nothing newer: a proven "up to date", nothing changed.
    f.w.settle().await;
    let outcome = updater.run_once().await.unwrap();
    assert!(
        matches!(outcome, Outcome::UpToDate { version: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(updater.parts().installer.state().unwrap(), boot);

    // Version 2 installs into the other slot.
    let second = f.publish(2, 70_000).await;
    f.issue(second.release_id, second.release_id);
    let outcome = updater.run_once().await.unwrap();
    assert!(
        matches!(outcome, Outcome::Updated { version: 2, .. }),
        "{outcome:?}"
    );
    let boot = updater.parts().installer.state().unwrap();
    assert_eq!((boot.active, boot.active_version), (Slot::A, 2));
    assert_eq!(
        std::fs::read(dir.path().join("slots/slot-a.img")).unwrap(),
        second.image
    );
    let (accepted, _) = f.received();
    assert_eq!(
        accepted.iter().map(|a| a.report.nonce).collect::<Vec<_>>(),
        vec![1, 2],
        "nonces strictly increase"
    );
}
