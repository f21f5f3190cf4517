//! Step 8, install: an [`Installer`] trait and [`FileInstaller`], a file-backed A/B reference
//! implementation of what a bootloader with two slots does.
//!
//! The install runs in four steps, each ending with the boot state written atomically
//! (temporary file, fsync, rename, fsync of the directory), so a power cut between any two steps
//! leaves either the old or the new state, never a torn one:
//!
//! 1. [`Installer::write_inactive`]: the verified image goes to the inactive slot (through a
//!    temporary file renamed into place only if the writer succeeded, i.e. only if every check
//!    of step 7 passed); the boot state records it as [`Phase::Written`];
//! 2. [`Installer::mark_pending`]: [`Phase::Pending`], the slot is to be tried;
//! 3. [`Installer::switch`]: [`Phase::Trying`], the device boots the new slot on trial;
//! 4. [`Installer::confirm`]: a [`HealthCheck`] of the running image; if it passes the new slot
//!    becomes the active one, otherwise the old slot stays active ([`Error::RolledBack`]).
//!
//! At start, [`Installer::recover`] finishes what a power cut interrupted: a slot written or
//! pending but never tried is discarded (the next check downloads again); a slot on trial that
//! never confirmed is rolled back, as a bootloader's boot counter does. A cut-short trial is not
//! evidence against the image (the power may simply have gone), so the release is tried again,
//! up to [`MAX_TRIAL_BOOTS`] trials in all; but an image that resets the device while it boots
//! looks exactly like a power cut, so after the last one the release is remembered as rolled
//! back and not retried, as one that failed its health check is at once.

use std::{
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
};

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Most rolled-back releases remembered (oldest forgotten first), and most releases with
/// interrupted trials.
const MAX_REMEMBERED_ROLLBACKS: usize = 16;

/// Trial boots a release gets when each is cut short before its health verdict (a bootloader's
/// boot limit): after this many it is rolled back for good.
pub const MAX_TRIAL_BOOTS: u32 = 3;

/// One of the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Self {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Slot::A => "slot-a.img",
            Slot::B => "slot-b.img",
        }
    }
}

/// How far an install got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The image is in the inactive slot.
    Written,
    /// The slot is marked to be tried.
    Pending,
    /// The device booted the slot on trial; it has not confirmed.
    Trying,
}

/// An install in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pending {
    /// The slot being installed.
    pub slot: Slot,
    /// The release's version.
    pub version: u64,
    /// The release.
    pub release_id: B256,
    /// The image's SHA-256 (the manifest's `imageSha256`, already verified in step 7).
    pub image_sha256: B256,
    /// How far it got.
    pub phase: Phase,
}

/// A release whose trial boots were cut short before a verdict, and how many times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterruptedTrials {
    /// The release.
    pub release_id: B256,
    /// Trials cut short so far (below [`MAX_TRIAL_BOOTS`]).
    pub count: u32,
}

/// The boot state (`boot.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootState {
    /// The slot the device runs.
    pub active: Slot,
    /// The version in the active slot (0: the factory image).
    pub active_version: u64,
    /// The release in the active slot (none for the factory image).
    pub active_release: Option<B256>,
    /// An install in progress.
    pub pending: Option<Pending>,
    /// Releases rolled back for good (failed their health check, or ran out of trial boots):
    /// not retried.
    pub rolled_back: Vec<B256>,
    /// Releases whose trials were cut short, to be tried again (absent in a `boot.json` from
    /// before the trial budget: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interrupted: Vec<InterruptedTrials>,
}

impl BootState {
    /// What [`Installer::recover`] does to this state, without doing it: the updater queues
    /// the matching report before the installer records the rollback, so a power cut between
    /// the two never loses it.
    pub fn recovery(&self) -> Recovery {
        let Some(p) = &self.pending else {
            return Recovery::Clean;
        };
        match p.phase {
            Phase::Written | Phase::Pending => Recovery::Discarded { version: p.version },
            Phase::Trying => {
                // A release rolled back for good (installed anyway through the API) is not
                // counted again, and never retried.
                let trials = if self.rolled_back.contains(&p.release_id) {
                    MAX_TRIAL_BOOTS
                } else {
                    self.interrupted
                        .iter()
                        .find(|t| t.release_id == p.release_id)
                        .map_or(0, |t| t.count)
                        .saturating_add(1)
                };
                Recovery::RolledBack {
                    version: p.version,
                    release_id: p.release_id,
                    trials,
                    retry: trials < MAX_TRIAL_BOOTS,
                }
            }
        }
    }

    /// Applies [`BootState::recovery`]: the pending install is dropped and a trial cut short is
    /// counted (the release rolled back for good at the limit).
    fn recover(&mut self) -> Recovery {
        let recovery = self.recovery();
        if let Recovery::RolledBack {
            release_id,
            trials,
            retry,
            ..
        } = recovery
        {
            // Counted last: the least recently counted release is the one a full list forgets
            // (a release cut short again keeps its count).
            self.interrupted.retain(|t| t.release_id != release_id);
            if retry {
                self.interrupted.push(InterruptedTrials {
                    release_id,
                    count: trials,
                });
                let excess = self
                    .interrupted
                    .len()
                    .saturating_sub(MAX_REMEMBERED_ROLLBACKS);
                self.interrupted.drain(..excess);
            } else {
                self.give_up(release_id);
            }
        }
        self.pending = None;
        recovery
    }

    /// Rolls `release` back for good: remembered in `rolled_back`, forgotten in `interrupted`.
    fn give_up(&mut self, release: B256) {
        self.interrupted.retain(|t| t.release_id != release);
        if !self.rolled_back.contains(&release) {
            self.rolled_back.push(release);
        }
        let excess = self
            .rolled_back
            .len()
            .saturating_sub(MAX_REMEMBERED_ROLLBACKS);
        self.rolled_back.drain(..excess);
    }
}

impl Default for BootState {
    fn default() -> Self {
        Self {
            active: Slot::A,
            active_version: 0,
            active_release: None,
            pending: None,
            rolled_back: Vec::new(),
            interrupted: Vec::new(),
        }
    }
}

/// What [`Installer::recover`] found after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No install was interrupted.
    Clean,
    /// A slot written or pending, never tried, was discarded.
    Discarded {
        /// Its version.
        version: u64,
    },
    /// A slot on trial that never confirmed was rolled back; the old slot runs.
    RolledBack {
        /// Its version.
        version: u64,
        /// Its release.
        release_id: B256,
        /// Its trials cut short so far, this one included.
        trials: u32,
        /// Whether the release will be tried again (`trials` below [`MAX_TRIAL_BOOTS`]).
        retry: bool,
    },
}

/// Where a simulated power cut happens ([`FileInstaller::crash_after`]): after the named step
/// completed and its state was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After [`Installer::write_inactive`].
    Written,
    /// After [`Installer::mark_pending`].
    Pending,
    /// After [`Installer::switch`].
    Switched,
    /// After [`Installer::confirm`] (before the device state and the report are written).
    Confirmed,
}

/// Checks the image running on trial before it is confirmed.
pub trait HealthCheck: Send + Sync {
    /// `Ok` if the image at `image` (the slot on trial, installing `pending`) is healthy.
    fn check(&self, image: &Path, pending: &Pending) -> std::result::Result<(), String>;
}

/// The reference health check: the slot's bytes still hash to the approved `imageSha256`
/// (a device adds its own application checks on top).
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageHashCheck;

impl HealthCheck for ImageHashCheck {
    fn check(&self, image: &Path, pending: &Pending) -> std::result::Result<(), String> {
        let actual = super::file_sha256(image).map_err(|e| format!("{}: {e}", image.display()))?;
        if actual != pending.image_sha256 {
            return Err(format!(
                "slot image sha256 {actual}, expected {}",
                pending.image_sha256
            ));
        }
        Ok(())
    }
}

/// Installs images into two slots (a bootloader's view), behind a trait so a device plugs in
/// its own (an MTD partition pair, a UEFI boot entry, a container runtime).
pub trait Installer: Send + Sync {
    /// The boot state.
    fn state(&self) -> Result<BootState>;

    /// Finishes an install a restart interrupted (see the module documentation).
    fn recover(&mut self) -> Result<Recovery>;

    /// Step 8.1: writes the inactive slot through `write`, keeping it only if `write` succeeds.
    ///
    /// The updater's `write` streams the bundle as it downloads ([`super::stream_into_slot`]):
    /// it can run once; called again (a retry after the installer's own I/O error) it fails
    /// with [`Error::InstallState`], and the next update downloads the bundle again.
    fn write_inactive(
        &mut self,
        version: u64,
        release_id: B256,
        image_sha256: B256,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<u64>,
    ) -> Result<()>;

    /// Step 8.2: marks the written slot to be tried.
    fn mark_pending(&mut self) -> Result<()>;

    /// Step 8.3: boots the pending slot on trial.
    fn switch(&mut self) -> Result<()>;

    /// Step 8.4: runs `health` on the slot on trial; makes it the active slot if it passes,
    /// rolls back ([`Error::RolledBack`]) if not.
    fn confirm(&mut self, health: &dyn HealthCheck) -> Result<()>;
}

/// The file-backed A/B installer: `slot-a.img`, `slot-b.img` and `boot.json` in one directory.
#[derive(Debug, Clone)]
pub struct FileInstaller {
    dir: PathBuf,
    crash: Option<CrashPoint>,
}

impl FileInstaller {
    /// Slots and boot state in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| Error::InstallIo {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir, crash: None })
    }

    /// Simulates a power cut after `point`: that step completes, then the call returns
    /// [`Error::Crashed`] and nothing after it runs (tests restart with a new installer).
    pub fn crash_after(mut self, point: CrashPoint) -> Self {
        self.crash = Some(point);
        self
    }

    /// The file of `slot`.
    pub fn slot_path(&self, slot: Slot) -> PathBuf {
        self.dir.join(slot.file_name())
    }

    fn boot_path(&self) -> PathBuf {
        self.dir.join("boot.json")
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::InstallIo {
            path: path.to_path_buf(),
            source,
        }
    }

    fn store(&self, state: &BootState) -> Result<()> {
        let json = serde_json::to_vec_pretty(state).map_err(|e| Error::InstallState {
            reason: e.to_string(),
        })?;
        write_durably(&self.boot_path(), &mut |out| {
            out.write_all(&json)?;
            Ok(json.len() as u64)
        })
        .map_err(Self::io(&self.boot_path()))?;
        Ok(())
    }

    fn crash_point(&self, point: CrashPoint) -> Result<()> {
        if self.crash == Some(point) {
            return Err(Error::Crashed { point });
        }
        Ok(())
    }

    fn pending_in(&self, state: &BootState, phase: Phase, step: &str) -> Result<Pending> {
        match &state.pending {
            Some(p) if p.phase == phase => Ok(p.clone()),
            other => Err(Error::InstallState {
                reason: format!(
                    "{step} needs an install in phase {phase:?}, found {:?}",
                    other.as_ref().map(|p| p.phase)
                ),
            }),
        }
    }
}

/// Writes `path` through `write` to a temporary file beside it, fsyncs it, renames it into
/// place and fsyncs the directory; on error the temporary file is removed and `path` untouched
/// (also when `write` panics: the removal runs as the stack unwinds). Whatever is at the
/// temporary path (a file left by a power cut, a planted symlink) is removed and the file
/// created exclusively with mode 0600 on unix ([`create_new`]), so a write never follows a
/// symlink out of the directory and what it holds (a slot's decrypted image before its checks
/// ended) is readable by the device's own user only.
pub(crate) fn write_durably(
    path: &Path,
    write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<u64>,
) -> std::io::Result<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = partial_path(path);
    let cleanup = RemoveOnDrop(Some(tmp.clone()));
    let file = create_new(&tmp)?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let n = write(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    // Renamed: nothing left to remove, whatever the directory's fsync says.
    cleanup.disarm();
    File::open(&dir)?.sync_all()?;
    Ok(n)
}

/// A temporary file removed when this is dropped (an error returned, a panic unwinding) unless
/// disarmed once it was renamed into place.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// The temporary file [`write_durably`] writes `path` through: `<path>.partial`, one fixed name,
/// so a file a power cut left there is replaced by the next write (and removed by
/// [`remove_partial`]) instead of piling up.
pub(crate) fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Removes the temporary file a power cut may have left beside `path` (see [`partial_path`]).
pub(crate) fn remove_partial(path: &Path) -> std::io::Result<bool> {
    match fs::remove_file(partial_path(path)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `path` afresh: removes whatever entry is there (never following a symlink), then
/// creates the file exclusively (`O_EXCL`: fails rather than follow a symlink planted between),
/// with mode 0600 on unix (owner read and write only, whatever the umask allows): a slot's
/// temporary file holds decrypted firmware before the bundle's and the image's hashes were
/// checked, the state files the device's own records.
pub(crate) fn create_new(path: &Path) -> std::io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut open = fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    open.open(path)
}

impl Installer for FileInstaller {
    fn state(&self) -> Result<BootState> {
        let path = self.boot_path();
        match super::read_capped(&path, super::MAX_STATE_FILE) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::InstallState {
                reason: format!("{}: {e}", path.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BootState::default()),
            Err(e) => Err(Self::io(&path)(e)),
        }
    }

    fn recover(&mut self) -> Result<Recovery> {
        // A slot write a power cut interrupted leaves its temporary file: a decrypted prefix of
        // a bundle whose checks never all passed (with steps 6 and 7 as one stream, not even its
        // hash). Removed at every start, not only when a later update writes the slot again.
        for slot in [Slot::A, Slot::B] {
            let path = self.slot_path(slot);
            if remove_partial(&path).map_err(Self::io(&partial_path(&path)))? {
                tracing::warn!(?slot, "removed a slot write a restart interrupted");
            }
        }
        let mut state = self.state()?;
        if state.pending.is_none() {
            return Ok(Recovery::Clean);
        }
        let recovery = state.recover();
        self.store(&state)?;
        tracing::warn!(?recovery, "step 8: interrupted install recovered");
        Ok(recovery)
    }

    fn write_inactive(
        &mut self,
        version: u64,
        release_id: B256,
        image_sha256: B256,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<u64>,
    ) -> Result<()> {
        let mut state = self.state()?;
        if state.pending.is_some() {
            // An interrupted install `recover` was not called for: recovered now, before its
            // slot is overwritten (a trial cut short still counts).
            let recovery = state.recover();
            tracing::warn!(
                ?recovery,
                "step 8.1: an interrupted install recovered first"
            );
            self.store(&state)?;
        }
        let slot = state.active.other();
        let path = self.slot_path(slot);
        let mut inner = None;
        let written = write_durably(&path, &mut |out| {
            write(out).map_err(|e| {
                let kept = std::io::Error::other(e.to_string());
                inner = Some(e);
                kept
            })
        });
        if let Some(e) = inner {
            return Err(e);
        }
        written.map_err(Self::io(&path))?;
        state.pending = Some(Pending {
            slot,
            version,
            release_id,
            image_sha256,
            phase: Phase::Written,
        });
        self.store(&state)?;
        tracing::info!(?slot, version, "step 8.1: inactive slot written");
        self.crash_point(CrashPoint::Written)
    }

    fn mark_pending(&mut self) -> Result<()> {
        let mut state = self.state()?;
        let mut p = self.pending_in(&state, Phase::Written, "mark_pending")?;
        p.phase = Phase::Pending;
        state.pending = Some(p);
        self.store(&state)?;
        tracing::info!("step 8.2: slot marked pending");
        self.crash_point(CrashPoint::Pending)
    }

    fn switch(&mut self) -> Result<()> {
        let mut state = self.state()?;
        let mut p = self.pending_in(&state, Phase::Pending, "switch")?;
        p.phase = Phase::Trying;
        state.pending = Some(p);
        self.store(&state)?;
        tracing::info!("step 8.3: booted the new slot on trial");
        self.crash_point(CrashPoint::Switched)
    }

    fn confirm(&mut self, health: &dyn HealthCheck) -> Result<()> {
        let mut state = self.state()?;
        let p = self.pending_in(&state, Phase::Trying, "confirm")?;
        if let Err(reason) = health.check(&self.slot_path(p.slot), &p) {
            // A verdict against the image: rolled back for good, whatever trials are left.
            state.pending = None;
            state.give_up(p.release_id);
            self.store(&state)?;
            tracing::warn!(version = p.version, %reason, "step 8.4: health check failed, rolled back");
            return Err(Error::RolledBack {
                version: p.version,
                reason,
            });
        }
        state.active = p.slot;
        state.active_version = p.version;
        state.active_release = Some(p.release_id);
        state.pending = None;
        state.interrupted.retain(|t| t.release_id != p.release_id);
        self.store(&state)?;
        tracing::info!(slot = ?p.slot, version = p.version, "step 8.4: health check passed, slot confirmed");
        self.crash_point(CrashPoint::Confirmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fails;
    impl HealthCheck for Fails {
        fn check(&self, _: &Path, _: &Pending) -> std::result::Result<(), String> {
            Err("watchdog".into())
        }
    }

    fn image(bytes: &'static [u8]) -> impl FnMut(&mut dyn Write) -> Result<u64> {
        move |out| {
            out.write_all(bytes).unwrap();
            Ok(bytes.len() as u64)
        }
    }

    /// Installs `b"v1"` as version 1 of `release`, every step, health check passing.
    fn install_v1(i: &mut FileInstaller, release: B256) {
        i.write_inactive(1, release, sha(b"v1"), &mut image(b"v1"))
            .unwrap();
        i.mark_pending().unwrap();
        i.switch().unwrap();
        i.confirm(&ImageHashCheck).unwrap();
    }

    fn sha(bytes: &[u8]) -> B256 {
        use sha2::Digest;
        B256::from(<[u8; 32]>::from(sha2::Sha256::digest(bytes)))
    }

    #[test]
    fn a_full_install_switches_slots_and_a_failed_health_check_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = FileInstaller::new(dir.path()).unwrap();
        let r1 = B256::repeat_byte(1);
        install_v1(&mut i, r1);
        let s = i.state().unwrap();
        assert_eq!((s.active, s.active_version, s.pending), (Slot::B, 1, None));
        assert_eq!(fs::read(i.slot_path(Slot::B)).unwrap(), b"v1");

        let r2 = B256::repeat_byte(2);
        i.write_inactive(2, r2, sha(b"v2"), &mut image(b"v2"))
            .unwrap();
        i.mark_pending().unwrap();
        i.switch().unwrap();
        assert!(matches!(
            i.confirm(&Fails),
            Err(Error::RolledBack { version: 2, .. })
        ));
        let s = i.state().unwrap();
        assert_eq!((s.active, s.active_version, s.pending), (Slot::B, 1, None));
        assert_eq!(s.rolled_back, vec![r2]);
        // Steps out of order are refused.
        assert!(matches!(i.switch(), Err(Error::InstallState { .. })));
    }

    #[test]
    fn a_failed_writer_leaves_the_slot_and_state_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = FileInstaller::new(dir.path()).unwrap();
        let err = i.write_inactive(1, B256::ZERO, B256::ZERO, &mut |out| {
            out.write_all(b"half").unwrap();
            Err(Error::ImageHash {
                expected: B256::ZERO,
                actual: B256::ZERO,
            })
        });
        assert!(matches!(err, Err(Error::ImageHash { .. })));
        assert!(!i.slot_path(Slot::B).exists());
        assert_eq!(i.state().unwrap(), BootState::default());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(names.is_empty(), "no temporary file left");
    }

    #[test]
    fn a_power_cut_after_any_step_recovers_to_a_consistent_state() {
        for (point, expected) in [
            (CrashPoint::Written, Recovery::Discarded { version: 1 }),
            (CrashPoint::Pending, Recovery::Discarded { version: 1 }),
            (
                CrashPoint::Switched,
                Recovery::RolledBack {
                    version: 1,
                    release_id: B256::repeat_byte(1),
                    trials: 1,
                    retry: true,
                },
            ),
            (CrashPoint::Confirmed, Recovery::Clean),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut i = FileInstaller::new(dir.path()).unwrap().crash_after(point);
            let run = |i: &mut FileInstaller| -> Result<()> {
                i.write_inactive(1, B256::repeat_byte(1), sha(b"v1"), &mut image(b"v1"))?;
                i.mark_pending()?;
                i.switch()?;
                i.confirm(&ImageHashCheck)
            };
            assert!(matches!(run(&mut i), Err(Error::Crashed { point: p }) if p == point));
            let mut restarted = FileInstaller::new(dir.path()).unwrap();
            assert_eq!(restarted.recover().unwrap(), expected, "{point:?}");
            let s = restarted.state().unwrap();
            assert_eq!(s.pending, None);
            let confirmed = point == CrashPoint::Confirmed;
            assert_eq!(s.active_version, u64::from(confirmed), "{point:?}");
            assert_eq!(s.active, if confirmed { Slot::B } else { Slot::A });
        }
    }

    /// A slot write a power cut interrupted (its `.partial`, a decrypted prefix of a bundle
    /// not yet fully checked) is removed at the next start, whatever the boot state.
    #[test]
    fn a_slot_write_cut_short_is_removed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut installer = FileInstaller::new(dir.path()).unwrap();
        for slot in [Slot::A, Slot::B] {
            std::fs::write(partial_path(&installer.slot_path(slot)), b"plaintext").unwrap();
        }
        assert_eq!(installer.recover().unwrap(), Recovery::Clean);
        for slot in [Slot::A, Slot::B] {
            assert!(
                !partial_path(&installer.slot_path(slot)).exists(),
                "{slot:?}"
            );
        }
    }

    /// The slot's temporary file holds decrypted firmware whose bundle and image hashes are not
    /// checked yet: it is created owner-only (0600, whatever the umask lets through), the slot
    /// keeps that mode once renamed into place, and the file is removed when the writer fails
    /// and when it panics (the stream's writer thread dying mid-slot).
    #[cfg(unix)]
    #[test]
    fn the_slot_being_written_is_owner_only_and_removed_on_an_error_or_a_panic() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let mut i = FileInstaller::new(dir.path()).unwrap();
        let partial = partial_path(&i.slot_path(Slot::B));
        let mut seen = None;
        i.write_inactive(1, B256::repeat_byte(1), sha(b"v1"), &mut |out| {
            out.write_all(b"v1").unwrap();
            out.flush().unwrap();
            seen = Some(mode(&partial));
            Ok(2)
        })
        .unwrap();
        assert_eq!(seen, Some(0o600), "the .partial while written");
        assert_eq!(mode(&i.slot_path(Slot::B)), 0o600, "the slot once renamed");
        assert!(!partial.exists());

        // An error (a refusal, a failed download) and a panic, mid-write: nothing left.
        let dir = tempfile::tempdir().unwrap();
        let mut i = FileInstaller::new(dir.path()).unwrap();
        let partial = partial_path(&i.slot_path(Slot::B));
        let err = i.write_inactive(1, B256::ZERO, B256::ZERO, &mut |out| {
            out.write_all(&[7; 300_000]).unwrap();
            assert!(partial.exists());
            Err(Error::InstallState {
                reason: "refused".into(),
            })
        });
        assert!(matches!(err, Err(Error::InstallState { .. })));
        assert!(!partial.exists(), "left after an error");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = i.write_inactive(1, B256::ZERO, B256::ZERO, &mut |out| {
                out.write_all(&[7; 300_000]).unwrap();
                assert!(partial.exists());
                panic!("the writer died");
            });
        }));
        assert!(panicked.is_err());
        assert!(!partial.exists(), "left after a panic");
        assert!(!i.slot_path(Slot::B).exists());
        assert_eq!(i.state().unwrap(), BootState::default());
    }

    /// Trials cut short are tried again up to [`MAX_TRIAL_BOOTS`] in all, then the release is
    /// rolled back for good; a confirmed install forgets its earlier cut-short trials.
    #[test]
    fn trials_cut_short_are_retried_up_to_the_boot_limit() {
        let dir = tempfile::tempdir().unwrap();
        let r1 = B256::repeat_byte(1);
        let trial = |dir: &Path| {
            let mut i = FileInstaller::new(dir)
                .unwrap()
                .crash_after(CrashPoint::Switched);
            i.write_inactive(1, r1, sha(b"v1"), &mut image(b"v1"))
                .unwrap();
            i.mark_pending().unwrap();
            assert!(matches!(i.switch(), Err(Error::Crashed { .. })));
            FileInstaller::new(dir).unwrap().recover().unwrap()
        };
        for n in 1..MAX_TRIAL_BOOTS {
            assert_eq!(
                trial(dir.path()),
                Recovery::RolledBack {
                    version: 1,
                    release_id: r1,
                    trials: n,
                    retry: true
                }
            );
            let s = FileInstaller::new(dir.path()).unwrap().state().unwrap();
            assert!(s.rolled_back.is_empty());
            assert_eq!(
                s.interrupted,
                vec![InterruptedTrials {
                    release_id: r1,
                    count: n
                }]
            );
        }
        assert_eq!(
            trial(dir.path()),
            Recovery::RolledBack {
                version: 1,
                release_id: r1,
                trials: MAX_TRIAL_BOOTS,
                retry: false
            }
        );
        let s = FileInstaller::new(dir.path()).unwrap().state().unwrap();
        assert_eq!((s.rolled_back, s.interrupted), (vec![r1], vec![]));

        // One cut short, then confirmed: the count is forgotten.
        let dir = tempfile::tempdir().unwrap();
        trial(dir.path());
        let mut i = FileInstaller::new(dir.path()).unwrap();
        install_v1(&mut i, r1);
        let s = i.state().unwrap();
        assert_eq!(
            (s.active_version, s.rolled_back, s.interrupted),
            (1, vec![], vec![])
        );
    }

    /// A failed health check after a cut-short trial rolls back for good at once (a verdict,
    /// not an accident), and a `boot.json` from before the trial budget still reads.
    #[test]
    fn a_failed_health_check_gives_up_at_once_and_old_boot_files_read() {
        let dir = tempfile::tempdir().unwrap();
        let r1 = B256::repeat_byte(1);
        let mut i = FileInstaller::new(dir.path())
            .unwrap()
            .crash_after(CrashPoint::Switched);
        i.write_inactive(1, r1, sha(b"v1"), &mut image(b"v1"))
            .unwrap();
        i.mark_pending().unwrap();
        assert!(i.switch().is_err());
        let mut i = FileInstaller::new(dir.path()).unwrap();
        i.recover().unwrap();
        i.write_inactive(1, r1, sha(b"v1"), &mut image(b"v1"))
            .unwrap();
        i.mark_pending().unwrap();
        i.switch().unwrap();
        assert!(matches!(i.confirm(&Fails), Err(Error::RolledBack { .. })));
        let s = i.state().unwrap();
        assert_eq!((s.rolled_back, s.interrupted), (vec![r1], vec![]));

        let old = r#"{"active":"a","activeVersion":0,"activeRelease":null,"pending":null,"rolledBack":[]}"#;
        fs::write(dir.path().join("boot.json"), old).unwrap();
        assert_eq!(i.state().unwrap(), BootState::default());
    }
}
