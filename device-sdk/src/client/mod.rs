//! The std client: runs the [`crate::pipeline`] over real transports. Every transport is a
//! trait ([`Rpc`], [`Clock`], [`Storage`]) so tests inject malicious ones.
//!
//! One update check, [`Client::check`]:
//! 1. asks every endpoint for its latest block, picks `k-th highest − confirmations`, asks every
//!    endpoint for that header and lets the pipeline vote ([`crate::head`]);
//! 2. asks the endpoints in turn for the registry's and the market's proofs until one set
//!    verifies against the voted state root (a lying endpoint costs a retry, never a wrong
//!    answer);
//! 3. and 4. policy and signatures, in the core;
//! 5. only then stores the head's number as the highest block seen.
//!
//! [`Client::latest`] answers "is anything newer?" from the model word alone (a proven "up to
//! date"). [`Updater`] runs the whole update: latest → release from a [`ReleaseSource`]
//! ([`IndexerSource`], then [`HttpRpc`]'s logs) →
//! [`Client::check`] → 5. key ([`fetch_key`]) → 6. verified download and 7. decryption as one
//! stream into the inactive slot ([`stream_into_slot`]; each alone: [`download`],
//! [`decrypt_into`]) → 8. A/B install ([`Installer`]) → 9. signed report ([`ReportQueue`]).

mod decrypt;
mod device;
mod download;
mod indexer;
mod install;
mod keys;
mod report;
mod rpc;
mod source;
mod storage;
mod stream;

pub use decrypt::decrypt_into;
pub use device::{Event, Observer, Outcome, Updater, UpdaterParts};
pub use download::{MAX_BUNDLE_SIZE, download, file_sha256};
pub use indexer::{DEFAULT_INDEXER_TIMEOUT, IndexerSource, MAX_INDEXER_RESPONSE, release_url};
pub use install::{
    BootState, CrashPoint, FileInstaller, HealthCheck, ImageHashCheck, Installer,
    InterruptedTrials, MAX_TRIAL_BOOTS, Pending, Phase, Recovery, Slot,
};
pub use keys::{
    DEFAULT_KEY_SERVICE_TIMEOUT, HttpKeyService, KeyAnswer, KeyService, MAX_KEY_RESPONSE,
    fetch_key, key_url,
};
pub use report::{
    DEFAULT_REPORT_TIMEOUT, Delivery, HttpReportSink, MAX_QUEUED_REPORTS, ReportQueue, ReportSink,
    SinkAnswer,
};
pub use rpc::{DEFAULT_RPC_TIMEOUT, HttpRpc, MAX_RESPONSE_SIZE, Rpc, RpcFuture};
pub use source::{ReleaseSource, SourceError, SourceFuture};
pub use storage::{FileStorage, Storage};
pub use stream::{PIECE_SIZE, PIECES_IN_FLIGHT, QueueUse, SlotRelease, Streamed, stream_into_slot};

use futures_util::future::join_all;

use crate::{
    Approval, ApprovedUpdate, Checker, DeviceConfig, DeviceState, Error, LatestVerified, Limits,
    Manifest, Result,
};

/// The device's clock, in unix seconds.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A device's update checker over its transports.
pub struct Client {
    /// This client among the process's ([`LatestVerified`]s it proved carry it).
    id: u64,
    config: DeviceConfig,
    limits: Limits,
    rpcs: Vec<Box<dyn Rpc>>,
    clock: Box<dyn Clock>,
    storage: Box<dyn Storage>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("limits", &self.limits)
            .field("endpoints", &self.rpcs.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client; `rpcs` must be exactly the `n` endpoints of `limits.quorum`.
    pub fn new(
        config: DeviceConfig,
        limits: Limits,
        rpcs: Vec<Box<dyn Rpc>>,
        clock: Box<dyn Clock>,
        storage: Box<dyn Storage>,
    ) -> Result<Self> {
        if rpcs.len() != limits.quorum.n() {
            return Err(Error::AnswerCount {
                given: rpcs.len(),
                configured: limits.quorum.n(),
            });
        }
        /// Client ids: 0 is "no client" (the pipeline used directly).
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            config,
            limits,
            rpcs,
            clock,
            storage,
        })
    }

    /// The stored device state.
    pub fn state(&self) -> Result<DeviceState> {
        self.storage.load()
    }

    /// Checks whether `manifest`, approved by `approval` (both from anywhere: the indexer, a
    /// gateway, a file), may be installed now. On success the head's number is stored as the
    /// highest block seen; on any refusal nothing is stored.
    pub async fn check(&self, manifest: &Manifest, approval: &Approval) -> Result<ApprovedUpdate> {
        let state = self.storage.load()?;
        let checker = Checker::new(&self.config, &self.limits, state, self.clock.now());
        let (number, head) = self.trusted_head(checker).await?;
        self.prove(number, head, state, manifest, approval).await
    }

    /// [`Self::check`] at the head `latest` was proven at, without asking the endpoints for a
    /// head again (two requests fewer per endpoint), while the device clock has moved on by at
    /// most [`Limits::head_reuse_secs`] since; later (a slow release source) a new head is
    /// voted, exactly as [`Self::check`]. A reused head is checked again for freshness against
    /// the clock now and against the highest block seen ([`Checker::resume`]), then steps 2–4
    /// run as in `check`. `latest` must come from this client's [`Self::latest`] (its
    /// endpoints voted that head): another client's is refused ([`Error::ForeignLatest`]).
    pub async fn check_at(
        &self,
        latest: &LatestVerified,
        manifest: &Manifest,
        approval: &Approval,
    ) -> Result<ApprovedUpdate> {
        if latest.issuer() != self.id {
            return Err(Error::ForeignLatest);
        }
        let state = self.storage.load()?;
        let checker = Checker::new(&self.config, &self.limits, state, self.clock.now());
        if !checker.may_resume(latest) {
            tracing::info!(
                block = latest.head().number,
                proven_at = latest.proven_at(),
                "step 1: the latest version's head is too old to reuse; voting a new one"
            );
            let (number, head) = self.trusted_head(checker).await?;
            return self.prove(number, head, state, manifest, approval).await;
        }
        let head = checker.resume(latest)?;
        tracing::info!(
            block = latest.head().number,
            hash = %latest.head().hash,
            "step 1: trusted head (the one the latest version was proven at, still fresh)"
        );
        self.prove(latest.head().number, head, state, manifest, approval)
            .await
    }

    /// Steps 2–4 at a trusted head; on success stores the head's number as the highest seen.
    async fn prove(
        &self,
        number: u64,
        head: crate::HeadVerified<'_>,
        state: DeviceState,
        manifest: &Manifest,
        approval: &Approval,
    ) -> Result<ApprovedUpdate> {
        // Step 2: state proofs, from the first endpoint whose proofs verify.
        let request = head.proof_request(manifest);
        let mut last = None;
        let mut verified = None;
        for (endpoint, rpc) in self.rpcs.iter().enumerate() {
            let (registry, market) = tokio::join!(
                rpc.proof(request.registry.0, request.registry.1.clone(), number),
                rpc.proof(request.market.0, request.market.1.clone(), number),
            );
            let result = match (registry, market) {
                (Ok(registry), Ok(market)) => head.clone().state(manifest, &registry, &market),
                (Err(reason), _) | (_, Err(reason)) => Err(Error::Rpc { endpoint, reason }),
            };
            match result {
                Ok(state) => {
                    verified = Some(state);
                    break;
                }
                Err(e) => {
                    tracing::warn!(endpoint, error = %e, "step 2: proofs refused, trying the next endpoint");
                    last = Some(e);
                }
            }
        }
        let Some(verified) = verified else {
            return Err(last.unwrap_or(Error::AnswerCount {
                given: 0,
                configured: self.limits.quorum.n(),
            }));
        };
        tracing::info!(release = %verified.words().release_id, "step 2: state proven");

        // Steps 3 and 4.
        let update = verified.policy()?.signatures(approval)?;
        tracing::info!(
            version = update.manifest.version,
            signers = update.signers.len(),
            "steps 3-4: policy and signatures passed"
        );

        self.storage.store(&DeviceState {
            highest_block: state.highest_block.max(update.head.number),
            ..state
        })?;
        Ok(update)
    }

    /// Step 1, the trusted head: asks every endpoint for its latest block, picks the target and
    /// lets the pipeline vote on the endpoints' headers.
    async fn trusted_head<'a>(
        &self,
        checker: Checker<'a>,
    ) -> Result<(u64, crate::HeadVerified<'a>)> {
        let latests: Vec<Option<u64>> = join_all(self.rpcs.iter().map(|r| r.block_number()))
            .await
            .into_iter()
            .map(Result::ok)
            .collect();
        let number = checker.target_block(&latests)?;
        let answers = join_all(self.rpcs.iter().map(|r| r.header(number))).await;
        let head = checker.head(number, &answers)?;
        tracing::info!(
            block = number,
            hash = %head.head().hash,
            "step 1: trusted head"
        );
        Ok((number, head))
    }

    /// Is anything newer than the installed version? Steps 1 and 2 over the model and device
    /// words only ([`crate::HeadVerified::latest`]): the answer, "up to date" included, is proven
    /// at a trusted head. On success the head's number is stored as the highest block seen.
    pub async fn latest(&self) -> Result<LatestVerified> {
        let state = self.storage.load()?;
        let checker = Checker::new(&self.config, &self.limits, state, self.clock.now());
        let (number, head) = self.trusted_head(checker).await?;
        let (address, slots) = head.latest_request();
        let mut last = None;
        for (endpoint, rpc) in self.rpcs.iter().enumerate() {
            let result = match rpc.proof(address, slots.clone(), number).await {
                Ok(proof) => head.clone().latest(&proof),
                Err(reason) => Err(Error::Rpc { endpoint, reason }),
            };
            match result {
                Ok(latest) => {
                    let latest = latest.issued_by(self.id);
                    tracing::info!(
                        block = number,
                        latest = latest.model().latest_version,
                        installed = latest.installed(),
                        "step 2: latest version proven"
                    );
                    self.storage.store(&DeviceState {
                        highest_block: state.highest_block.max(number),
                        ..state
                    })?;
                    return Ok(latest);
                }
                Err(e) => {
                    tracing::warn!(endpoint, error = %e, "step 2: proof refused, trying the next endpoint");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(Error::AnswerCount {
            given: 0,
            configured: self.limits.quorum.n(),
        }))
    }

    /// The device configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// The device clock's reading.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Records that `version` runs now (after a confirmed install found on restart, when the
    /// state file had not been updated before a power cut). Never lowers the stored version.
    pub fn record_version(&self, version: u64) -> Result<()> {
        let state = self.storage.load()?;
        if version <= state.installed_version {
            return Ok(());
        }
        self.storage.store(&DeviceState {
            installed_version: version,
            ..state
        })
    }

    /// Records that `update` was installed: its version becomes the installed version (the
    /// install step calls this once the new image is confirmed).
    pub fn record_installed(&self, update: &ApprovedUpdate) -> Result<()> {
        let state = self.storage.load()?;
        self.storage.store(&DeviceState {
            installed_version: update.manifest.version,
            highest_block: state.highest_block.max(update.head.number),
        })
    }
}

/// An HTTP client for one of the device's untrusted services (`what` names it in errors):
/// `timeout` per request (connection, response and body; zero refused) and no redirects, so an
/// answer comes from the URL the device was given.
pub(crate) fn http_client(
    what: &str,
    timeout: std::time::Duration,
) -> std::result::Result<reqwest::Client, String> {
    if timeout.is_zero() {
        return Err(format!("{what} timeout must be above zero"));
    }
    shared_client(timeout, false)
}

/// The process's client with this timeout and redirect policy
/// ([`otaledger_ipfs::http::shared_client`]: one per setting, not one per device).
pub(crate) fn shared_client(
    timeout: std::time::Duration,
    follow_redirects: bool,
) -> std::result::Result<reqwest::Client, String> {
    otaledger_ipfs::http::shared_client(otaledger_ipfs::http::ClientSettings {
        connect_timeout: None,
        timeout: Some(timeout),
        follow_redirects,
    })
    .map_err(|e| format!("http client: {e}"))
}

/// `scheme://host:port` of `url`: what errors and logs name, never the path, query or user info
/// (an RPC provider's API key often sits in the path).
pub(crate) fn origin(url: &url::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

/// Largest state file the client reads back (`state.json`, `boot.json`, `reports.json`): 1 MiB.
/// Each holds a few numbers, a bounded list of rolled-back releases or at most
/// [`MAX_QUEUED_REPORTS`] reports (a few KiB); the bound keeps a corrupted or planted file — or
/// a FIFO or device file, whose metadata says 0 bytes — from being read without end.
pub const MAX_STATE_FILE: u64 = 1 << 20;

/// Reads a state file whole, at most `max` bytes ([`otaledger_core::fsutil::read_capped`]).
pub(crate) use otaledger_core::fsutil::read_capped;
