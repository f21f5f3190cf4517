//! The whole update, steps 1–9, over a device's transports: [`Updater::run_once`].
//!
//! - recover an install a power cut interrupted (roll back a slot on trial, discard a slot
//!   never tried, record a confirmed install the state file missed) and deliver queued reports;
//! - steps 1–2 for a proven latest version ([`Client::latest`]): "up to date" is a verified
//!   answer;
//! - the manifest and approval of that version from a [`ReleaseSource`] (untrusted), and
//!   steps 1–4 at the same head, [`Client::check_at`]: the head checked again for freshness,
//!   state proofs, policy, signatures; a source whose answer is refused at steps 2–4 does not
//!   stop the next source from being asked;
//!
//! 5. the key ([`fetch_key`]): a 404 everywhere is "not entitled yet", not an error;
//! 6. and 7. the verified download streamed through the decryption straight into the
//!    installer's inactive slot ([`stream_into_slot`]: no bundle file), kept only if every block,
//!    the bundle's size and hash, every segment and the image hash verified;
//! 8. pending, switch, health check, confirm ([`Installer`]);
//! 9. a signed report of the outcome, queued and delivered ([`ReportQueue`]).
//!
//! The installed version is stored only once the new slot is confirmed; a refusal at any step
//! stores nothing but a signed `refused` report naming the class ([`Error::class`]).

use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256};
use otaledger_core::{key_delivery::Recipient, report::Outcome as ReportOutcome};
use otaledger_ipfs::FetchOptions;
use serde::Serialize;

use super::{
    Client, HealthCheck, Installer, KeyService, Recovery, ReleaseSource, ReportQueue, ReportSink,
    SlotRelease, fetch_key, stream_into_slot,
};
use crate::{Error, LatestVerified, Result};

/// How long [`Updater::run_once`] waits for the device lock before it reports
/// [`Error::Busy`]: 1 s (see `Updater::lock`).
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// What one run ended with, when no check refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "outcome"
)]
pub enum Outcome {
    /// The release was verified, installed and confirmed.
    Updated {
        /// Its version.
        version: u64,
        /// The release.
        release_id: B256,
        /// The trusted head it was approved at.
        block: u64,
    },
    /// The model's proven latest version is the installed one.
    UpToDate {
        /// The installed version.
        version: u64,
        /// The trusted head it was proven at.
        block: u64,
    },
    /// A newer release exists but this device is not entitled to it yet: not paid (proven
    /// entitlement bit clear) or its key not issued yet.
    NotEntitled {
        /// The release's version.
        version: u64,
        /// The release.
        release_id: B256,
    },
}

/// One step's log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The step (`recover`, `reports`, `latest`, `release`, `check`, `key`, `download`,
    /// `decrypt`, `install`, `report`).
    pub step: &'static str,
    /// What happened.
    pub message: String,
}

/// Everything an [`Updater`] runs on.
pub struct UpdaterParts {
    /// Steps 1–4 over the RPC endpoints, with the device state.
    pub client: Client,
    /// Where manifests and approvals come from (tried in order).
    pub sources: Vec<Box<dyn ReleaseSource>>,
    /// Key services (tried in order).
    pub key_services: Vec<Box<dyn KeyService>>,
    /// The key-service address the device trusts.
    pub key_service: Address,
    /// The device's identity key (opens key deliveries, signs reports).
    pub identity: PrivateKeySigner,
    /// Trustless gateways (tried in order).
    pub gateways: Vec<url::Url>,
    /// Verified-fetch settings (minimum rate, limits).
    pub fetch: FetchOptions,
    /// The A/B installer.
    pub installer: Box<dyn Installer>,
    /// The health check run before confirming.
    pub health: Box<dyn HealthCheck>,
    /// The report queue.
    pub reports: ReportQueue,
    /// Report receivers (may be empty).
    pub sinks: Vec<Box<dyn ReportSink>>,
    /// The work directory: its lock is `<work_dir>.lock` beside it; the updater streams the
    /// bundle without a file, and removes there what an older one's interrupted download left.
    pub work_dir: PathBuf,
}

/// What [`Updater::find_and_check`] settled on.
enum Checked {
    /// A source's release passed steps 1–4.
    Approved(B256, Box<crate::ApprovedUpdate>),
    /// The release is proven but this device's entitlement bit is clear.
    NotEntitled(B256),
    /// Every source's answer was refused: the first refusal, and its release.
    Refused(Error, B256),
}

/// A callback receiving one [`Event`] per step.
pub type Observer = Box<dyn Fn(&Event) + Send + Sync>;

/// A device's updater: [`Updater::run_once`] is one whole update attempt.
pub struct Updater {
    parts: UpdaterParts,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("client", &self.parts.client)
            .field("gateways", &self.parts.gateways)
            .finish_non_exhaustive()
    }
}

impl Updater {
    /// An updater over `parts`.
    pub fn new(parts: UpdaterParts) -> Self {
        Self {
            parts,
            observer: None,
        }
    }

    /// Calls `observer` with one [`Event`] per step.
    pub fn with_observer(mut self, observer: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// The parts (to inspect the client's state, the installer, the queue).
    pub fn parts(&self) -> &UpdaterParts {
        &self.parts
    }

    fn emit(&self, step: &'static str, message: String) {
        if let Some(o) = &self.observer {
            o(&Event { step, message });
        }
    }

    /// Signs and queues a report; a failure is logged, never hides the outcome it reports.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        release_id: B256,
        version: u64,
        outcome: ReportOutcome,
        detail: &str,
        block: u64,
    ) {
        let p = &self.parts;
        let c = p.client.config();
        match p.reports.push(
            &p.identity,
            c.chain_id,
            c.registry,
            c.device_index,
            release_id,
            version,
            outcome,
            detail,
            block,
            p.client.now(),
        ) {
            Ok(r) => self.emit(
                "report",
                format!(
                    "{outcome} {detail} (version {version}, nonce {}) queued",
                    r.report.nonce
                ),
            ),
            Err(e) => self.emit("report", format!("could not queue the report: {e}")),
        }
    }

    /// Reports a refusal (or failure) at a step and returns the error.
    fn refuse(&self, e: Error, release_id: B256, version: u64, block: u64) -> Error {
        let outcome = match &e {
            Error::RolledBack { .. } => ReportOutcome::RolledBack,
            Error::Download { .. } => ReportOutcome::Failed,
            e if e.step().is_some() => ReportOutcome::Refused,
            _ => ReportOutcome::Failed,
        };
        self.report(release_id, version, outcome, e.class(), block);
        e
    }

    async fn deliver(&self) {
        let p = &self.parts;
        match p.reports.deliver(&p.sinks).await {
            Ok(d) if d.delivered + d.rejected + d.queued > 0 => self.emit(
                "reports",
                format!(
                    "{} delivered, {} rejected, {} queued",
                    d.delivered, d.rejected, d.queued
                ),
            ),
            Ok(_) => {}
            Err(e) => self.emit("reports", format!("queue unusable: {e}")),
        }
    }

    /// Takes the device directory's lock (`<work_dir>.lock`), released when dropped (and by
    /// the kernel if the process dies).
    fn lock(&self) -> Result<std::fs::File> {
        let work = &self.parts.work_dir;
        let mut name = work.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let path = work.with_file_name(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::InstallIo {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::InstallIo {
                path: path.clone(),
                source,
            })?;
        // A lock held for less than LOCK_PATIENCE is not another updater: a process forked by
        // this one (any `Command::spawn`) shares the open lock file until it executes its
        // program, so a lock just released can look held for a moment. A real updater holds it
        // for its whole run.
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Busy { path }),
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(Error::InstallIo { path, source });
                }
            }
        }
    }

    /// Removes what an interrupted step 6 of an older updater left in the work directory (the
    /// verified fetch's `.bundle-….part` temporary files, a `bundle-….bin` not yet removed;
    /// this one streams the bundle without a file): a device losing power during every download
    /// must not fill its disk. Best effort: a failure is logged.
    fn clear_downloads(&self) {
        let dir = &self.parts.work_dir;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with("bundle-") || name.starts_with(".bundle-")) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => self.emit("recover", format!("could not remove {name}: {e}")),
            }
        }
        if removed > 0 {
            self.emit(
                "recover",
                format!("removed {removed} download(s) an interrupted run left"),
            );
        }
    }

    /// Step 0: finishes an interrupted install and reconciles the device state with the
    /// installer's.
    fn recover(&mut self) -> Result<()> {
        // A report queue write a power cut interrupted (held under this run's lock: nobody else
        // writes it now).
        match self.parts.reports.remove_stale_temporary() {
            Ok(true) => self.emit(
                "recover",
                "removed the report queue's interrupted write".into(),
            ),
            Ok(false) => {}
            Err(e) => self.emit("recover", format!("{e}")),
        }
        let state = self.parts.client.state()?;
        // A trial cut short is reported before the installer records its rollback: a power
        // cut between the two queues the same report again at the next start (the queue keeps
        // one per detail), never records the trial without its report.
        if let Recovery::RolledBack {
            version,
            release_id,
            trials,
            ..
        } = self.parts.installer.state()?.recovery()
        {
            // One report per trial cut short (`[a-z0-9-]`).
            self.report(
                release_id,
                version,
                ReportOutcome::RolledBack,
                &format!(
                    "not-confirmed-{trials}-of-{}",
                    super::install::MAX_TRIAL_BOOTS
                ),
                state.highest_block,
            );
        }
        let recovery = self.parts.installer.recover()?;
        self.clear_downloads();
        match recovery {
            Recovery::Clean => {}
            Recovery::Discarded { version } => self.emit(
                "recover",
                format!("discarded version {version}, written but never tried"),
            ),
            Recovery::RolledBack {
                version,
                trials,
                retry,
                ..
            } => {
                let then = if retry {
                    "will try again"
                } else {
                    "not retried"
                };
                self.emit(
                    "recover",
                    format!(
                        "version {version} did not confirm before a restart (trial {trials} of {}): rolled back, {then}",
                        super::install::MAX_TRIAL_BOOTS
                    ),
                );
            }
        }
        let boot = self.parts.installer.state()?;
        if boot.active_version > state.installed_version {
            // Confirmed just before a power cut: the state file and the report were not written.
            self.parts.client.record_version(boot.active_version)?;
            self.emit(
                "recover",
                format!(
                    "version {} confirmed before a restart: recorded",
                    boot.active_version
                ),
            );
            if let Some(release_id) = boot.active_release {
                self.report(
                    release_id,
                    boot.active_version,
                    ReportOutcome::Installed,
                    "",
                    state.highest_block,
                );
            }
        }
        Ok(())
    }

    /// The manifest and approval of `version` from the sources, each source's answer checked
    /// (steps 1–4) in turn until one passes: a source is untrusted, so one answering a forged or
    /// foreign release must not hide the published one another source has. A refusal at the
    /// trusted head (step 1) does not depend on the answer and ends the search; a refusal at
    /// steps 2–4 is logged and the next source asked; when none passes, the first refusal is
    /// the verdict. Errors that are no verdict (RPC, state file) end the search.
    ///
    /// Every answer is checked at the head `latest` was proven at ([`Client::check_at`]), so the
    /// version looked for and the release checked are proven at the same block.
    async fn find_and_check(&self, latest: &LatestVerified, version: u64) -> Result<Checked> {
        let c = self.parts.client.config();
        let mut reasons = Vec::new();
        let mut refused = None;
        for (i, source) in self.parts.sources.iter().enumerate() {
            let (manifest, approval) = match source.release(c.registry, c.model_id, version).await {
                Ok(found) => found,
                Err(e) => {
                    self.emit("release", format!("source {i} refused: {e}"));
                    reasons.push(format!("source {i}: {e}"));
                    continue;
                }
            };
            let release_id = crate::contracts::release_id(&manifest);
            self.emit(
                "release",
                format!("release {release_id} found (source {i})"),
            );
            match self
                .parts
                .client
                .check_at(latest, &manifest, &approval)
                .await
            {
                Ok(u) => return Ok(Checked::Approved(release_id, Box::new(u))),
                Err(Error::NotEntitled { release_id, .. }) => {
                    return Ok(Checked::NotEntitled(release_id));
                }
                Err(e) if e.step() == Some(1) => return Ok(Checked::Refused(e, release_id)),
                Err(e) if e.step().is_some() => {
                    self.emit(
                        "check",
                        format!("source {i}'s release {release_id} refused: {e}"),
                    );
                    reasons.push(format!("source {i}: {e}"));
                    refused.get_or_insert((e, release_id));
                }
                Err(e) => return Err(e),
            }
        }
        match refused {
            Some((e, release_id)) => Ok(Checked::Refused(e, release_id)),
            None => Err(Error::ReleaseUnavailable {
                model_id: c.model_id,
                version,
                reason: reasons.join("; "),
            }),
        }
    }

    /// One whole update attempt (see the module documentation). `Ok` for updated, up to date
    /// and not entitled; a refusal is the error of the step that refused (its report queued).
    ///
    /// The run holds an exclusive lock on `<work_dir>.lock` (beside the work directory, created
    /// if missing) from start to end; while another updater holds it the run does nothing and returns [`Error::Busy`].
    pub async fn run_once(&mut self) -> Result<Outcome> {
        let _lock = self.lock()?;
        self.recover()?;
        self.deliver().await;
        let result = self.update().await;
        self.deliver().await;
        result
    }

    async fn update(&mut self) -> Result<Outcome> {
        let latest = self.parts.client.latest().await?;
        let block = latest.head().number;
        let Some(version) = latest.newer() else {
            self.emit(
                "latest",
                format!(
                    "up to date: version {} is the model's latest at block {block}",
                    latest.installed()
                ),
            );
            return Ok(Outcome::UpToDate {
                version: latest.installed(),
                block,
            });
        };
        self.emit(
            "latest",
            format!(
                "version {version} is newer than installed {} (proven at block {block})",
                latest.installed()
            ),
        );
        let c = self.parts.client.config().clone();
        let (release_id, update) = match self.find_and_check(&latest, version).await? {
            Checked::Approved(release_id, update) => (release_id, *update),
            Checked::NotEntitled(release_id) => {
                self.emit(
                    "check",
                    "not entitled: the entitlement bit is not set".into(),
                );
                return Ok(Outcome::NotEntitled {
                    version,
                    release_id,
                });
            }
            Checked::Refused(e, release_id) => {
                return Err(self.refuse(e, release_id, version, block));
            }
        };
        let block = update.head.number;
        self.emit(
            "check",
            format!(
                "head {block}, proofs, policy and {} signatures verified",
                update.signers.len()
            ),
        );
        if self
            .parts
            .installer
            .state()?
            .rolled_back
            .contains(&release_id)
        {
            self.emit(
                "check",
                "this release was rolled back before: not retried".into(),
            );
            return Err(Error::RolledBack {
                version,
                reason: "rolled back before; not retried".into(),
            });
        }

        // Step 5: key.
        let recipient = Recipient {
            chain_id: c.chain_id,
            registry: c.registry,
            key_service: self.parts.key_service,
        };
        let identity = self.parts.identity.to_bytes().0;
        let key = match fetch_key(
            &self.parts.key_services,
            &update,
            c.device_index,
            &recipient,
            &identity,
        )
        .await
        {
            Ok(k) => k,
            Err(Error::KeyNotIssued { .. }) => {
                self.emit("key", "not issued yet: retried at the next check".into());
                return Ok(Outcome::NotEntitled {
                    version,
                    release_id,
                });
            }
            Err(e) if e.step().is_some() => return Err(self.refuse(e, release_id, version, block)),
            Err(e) => return Err(e),
        };
        self.emit("key", "delivery signed by the key service, opened".into());

        // Steps 6, 7 and 8.1 as one stream: the verified download decrypted as it arrives into
        // the inactive slot, kept only if every check of both steps passed.
        let release = SlotRelease {
            manifest: update.manifest.clone(),
            release_id,
            chain_id: c.chain_id,
            registry: c.registry,
            key,
        };
        let streamed = match stream_into_slot(
            release,
            &self.parts.gateways,
            &self.parts.fetch,
            &mut self.parts.installer,
        )
        .await
        {
            Ok(streamed) => streamed,
            Err(e) if e.step().is_some() => return Err(self.refuse(e, release_id, version, block)),
            Err(e) => return Err(e),
        };
        for failure in &streamed.failures {
            self.emit("download", format!("gateway attempt failed: {failure}"));
        }
        self.emit(
            "download",
            format!(
                "{} bytes from {}, every block and the sha256 verified",
                streamed.bundle_len, streamed.completed_by
            ),
        );
        self.emit(
            "decrypt",
            "every segment and the image sha256 verified; inactive slot written".into(),
        );

        // Step 8: pending, switch, confirm.
        self.parts.installer.mark_pending()?;
        self.parts.installer.switch()?;
        self.emit("install", "slot pending, booted on trial".into());
        if let Err(e) = self.parts.installer.confirm(self.parts.health.as_ref()) {
            return Err(match e {
                e @ Error::RolledBack { .. } => self.refuse(e, release_id, version, block),
                e => e,
            });
        }
        // The report is queued before the state file records the version: a power cut between
        // the two leaves the version unrecorded, so `recover` records it and queues the report
        // again (replacing the undelivered one); the other order would lose the report.
        self.report(release_id, version, ReportOutcome::Installed, "", block);
        self.parts.client.record_installed(&update)?;
        self.emit("install", format!("version {version} confirmed"));
        Ok(Outcome::Updated {
            version,
            release_id,
            block,
        })
    }
}
