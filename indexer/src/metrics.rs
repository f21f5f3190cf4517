//! Prometheus metrics of a running indexer (text exposition format 0.0.4 at
//! `/metrics`): head lag, events written, reorgs and their depth, RPC errors
//! per endpoint, database write latency, install reports by answer, alerts by
//! rule and webhook deliveries.
//!
//! Counters live in one [`Metrics`] per indexer (no process-wide registry, so
//! several indexers in one process — the tests — do not mix); the values read
//! from the database (checkpoint, stored alerts) are read at scrape time.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Upper bounds (seconds) of the database write latency histogram's buckets.
pub const WRITE_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How a `POST /v1/reports` was answered (the label of
/// `otaledger_indexer_reports_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportAnswer {
    /// 202, stored.
    Accepted,
    /// 400.
    Malformed,
    /// 403.
    WrongSigner,
    /// 404.
    UnknownDevice,
    /// 409.
    Replayed,
    /// 413.
    TooLarge,
}

impl ReportAnswer {
    const ALL: [ReportAnswer; 6] = [
        ReportAnswer::Accepted,
        ReportAnswer::Malformed,
        ReportAnswer::WrongSigner,
        ReportAnswer::UnknownDevice,
        ReportAnswer::Replayed,
        ReportAnswer::TooLarge,
    ];

    fn label(self) -> &'static str {
        match self {
            ReportAnswer::Accepted => "accepted",
            ReportAnswer::Malformed => "malformed",
            ReportAnswer::WrongSigner => "wrong_signer",
            ReportAnswer::UnknownDevice => "unknown_device",
            ReportAnswer::Replayed => "replayed",
            ReportAnswer::TooLarge => "too_large",
        }
    }

    fn slot(self) -> usize {
        Self::ALL.iter().position(|a| *a == self).unwrap_or(0)
    }
}

/// The counters of one indexer.
#[derive(Debug, Default)]
pub struct Metrics {
    events: AtomicU64,
    reorgs: AtomicU64,
    reorg_depth_last: AtomicU64,
    reorg_depth_max: AtomicU64,
    write_buckets: [AtomicU64; WRITE_BUCKETS.len()],
    write_count: AtomicU64,
    write_sum_micros: AtomicU64,
    reports: [AtomicU64; 6],
    alerts_raised: Mutex<BTreeMap<String, u64>>,
    webhook_delivered: AtomicU64,
    webhook_failed: AtomicU64,
    webhook_dropped: AtomicU64,
}

/// What a scrape reads besides the counters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The newest head seen (0 before the first pass).
    pub head: u64,
    /// The database's checkpoint.
    pub checkpoint: Option<u64>,
    /// Failed RPC calls per endpoint (`host:port`, count).
    pub rpc_errors: Vec<(String, u64)>,
    /// Alerts stored in the database per rule.
    pub alerts_stored: Vec<(String, i64)>,
    /// Unavailable leaf lists and pins waiting for their next try, per kind:
    /// (kind, how many, longest remaining wait in seconds).
    pub ipfs_backoff: Vec<(&'static str, i64, f64)>,
}

impl Metrics {
    /// Counts `n` events (logs) written.
    pub fn add_events(&self, n: u64) {
        self.events.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a repaired reorg of `depth` blocks (0: none, not counted).
    pub fn reorg(&self, depth: u64) {
        if depth == 0 {
            return;
        }
        self.reorgs.fetch_add(1, Ordering::Relaxed);
        self.reorg_depth_last.store(depth, Ordering::Relaxed);
        self.reorg_depth_max.fetch_max(depth, Ordering::Relaxed);
    }

    /// Records one database write transaction that took `took`.
    pub fn db_write(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bound, bucket) in WRITE_BUCKETS.iter().zip(&self.write_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.write_count.fetch_add(1, Ordering::Relaxed);
        self.write_sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counts one answer to `POST /v1/reports`.
    pub fn report(&self, answer: ReportAnswer) {
        self.reports[answer.slot()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one alert raised (stored for the first time) by `rule`.
    pub fn alert_raised(&self, rule: &str) {
        if let Ok(mut map) = self.alerts_raised.lock() {
            *map.entry(rule.to_owned()).or_default() += 1;
        }
    }

    /// Counts a webhook delivery that succeeded.
    pub fn webhook_delivered(&self) {
        self.webhook_delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a webhook delivery that failed after every attempt.
    pub fn webhook_failed(&self) {
        self.webhook_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an alert not queued for the webhook (queue full).
    pub fn webhook_dropped(&self) {
        self.webhook_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition of every metric.
    pub fn render(&self, s: &Snapshot) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let lag = s.checkpoint.map_or(s.head, |c| s.head.saturating_sub(c));
        metric(
            "otaledger_indexer_head_block",
            "gauge",
            "Newest chain head seen.",
            &[(String::new(), s.head as f64)],
        );
        metric(
            "otaledger_indexer_checkpoint_block",
            "gauge",
            "Last block fully written (-1 before the first).",
            &[(String::new(), s.checkpoint.map_or(-1.0, |c| c as f64))],
        );
        metric(
            "otaledger_indexer_head_lag_blocks",
            "gauge",
            "Blocks between the head and the checkpoint.",
            &[(String::new(), lag as f64)],
        );
        metric(
            "otaledger_indexer_events_total",
            "counter",
            "Contract events (logs) written; its rate is events per second.",
            &[(String::new(), load(&self.events) as f64)],
        );
        metric(
            "otaledger_indexer_reorgs_total",
            "counter",
            "Reorgs repaired.",
            &[(String::new(), load(&self.reorgs) as f64)],
        );
        metric(
            "otaledger_indexer_reorg_depth_blocks",
            "gauge",
            "Depth of the last and of the deepest reorg repaired.",
            &[
                (
                    "{which=\"last\"}".into(),
                    load(&self.reorg_depth_last) as f64,
                ),
                ("{which=\"max\"}".into(), load(&self.reorg_depth_max) as f64),
            ],
        );
        let rpc: Vec<(String, f64)> = s
            .rpc_errors
            .iter()
            .enumerate()
            .map(|(i, (host, n))| {
                (
                    format!("{{endpoint=\"{i}\",host=\"{}\"}}", escape(host)),
                    *n as f64,
                )
            })
            .collect();
        metric(
            "otaledger_indexer_rpc_errors_total",
            "counter",
            "Failed JSON-RPC calls per endpoint (range-limit answers excluded).",
            &rpc,
        );
        let mut hist: Vec<(String, f64)> = WRITE_BUCKETS
            .iter()
            .zip(&self.write_buckets)
            .map(|(bound, n)| (format!("_bucket{{le=\"{bound}\"}}"), load(n) as f64))
            .collect();
        let count = load(&self.write_count) as f64;
        hist.push(("_bucket{le=\"+Inf\"}".into(), count));
        hist.push((
            "_sum".into(),
            load(&self.write_sum_micros) as f64 / 1_000_000.0,
        ));
        hist.push(("_count".into(), count));
        metric(
            "otaledger_indexer_db_write_seconds",
            "histogram",
            "Duration of one database write transaction (a batch of rows and its checkpoint).",
            &hist,
        );
        let label = |kind: &str| format!("{{kind=\"{kind}\"}}");
        let waiting: Vec<(String, f64)> = s
            .ipfs_backoff
            .iter()
            .map(|(kind, n, _)| (label(kind), *n as f64))
            .collect();
        metric(
            "otaledger_indexer_ipfs_backoff_waiting",
            "gauge",
            "Leaf lists (kind=leaves) and pins (kind=pins) found unavailable and backing off before their next try.",
            &waiting,
        );
        let longest: Vec<(String, f64)> = s
            .ipfs_backoff
            .iter()
            .map(|(kind, _, wait)| (label(kind), *wait))
            .collect();
        metric(
            "otaledger_indexer_ipfs_backoff_seconds",
            "gauge",
            "Longest remaining backoff of an unavailable leaf list or pin (0: none waiting).",
            &longest,
        );
        let reports: Vec<(String, f64)> = ReportAnswer::ALL
            .iter()
            .map(|a| {
                (
                    format!("{{answer=\"{}\"}}", a.label()),
                    load(&self.reports[a.slot()]) as f64,
                )
            })
            .collect();
        metric(
            "otaledger_indexer_reports_total",
            "counter",
            "POST /v1/reports answers.",
            &reports,
        );
        let raised: Vec<(String, f64)> = self
            .alerts_raised
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(rule, n)| (format!("{{rule=\"{}\"}}", escape(rule)), *n as f64))
                    .collect()
            })
            .unwrap_or_default();
        metric(
            "otaledger_indexer_alerts_raised_total",
            "counter",
            "Alerts raised by this process, per rule.",
            &raised,
        );
        let stored: Vec<(String, f64)> = s
            .alerts_stored
            .iter()
            .map(|(rule, n)| (format!("{{rule=\"{}\"}}", escape(rule)), *n as f64))
            .collect();
        metric(
            "otaledger_indexer_alerts",
            "gauge",
            "Alerts stored in the database, per rule.",
            &stored,
        );
        metric(
            "otaledger_indexer_webhook_deliveries_total",
            "counter",
            "Alert webhook deliveries by result.",
            &[
                (
                    "{result=\"delivered\"}".into(),
                    load(&self.webhook_delivered) as f64,
                ),
                (
                    "{result=\"failed\"}".into(),
                    load(&self.webhook_failed) as f64,
                ),
                (
                    "{result=\"dropped\"}".into(),
                    load(&self.webhook_dropped) as f64,
                ),
            ],
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.db_write(Duration::from_micros(500));
        m.db_write(Duration::from_millis(30));
        m.db_write(Duration::from_secs(20));
        let text = m.render(&Snapshot::default());
        assert!(text.contains("otaledger_indexer_db_write_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("otaledger_indexer_db_write_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("otaledger_indexer_db_write_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("otaledger_indexer_db_write_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("otaledger_indexer_db_write_seconds_count 3\n"));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
