//! Anomaly rules: evaluated as chain rows are written (after each sync pass)
//! and as install reports arrive; each alert has a rule, a severity, its
//! evidence (JSON) and links (API paths and chain positions), is stored once
//! (its id is derived from what it is about), counted in metrics and pushed to
//! a webhook if one is configured.
//!
//! | rule | source | fires when | severity |
//! |---|---|---|---|
//! | `rotation_then_publish` | chain | a release is published within [`AlertConfig::rotation_window_blocks`] blocks after a signer rotation of its manufacturer | high |
//! | `new_signer_combination` | chain | a release is approved by a signer combination (mask over the current set) not used by the manufacturer's earlier releases under that set (the first release under a set is the baseline) | medium |
//! | `emergency_revocation` | chain | a release is revoked by the operator in an emergency | high |
//! | `purchase_surge` / `claim_surge` | chain | one address makes [`AlertConfig::surge_threshold`] purchases (claims) within [`AlertConfig::surge_window_blocks`] blocks | medium |
//! | `silent_device` | chain | a device bought a release and sent no report for it within [`AlertConfig::silent_window_blocks`] blocks (not refunded) | low |
//! | `install_failures` | report | [`AlertConfig::failure_threshold`] distinct devices report the same non-installed outcome and class for one release | high |
//! | `unknown_version` | report | a device reports a release id, or a version of it, that was never published | high |
//!
//! Chain alerts are written with the rules' cursor in one transaction and
//! deleted by a reorg rewind with the rows they came from; report alerts stay.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use alloy::primitives::Address;
use otaledger_core::{follow::rpc::Rpc, report::SignedReport};
use serde_json::{Value as Json, json};
use sqlx::{AnyPool, Row as _};
use tokio::sync::mpsc;

use crate::error::db as dberr;
use crate::{Result, db, metrics::Metrics, rows::Value};

/// Rule thresholds and windows (block counts are of the chain followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// `rotation_then_publish`: blocks after a rotation (default 300, about an hour at 12 s).
    pub rotation_window_blocks: u64,
    /// `silent_device`: blocks after a purchase by which the device must have reported (default 7200, about a day).
    pub silent_window_blocks: u64,
    /// `install_failures`: distinct devices with the same outcome and class for one release (default 5).
    pub failure_threshold: u64,
    /// `purchase_surge` / `claim_surge`: events by one address within the window (default 20).
    pub surge_threshold: u64,
    /// `purchase_surge` / `claim_surge`: the window in blocks (default 100).
    pub surge_window_blocks: u64,
    /// Where alerts are POSTed as JSON (none by default).
    pub webhook: Option<String>,
    /// Delivery attempts per alert (default 4; backoff 250 ms doubling).
    pub webhook_attempts: u32,
    /// Timeout of one delivery attempt (default 5 s).
    pub webhook_timeout: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            rotation_window_blocks: 300,
            silent_window_blocks: 7200,
            failure_threshold: 5,
            surge_threshold: 20,
            surge_window_blocks: 100,
            webhook: None,
            webhook_attempts: 4,
            webhook_timeout: Duration::from_secs(5),
        }
    }
}

/// Alerts queued for the webhook at most (more are dropped and counted).
pub const WEBHOOK_QUEUE: usize = 1024;

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Unique id derived from the rule and what it is about (`rule:…`).
    pub id: String,
    /// The rule's name.
    pub rule: &'static str,
    /// `low`, `medium` or `high`.
    pub severity: &'static str,
    /// `chain` (rewound with a reorg) or `report`.
    pub source: &'static str,
    /// The block it is about (chain), or the checkpoint when raised (report).
    pub block_number: i64,
    /// One line for humans.
    pub summary: String,
    /// What made it fire.
    pub evidence: Json,
    /// API paths and transactions to look at.
    pub links: Json,
}

impl Alert {
    /// The JSON form (API and webhook).
    pub fn to_json(&self, created_at: i64) -> Json {
        json!({
            "id": self.id,
            "rule": self.rule,
            "severity": self.severity,
            "source": self.source,
            "block_number": self.block_number,
            "created_at": created_at,
            "summary": self.summary,
            "evidence": self.evidence,
            "links": self.links,
        })
    }
}

/// The indexer's monitoring side, shared by the sync loop and the API:
/// metrics, rule configuration, the webhook, and what reports must match.
#[derive(Debug)]
pub struct Monitor {
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// Thresholds and windows.
    pub config: AlertConfig,
    /// Chain id reports must name.
    pub chain_id: u64,
    /// Registry reports must name.
    pub registry: Address,
    /// The RPC client (for its per-endpoint error counts).
    pub rpc: Arc<Rpc>,
    webhook: Option<mpsc::Sender<Json>>,
}

impl Monitor {
    /// A monitor; starts the webhook task if `config.webhook` is set (it ends
    /// when the monitor is dropped). Needs a tokio runtime.
    pub fn new(config: AlertConfig, chain_id: u64, registry: Address, rpc: Arc<Rpc>) -> Self {
        let metrics = Arc::new(Metrics::default());
        let webhook = config
            .webhook
            .clone()
            .map(|url| spawn_webhook(url, &config, metrics.clone()));
        Self {
            metrics,
            config,
            chain_id,
            registry,
            rpc,
            webhook,
        }
    }

    fn raised(&self, alert: &Alert, created_at: i64) {
        self.metrics.alert_raised(alert.rule);
        tracing::warn!(rule = alert.rule, severity = alert.severity, id = %alert.id, "{}", alert.summary);
        if let Some(tx) = &self.webhook
            && tx.try_send(alert.to_json(created_at)).is_err()
        {
            self.metrics.webhook_dropped();
        }
    }
}

fn spawn_webhook(url: String, config: &AlertConfig, metrics: Arc<Metrics>) -> mpsc::Sender<Json> {
    let (tx, mut rx) = mpsc::channel::<Json>(WEBHOOK_QUEUE);
    let attempts = config.webhook_attempts.max(1);
    let client = reqwest::Client::builder()
        .timeout(config.webhook_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build();
    tokio::spawn(async move {
        let Ok(client) = client else {
            tracing::error!("building the webhook http client failed");
            return;
        };
        while let Some(alert) = rx.recv().await {
            let body = alert.to_string();
            let mut delivered = false;
            for attempt in 0..attempts {
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        delivered = true;
                        break;
                    }
                    Ok(r) => tracing::warn!(status = %r.status(), attempt, "alert webhook refused"),
                    Err(e) => {
                        tracing::warn!(error = %e.without_url(), attempt, "alert webhook failed")
                    }
                }
                tokio::time::sleep(Duration::from_millis(250 << attempt.min(6))).await;
            }
            if delivered {
                metrics.webhook_delivered();
            } else {
                metrics.webhook_failed();
            }
        }
    });
    tx
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

async fn insert_alert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    alert: &Alert,
    created_at: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO alerts (alert_id, rule, severity, source, block_number, created_at, summary, evidence, links) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (alert_id) DO NOTHING",
    )
    .bind(alert.id.clone())
    .bind(alert.rule)
    .bind(alert.severity)
    .bind(alert.source)
    .bind(alert.block_number)
    .bind(created_at)
    .bind(alert.summary.clone())
    .bind(alert.evidence.to_string())
    .bind(alert.links.to_string())
    .execute(&mut **tx)
    .await
    .map_err(dberr("storing an alert"))?;
    Ok(done.rows_affected() == 1)
}

/// Alerts per multi-row insert (9 parameters each, well under both
/// databases' limits).
const ALERTS_PER_INSERT: usize = 200;

/// Stores `alerts` (a backfill can raise thousands) in multi-row inserts;
/// returns those not stored before, in order (one per id).
async fn insert_alerts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    alerts: Vec<Alert>,
    created_at: i64,
) -> Result<Vec<Alert>> {
    let mut seen = std::collections::HashSet::new();
    let alerts: Vec<Alert> = alerts
        .into_iter()
        .filter(|a| seen.insert(a.id.clone()))
        .collect();
    let mut stored = std::collections::HashSet::new();
    let sqlite = crate::db::anonymous_params(tx);
    for chunk in alerts.chunks(ALERTS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p: Vec<String> = (1..=9)
                    .map(|c| crate::db::param(sqlite, i * 9 + c))
                    .collect();
                format!("({})", p.join(", "))
            })
            .collect();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO alerts (alert_id, rule, severity, source, block_number, created_at, summary, evidence, links) \
             VALUES {} ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id",
            values.join(", ")
        )));
        for alert in chunk {
            query = query
                .bind(alert.id.clone())
                .bind(alert.rule)
                .bind(alert.severity)
                .bind(alert.source)
                .bind(alert.block_number)
                .bind(created_at)
                .bind(alert.summary.clone())
                .bind(alert.evidence.to_string())
                .bind(alert.links.to_string());
        }
        for row in query
            .fetch_all(&mut **tx)
            .await
            .map_err(dberr("storing alerts"))?
        {
            stored.insert(
                row.try_get::<String, _>(0)
                    .map_err(dberr("storing alerts"))?,
            );
        }
    }
    Ok(alerts
        .into_iter()
        .filter(|a| stored.contains(&a.id))
        .collect())
}

/// Deletes chain alerts above `above` and moves the rules' cursor back to
/// it; called inside the reorg rewind's transaction.
pub async fn rewind(tx: &mut sqlx::Transaction<'_, sqlx::Any>, above: i64) -> Result<()> {
    sqlx::query("DELETE FROM alerts WHERE source = 'chain' AND block_number > $1")
        .bind(above)
        .execute(&mut **tx)
        .await
        .map_err(dberr("deleting alerts above the common ancestor"))?;
    sqlx::query(
        "UPDATE alert_state SET evaluated_block = $1 WHERE id = 1 AND evaluated_block > $1",
    )
    .bind(above)
    .execute(&mut **tx)
    .await
    .map_err(dberr("rewinding the alert cursor"))?;
    Ok(())
}

/// A release row with its manufacturer.
struct Published {
    release_id: String,
    block: i64,
    log: i64,
    tx: String,
    mask: String,
    manufacturer: i64,
}

async fn releases_in(pool: &AnyPool, from: i64, to: i64) -> Result<Vec<Published>> {
    let rows = sqlx::query(
        "SELECT r.release_id, r.block_number, r.log_index, r.tx_hash, r.signer_mask, m.manufacturer_id \
         FROM releases r JOIN models m ON m.model_id = r.model_id \
         WHERE r.block_number >= $1 AND r.block_number <= $2 ORDER BY r.block_number, r.log_index",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
    .map_err(dberr("reading releases for the rules"))?;
    rows.iter()
        .map(|r| {
            let e = dberr("reading releases for the rules");
            Ok(Published {
                release_id: r.try_get(0).map_err(&e)?,
                block: r.try_get(1).map_err(&e)?,
                log: r.try_get(2).map_err(&e)?,
                tx: r.try_get(3).map_err(&e)?,
                mask: r.try_get(4).map_err(&e)?,
                manufacturer: r.try_get(5).map_err(&e)?,
            })
        })
        .collect()
}

/// A signer set: (block, log index, tx hash, whether it was a rotation).
type SetRow = (i64, i64, String, bool);

/// Every signer set up to block `to`, per manufacturer in chain order (one
/// read; sets change rarely).
async fn signer_sets(pool: &AnyPool, to: i64) -> Result<HashMap<i64, Vec<SetRow>>> {
    let rows = sqlx::query(
        "SELECT manufacturer_id, block_number, log_index, tx_hash, nonce FROM signer_sets \
         WHERE block_number <= $1 ORDER BY block_number, log_index",
    )
    .bind(to)
    .fetch_all(pool)
    .await
    .map_err(dberr("reading signer sets for the rules"))?;
    let mut sets: HashMap<i64, Vec<SetRow>> = HashMap::new();
    for r in rows {
        let e = dberr("reading signer sets for the rules");
        let nonce: Option<i64> = r.try_get(4).map_err(&e)?;
        sets.entry(r.try_get(0).map_err(&e)?).or_default().push((
            r.try_get(1).map_err(&e)?,
            r.try_get(2).map_err(&e)?,
            r.try_get(3).map_err(&e)?,
            nonce.is_some(),
        ));
    }
    Ok(sets)
}

/// The newest signer set of `manufacturer` before position (`block`, `log`).
fn set_before(
    sets: &HashMap<i64, Vec<SetRow>>,
    manufacturer: i64,
    block: i64,
    log: i64,
) -> Option<&SetRow> {
    let of = sets.get(&manufacturer)?;
    let n = of.partition_point(|(b, l, _, _)| (*b, *l) < (block, log));
    n.checked_sub(1).map(|i| &of[i])
}

fn release_links(id: &str, tx: &str, block: i64) -> Json {
    json!({ "release": format!("/v1/releases/{id}"), "tx": tx, "block": block })
}

fn rotation_then_publish(
    sets: &HashMap<i64, Vec<SetRow>>,
    c: &AlertConfig,
    releases: &[Published],
    out: &mut Vec<Alert>,
) {
    for r in releases {
        let Some((block, _, tx, rotation)) = set_before(sets, r.manufacturer, r.block, r.log)
        else {
            continue;
        };
        let (block, rotation) = (*block, *rotation);
        let after = (r.block - block) as u64;
        if rotation && after <= c.rotation_window_blocks {
            out.push(Alert {
                id: format!("rotation_then_publish:{}", r.release_id),
                rule: "rotation_then_publish",
                severity: "high",
                source: "chain",
                block_number: r.block,
                summary: format!(
                    "manufacturer {} published {} {after} blocks after rotating its signers",
                    r.manufacturer, r.release_id
                ),
                evidence: json!({
                    "manufacturer_id": r.manufacturer, "release_id": r.release_id,
                    "rotation_block": block, "rotation_tx": tx, "publish_block": r.block,
                    "blocks_after": after, "window_blocks": c.rotation_window_blocks,
                }),
                links: json!({
                    "release": format!("/v1/releases/{}", r.release_id),
                    "manufacturer": format!("/v1/manufacturers?manufacturer={}", r.manufacturer),
                    "rotation_tx": tx, "publish_tx": r.tx,
                }),
            });
        }
    }
}

async fn new_signer_combination(
    pool: &AnyPool,
    sets: &HashMap<i64, Vec<SetRow>>,
    releases: &[Published],
    to: i64,
    out: &mut Vec<Alert>,
) -> Result<()> {
    // The masks a manufacturer used under its current signer set, from one
    // read of the releases since the oldest set involved, walked in chain
    // order (not a query per release).
    let set_of = |manufacturer: i64, block: i64, log: i64| {
        set_before(sets, manufacturer, block, log).map_or((-1, -1), |(b, l, _, _)| (*b, *l))
    };
    let Some(oldest) = releases
        .iter()
        .map(|r| set_of(r.manufacturer, r.block, r.log).0)
        .min()
    else {
        return Ok(());
    };
    let evaluated: std::collections::HashSet<(i64, i64)> =
        releases.iter().map(|r| (r.block, r.log)).collect();
    let all = releases_in(pool, oldest.max(0), to).await?;
    // Per manufacturer: the set the masks belong to, and the masks (in first-use order).
    let mut used: HashMap<i64, ((i64, i64), Vec<String>)> = HashMap::new();
    for r in &all {
        let set = set_of(r.manufacturer, r.block, r.log);
        let (of_set, masks) = used
            .entry(r.manufacturer)
            .or_insert_with(|| (set, Vec::new()));
        if *of_set != set {
            *of_set = set;
            masks.clear();
        }
        let masks_before = masks.clone();
        if !masks.contains(&r.mask) {
            masks.push(r.mask.clone());
        }
        if !evaluated.contains(&(r.block, r.log)) {
            continue;
        }
        let (set_block, masks) = (set.0, masks_before);
        if masks.is_empty() || masks.contains(&r.mask) {
            continue;
        }
        let signers: Vec<String> = sqlx::query(
            "SELECT signer FROM release_approval_signers WHERE release_id = $1 ORDER BY position",
        )
        .bind(r.release_id.clone())
        .fetch_all(pool)
        .await
        .map_err(dberr("reading approval signers"))?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(dberr("reading approval signers"))?;
        out.push(Alert {
            id: format!("new_signer_combination:{}", r.release_id),
            rule: "new_signer_combination",
            severity: "medium",
            source: "chain",
            block_number: r.block,
            summary: format!(
                "release {} of manufacturer {} approved by signer mask {} never used under this signer set",
                r.release_id, r.manufacturer, r.mask
            ),
            evidence: json!({
                "manufacturer_id": r.manufacturer, "release_id": r.release_id,
                "signer_mask": r.mask, "signers": signers, "masks_used_before": masks,
                "signer_set_block": set_block,
            }),
            links: release_links(&r.release_id, &r.tx, r.block),
        });
    }
    Ok(())
}

async fn emergency_revocations(
    pool: &AnyPool,
    from: i64,
    to: i64,
    out: &mut Vec<Alert>,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT release_id, model_id, reason, block_number, tx_hash FROM revocations \
         WHERE emergency <> 0 AND block_number >= $1 AND block_number <= $2 ORDER BY block_number, log_index",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
    .map_err(dberr("reading revocations for the rules"))?;
    for r in rows {
        let e = dberr("reading revocations for the rules");
        let id: String = r.try_get(0).map_err(&e)?;
        let model: i64 = r.try_get(1).map_err(&e)?;
        let reason: String = r.try_get(2).map_err(&e)?;
        let block: i64 = r.try_get(3).map_err(&e)?;
        let tx: String = r.try_get(4).map_err(&e)?;
        out.push(Alert {
            id: format!("emergency_revocation:{id}"),
            rule: "emergency_revocation",
            severity: "high",
            source: "chain",
            block_number: block,
            summary: format!("release {id} of model {model} revoked in an emergency: {reason}"),
            evidence: json!({ "release_id": id, "model_id": model, "reason": reason }),
            links: release_links(&id, &tx, block),
        });
    }
    Ok(())
}

async fn surges(
    pool: &AnyPool,
    c: &AlertConfig,
    from: i64,
    to: i64,
    out: &mut Vec<Alert>,
) -> Result<()> {
    let window = c.surge_window_blocks as i64;
    // (rule, table, address column, what)
    for (rule, table, column, what) in [
        ("purchase_surge", "purchases", "buyer", "purchases"),
        ("claim_surge", "claims", "owner", "claims"),
    ] {
        // One read of the events in (from - window ..= to), in chain order;
        // the events before `from` only fill the window. Per address, the
        // blocks of its events still inside the window of the current one:
        // the count is the queue's length (the event itself included), as
        // `COUNT(*) … WHERE block_number >= block - window AND position <=
        // this one` would give, without a query per event.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {column}, block_number, log_index, tx_hash FROM {table} \
             WHERE block_number >= $1 AND block_number <= $2 ORDER BY block_number, log_index"
        )))
        .bind(from.saturating_sub(window))
        .bind(to)
        .fetch_all(pool)
        .await
        .map_err(dberr("reading events for the surge rules"))?;
        let mut recent: HashMap<String, VecDeque<i64>> = HashMap::new();
        for r in rows {
            let e = dberr("reading events for the surge rules");
            let address: String = r.try_get(0).map_err(&e)?;
            let block: i64 = r.try_get(1).map_err(&e)?;
            let log: i64 = r.try_get(2).map_err(&e)?;
            let tx: String = r.try_get(3).map_err(&e)?;
            let since = block.saturating_sub(window);
            let blocks = recent.entry(address.clone()).or_default();
            while blocks.front().is_some_and(|b| *b < since) {
                blocks.pop_front();
            }
            blocks.push_back(block);
            let count = blocks.len() as u64;
            // Fires when the count in the window reaches the threshold (for
            // events of this evaluation only).
            if block >= from && count == c.surge_threshold {
                out.push(Alert {
                    id: format!("{rule}:{address}:{block}.{log}"),
                    rule,
                    severity: "medium",
                    source: "chain",
                    block_number: block,
                    summary: format!(
                        "{address} made {count} {what} within {} blocks",
                        c.surge_window_blocks
                    ),
                    evidence: json!({
                        "address": address, "count": count, "from_block": since, "to_block": block,
                        "threshold": c.surge_threshold, "window_blocks": c.surge_window_blocks,
                    }),
                    links: json!({ "tx": tx, "block": block, "purchases": format!("/v1/purchases?buyer={address}") }),
                });
            }
        }
    }
    Ok(())
}

async fn silent_devices(
    pool: &AnyPool,
    c: &AlertConfig,
    evaluated: i64,
    to: i64,
    out: &mut Vec<Alert>,
) -> Result<()> {
    let window = c.silent_window_blocks as i64;
    // Purchases whose window ends in (evaluated, to].
    // Not refunded and not reported: one anti-join, not two queries per purchase.
    let rows = sqlx::query(
        "SELECT p.release_id, p.device_index, p.block_number, p.tx_hash FROM purchase_devices p \
         WHERE p.block_number > $1 AND p.block_number <= $2 \
         AND NOT EXISTS (SELECT 1 FROM refund_devices d \
                         WHERE d.release_id = p.release_id AND d.device_index = p.device_index) \
         AND NOT EXISTS (SELECT 1 FROM reports r \
                         WHERE r.release_id = p.release_id AND r.device_index = p.device_index) \
         ORDER BY p.block_number, p.log_index, p.position",
    )
    .bind(evaluated.saturating_sub(window))
    .bind(to.saturating_sub(window))
    .fetch_all(pool)
    .await
    .map_err(dberr("reading purchases for the silent-device rule"))?;
    for r in rows {
        let e = dberr("reading purchases for the silent-device rule");
        let release: String = r.try_get(0).map_err(&e)?;
        let device: i64 = r.try_get(1).map_err(&e)?;
        let block: i64 = r.try_get(2).map_err(&e)?;
        let tx: String = r.try_get(3).map_err(&e)?;
        out.push(Alert {
            id: format!("silent_device:{release}:{device}"),
            rule: "silent_device",
            severity: "low",
            source: "chain",
            block_number: block + window,
            summary: format!(
                "device {device} bought {release} at block {block} and sent no report within {window} blocks"
            ),
            evidence: json!({
                "device_index": device, "release_id": release, "purchase_block": block,
                "window_blocks": window,
            }),
            links: json!({
                "device": format!("/v1/devices/{device}"),
                "reports": format!("/v1/devices/{device}/reports"),
                "release": format!("/v1/releases/{release}"), "purchase_tx": tx,
            }),
        });
    }
    Ok(())
}

/// Evaluates the chain rules over the blocks written since the last
/// evaluation (up to the checkpoint), stores new alerts and moves the cursor
/// in one transaction, then counts and pushes them. Returns the new alerts.
pub async fn evaluate_chain(pool: &AnyPool, monitor: &Monitor) -> Result<Vec<Alert>> {
    let checkpoint = db::checkpoint(pool).await?.map_or(-1, |c| c.number as i64);
    let evaluated: i64 = sqlx::query("SELECT evaluated_block FROM alert_state WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(dberr("reading the alert cursor"))?
        .try_get(0)
        .map_err(dberr("reading the alert cursor"))?;
    if checkpoint <= evaluated {
        return Ok(Vec::new());
    }
    let (from, to) = (evaluated + 1, checkpoint);
    let c = &monitor.config;
    let mut found = Vec::new();
    let t = std::time::Instant::now();
    let releases = releases_in(pool, from, to).await?;
    let sets = signer_sets(pool, to).await?;
    rotation_then_publish(&sets, c, &releases, &mut found);
    new_signer_combination(pool, &sets, &releases, to, &mut found).await?;
    emergency_revocations(pool, from, to, &mut found).await?;
    let release_rules = t.elapsed();
    surges(pool, c, from, to, &mut found).await?;
    let surge_rules = t.elapsed() - release_rules;
    silent_devices(pool, c, evaluated, to, &mut found).await?;
    tracing::debug!(
        release_ms = release_rules.as_millis() as u64,
        surge_ms = surge_rules.as_millis() as u64,
        silent_ms = (t.elapsed() - release_rules - surge_rules).as_millis() as u64,
        "rule timings"
    );

    let created_at = now_ms();
    let started = std::time::Instant::now();
    let mut tx = pool
        .begin()
        .await
        .map_err(dberr("beginning a transaction"))?;
    let new = insert_alerts(&mut tx, found, created_at).await?;
    let moved = sqlx::query(
        "UPDATE alert_state SET evaluated_block = $1 WHERE id = 1 AND evaluated_block = $2",
    )
    .bind(to)
    .bind(evaluated)
    .execute(&mut *tx)
    .await
    .map_err(dberr("moving the alert cursor"))?;
    if moved.rows_affected() != 1 {
        // Another writer (or a rewind) moved it: evaluate again next pass.
        return Ok(Vec::new());
    }
    tx.commit().await.map_err(dberr("committing alerts"))?;
    monitor.metrics.db_write(started.elapsed());
    for alert in &new {
        monitor.raised(alert, created_at);
    }
    Ok(new)
}

/// Evaluates the report rules on a report just stored; stores, counts and
/// pushes the new alerts.
pub async fn evaluate_report(
    pool: &AnyPool,
    monitor: &Monitor,
    report: &SignedReport,
) -> Result<Vec<Alert>> {
    let r = &report.report;
    let release = format!("{:#x}", r.release_id);
    let version = format!("{:020}", r.version);
    let checkpoint = db::checkpoint(pool).await?.map_or(-1, |c| c.number as i64);
    let device = r.device_index as i64;
    let links = json!({
        "device": format!("/v1/devices/{device}"),
        "reports": format!("/v1/reports?device={device}"),
        "release": format!("/v1/releases/{release}"),
    });
    let mut found = Vec::new();
    let published: Option<String> =
        sqlx::query("SELECT version FROM releases WHERE release_id = $1 LIMIT 1")
            .bind(release.clone())
            .fetch_optional(pool)
            .await
            .map_err(dberr("reading the reported release"))?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(dberr("reading the reported release"))?;
    if published.as_deref() != Some(version.as_str()) {
        found.push(Alert {
            id: format!("unknown_version:{device}:{}", r.nonce),
            rule: "unknown_version",
            severity: "high",
            source: "report",
            block_number: checkpoint,
            summary: match &published {
                None => format!("device {device} reports release {release}, which was never published"),
                Some(v) => format!(
                    "device {device} reports version {} of release {release}, published as version {}",
                    r.version,
                    v.trim_start_matches('0')
                ),
            },
            evidence: json!({
                "device_index": device, "release_id": release, "reported_version": r.version,
                "published_version": published, "outcome": r.outcome.as_str(), "nonce": r.nonce,
            }),
            links: links.clone(),
        });
    }
    if r.outcome != otaledger_core::report::Outcome::Installed {
        let e = dberr("counting failure reports");
        let devices: i64 = sqlx::query(
            "SELECT COUNT(DISTINCT device_index) FROM reports WHERE release_id = $1 AND outcome = $2 AND detail = $3",
        )
        .bind(release.clone())
        .bind(r.outcome.as_str())
        .bind(r.detail.clone())
        .fetch_one(pool)
        .await
        .map_err(&e)?
        .try_get(0)
        .map_err(&e)?;
        if devices as u64 >= monitor.config.failure_threshold {
            found.push(Alert {
                id: format!("install_failures:{release}:{}:{}", r.outcome, r.detail),
                rule: "install_failures",
                severity: "high",
                source: "report",
                block_number: checkpoint,
                summary: format!(
                    "{devices} devices report {} ({}) for release {release}",
                    r.outcome, r.detail
                ),
                evidence: json!({
                    "release_id": release, "outcome": r.outcome.as_str(), "class": r.detail,
                    "devices": devices, "threshold": monitor.config.failure_threshold,
                }),
                links: json!({
                    "release": format!("/v1/releases/{release}"),
                    "reports": format!("/v1/reports?release={release}&outcome={}", r.outcome),
                }),
            });
        }
    }
    if found.is_empty() {
        return Ok(found);
    }
    let created_at = now_ms();
    let mut tx = pool
        .begin()
        .await
        .map_err(dberr("beginning a transaction"))?;
    let mut new = Vec::new();
    for alert in found {
        if insert_alert(&mut tx, &alert, created_at).await? {
            new.push(alert);
        }
    }
    tx.commit().await.map_err(dberr("committing alerts"))?;
    for alert in &new {
        monitor.raised(alert, created_at);
    }
    Ok(new)
}

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only this rule.
    pub rule: Option<String>,
    /// Only this severity.
    pub severity: Option<String>,
    /// Only this source (`chain` or `report`).
    pub source: Option<String>,
    /// After this (block number, alert id).
    pub after: Option<(i64, String)>,
    /// At most this many.
    pub limit: i64,
}

/// Stored alerts matching `f`, ordered by block and id.
pub async fn list(pool: &AnyPool, f: &AlertFilter) -> Result<Vec<Json>> {
    let mut conditions = Vec::new();
    let mut binds: Vec<Value> = Vec::new();
    for (column, value) in [
        ("rule", &f.rule),
        ("severity", &f.severity),
        ("source", &f.source),
    ] {
        if let Some(v) = value {
            binds.push(Value::Text(v.clone()));
            conditions.push(format!("{column} = ${}", binds.len()));
        }
    }
    if let Some((block, id)) = &f.after {
        binds.push(Value::Int(*block));
        let b1 = binds.len();
        binds.push(Value::Int(*block));
        let b2 = binds.len();
        binds.push(Value::Text(id.clone()));
        let i = binds.len();
        conditions.push(format!(
            "(block_number > ${b1} OR (block_number = ${b2} AND alert_id > ${i}))"
        ));
    }
    binds.push(Value::Int(f.limit));
    let mut sql = "SELECT alert_id, rule, severity, source, block_number, created_at, summary, evidence, links FROM alerts".to_owned();
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(
        " ORDER BY block_number, alert_id LIMIT ${}",
        binds.len()
    ));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = match b {
            Value::Int(i) => query.bind(i),
            Value::Text(t) => query.bind(t),
            Value::Null => query.bind(None::<i64>),
        };
    }
    let rows = query
        .fetch_all(pool)
        .await
        .map_err(dberr("listing alerts"))?;
    rows.iter()
        .map(|r| {
            let e = dberr("listing alerts");
            let evidence: String = r.try_get(7).map_err(&e)?;
            let links: String = r.try_get(8).map_err(&e)?;
            Ok(json!({
                "id": r.try_get::<String, _>(0).map_err(&e)?,
                "rule": r.try_get::<String, _>(1).map_err(&e)?,
                "severity": r.try_get::<String, _>(2).map_err(&e)?,
                "source": r.try_get::<String, _>(3).map_err(&e)?,
                "block_number": r.try_get::<i64, _>(4).map_err(&e)?,
                "created_at": r.try_get::<i64, _>(5).map_err(&e)?,
                "summary": r.try_get::<String, _>(6).map_err(&e)?,
                "evidence": serde_json::from_str::<Json>(&evidence).unwrap_or(Json::Null),
                "links": serde_json::from_str::<Json>(&links).unwrap_or(Json::Null),
            }))
        })
        .collect()
}

/// Stored alerts per rule.
pub async fn counts(pool: &AnyPool) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT rule, COUNT(*) FROM alerts GROUP BY rule ORDER BY rule")
        .fetch_all(pool)
        .await
        .map_err(dberr("counting alerts"))?;
    rows.iter()
        .map(|r| {
            let e = dberr("counting alerts");
            Ok((r.try_get(0).map_err(&e)?, r.try_get(1).map_err(&e)?))
        })
        .collect()
}
