//! Review of the device's files (issue 14, second engineer): state files tampered with or
//! truncated on disk (a power cut on a filesystem without ordered writes, flash wear, someone
//! with access to the device directory) must make the device fail safe: refuse to go on rather
//! than reset rollback protection, never panic, never install; planted symlinks in the slot
//! directory must not redirect the writes of the installer; the report queue stays bounded.

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use otaledger_core::report::Outcome as ReportOutcome;
use otaledger_device_sdk::{
    Error,
    client::{MAX_QUEUED_REPORTS, Outcome, ReportQueue, Slot},
};

use crate::fleet::Fleet;

/// Queues a refusal of `version` (distinct versions are distinct events).
fn push(queue: &ReportQueue, key: &PrivateKeySigner, version: u64) -> Result<u64, Error> {
    queue
        .push(
            key,
            31337,
            Address::repeat_byte(1),
            7,
            B256::repeat_byte(2),
            version,
            ReportOutcome::Refused,
            "stale-head",
            10,
            1_700_000_000,
        )
        .map(|r| r.report.nonce)
}

#[test]
fn review_the_report_queue_is_bounded_and_nonces_strictly_increase() {
    let dir = tempfile::tempdir().unwrap();
    let queue = ReportQueue::new(dir.path().join("reports.json"));
    let key = PrivateKeySigner::random();
    let total = MAX_QUEUED_REPORTS as u64 + 10;
    for n in 1..=total {
        assert_eq!(push(&queue, &key, n).unwrap(), n);
    }
    let queued = queue.queued().unwrap();
    assert_eq!(queued.len(), MAX_QUEUED_REPORTS, "oldest dropped first");
    let nonces: Vec<u64> = queued.iter().map(|r| r.report.nonce).collect();
    let expected: Vec<u64> = (total - MAX_QUEUED_REPORTS as u64 + 1..=total).collect();
    assert_eq!(nonces, expected);
}

#[test]
fn review_a_report_queue_at_the_last_nonce_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports.json");
    let tampered = format!("{{\"nextNonce\": {}, \"queue\": []}}", u64::MAX);
    std::fs::write(&path, &tampered).unwrap();
    let queue = ReportQueue::new(&path);
    // Not a panic (debug) nor a wrapped nonce 0 the receivers would take as a replay (release).
    let err = push(&queue, &PrivateKeySigner::random(), 1).unwrap_err();
    assert!(matches!(err, Error::ReportQueue { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), tampered);
}

#[tokio::test]
async fn review_truncated_state_files_stop_the_device_before_any_step() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);

    // The boot state cut short: no guess of which slot runs.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("slots")).unwrap();
    std::fs::write(
        dir.path().join("slots/boot.json"),
        b"{\"active\": \"b\", \"act",
    )
    .unwrap();
    let mut updater = f.updater(dir.path());
    let err = updater.run_once().await.unwrap_err();
    assert!(matches!(err, Error::InstallState { .. }), "{err}");
    assert_eq!(err.step(), None, "an error, not a verdict on a release");
    assert!(!dir.path().join("slots/slot-b.img").exists());
    assert!(!dir.path().join("download").exists(), "nothing fetched");

    // The device state cut short: an error, not a reset of the highest block seen to 0.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("state.json"),
        b"{\"installedVersion\": 0, \"highestB",
    )
    .unwrap();
    let mut updater = f.updater(dir.path());
    let err = updater.run_once().await.unwrap_err();
    assert!(matches!(err, Error::StateFile { .. }), "{err}");
    assert!(!dir.path().join("slots/slot-b.img").exists());
    assert!(!dir.path().join("download").exists(), "nothing fetched");

    // A corrupt report queue is not reset (a reset would reuse nonces the receivers refuse)
    // and does not block the update itself.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("reports.json"), b"{\"nextNonce\": 5, ").unwrap();
    let mut updater = f.updater(dir.path());
    let outcome = updater.run_once().await.unwrap();
    assert!(
        matches!(outcome, Outcome::Updated { version: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("reports.json")).unwrap(),
        b"{\"nextNonce\": 5, "
    );
}

#[cfg(unix)]
#[tokio::test]
async fn review_symlinks_planted_in_the_slot_directory_are_not_followed() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let slots = dir.path().join("slots");
    std::fs::create_dir_all(&slots).unwrap();
    // Symlinks at the inactive slot, at its temporary file and at the boot state's temporary
    // file, each to a file the device must never write.
    let mut victims = Vec::new();
    for name in ["slot-b.img", "slot-b.img.partial", "boot.json.partial"] {
        let victim = outside.path().join(format!("victim-{name}"));
        std::fs::write(&victim, b"not the device's").unwrap();
        std::os::unix::fs::symlink(&victim, slots.join(name)).unwrap();
        victims.push(victim);
    }
    // And at the device state's and the report queue's temporary files.
    for name in ["state.json.partial", "reports.json.partial"] {
        let victim = outside.path().join(format!("victim-{name}"));
        std::fs::write(&victim, b"not the device's").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        victims.push(victim);
    }

    let mut updater = f.updater(dir.path());
    let outcome = updater.run_once().await.unwrap();
    assert!(
        matches!(outcome, Outcome::Updated { version: 1, .. }),
        "{outcome:?}"
    );
    for victim in &victims {
        assert!(
            std::fs::read(victim).unwrap() == b"not the device's",
            "{} was written through a symlink",
            victim.display()
        );
    }
    let slot = slots.join("slot-b.img");
    assert!(
        !std::fs::symlink_metadata(&slot)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&slot).unwrap(), release.image);
    let boot = updater.parts().installer.state().unwrap();
    assert_eq!((boot.active, boot.active_version), (Slot::B, 1));
    nothing_installed_elsewhere(dir.path());
}

/// No temporary file or symlink is left in the slot directory after a successful install.
fn nothing_installed_elsewhere(dir: &std::path::Path) {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("slots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["boot.json", "slot-b.img"]);
}

#[tokio::test]
async fn review_downloads_left_by_a_power_cut_do_not_pile_up() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    // What a power cut in the middle of step 6 leaves (the verified fetch's temporary file),
    // three times over, and a whole bundle a crash left before it was removed.
    let download = dir.path().join("download");
    std::fs::create_dir_all(&download).unwrap();
    let id = format!("{:x}", release.release_id);
    for n in 0..3 {
        std::fs::write(
            download.join(format!(".bundle-{id}.bin.cut{n}.part")),
            vec![0u8; 1 << 20],
        )
        .unwrap();
    }
    std::fs::write(download.join(format!("bundle-{id}.bin")), b"stale").unwrap();
    let mut updater = f.updater(dir.path());
    let outcome = updater.run_once().await.unwrap();
    assert!(
        matches!(outcome, Outcome::Updated { version: 1, .. }),
        "{outcome:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&download)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Two updaters on one device directory (a periodic `device run` and an operator's `--once`):
/// the second's recovery would roll back the first's slot on trial as "interrupted", or its
/// write overwrite the slot the first is about to boot, and both would sign reports with the
/// same nonce. The second refuses to start while the first holds the directory.
#[tokio::test]
async fn review_a_second_updater_on_the_same_directory_refuses_to_start() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    // The first updater's hold (`<work_dir>.lock`), as another process takes it.
    let held = std::fs::File::create(dir.path().join("download.lock")).unwrap();
    held.lock().unwrap();
    let mut second = f.updater(dir.path());
    let err = second.run_once().await.unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert_eq!(err.step(), None);
    assert!(!dir.path().join("slots/slot-b.img").exists());
    assert!(
        !dir.path().join("reports.json").exists(),
        "no report signed"
    );
    // Released: the update runs.
    drop(held);
    let outcome = second.run_once().await.unwrap();
    assert!(
        matches!(outcome, Outcome::Updated { version: 1, .. }),
        "{outcome:?}"
    );
}
