//! Review of the trial-boot retry budget (`MAX_TRIAL_BOOTS`): attempts to get a release that
//! never confirms retried forever, a release rolled back for good retried, a tampered
//! `boot.json` accepted in a harmful way, or a cut-short trial left unreported.

use std::{
    io::Write,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use alloy_primitives::B256;
use otaledger_core::report::Outcome as ReportOutcome;
use otaledger_device_sdk::{
    Error, Result,
    client::{
        BootState, CrashPoint, FileInstaller, HealthCheck, Installer, InterruptedTrials,
        MAX_TRIAL_BOOTS, Outcome, Pending, Recovery, Updater,
    },
};

use crate::fleet::Fleet;

struct Passes;

impl HealthCheck for Passes {
    fn check(&self, _: &Path, _: &Pending) -> std::result::Result<(), String> {
        Ok(())
    }
}

struct Fails;

impl HealthCheck for Fails {
    fn check(&self, _: &Path, _: &Pending) -> std::result::Result<(), String> {
        Err("watchdog".into())
    }
}

fn release(n: u8) -> B256 {
    B256::repeat_byte(n)
}

fn write_image(i: &mut FileInstaller, version: u64, release_id: B256) -> Result<()> {
    i.write_inactive(
        version,
        release_id,
        B256::ZERO,
        &mut |out: &mut dyn Write| {
            out.write_all(b"image").unwrap();
            Ok(5)
        },
    )
}

/// Installs `release_id` up to its trial boot and cuts the power there (no recovery yet).
fn cut_trial(dir: &Path, version: u64, release_id: B256) {
    let mut i = FileInstaller::new(dir)
        .unwrap()
        .crash_after(CrashPoint::Switched);
    write_image(&mut i, version, release_id).unwrap();
    i.mark_pending().unwrap();
    assert!(matches!(i.switch(), Err(Error::Crashed { .. })));
}

/// A trial of `release_id` cut short, then the restart's recovery.
fn trial(dir: &Path, version: u64, release_id: B256) -> Recovery {
    cut_trial(dir, version, release_id);
    FileInstaller::new(dir).unwrap().recover().unwrap()
}

fn state(dir: &Path) -> BootState {
    FileInstaller::new(dir).unwrap().state().unwrap()
}

fn rolled_back(trials: u32, retry: bool, release_id: B256) -> Recovery {
    Recovery::RolledBack {
        version: 1,
        release_id,
        trials,
        retry,
    }
}

/// A release that resets the device on every trial boot must get at most `MAX_TRIAL_BOOTS`
/// trials, however many other releases were cut short in between: its count must not be
/// reset by the bounded `interrupted` list dropping it. Here only 16 other releases, each cut
/// short once, are interleaved; the crash-looping release was the second most recently
/// counted one when the list overflowed, yet it is the one dropped (the list drops the
/// first *inserted*, not the least recently counted).
#[test]
fn eviction_from_the_interrupted_list_does_not_reset_a_crash_loop() {
    let dir = tempfile::tempdir().unwrap();
    let looping = release(0xee);
    assert_eq!(trial(dir.path(), 1, looping), rolled_back(1, true, looping));
    for n in 1..=15 {
        trial(dir.path(), 1, release(n));
    }
    assert_eq!(trial(dir.path(), 1, looping), rolled_back(2, true, looping));
    trial(dir.path(), 1, release(16));
    let counted = state(dir.path())
        .interrupted
        .iter()
        .find(|t| t.release_id == looping)
        .map(|t| t.count);
    assert_eq!(
        counted,
        Some(2),
        "the crash-looping release's count was dropped although it was counted after 15 of the others"
    );
    assert_eq!(
        trial(dir.path(), 1, looping),
        rolled_back(MAX_TRIAL_BOOTS, false, looping),
        "a third cut-short trial must roll back for good"
    );
}

/// However the entries are interleaved, the `interrupted` and `rolled_back` lists stay within
/// their bound of 16 and a release is never in `interrupted` with a count at the limit.
#[test]
fn lists_stay_bounded_and_consistent_under_many_releases() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4u8 {
        for n in 0..20u8 {
            let r = trial(dir.path(), 1, release(n));
            let Recovery::RolledBack { trials, retry, .. } = r else {
                panic!("{r:?}");
            };
            assert_eq!(retry, trials < MAX_TRIAL_BOOTS, "{round} {n}");
            let s = state(dir.path());
            assert!(s.interrupted.len() <= 16, "{}", s.interrupted.len());
            assert!(s.rolled_back.len() <= 16, "{}", s.rolled_back.len());
            assert!(s.interrupted.iter().all(|t| t.count < MAX_TRIAL_BOOTS));
            assert!(
                s.interrupted
                    .iter()
                    .all(|t| !s.rolled_back.contains(&t.release_id)),
                "{s:?}"
            );
        }
    }
}

/// A failed health check is a verdict: the release goes to `rolled_back` at once and stays
/// there, even if its earlier cut-short trials are counted and a later attempt is cut short.
#[test]
fn a_health_check_failure_is_never_turned_into_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let r = release(7);
    assert_eq!(trial(dir.path(), 1, r), rolled_back(1, true, r));
    let mut i = FileInstaller::new(dir.path()).unwrap();
    write_image(&mut i, 1, r).unwrap();
    i.mark_pending().unwrap();
    i.switch().unwrap();
    assert!(matches!(i.confirm(&Fails), Err(Error::RolledBack { .. })));
    let s = state(dir.path());
    assert_eq!((s.rolled_back.clone(), s.interrupted), (vec![r], vec![]));

    // Someone installs it anyway (through the Installer API) and that trial is cut short:
    // the recovery must not announce a retry of a release rolled back for good, nor start
    // counting it again in `interrupted`.
    let recovery = trial(dir.path(), 1, r);
    let Recovery::RolledBack { retry, .. } = recovery else {
        panic!("{recovery:?}");
    };
    let s = state(dir.path());
    assert!(s.rolled_back.contains(&r));
    assert!(
        !retry && s.interrupted.iter().all(|t| t.release_id != r),
        "a release rolled back for good is announced as retried: {recovery:?}, {s:?}"
    );
}

/// Tampered counts: `u32::MAX` saturates (no overflow, no wrap to a fresh budget) and rolls
/// back for good; 0 counts as a first trial; duplicates of one release do not give it extra
/// trials beyond the first entry's, and are all forgotten when it gives up.
#[test]
fn tampered_counts_saturate_and_duplicates_do_not_extend_the_budget() {
    let r = release(9);
    let with = |interrupted: Vec<InterruptedTrials>| {
        let dir = tempfile::tempdir().unwrap();
        let s = BootState {
            interrupted,
            ..BootState::default()
        };
        std::fs::write(
            dir.path().join("boot.json"),
            serde_json::to_vec(&s).unwrap(),
        )
        .unwrap();
        dir
    };
    let entry = |count| InterruptedTrials {
        release_id: r,
        count,
    };

    let dir = with(vec![entry(u32::MAX)]);
    assert_eq!(
        trial(dir.path(), 1, r),
        rolled_back(u32::MAX, false, r),
        "u32::MAX saturates"
    );
    let s = state(dir.path());
    assert_eq!((s.rolled_back, s.interrupted), (vec![r], vec![]));

    let dir = with(vec![entry(0)]);
    assert_eq!(trial(dir.path(), 1, r), rolled_back(1, true, r));

    // A count already past the limit (not in rolled_back): the next cut gives up.
    let dir = with(vec![entry(MAX_TRIAL_BOOTS + 5)]);
    let recovery = trial(dir.path(), 1, r);
    assert!(
        matches!(recovery, Recovery::RolledBack { retry: false, .. }),
        "{recovery:?}"
    );

    let dir = with(vec![entry(MAX_TRIAL_BOOTS - 1), entry(0)]);
    assert_eq!(
        trial(dir.path(), 1, r),
        rolled_back(MAX_TRIAL_BOOTS, false, r)
    );
    let s = state(dir.path());
    assert_eq!((s.rolled_back, s.interrupted), (vec![r], vec![]));
}

/// Unknown fields (in the boot state or in an `interrupted` entry) and wrong types are refused
/// as an unreadable state, never a panic and never silently read as "no trials".
#[test]
fn a_boot_file_with_unknown_or_wrong_fields_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let id = format!("{}", release(3));
    for bad in [
        format!(
            r#"{{"active":"a","activeVersion":0,"activeRelease":null,"pending":null,"rolledBack":[],"interrupted":[{{"releaseId":"{id}","count":1,"extra":1}}]}}"#
        ),
        format!(
            r#"{{"active":"a","activeVersion":0,"activeRelease":null,"pending":null,"rolledBack":[],"interrupted":[{{"releaseId":"{id}","count":-1}}]}}"#
        ),
        format!(
            r#"{{"active":"a","activeVersion":0,"activeRelease":null,"pending":null,"rolledBack":[],"interrupted":[{{"releaseId":"{id}","count":4294967296}}]}}"#
        ),
        format!(
            r#"{{"active":"a","activeVersion":0,"activeRelease":null,"pending":null,"rolledBack":[],"interrupted":[{{"releaseId":"{id}"}}]}}"#
        ),
        r#"{"active":"a","activeVersion":0,"activeRelease":null,"pending":null,"rolledBack":[],"interruptedTrials":[]}"#.to_string(),
        r#"{"active":"a","activeVersion":0,"activeRelease":null,"pending":null,"rolledBack":[],"interrupted":null}"#.to_string(),
    ] {
        std::fs::write(dir.path().join("boot.json"), &bad).unwrap();
        let mut i = FileInstaller::new(dir.path()).unwrap();
        assert!(
            matches!(i.state(), Err(Error::InstallState { .. })),
            "read: {bad}"
        );
        assert!(
            matches!(i.recover(), Err(Error::InstallState { .. })),
            "recovered: {bad}"
        );
        // The file is left as it was (not overwritten with a fresh budget).
        assert_eq!(
            std::fs::read_to_string(dir.path().join("boot.json")).unwrap(),
            bad
        );
    }
}

/// A release with cut-short trials that then confirms forgets its count; a different release
/// confirming in between does not touch another release's count.
#[test]
fn confirms_forget_only_their_own_release() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (release(1), release(2));
    trial(dir.path(), 2, x);
    assert_eq!(
        trial(dir.path(), 2, x),
        Recovery::RolledBack {
            version: 2,
            release_id: x,
            trials: 2,
            retry: true
        }
    );
    // Y installs and confirms between X's trials.
    let mut i = FileInstaller::new(dir.path()).unwrap();
    write_image(&mut i, 1, y).unwrap();
    i.mark_pending().unwrap();
    i.switch().unwrap();
    i.confirm(&Passes).unwrap();
    let s = state(dir.path());
    assert_eq!(
        s.interrupted,
        vec![InterruptedTrials {
            release_id: x,
            count: 2
        }]
    );
    // X's third cut-short trial rolls it back for good.
    assert_eq!(
        trial(dir.path(), 2, x),
        Recovery::RolledBack {
            version: 2,
            release_id: x,
            trials: MAX_TRIAL_BOOTS,
            retry: false
        }
    );

    // Z: cut short twice, then confirmed (and the power goes right after the confirm): its
    // count is gone, and a later cut-short trial of it starts from one.
    let z = release(3);
    trial(dir.path(), 3, z);
    trial(dir.path(), 3, z);
    let mut i = FileInstaller::new(dir.path())
        .unwrap()
        .crash_after(CrashPoint::Confirmed);
    write_image(&mut i, 3, z).unwrap();
    i.mark_pending().unwrap();
    i.switch().unwrap();
    assert!(matches!(i.confirm(&Passes), Err(Error::Crashed { .. })));
    assert_eq!(
        FileInstaller::new(dir.path()).unwrap().recover().unwrap(),
        Recovery::Clean
    );
    let s = state(dir.path());
    assert_eq!(s.active_release, Some(z));
    assert!(s.interrupted.iter().all(|t| t.release_id != z), "{s:?}");
    assert_eq!(s.rolled_back, vec![x]);
}

/// A slot on trial is not "a stale install never tried": starting a new install over it
/// without `recover` (an integrator restarting straight into an update) must not erase the
/// cut-short trial, or a release that resets the device while it boots is retried forever.
#[test]
fn a_new_install_over_a_slot_on_trial_does_not_forget_the_trial() {
    let dir = tempfile::tempdir().unwrap();
    let r = release(5);
    for _ in 0..MAX_TRIAL_BOOTS + 2 {
        // Restarted straight into the next attempt, no recover in between.
        cut_trial(dir.path(), 1, r);
    }
    let recovery = FileInstaller::new(dir.path()).unwrap().recover().unwrap();
    let s = state(dir.path());
    assert!(
        s.rolled_back.contains(&r) || matches!(recovery, Recovery::RolledBack { retry: false, .. }),
        "{} trials cut short, still retried: {recovery:?}, {s:?}",
        MAX_TRIAL_BOOTS + 2
    );
}

/// An installer whose first `recover` dies right after it wrote `boot.json` (a power cut
/// between the installer's state and the updater's report queue).
struct DiesAfterRecover {
    inner: FileInstaller,
    died: Arc<AtomicBool>,
}

impl Installer for DiesAfterRecover {
    fn state(&self) -> Result<BootState> {
        self.inner.state()
    }

    fn recover(&mut self) -> Result<Recovery> {
        let recovery = self.inner.recover()?;
        if !self.died.swap(true, Ordering::SeqCst) {
            return Err(Error::InstallState {
                reason: format!("simulated power cut after recovering {recovery:?}"),
            });
        }
        Ok(recovery)
    }

    fn write_inactive(
        &mut self,
        version: u64,
        release_id: B256,
        image_sha256: B256,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<u64>,
    ) -> Result<()> {
        self.inner
            .write_inactive(version, release_id, image_sha256, write)
    }

    fn mark_pending(&mut self) -> Result<()> {
        self.inner.mark_pending()
    }

    fn switch(&mut self) -> Result<()> {
        self.inner.switch()
    }

    fn confirm(&mut self, health: &dyn HealthCheck) -> Result<()> {
        self.inner.confirm(health)
    }
}

/// A power cut right after `recover` wrote the trial's count, before the updater queued its
/// `not-confirmed-N-of-3` report: the count is on disk (the trial is spent) but the report
/// must not be lost (the install path queues its report before the state for this reason).
#[tokio::test]
async fn a_power_cut_between_the_trial_count_and_its_report_keeps_the_report() {
    let f = Fleet::new().await;
    let published = f.publish(1, 20_000).await;
    f.issue(published.release_id, published.release_id);
    let dir = tempfile::tempdir().unwrap();
    let slots = dir.path().join("slots");
    let updater_with = |installer: Box<dyn Installer>| {
        let mut parts = f.parts(dir.path());
        parts.sinks.clear();
        parts.installer = installer;
        Updater::new(parts)
    };

    let err = updater_with(Box::new(
        FileInstaller::new(&slots)
            .unwrap()
            .crash_after(CrashPoint::Switched),
    ))
    .run_once()
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Crashed { .. }), "{err}");

    let err = updater_with(Box::new(DiesAfterRecover {
        inner: FileInstaller::new(&slots).unwrap(),
        died: Arc::new(AtomicBool::new(false)),
    }))
    .run_once()
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InstallState { .. }), "{err}");
    // The trial was counted before the cut.
    assert_eq!(
        state(&slots).interrupted,
        vec![InterruptedTrials {
            release_id: published.release_id,
            count: 1
        }]
    );

    let mut updater = updater_with(Box::new(FileInstaller::new(&slots).unwrap()));
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::Updated { version: 1, .. }
    ));
    let queued: Vec<_> = updater
        .parts()
        .reports
        .queued()
        .unwrap()
        .into_iter()
        .map(|q| (q.report.outcome, q.report.detail))
        .collect();
    assert!(
        queued.contains(&(
            ReportOutcome::RolledBack,
            format!("not-confirmed-1-of-{MAX_TRIAL_BOOTS}")
        )),
        "the cut-short trial's report was lost: {queued:?}"
    );
}
