//! `otaledger device run`: the reference device client. It boots from a directory written by
//! `device provision` (`device.toml`, `identity.key`) and runs the device SDK's whole update
//! ([`otaledger_device_sdk::client::Updater`]) once or periodically.
//!
//! Release sources, in order: every `--indexer URL` (`GET /v1/models/<model>/releases/<version>`,
//! one bounded request), then the RPC endpoints' logs. All are untrusted; an answer one refuses
//! (wrong release, oversized, slow, or refused by the proofs and signatures) makes the next asked.
//!
//! The directory also holds the device's own files, each replaced atomically:
//! `state.json` (installed version, highest block seen), `slots/` (the A/B slots and
//! `boot.json`), `reports.json` (the report queue and next nonce), `download/` (a bundle
//! while it is checked) and `download.lock` (held by the running updater: a second `device run`
//! on the same directory exits 1 with "another updater is running").
//!
//! Exit codes (`--once`; a periodic run exits only on a configuration error):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | updated: a release was verified, installed and confirmed |
//! | 10 | up to date (proven at a trusted head) |
//! | 11 | not entitled yet: not paid, or the key not issued yet |
//! | 20 | refused at step 1, trusted head (no quorum, stale, rewound) |
//! | 21 | refused at step 2, state proofs |
//! | 22 | refused at step 3, policy (revoked, rollback, wrong model, inactive device, …) |
//! | 23 | refused at step 4, signatures |
//! | 24 | refused at step 5, key delivery |
//! | 25 | refused at step 6, download (every gateway failed, bundle hash) |
//! | 26 | refused at step 7, decryption or image hash |
//! | 27 | step 8: the new image failed its health check and was rolled back |
//! | 1 | any other error (configuration, I/O, no endpoint reachable) |

use std::{path::Path, time::Duration};

use otaledger_core::device_file::DeviceConfig;
use otaledger_device_sdk::{
    Limits, Quorum,
    client::{
        Client, FileInstaller, FileStorage, HttpKeyService, HttpReportSink, HttpRpc,
        ImageHashCheck, IndexerSource, KeyService, MAX_INDEXER_RESPONSE, Outcome, ReleaseSource,
        ReportQueue, ReportSink, Rpc, SystemClock, Updater, UpdaterParts,
    },
};
use otaledger_ipfs::FetchOptions;

use crate::{Error, Result};

/// Exit code: updated.
pub const EXIT_UPDATED: i32 = 0;
/// Exit code: up to date.
pub const EXIT_UP_TO_DATE: i32 = 10;
/// Exit code: not entitled yet.
pub const EXIT_NOT_ENTITLED: i32 = 11;
/// Exit code of a refusal at pipeline step `s` (1–8): `19 + s`.
pub const EXIT_REFUSED_BASE: i32 = 19;
/// Exit code: any other error.
pub const EXIT_ERROR: i32 = 1;

/// Settings of `device run` beyond `device.toml`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Blocks below the latest at which the head is taken.
    pub confirmations: u64,
    /// Minimum download rate, bytes per second.
    pub min_rate: u64,
    /// Time one key-service request may take.
    pub key_timeout: std::time::Duration,
    /// Indexers asked for the release's manifest and approval before the RPC endpoints' logs
    /// (`--indexer`, in order).
    pub indexers: Vec<String>,
    /// Time one indexer request may take.
    pub indexer_timeout: std::time::Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            confirmations: otaledger_device_sdk::DEFAULT_CONFIRMATIONS,
            min_rate: otaledger_ipfs::fetch::DEFAULT_MIN_RATE,
            key_timeout: otaledger_device_sdk::client::DEFAULT_KEY_SERVICE_TIMEOUT,
            indexers: Vec::new(),
            indexer_timeout: otaledger_device_sdk::client::DEFAULT_INDEXER_TIMEOUT,
        }
    }
}

fn input(field: &'static str, reason: String) -> Error {
    Error::Input { field, reason }
}

fn urls(field: &'static str, list: &[String]) -> Result<Vec<url::Url>> {
    list.iter()
        .map(|u| u.parse().map_err(|e| input(field, format!("{u}: {e}"))))
        .collect()
}

/// The release sources, in the order asked: every `--indexer`, then `device.toml`'s
/// `[indexer] urls` not already named (one bounded request each, where the RPC source searches
/// the logs from block 0, which public endpoints often refuse), then the RPC endpoints. All are
/// untrusted; a refused answer makes the next source asked.
pub fn release_sources(
    opts: &RunOptions,
    configured_indexers: &[String],
    chain_id: u64,
    rpc_urls: &[url::Url],
) -> Result<Vec<Box<dyn ReleaseSource>>> {
    let mut sources: Vec<Box<dyn ReleaseSource>> = Vec::new();
    let mut indexers = urls("--indexer", &opts.indexers)?
        .into_iter()
        .map(|u| ("--indexer", u))
        .collect::<Vec<_>>();
    for u in urls("indexer.urls", configured_indexers)? {
        if !indexers.iter().any(|(_, known)| *known == u) {
            indexers.push(("indexer.urls", u));
        }
    }
    for (field, u) in indexers {
        let source =
            IndexerSource::with_limits(u, chain_id, opts.indexer_timeout, MAX_INDEXER_RESPONSE)
                .map_err(|e| input(field, e))?;
        sources.push(Box::new(source));
    }
    for u in rpc_urls {
        let rpc = HttpRpc::new(u.clone()).map_err(|e| input("rpc.urls", e))?;
        sources.push(Box::new(rpc));
    }
    Ok(sources)
}

/// Builds the device in `dir`'s updater.
pub fn updater(dir: &Path, opts: &RunOptions) -> Result<Updater> {
    let config = DeviceConfig::load(dir)?;
    let identity = config.identity(dir)?;
    let rpc_urls = urls("rpc.urls", &config.rpc.urls)?;
    let rpc = |u: &url::Url| HttpRpc::new(u.clone()).map_err(|e| input("rpc.urls", e));
    let rpcs: Vec<Box<dyn Rpc>> = rpc_urls
        .iter()
        .map(|u| rpc(u).map(|r| Box::new(r) as _))
        .collect::<Result<_>>()?;
    let sources = release_sources(opts, &config.indexer.urls, config.chain_id, &rpc_urls)?;
    let quorum = Quorum::majority(rpcs.len()).map_err(|e| input("rpc.urls", e.to_string()))?;
    let mut limits = Limits::new(quorum);
    limits.confirmations = opts.confirmations;
    let sdk_config = otaledger_device_sdk::DeviceConfig {
        chain_id: config.chain_id,
        registry: config.registry,
        market: config.market,
        manufacturer_id: config.manufacturer_id,
        model_id: config.model_id,
        device_index: config.device_index,
    };
    let client = Client::new(
        sdk_config,
        limits,
        rpcs,
        Box::new(SystemClock),
        Box::new(FileStorage::new(dir.join("state.json"))),
    )
    .map_err(|e| input("rpc.urls", e.to_string()))?;
    let key_services: Vec<Box<dyn KeyService>> =
        urls("key_service.urls", &config.key_service.urls)?
            .into_iter()
            .map(|u| {
                HttpKeyService::with_timeout(u, opts.key_timeout)
                    .map(|s| Box::new(s) as _)
                    .map_err(|e| input("key_service.urls", e))
            })
            .collect::<Result<_>>()?;
    let sinks: Vec<Box<dyn ReportSink>> = urls("reports.urls", &config.reports.urls)?
        .iter()
        .map(|u| {
            HttpReportSink::new(u)
                .map(|s| Box::new(s) as _)
                .map_err(|e| input("reports.urls", e))
        })
        .collect::<Result<_>>()?;
    let installer =
        FileInstaller::new(dir.join("slots")).map_err(|e| input("--dir", e.to_string()))?;
    Ok(Updater::new(UpdaterParts {
        client,
        sources,
        key_services,
        key_service: config.key_service.address,
        identity,
        gateways: urls("ipfs.gateways", &config.ipfs.gateways)?,
        fetch: FetchOptions {
            min_rate: opts.min_rate,
            ..FetchOptions::default()
        },
        installer: Box::new(installer),
        health: Box::new(ImageHashCheck),
        reports: ReportQueue::new(dir.join("reports.json")),
        sinks,
        work_dir: dir.join("download"),
    }))
}

/// The exit code of one run's result.
pub fn exit_code(result: &std::result::Result<Outcome, otaledger_device_sdk::Error>) -> i32 {
    match result {
        Ok(Outcome::Updated { .. }) => EXIT_UPDATED,
        Ok(Outcome::UpToDate { .. }) => EXIT_UP_TO_DATE,
        Ok(Outcome::NotEntitled { .. }) => EXIT_NOT_ENTITLED,
        Err(e) => match e.step() {
            Some(step) => EXIT_REFUSED_BASE + i32::from(step),
            None => EXIT_ERROR,
        },
    }
}

/// Runs the device in `dir` periodically: one attempt every `interval`, forever (errors are
/// logged by `observer`'s caller and retried at the next tick).
pub async fn run_forever(
    updater: &mut Updater,
    interval: Duration,
    mut on_result: impl FnMut(&std::result::Result<Outcome, otaledger_device_sdk::Error>),
) -> ! {
    loop {
        let result = updater.run_once().await;
        on_result(&result);
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexers_come_first_and_bad_ones_are_refused_by_option_name() {
        let rpc: Vec<url::Url> = vec!["http://127.0.0.1:8545/".parse().unwrap()];
        let opts = RunOptions {
            indexers: vec![
                "http://127.0.0.1:8080/".into(),
                "https://idx.example/".into(),
            ],
            ..RunOptions::default()
        };
        assert_eq!(release_sources(&opts, &[], 1, &rpc).unwrap().len(), 3);
        assert_eq!(
            release_sources(&RunOptions::default(), &[], 1, &rpc)
                .unwrap()
                .len(),
            1
        );
        // device.toml's indexers follow the options', each URL once.
        let configured = [
            "https://idx.example/".into(),
            "http://10.0.0.1:8088/".into(),
        ];
        assert_eq!(
            release_sources(&opts, &configured, 1, &rpc).unwrap().len(),
            4
        );
        let err = release_sources(&RunOptions::default(), &["ftp://x/".into()], 1, &rpc)
            .err()
            .unwrap();
        assert!(
            matches!(
                &err,
                Error::Input {
                    field: "indexer.urls",
                    ..
                }
            ),
            "{err}"
        );
        for bad in ["not a url", "ftp://idx.example/"] {
            let opts = RunOptions {
                indexers: vec![bad.into()],
                ..RunOptions::default()
            };
            let err = release_sources(&opts, &[], 1, &rpc).err().unwrap();
            assert!(
                matches!(
                    &err,
                    Error::Input {
                        field: "--indexer",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }
}
