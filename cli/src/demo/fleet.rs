//! The simulated fleet: every device a real device-SDK updater
//! ([`otaledger_cli::device_run::updater`], what `device run` boots) over its own directory —
//! its `device.toml`, identity and CP-ABE keys, `state.json`, A/B slots and report queue. Each
//! proves the chain state at a voted head, fetches its key, downloads and verifies the bundle,
//! decrypts, installs and reports to the indexer; nothing is shortcut.
//!
//! The round: every device runs one update attempt; a device that is not entitled (yet)
//! checks again every [`RECHECK`] while the round lasts, and one whose attempt failed tries
//! again (at most [`MAX_ERRORS`] attempts: a refusal stays a refusal, a node that was too busy
//! to answer is asked again). The round ends when every device the owner bought for has
//! settled (installed, or given up), or at the timeout.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::primitives::Address;
use eyre::{WrapErr, eyre};
use otaledger_cli::device_run::{self, RunOptions};
use otaledger_core::device_file::DeviceConfig;
use otaledger_device_sdk::client::Outcome;
use tokio::sync::Semaphore;

/// How often a device that is not entitled checks again during the round.
const RECHECK: Duration = Duration::from_secs(1);

/// Failed attempts after which a device gives up for the round.
const MAX_ERRORS: u32 = 5;

/// One device of the fleet.
#[derive(Debug, Clone)]
struct Device {
    dir: PathBuf,
    index: u64,
    address: Address,
    bought: bool,
}

/// How a device ended the round.
#[derive(Debug, Clone)]
pub(super) struct DeviceResult {
    /// Its identity address.
    pub(super) address: Address,
    /// Its global index.
    pub(super) index: u64,
    /// Whether the owner bought the release for it.
    pub(super) bought: bool,
    /// The version in its state file after the round.
    pub(super) installed_version: u64,
    /// Its last attempt: `updated`, `up-to-date`, `not-entitled`, or `refused:<class>`.
    pub(super) verdict: String,
    /// Every attempt of the round, in order: how long `run_once` took and its verdict.
    pub(super) attempts: Vec<(Duration, String)>,
    /// When it installed, after the round began.
    pub(super) installed_after: Option<Duration>,
}

/// Settings of a round.
#[derive(Debug, Clone, Copy)]
pub(super) struct RoundOptions {
    /// Blocks below the latest at which the devices take their head.
    pub(super) confirmations: u64,
    /// Devices updating at once.
    pub(super) parallel: usize,
    /// Longest round.
    pub(super) timeout: Duration,
    /// `--json`: the counter goes to stderr only.
    pub(super) json: bool,
}

/// The fleet's devices.
#[derive(Debug)]
pub(super) struct Fleet {
    devices: Vec<Device>,
}

impl Fleet {
    /// Reads every device's `device.toml`; `bought` holds the bought devices' indexes.
    pub(super) fn load(dirs: &[PathBuf], bought: &[u64]) -> eyre::Result<Self> {
        let bought: HashSet<u64> = bought.iter().copied().collect();
        let devices = dirs
            .iter()
            .map(|dir| {
                let c = DeviceConfig::load(dir)
                    .wrap_err_with(|| format!("loading {}", dir.display()))?;
                Ok(Device {
                    dir: dir.clone(),
                    index: c.device_index,
                    address: c.address,
                    bought: bought.contains(&c.device_index),
                })
            })
            .collect::<eyre::Result<Vec<_>>>()?;
        Ok(Self { devices })
    }

    /// Runs the round; one result per device, in fleet order.
    pub(super) async fn round(self, o: RoundOptions) -> eyre::Result<Vec<DeviceResult>> {
        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(o.parallel.max(1)));
        let over = Arc::new(AtomicBool::new(false));
        let checked = Arc::new(AtomicUsize::new(0));
        let installed = Arc::new(AtomicUsize::new(0));
        let bought_total = self.devices.iter().filter(|d| d.bought).count();
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(self.devices.len() as u64),
            // As every progress bar of the CLI: on a terminal and without `--json` only.
            if o.json {
                indicatif::ProgressDrawTarget::hidden()
            } else {
                indicatif::ProgressDrawTarget::stderr()
            },
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("        {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let opts = RunOptions {
            confirmations: o.confirmations,
            ..RunOptions::default()
        };
        // A JoinSet: if the demo is interrupted, dropping it aborts every device.
        let mut tasks = tokio::task::JoinSet::new();
        let count = self.devices.len();
        let mut settled_bought = Vec::new();
        for (n, device) in self.devices.into_iter().enumerate() {
            let (permits, over, checked, installed) = (
                permits.clone(),
                over.clone(),
                checked.clone(),
                installed.clone(),
            );
            let opts = opts.clone();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            if device.bought {
                settled_bought.push(done_rx);
            }
            tasks.spawn(async move {
                let mut updater = device_run::updater(&device.dir, &opts)?;
                let mut first = true;
                let mut errors = 0;
                let mut done_tx = Some(done_tx);
                let mut attempts = Vec::new();
                let mut installed_after = None;
                let verdict = loop {
                    let (result, took) = {
                        let _permit = permits.acquire().await?;
                        let began = Instant::now();
                        let result = updater.run_once().await;
                        (result, began.elapsed())
                    };
                    if first {
                        checked.fetch_add(1, Ordering::Relaxed);
                        first = false;
                    }
                    let verdict = match &result {
                        Ok(Outcome::Updated { .. }) => {
                            installed.fetch_add(1, Ordering::Relaxed);
                            installed_after = Some(started.elapsed());
                            "updated".to_owned()
                        }
                        Ok(Outcome::UpToDate { .. }) => "up-to-date".to_owned(),
                        Ok(Outcome::NotEntitled { .. }) => "not-entitled".to_owned(),
                        Err(e) => format!("refused:{}", e.class()),
                    };
                    attempts.push((took, verdict.clone()));
                    // Not entitled (yet): check again while the round lasts. An error (a
                    // refusal, or a node too slow to answer): again at the next interval, as
                    // `device run --interval` does, at most `MAX_ERRORS` times.
                    let waiting = match &result {
                        Ok(Outcome::NotEntitled { .. }) => true,
                        Ok(_) => false,
                        Err(_) => {
                            errors += 1;
                            errors < MAX_ERRORS
                        }
                    };
                    if !waiting || over.load(Ordering::Relaxed) {
                        break verdict;
                    }
                    tokio::time::sleep(RECHECK).await;
                    if over.load(Ordering::Relaxed) {
                        break verdict;
                    }
                };
                if let Some(tx) = done_tx.take() {
                    let _ = tx.send(());
                }
                let installed_version = updater.parts().client.state()?.installed_version;
                Ok::<_, eyre::Report>((
                    n,
                    DeviceResult {
                        address: device.address,
                        index: device.index,
                        bought: device.bought,
                        installed_version,
                        verdict,
                        attempts,
                        installed_after,
                    },
                ))
            });
        }

        // The counter, until every bought device settled (or the timeout).
        let all_bought = futures_util::future::join_all(settled_bought);
        tokio::pin!(all_bought);
        let deadline = tokio::time::sleep(o.timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_line = Instant::now();
        let show = |bar: &indicatif::ProgressBar| {
            format!(
                "devices: {}/{} checked, {}/{bought_total} bought devices installed",
                checked.load(Ordering::Relaxed),
                bar.length().unwrap_or_default(),
                installed.load(Ordering::Relaxed),
            )
        };
        let timed_out = loop {
            tokio::select! {
                _ = &mut all_bought => break false,
                _ = &mut deadline => break true,
                _ = tick.tick() => {
                    let line = show(&bar);
                    bar.set_message(line.clone());
                    // Without a terminal the bar is hidden: a plain line every 5 s instead.
                    if bar.is_hidden() && last_line.elapsed() >= Duration::from_secs(5) {
                        last_line = Instant::now();
                        if o.json { eprintln!("        {line}"); } else { println!("        {line}"); }
                    }
                }
            }
        };
        over.store(true, Ordering::Relaxed);
        let mut results = Vec::with_capacity(count);
        while let Some(joined) = tasks.join_next().await {
            results.push(joined.map_err(|e| eyre!("a device task failed: {e}"))??);
        }
        results.sort_by_key(|(n, _)| *n);
        let results: Vec<DeviceResult> = results.into_iter().map(|(_, r)| r).collect();
        let line = show(&bar);
        bar.finish_and_clear();
        let line = format!("{line} in {:.1} s", started.elapsed().as_secs_f64());
        if o.json {
            eprintln!("        {line}");
        } else {
            println!("        {line}");
        }
        if timed_out {
            eprintln!(
                "the fleet round timed out after {} s (--timeout)",
                o.timeout.as_secs()
            );
        }
        Ok(results)
    }
}
