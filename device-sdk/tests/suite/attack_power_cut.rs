//! Attack (or accident): a power cut between any two install steps, simulated with the
//! installer's crash points (each step's state is on disk before the next starts), then a
//! restart with a new updater over the same directory. A slot written or pending but never
//! tried is discarded and the update redone; a slot booted on trial that never confirmed is
//! rolled back, reported, and tried again, until `MAX_TRIAL_BOOTS` trials were cut short (then
//! not retried); a confirmed slot whose state file was not written yet is recorded and
//! reported. A new image failing its health check is rolled back at once.

use std::path::Path;

use otaledger_core::report::Outcome as ReportOutcome;
use otaledger_device_sdk::{
    Error,
    client::{
        CrashPoint, FileInstaller, HealthCheck, MAX_TRIAL_BOOTS, Outcome, Pending, Slot, Updater,
    },
};

use crate::fleet::{Fleet, Published};

fn crashing(f: &Fleet, dir: &Path, point: CrashPoint) -> Updater {
    let mut parts = f.parts(dir);
    parts.installer = Box::new(
        FileInstaller::new(dir.join("slots"))
            .unwrap()
            .crash_after(point),
    );
    Updater::new(parts)
}

/// An updater over `dir` that keeps its reports queued (no receiver: the fleet's receiver
/// refuses a new directory's nonces once another directory reported), crashing after `point`.
fn keeping_reports(f: &Fleet, dir: &Path, point: Option<CrashPoint>) -> Updater {
    let mut parts = f.parts(dir);
    parts.sinks.clear();
    if let Some(point) = point {
        parts.installer = Box::new(
            FileInstaller::new(dir.join("slots"))
                .unwrap()
                .crash_after(point),
        );
    }
    Updater::new(parts)
}

fn assert_runs(dir: &Path, release: &Published, slot: Slot, version: u64) {
    let boot = FileInstaller::new(dir.join("slots")).unwrap();
    let boot = otaledger_device_sdk::client::Installer::state(&boot).unwrap();
    assert_eq!(
        (boot.active, boot.active_version, boot.pending),
        (slot, version, None)
    );
    if version == 1 {
        assert_eq!(
            std::fs::read(dir.join("slots/slot-b.img")).unwrap(),
            release.image
        );
    }
}

#[tokio::test]
async fn a_power_cut_between_any_two_install_steps_recovers() {
    let f = Fleet::new().await;
    let release = f.publish(1, 100_000).await;
    f.issue(release.release_id, release.release_id);

    for point in [CrashPoint::Written, CrashPoint::Pending] {
        let dir = tempfile::tempdir().unwrap();
        let err = crashing(&f, dir.path(), point)
            .run_once()
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Crashed { point: p } if p == point),
            "{err}"
        );
        // The old slot still runs; the interrupted install is on disk.
        let boot = otaledger_device_sdk::client::Installer::state(
            &FileInstaller::new(dir.path().join("slots")).unwrap(),
        )
        .unwrap();
        assert_eq!((boot.active, boot.active_version), (Slot::A, 0));
        assert!(boot.pending.is_some());
        // Restart: the untried slot is discarded and the update redone.
        let mut updater = f.updater(dir.path());
        assert!(matches!(
            updater.run_once().await.unwrap(),
            Outcome::Updated { version: 1, .. }
        ));
        assert_runs(dir.path(), &release, Slot::B, 1);
        assert_eq!(updater.parts().client.state().unwrap().installed_version, 1);
    }

    // Booted on trial, never confirmed: rolled back at restart, reported, and tried again (a
    // power cut is no verdict on the image); the retry installs it.
    let trial = |n: u32| {
        (
            ReportOutcome::RolledBack,
            format!("not-confirmed-{n}-of-{MAX_TRIAL_BOOTS}"),
        )
    };
    let queued = |updater: &Updater| {
        updater
            .parts()
            .reports
            .queued()
            .unwrap()
            .into_iter()
            .map(|q| (q.report.outcome, q.report.detail))
            .collect::<Vec<_>>()
    };
    let cut_trial = |dir: std::path::PathBuf| {
        let mut updater = keeping_reports(&f, &dir, Some(CrashPoint::Switched));
        async move {
            let err = updater.run_once().await.unwrap_err();
            assert!(matches!(err, Error::Crashed { .. }), "{err}");
        }
    };
    let dir = tempfile::tempdir().unwrap();
    cut_trial(dir.path().to_owned()).await;
    let mut updater = keeping_reports(&f, dir.path(), None);
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::Updated { version: 1, .. }
    ));
    assert_runs(dir.path(), &release, Slot::B, 1);
    assert_eq!(
        queued(&updater),
        [trial(1), (ReportOutcome::Installed, String::new())]
    );

    // Every trial cut short, MAX_TRIAL_BOOTS times (an image that resets the device while it
    // boots looks like this): rolled back for good, each reported, then not retried.
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..MAX_TRIAL_BOOTS {
        cut_trial(dir.path().to_owned()).await;
    }
    let mut updater = keeping_reports(&f, dir.path(), None);
    let err = updater.run_once().await.unwrap_err();
    assert!(matches!(err, Error::RolledBack { version: 1, .. }), "{err}");
    assert_runs(dir.path(), &release, Slot::A, 0);
    assert_eq!(updater.parts().client.state().unwrap().installed_version, 0);
    let boot = otaledger_device_sdk::client::Installer::state(
        &FileInstaller::new(dir.path().join("slots")).unwrap(),
    )
    .unwrap();
    assert_eq!(boot.rolled_back, vec![release.release_id]);
    let expected: Vec<_> = (1..=MAX_TRIAL_BOOTS).map(trial).collect();
    assert_eq!(queued(&updater), expected);
    // And a further run still does not retry it.
    let err = updater.run_once().await.unwrap_err();
    assert!(err.to_string().contains("not retried"), "{err}");

    // Confirmed, then the power went before the state file and the report: recorded at restart.
    let dir = tempfile::tempdir().unwrap();
    let err = crashing(&f, dir.path(), CrashPoint::Confirmed)
        .run_once()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Crashed { .. }), "{err}");
    let mut updater = f.updater(dir.path());
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::UpToDate { version: 1, .. }
    ));
    assert_runs(dir.path(), &release, Slot::B, 1);
    let queued = updater.parts().reports.queued().unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].report.outcome, ReportOutcome::Installed);
}

struct Watchdog;

impl HealthCheck for Watchdog {
    fn check(&self, _: &Path, _: &Pending) -> Result<(), String> {
        Err("application did not start".into())
    }
}

#[tokio::test]
async fn an_image_failing_its_health_check_is_rolled_back_and_reported() {
    let f = Fleet::new().await;
    let release = f.publish(1, 30_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.health = Box::new(Watchdog);
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    assert!(matches!(err, Error::RolledBack { version: 1, .. }), "{err}");
    assert_eq!(err.step(), Some(8));
    assert_runs(dir.path(), &release, Slot::A, 0);
    let queued = updater.parts().reports.queued().unwrap();
    assert_eq!(queued[0].report.outcome, ReportOutcome::RolledBack);
    // Not retried in a loop.
    let err = updater.run_once().await.unwrap_err();
    assert!(matches!(err, Error::RolledBack { .. }), "{err}");
    assert_eq!(updater.parts().reports.queued().unwrap().len(), 1);
}

/// The state file is written, then the power goes (the store "fails" after writing): the window
/// between recording the installed version and queueing the report.
struct DiesAfterRecordingInstalled(otaledger_device_sdk::client::FileStorage);

impl otaledger_device_sdk::client::Storage for DiesAfterRecordingInstalled {
    fn load(&self) -> otaledger_device_sdk::Result<otaledger_device_sdk::DeviceState> {
        self.0.load()
    }

    fn store(&self, state: &otaledger_device_sdk::DeviceState) -> otaledger_device_sdk::Result<()> {
        self.0.store(state)?;
        if state.installed_version > 0 {
            return Err(Error::InstallState {
                reason: "simulated power cut right after the state file".into(),
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_power_cut_right_after_the_state_file_keeps_the_install_report() {
    let f = Fleet::new().await;
    let release = f.publish(1, 30_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    let mut limits =
        otaledger_device_sdk::Limits::new(otaledger_device_sdk::Quorum::majority(1).unwrap());
    limits.confirmations = crate::common::CONFIRMATIONS;
    parts.client = otaledger_device_sdk::client::Client::new(
        f.w.config(f.w.devices[0]),
        limits,
        vec![Box::new(f.w.honest())],
        Box::new(otaledger_device_sdk::client::SystemClock),
        Box::new(DiesAfterRecordingInstalled(
            otaledger_device_sdk::client::FileStorage::new(dir.path().join("state.json")),
        )),
    )
    .unwrap();
    let err = Updater::new(parts).run_once().await.unwrap_err();
    assert!(matches!(err, Error::InstallState { .. }), "{err}");
    // Restart: installed, and its report queued exactly once (it was lost before the fix).
    let mut updater = f.updater(dir.path());
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::UpToDate { version: 1, .. }
    ));
    assert_runs(dir.path(), &release, Slot::B, 1);
    let queued = updater.parts().reports.queued().unwrap();
    assert_eq!(
        queued
            .iter()
            .filter(|r| r.report.outcome == ReportOutcome::Installed)
            .count(),
        1,
        "{queued:?}"
    );
}
