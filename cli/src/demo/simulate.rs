//! `otaledger fleet simulate`: the fleet at scale, as a benchmark (issue 15 §4).
//!
//! The demo's world (its own anvil, the contracts, a 2-of-3 manufacturer, the gateway, key
//! service and indexer), a fleet of `--devices` provisioned and claimed, a release of
//! `--image-size` published and bought for `--buyers` of them; then every device — a real
//! device-SDK updater over its own directory, as in the demo — proves the chain state,
//! fetches its key, downloads and verifies the bundle, decrypts, installs and reports. The
//! devices reach their RPC endpoint and gateway through a [`relay`](super::relay) that counts
//! what they ask and, with `--relay cache`, is an untrusted HTTP cache.
//!
//! It reports (and with `--json` prints as its last line): the time from the release's
//! publication to the last entitled device installed, each update attempt's latency (p50, p99,
//! max), RPC requests per device per check (by method), gateway bytes served, CPU per device
//! update (this process — devices, gateway, key service, indexer — and anvil's apart), and the
//! peak RSS of both. Every device's attempts go to `DIR/devices.json`.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand, ValueEnum};
use eyre::{WrapErr, bail};
use serde::Serialize;

use super::{DemoArgs, fleet::DeviceResult, relay::Counts};

/// `otaledger fleet`.
#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// A benchmark: a fleet of simulated devices, each verifying for itself, updates from a
    /// local chain and gateway; reports latency, requests, bytes, CPU and memory per device.
    Simulate(SimulateArgs),
}

/// How the devices reach their RPC endpoint and gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RelayMode {
    /// Directly: nothing counts their requests.
    None,
    /// Through a relay that counts requests and bytes.
    #[default]
    Count,
    /// Through an untrusted HTTP cache: answers that cannot change (pinned to a block number,
    /// or content addressed) are served again without asking the upstream.
    Cache,
}

impl RelayMode {
    /// As on the command line.
    fn name(self) -> &'static str {
        match self {
            RelayMode::None => "none",
            RelayMode::Count => "count",
            RelayMode::Cache => "cache",
        }
    }
}

/// Options of `otaledger fleet simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Devices in the fleet.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    devices: u32,
    /// Devices the release is bought for [default: all of them]. The others check again every
    /// second while the round lasts, as the demo's do.
    #[arg(long)]
    buyers: Option<u32>,
    /// Size of the released image: bytes, or with a K, M or G suffix (powers of 1,024).
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    image_size: usize,
    /// Devices updating at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    parallel: u32,
    /// How the devices reach the RPC endpoint and the gateway.
    #[arg(long, value_enum, default_value_t = RelayMode::Count)]
    relay: RelayMode,
    /// Run the indexer on this PostgreSQL server instead of SQLite (a fresh database, dropped
    /// on exit).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// State directory (wiped at the start of every run; refused if it holds anything but an
    /// earlier run's state).
    #[arg(long, default_value = ".otaledger-simulate")]
    dir: PathBuf,
    /// Seconds the update round may take.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

/// The largest image: the release is built in memory-bounded streams, but the devices' slots
/// are files: 10,000 devices × 2 slots of this size must fit on the disk.
const MAX_IMAGE: usize = 1 << 30;

/// Parses `1048576`, `512K`, `1M`, `1G`.
fn parse_size(s: &str) -> Result<usize, String> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_uppercase()),
        _ => (s, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        other => return Err(format!("unknown unit {other:?}: use K, M or G")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 1048576, 512K, 1M)"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .filter(|&b| (1..=MAX_IMAGE).contains(&b))
        .ok_or_else(|| format!("{s} is outside 1 byte..=1G"))?;
    Ok(bytes)
}

/// What `fleet simulate` adds to a demo run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sim {
    /// The released image's size.
    pub(crate) image_size: usize,
    /// How the devices reach the RPC endpoint and gateway.
    pub(crate) relay: RelayMode,
}

/// CPU seconds and peak resident memory of a process, from `/proc` (Linux only).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ProcStat {
    /// User + system CPU time, seconds.
    pub(super) cpu: f64,
    /// Peak resident set (VmHWM), bytes.
    pub(super) peak_rss: u64,
}

impl ProcStat {
    /// `pid`'s (or this process's, with `None`) CPU time and peak RSS; zeros where `/proc`
    /// cannot say.
    pub(super) fn of(pid: Option<u32>) -> Self {
        let dir = pid.map_or_else(|| "/proc/self".to_owned(), |p| format!("/proc/{p}"));
        // Fields 14 and 15 of `stat` (after the command name, which may hold spaces) are
        // utime and stime in clock ticks, which `/proc` reports at USER_HZ = 100.
        let cpu = std::fs::read_to_string(format!("{dir}/stat"))
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split(' ').collect();
                let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
                Some(ticks as f64 / 100.0)
            })
            .unwrap_or_default();
        let peak_rss = std::fs::read_to_string(format!("{dir}/status"))
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or_default();
        Self { cpu, peak_rss }
    }
}

/// What a demo run measured for `fleet simulate`.
#[derive(Debug)]
pub(super) struct Measured {
    pub(super) results: Vec<DeviceResult>,
    /// `sqlite` or `postgres`.
    pub(super) database: &'static str,
    pub(super) bundle_size: u64,
    /// From the publication's receipt to the start of the update round (purchase, indexer).
    pub(super) publish_to_round: Duration,
    /// The round's wall time.
    pub(super) round: Duration,
    /// This process over the round (from the publication).
    pub(super) cpu_self: f64,
    /// Anvil over the round (from the publication).
    pub(super) cpu_anvil: f64,
    pub(super) peak_rss_self: u64,
    pub(super) peak_rss_anvil: u64,
    pub(super) rpc: Option<Counts>,
    pub(super) gateway: Option<Counts>,
    pub(super) stage_ms: Vec<(String, u128)>,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Serialize)]
struct Latency {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn latency(mut ms: Vec<f64>) -> Latency {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if ms.is_empty() {
            0.0
        } else {
            // Nearest rank.
            let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
            ms[rank - 1]
        }
    };
    Latency {
        count: ms.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: ms.last().copied().unwrap_or_default(),
    }
}

/// The report (`--json`: the last line on stdout).
#[derive(Debug, Serialize)]
struct Report {
    devices: u32,
    entitled: usize,
    installed: usize,
    image_size: usize,
    bundle_size: u64,
    parallel: u32,
    relay: RelayMode,
    database: &'static str,
    /// Publication's receipt → the last entitled device installed.
    publish_to_all_installed_s: f64,
    /// Of which the update round (purchase and indexing before it).
    round_s: f64,
    /// Every update attempt that installed.
    update: Latency,
    /// Every attempt of the round (updates, checks of devices not entitled, refusals).
    attempts: Latency,
    /// RPC requests per attempt (the relay's count over the round), by method.
    rpc_requests_per_check: f64,
    rpc_methods_per_check: std::collections::BTreeMap<String, f64>,
    /// Of the RPC requests, the share the cache answered.
    rpc_cache_hit_rate: f64,
    gateway_requests: u64,
    /// Bytes the devices received from the gateway (through the relay).
    gateway_bytes_served: u64,
    /// Bytes the gateway itself served (with the cache: only the misses).
    gateway_bytes_upstream: u64,
    /// CPU per installed device: this process (devices, gateway, key service, indexer).
    cpu_ms_per_update_process: f64,
    /// CPU per installed device: anvil (proofs, headers, receipts).
    cpu_ms_per_update_anvil: f64,
    peak_rss_process_mib: f64,
    peak_rss_anvil_mib: f64,
    stage_ms: Vec<(String, u128)>,
}

/// One device in `DIR/devices.json`.
#[derive(Debug, Serialize)]
struct DeviceLine<'a> {
    index: u64,
    bought: bool,
    installed_version: u64,
    verdict: &'a str,
    installed_after_ms: Option<f64>,
    attempts: Vec<(f64, &'a str)>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `otaledger fleet …`.
pub(crate) async fn run(args: FleetArgs, json: bool) -> eyre::Result<()> {
    let FleetCommand::Simulate(a) = args.command;
    let buyers = a.buyers.unwrap_or(a.devices);
    if buyers > a.devices {
        bail!("--buyers {buyers} is more than --devices {}", a.devices);
    }
    let demo = DemoArgs {
        rpc_url: None,
        private_key: None,
        devices: a.devices,
        buyers,
        postgres: a.postgres.clone(),
        port: 0,
        dir: a.dir.clone(),
        exit_when_done: true,
        pause_before_purchase: false,
        no_purchase: false,
        token: false,
        unclaimed: 0,
        parallel: a.parallel,
        confirmations: None,
        timeout: a.timeout,
        sim: Some(Sim {
            image_size: a.image_size,
            relay: a.relay,
        }),
    };
    let dir = demo.dir.clone();
    let Some(m) = super::run_measured(demo, json).await? else {
        // Interrupted.
        return Ok(());
    };
    let installed: Vec<&DeviceResult> = m
        .results
        .iter()
        .filter(|r| r.installed_after.is_some())
        .collect();
    let entitled = m.results.iter().filter(|r| r.bought).count();
    let last_install = installed
        .iter()
        .filter_map(|r| r.installed_after)
        .max()
        .unwrap_or_default();
    let update = latency(
        m.results
            .iter()
            .flat_map(|r| &r.attempts)
            .filter(|(_, v)| v == "updated")
            .map(|(d, _)| ms(*d))
            .collect(),
    );
    let attempts = latency(
        m.results
            .iter()
            .flat_map(|r| &r.attempts)
            .map(|(d, _)| ms(*d))
            .collect(),
    );
    let checks = attempts.count.max(1) as f64;
    let per_update = |cpu: f64| cpu * 1000.0 / installed.len().max(1) as f64;
    let rpc = m.rpc.clone().unwrap_or_default();
    let gateway = m.gateway.clone().unwrap_or_default();
    let report = Report {
        devices: a.devices,
        entitled,
        installed: installed.len(),
        image_size: a.image_size,
        bundle_size: m.bundle_size,
        parallel: a.parallel,
        relay: a.relay,
        database: m.database,
        publish_to_all_installed_s: (m.publish_to_round + last_install).as_secs_f64(),
        round_s: m.round.as_secs_f64(),
        update,
        attempts,
        rpc_requests_per_check: rpc.requests as f64 / checks,
        rpc_methods_per_check: rpc
            .methods
            .iter()
            .map(|(k, v)| (k.clone(), v.requests as f64 / checks))
            .collect(),
        rpc_cache_hit_rate: if rpc.requests == 0 {
            0.0
        } else {
            rpc.cache_hits as f64 / rpc.requests as f64
        },
        gateway_requests: gateway.requests,
        gateway_bytes_served: gateway.bytes_out,
        gateway_bytes_upstream: gateway.bytes_upstream,
        cpu_ms_per_update_process: per_update(m.cpu_self),
        cpu_ms_per_update_anvil: per_update(m.cpu_anvil),
        peak_rss_process_mib: m.peak_rss_self as f64 / f64::from(1 << 20),
        peak_rss_anvil_mib: m.peak_rss_anvil as f64 / f64::from(1 << 20),
        stage_ms: m.stage_ms.clone(),
    };
    let lines: Vec<DeviceLine<'_>> = m
        .results
        .iter()
        .map(|r| DeviceLine {
            index: r.index,
            bought: r.bought,
            installed_version: r.installed_version,
            verdict: &r.verdict,
            installed_after_ms: r.installed_after.map(ms),
            attempts: r
                .attempts
                .iter()
                .map(|(d, v)| (ms(*d), v.as_str()))
                .collect(),
        })
        .collect();
    let devices_file = dir.join("devices.json");
    otaledger_core::fsutil::write_atomic(&devices_file, &serde_json::to_vec(&lines)?)
        .wrap_err_with(|| format!("writing {}", devices_file.display()))?;

    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!(
        "fleet simulate: {} devices, {} entitled, {} installed; image {} bytes (bundle {}), {} at once, relay {}, {}",
        report.devices,
        report.entitled,
        report.installed,
        report.image_size,
        report.bundle_size,
        report.parallel,
        a.relay.name(),
        report.database
    ));
    say(format!(
        "  publication → last entitled device installed  {:.1} s (update round {:.1} s)",
        report.publish_to_all_installed_s, report.round_s
    ));
    say(format!(
        "  update attempt latency                       p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms ({} updates, {} attempts)",
        report.update.p50_ms,
        report.update.p99_ms,
        report.update.max_ms,
        report.update.count,
        report.attempts.count
    ));
    if a.relay != RelayMode::None {
        say(format!(
            "  RPC requests per check                       {:.2} ({})  cache hits {:.0} %",
            report.rpc_requests_per_check,
            report
                .rpc_methods_per_check
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            report.rpc_cache_hit_rate * 100.0
        ));
        say(format!(
            "  gateway                                      {} requests, {} bytes to devices, {} bytes from the gateway",
            report.gateway_requests, report.gateway_bytes_served, report.gateway_bytes_upstream
        ));
    }
    say(format!(
        "  CPU per update                               {:.1} ms in this process + {:.1} ms in anvil",
        report.cpu_ms_per_update_process, report.cpu_ms_per_update_anvil
    ));
    say(format!(
        "  peak RSS                                     {:.0} MiB this process, {:.0} MiB anvil",
        report.peak_rss_process_mib, report.peak_rss_anvil_mib
    ));
    say(format!(
        "  every device's attempts: {}",
        devices_file.display()
    ));
    if json {
        println!("{}", serde_json::to_string(&report)?);
    }
    if report.installed != report.entitled {
        bail!(
            "{} of {} entitled devices installed",
            report.installed,
            report.entitled
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_bounds() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("2G").is_err());
        assert!(parse_size("1T").unwrap_err().contains("unknown unit"));
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = latency((1..=100).map(f64::from).collect());
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        let one = latency(vec![7.0]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert_eq!(latency(Vec::new()).count, 0);
    }

    #[test]
    fn this_process_has_cpu_time_and_a_peak() {
        let s = ProcStat::of(None);
        if cfg!(target_os = "linux") {
            assert!(s.peak_rss > 0);
        }
    }
}
