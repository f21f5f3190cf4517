//! Step 9, report: what happened to a release (installed, refused and why, failed, rolled
//! back), as an `otaledger-report/1` ([`otaledger_core::report`]) signed with the device's
//! identity key, queued on disk and posted to the indexers of `[reports] urls`
//! (`POST /v1/reports`).
//!
//! The queue file (`reports.json`) holds the next nonce and the signed reports not yet
//! delivered; it is replaced atomically before anything is sent, so a nonce is never reused
//! (a receiver refuses a nonce at or below the highest it stored: replays are its to detect,
//! the device only makes nonces strictly increase). Delivery follows the receivers' contract:
//! `202` and `409` (already stored) drop the report (no other 2xx: a captive portal's `200`
//! is no receipt); `400`, `403` and `413` drop and log it (it
//! can never be accepted); `404`, `5xx` and network errors keep it for the next attempt. The
//! queue is bounded ([`MAX_QUEUED_REPORTS`], oldest dropped first) and holds one report per
//! event (release, version, outcome, detail): a repeat replaces the queued one, so a refusal
//! repeated at every check cannot flush older reports out.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256};
use otaledger_core::report::{MAX_REPORT_JSON, Outcome, Report, SignedReport};
use serde::{Deserialize, Serialize};

use super::RpcFuture;
use crate::{Error, Result};

/// Most reports kept while the receivers are unreachable.
pub const MAX_QUEUED_REPORTS: usize = 64;

/// What a receiver answered to one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkAnswer {
    /// `202`: stored.
    Accepted,
    /// `409`: a report with this nonce or a higher one is stored (a duplicate).
    Duplicate,
    /// `400`, `403`, `413`: it will never be accepted (the status).
    Rejected(u16),
    /// `404` (device not known yet), `5xx`, any status outside the contract (a `200` or a
    /// redirect from something that is not an indexer): try again later (the status).
    Retry(u16),
}

/// A receiver of install reports, behind a trait so tests inject their own.
pub trait ReportSink: Send + Sync {
    /// Posts one report's JSON wire form.
    fn post(&self, json: String) -> RpcFuture<'_, SinkAnswer>;
}

/// Default time one report `POST` may take ([`HttpReportSink::with_timeout`]): 10 s. A receiver
/// that does not answer in time keeps the report queued and gets no later one this round.
pub const DEFAULT_REPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST <base>/v1/reports` over HTTP(S); response bodies are not read.
#[derive(Debug, Clone)]
pub struct HttpReportSink {
    url: String,
    http: reqwest::Client,
}

impl HttpReportSink {
    /// A receiver at `base`, [`DEFAULT_REPORT_TIMEOUT`] per request.
    pub fn new(base: &url::Url) -> std::result::Result<Self, String> {
        Self::with_timeout(base, DEFAULT_REPORT_TIMEOUT)
    }

    /// A receiver at `base`, `timeout` per request; zero is refused.
    pub fn with_timeout(base: &url::Url, timeout: Duration) -> std::result::Result<Self, String> {
        let http = super::http_client("report", timeout)?;
        Ok(Self {
            url: format!("{}/v1/reports", base.as_str().trim_end_matches('/')),
            http,
        })
    }
}

impl ReportSink for HttpReportSink {
    fn post(&self, json: String) -> RpcFuture<'_, SinkAnswer> {
        Box::pin(async move {
            let response = self
                .http
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json)
                .send()
                .await
                .map_err(|e| format!("{}: {e}", self.url))?;
            Ok(match response.status().as_u16() {
                // Only the contract's 202 means stored: a 200 from something that is not an
                // indexer (a captive portal, a proxy) must not drop the report.
                202 => SinkAnswer::Accepted,
                409 => SinkAnswer::Duplicate,
                s @ (400 | 403 | 413) => SinkAnswer::Rejected(s),
                s => SinkAnswer::Retry(s),
            })
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QueueFile {
    /// The nonce of the next report.
    next_nonce: u64,
    /// Signed reports (JSON wire form), oldest first.
    queue: Vec<String>,
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Reports stored by a receiver (or already stored there).
    pub delivered: usize,
    /// Reports dropped as never acceptable.
    pub rejected: usize,
    /// Reports still queued.
    pub queued: usize,
}

/// The device's report queue in a file.
#[derive(Debug, Clone)]
pub struct ReportQueue {
    path: PathBuf,
}

impl ReportQueue {
    /// A queue kept in `path` (created on the first report).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::ReportQueue {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn load(&self) -> Result<QueueFile> {
        match super::read_capped(&self.path, super::MAX_STATE_FILE) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.error(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(QueueFile {
                next_nonce: 1,
                queue: Vec::new(),
            }),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    fn store(&self, file: &QueueFile) -> Result<()> {
        let json = serde_json::to_vec_pretty(file).map_err(|e| self.error(e.to_string()))?;
        // Through `<path>.partial` (one fixed name: a power cut's leftover is replaced, not kept
        // beside it for ever), fsynced, renamed, directory fsynced.
        super::install::write_durably(&self.path, &mut |out| {
            out.write_all(&json)?;
            Ok(json.len() as u64)
        })
        .map_err(|e| self.error(e.to_string()))?;
        Ok(())
    }

    /// Removes the temporary file an interrupted store left (the updater calls it at start,
    /// holding its lock); true if there was one.
    pub fn remove_stale_temporary(&self) -> Result<bool> {
        super::install::remove_partial(&self.path).map_err(|e| self.error(e.to_string()))
    }

    /// The queued reports, oldest first.
    pub fn queued(&self) -> Result<Vec<SignedReport>> {
        self.load()?
            .queue
            .iter()
            .map(|j| SignedReport::from_json(j.as_bytes()).map_err(|e| self.error(e.to_string())))
            .collect()
    }

    /// Signs a report with the next nonce and queues it, replacing a queued report of the same
    /// event (the nonce is consumed even if the report is never delivered). Returns the signed
    /// report.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &self,
        identity: &PrivateKeySigner,
        chain_id: u64,
        registry: Address,
        device_index: u64,
        release_id: B256,
        version: u64,
        outcome: Outcome,
        detail: &str,
        block_number: u64,
        timestamp: u64,
    ) -> Result<SignedReport> {
        let mut file = self.load()?;
        // A queue file at the last nonce (tampered or worn out) fails closed: a wrapped nonce
        // would be refused by every receiver as a replay.
        let next_nonce = file
            .next_nonce
            .checked_add(1)
            .ok_or_else(|| self.error("next nonce exhausted (u64::MAX)"))?;
        let report = Report {
            chain_id,
            registry,
            device_index,
            release_id,
            version,
            outcome,
            detail: if outcome == Outcome::Installed {
                String::new()
            } else {
                detail.to_owned()
            },
            block_number,
            timestamp,
            nonce: file.next_nonce,
        };
        let signed = report
            .sign(identity)
            .map_err(|e| self.error(format!("signing: {e}")))?;
        let json = signed.to_json();
        if json.len() > MAX_REPORT_JSON {
            return Err(self.error(format!("report of {} bytes", json.len())));
        }
        file.next_nonce = next_nonce;
        // One queued report per event: a still-queued report of the same release, version,
        // outcome and detail is replaced by this (latest) one, so a refusal repeated at every
        // check while the receivers are unreachable cannot push older reports out of the
        // bounded queue.
        file.queue.retain(|queued| {
            SignedReport::from_json(queued.as_bytes()).map_or(true, |q| {
                let q = &q.report;
                (q.release_id, q.version, q.outcome, q.detail.as_str())
                    != (release_id, version, outcome, signed.report.detail.as_str())
            })
        });
        file.queue.push(json);
        let excess = file.queue.len().saturating_sub(MAX_QUEUED_REPORTS);
        if excess > 0 {
            tracing::warn!(
                dropped = excess,
                "report queue full: oldest reports dropped"
            );
            file.queue.drain(..excess);
        }
        self.store(&file)?;
        tracing::info!(
            nonce = signed.report.nonce,
            outcome = %outcome,
            detail = %signed.report.detail,
            "step 9: report signed and queued"
        );
        Ok(signed)
    }

    /// Posts every queued report, oldest first, to the first of `sinks` that takes it; keeps
    /// what no sink took for the next round. A sink that answered "retry" or was unreachable is
    /// not asked again this round (order per receiver, one timeout per round). With no sinks,
    /// everything stays queued.
    pub async fn deliver(&self, sinks: &[Box<dyn ReportSink>]) -> Result<Delivery> {
        let file = self.load()?;
        let mut kept = Vec::new();
        let mut round = Delivery::default();
        // A sink that did not take a report gets no later one this round: receivers refuse a
        // nonce at or below the highest they stored, so a later report stored first would turn
        // the earlier one into a 409 (dropped: lost); and an unreachable sink costs one timeout,
        // not one per queued report.
        let mut skipped = vec![false; sinks.len()];
        for json in file.queue.iter() {
            let mut done = false;
            for (i, sink) in sinks.iter().enumerate() {
                if skipped[i] {
                    continue;
                }
                match sink.post(json.clone()).await {
                    Ok(SinkAnswer::Accepted | SinkAnswer::Duplicate) => {
                        round.delivered += 1;
                        done = true;
                        break;
                    }
                    Ok(SinkAnswer::Rejected(status)) => {
                        tracing::warn!(sink = i, status, "step 9: report rejected, dropped");
                        round.rejected += 1;
                        done = true;
                        break;
                    }
                    Ok(SinkAnswer::Retry(status)) => {
                        tracing::info!(sink = i, status, "step 9: report kept for later");
                        skipped[i] = true;
                    }
                    Err(reason) => {
                        tracing::info!(sink = i, %reason, "step 9: report receiver unreachable");
                        skipped[i] = true;
                    }
                }
            }
            if !done {
                kept.push(json.clone());
            }
        }
        round.queued = kept.len();
        if kept.len() != file.queue.len() {
            // Reload: only this process writes the queue, but keep any report pushed meanwhile.
            let mut now = self.load()?;
            now.queue
                .retain(|j| kept.contains(j) || !file.queue.contains(j));
            self.store(&now)?;
        }
        Ok(round)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store goes through `reports.json.partial` and leaves nothing beside the queue; a
    /// leftover of an interrupted store (a power cut) is removed at start and replaced by the
    /// next store anyway, never piling up beside the queue.
    #[test]
    fn an_interrupted_store_leaves_one_temporary_file_that_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let queue = ReportQueue::new(dir.path().join("reports.json"));
        let identity = PrivateKeySigner::random();
        let push = |detail: &str| {
            queue
                .push(
                    &identity,
                    31337,
                    Address::repeat_byte(1),
                    7,
                    B256::repeat_byte(2),
                    1,
                    Outcome::Refused,
                    detail,
                    10,
                    1_700_000_000,
                )
                .unwrap()
        };
        push("image-hash");
        let names = || {
            let mut n: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(), ["reports.json"]);
        // A power cut between writing the temporary file and the rename.
        std::fs::write(dir.path().join("reports.json.partial"), b"{\"torn").unwrap();
        assert!(queue.remove_stale_temporary().unwrap());
        assert!(!queue.remove_stale_temporary().unwrap());
        assert_eq!(names(), ["reports.json"]);
        std::fs::write(dir.path().join("reports.json.partial"), b"{\"torn").unwrap();
        push("bundle-hash");
        assert_eq!(names(), ["reports.json"]);
        assert_eq!(queue.queued().unwrap().len(), 2);
    }
}
