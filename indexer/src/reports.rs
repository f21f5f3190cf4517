//! Signed install reports (`core::report`, format `otaledger-report/1`):
//! accepting `POST /v1/reports` bodies and listing what was stored.
//!
//! A report is accepted only if it parses ([`SignedReport::from_json`], at
//! most [`MAX_REPORT_JSON`] bytes), names this indexer's chain id and
//! registry, comes from a device the indexer knows (claimed on chain: the
//! claim records the device's identity address, the key that signed the
//! claim; or provisioned in a batch whose leaf list was verified against the
//! on-chain root, which lists the address), recovers to that address, and
//! carries a nonce above the highest
//! already accepted for the device. The nonce check and the insert are one
//! transaction (an upsert with a condition), so two copies of a report racing
//! on PostgreSQL store one.
//!
//! Reports are off-chain data: a reorg rewind never deletes them.

use alloy::primitives::Address;
use otaledger_core::report::{MAX_REPORT_JSON, Outcome, SignedReport};
use serde_json::{Value as Json, json};
use sqlx::{AnyPool, Row as _};

use crate::{Error, Result, alerts::Monitor, rows::Value};

/// Why a report was refused (each maps to the contract's status code).
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// 400: malformed, fails `Report::check`, other chain or registry.
    #[error("{0}")]
    Malformed(String),
    /// 403: the signature does not recover to the device's identity address.
    #[error("{0}")]
    WrongSigner(String),
    /// 404: the device is unknown to the indexer (yet).
    #[error("device {0} is unknown to this indexer")]
    UnknownDevice(u64),
    /// 409: the nonce is not above the highest accepted.
    #[error("nonce {nonce} of device {device} is not above the highest accepted, {highest}")]
    Replayed {
        /// The device.
        device: u64,
        /// The nonce sent.
        nonce: u64,
        /// The highest accepted.
        highest: i64,
    },
    /// 413: larger than [`MAX_REPORT_JSON`].
    #[error("report body of {0} bytes or more, at most {MAX_REPORT_JSON}")]
    TooLarge(usize),
    /// 500: the database failed.
    #[error(transparent)]
    Internal(#[from] Error),
}

/// A stored report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The device.
    pub device: u64,
    /// Its nonce.
    pub nonce: u64,
    /// The parsed report.
    pub report: SignedReport,
}

fn dberr(during: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Database { during, source }
}

fn fits(value: u64, field: &str) -> std::result::Result<i64, Rejection> {
    i64::try_from(value)
        .map_err(|_| Rejection::Malformed(format!("{field} {value} is above {}", i64::MAX)))
}

/// The identity address of device `index`, if known: from its claim, or —
/// for a device provisioned but not claimed yet — from its batch's leaf list,
/// which is in `device_identities` only once verified against the batch's
/// on-chain root (`leaves`).
pub async fn device_identity(pool: &AnyPool, index: i64) -> Result<Option<Address>> {
    for sql in [
        "SELECT device FROM claims WHERE device_index = $1 ORDER BY block_number, log_index LIMIT 1",
        "SELECT device FROM device_identities WHERE device_index = $1 \
         ORDER BY block_number, log_index, position LIMIT 1",
    ] {
        let row = sqlx::query(sql)
            .bind(index)
            .fetch_optional(pool)
            .await
            .map_err(dberr("reading a device's identity"))?;
        let found = row
            .map(|r| r.try_get::<String, _>(0))
            .transpose()
            .map_err(dberr("reading a device's identity"))?
            .and_then(|a| a.parse().ok());
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Checks and stores one report body (at most [`MAX_REPORT_JSON`] bytes:
/// the caller bounds the read), then evaluates the report rules.
pub async fn accept(
    pool: &AnyPool,
    monitor: &Monitor,
    body: &[u8],
) -> std::result::Result<Accepted, Rejection> {
    if body.len() > MAX_REPORT_JSON {
        return Err(Rejection::TooLarge(body.len()));
    }
    let signed = SignedReport::from_json(body).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let r = &signed.report;
    if r.chain_id != monitor.chain_id {
        return Err(Rejection::Malformed(format!(
            "chainId {} is not this indexer's chain {}",
            r.chain_id, monitor.chain_id
        )));
    }
    if r.registry != monitor.registry {
        return Err(Rejection::Malformed(format!(
            "registry {} is not this indexer's registry {}",
            r.registry, monitor.registry
        )));
    }
    let nonce = fits(r.nonce, "nonce")?;
    let block = fits(r.block_number, "blockNumber")?;
    let time = fits(r.timestamp, "timestamp")?;
    let Ok(device) = i64::try_from(r.device_index) else {
        return Err(Rejection::UnknownDevice(r.device_index));
    };
    let identity = device_identity(pool, device)
        .await?
        .ok_or(Rejection::UnknownDevice(r.device_index))?;
    let signer = signed
        .signer()
        .map_err(|e| Rejection::WrongSigner(e.to_string()))?;
    if signer != identity {
        return Err(Rejection::WrongSigner(format!(
            "signature recovers to {signer}, not device {}'s identity address {identity}",
            r.device_index
        )));
    }

    let started = std::time::Instant::now();
    let mut tx = pool
        .begin()
        .await
        .map_err(dberr("beginning a transaction"))?;
    let fresh = sqlx::query(
        "INSERT INTO report_nonces (device_index, nonce) VALUES ($1, $2) \
         ON CONFLICT (device_index) DO UPDATE SET nonce = excluded.nonce \
         WHERE report_nonces.nonce < excluded.nonce",
    )
    .bind(device)
    .bind(nonce)
    .execute(&mut *tx)
    .await
    .map_err(dberr("checking a report's nonce"))?
    .rows_affected()
        == 1;
    if !fresh {
        let highest: i64 = sqlx::query("SELECT nonce FROM report_nonces WHERE device_index = $1")
            .bind(device)
            .fetch_one(&mut *tx)
            .await
            .map_err(dberr("reading a report nonce"))?
            .try_get(0)
            .map_err(dberr("reading a report nonce"))?;
        return Err(Rejection::Replayed {
            device: r.device_index,
            nonce: r.nonce,
            highest,
        });
    }
    sqlx::query(
        "INSERT INTO reports (device_index, nonce, release_id, version, outcome, detail, block_number, \
         report_time, signer, received_at, raw) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(device)
    .bind(nonce)
    .bind(format!("{:#x}", r.release_id))
    .bind(format!("{:020}", r.version))
    .bind(r.outcome.as_str())
    .bind(r.detail.clone())
    .bind(block)
    .bind(time)
    .bind(format!("{signer:#x}"))
    .bind(now_ms())
    .bind(signed.to_json())
    .execute(&mut *tx)
    .await
    .map_err(dberr("storing a report"))?;
    tx.commit().await.map_err(dberr("committing a report"))?;
    monitor.metrics.db_write(started.elapsed());
    if let Err(e) = crate::alerts::evaluate_report(pool, monitor, &signed).await {
        // The report is stored; a rule that could not run is logged, not
        // answered (the device would resend and get 409).
        tracing::error!(error = %e, "evaluating the report rules failed");
    }
    Ok(Accepted {
        device: r.device_index,
        nonce: r.nonce,
        report: signed,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Filters and position of [`list`].
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    /// Only this device.
    pub device: Option<i64>,
    /// Only this release (lowercase 0x-hex).
    pub release: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// After this (received_at, device, nonce).
    pub after: Option<(i64, i64, i64)>,
    /// At most this many.
    pub limit: i64,
}

/// The cursor of a listed report (`received_at.device.nonce`).
pub fn cursor_of(item: &Json) -> String {
    format!(
        "{}.{}.{}",
        item["received_at"], item["device_index"], item["nonce"]
    )
}

/// Stored reports matching `f`, in the order they were received.
pub async fn list(pool: &AnyPool, f: &ReportFilter) -> Result<Vec<Json>> {
    let mut conditions = Vec::new();
    let mut binds: Vec<Value> = Vec::new();
    let push = |binds: &mut Vec<Value>, v: Value| {
        binds.push(v);
        format!("${}", binds.len())
    };
    if let Some(d) = f.device {
        let p = push(&mut binds, Value::Int(d));
        conditions.push(format!("device_index = {p}"));
    }
    if let Some(r) = &f.release {
        let p = push(&mut binds, Value::Text(r.clone()));
        conditions.push(format!("release_id = {p}"));
    }
    if let Some(o) = f.outcome {
        let p = push(&mut binds, Value::Text(o.as_str().into()));
        conditions.push(format!("outcome = {p}"));
    }
    if let Some((t, d, n)) = f.after {
        let (t1, t2, d1, t3, d2, n1) = (
            push(&mut binds, Value::Int(t)),
            push(&mut binds, Value::Int(t)),
            push(&mut binds, Value::Int(d)),
            push(&mut binds, Value::Int(t)),
            push(&mut binds, Value::Int(d)),
            push(&mut binds, Value::Int(n)),
        );
        conditions.push(format!(
            "(received_at > {t1} OR (received_at = {t2} AND device_index > {d1}) \
             OR (received_at = {t3} AND device_index = {d2} AND nonce > {n1}))"
        ));
    }
    let limit = push(&mut binds, Value::Int(f.limit));
    let mut sql =
        "SELECT device_index, nonce, release_id, version, outcome, detail, block_number, \
                   report_time, signer, received_at, raw FROM reports"
            .to_owned();
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(
        " ORDER BY received_at, device_index, nonce LIMIT {limit}"
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
        .map_err(dberr("listing reports"))?;
    rows.iter()
        .map(|r| {
            let e = dberr("listing reports");
            let version: String = r.try_get(3).map_err(&e)?;
            let raw: String = r.try_get(10).map_err(&e)?;
            Ok(json!({
                "device_index": r.try_get::<i64, _>(0).map_err(&e)?,
                "nonce": r.try_get::<i64, _>(1).map_err(&e)?,
                "release_id": r.try_get::<String, _>(2).map_err(&e)?,
                "version": version,
                "outcome": r.try_get::<String, _>(4).map_err(&e)?,
                "detail": r.try_get::<String, _>(5).map_err(&e)?,
                "block_number": r.try_get::<i64, _>(6).map_err(&e)?,
                "report_time": r.try_get::<i64, _>(7).map_err(&e)?,
                "signer": r.try_get::<String, _>(8).map_err(&e)?,
                "received_at": r.try_get::<i64, _>(9).map_err(&e)?,
                "signed": serde_json::from_str::<Json>(&raw).unwrap_or(Json::Null),
            }))
        })
        .collect()
}

/// Devices per outcome (and in total) that reported on each of `releases`
/// (lowercase 0x-hex ids). Counts are of distinct devices, not of report
/// rows: a device sending the same outcome many times counts once; a device
/// that reported two outcomes counts once under each and once in `total`.
pub async fn counts(
    pool: &AnyPool,
    releases: &[String],
) -> Result<std::collections::HashMap<String, Json>> {
    let mut out = std::collections::HashMap::new();
    if releases.is_empty() {
        return Ok(out);
    }
    let placeholders: Vec<String> = (1..=releases.len()).map(|i| format!("${i}")).collect();
    // One query: per outcome, and the total (as outcome 'total', never an
    // outcome's name) from a second grouping, both counting distinct devices.
    let list = placeholders.join(", ");
    let sql = format!(
        "SELECT release_id, outcome, COUNT(DISTINCT device_index) FROM reports \
         WHERE release_id IN ({list}) GROUP BY release_id, outcome \
         UNION ALL \
         SELECT release_id, 'total', COUNT(DISTINCT device_index) FROM reports \
         WHERE release_id IN ({list}) GROUP BY release_id"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in releases {
        query = query.bind(r.clone());
    }
    let rows = query
        .fetch_all(pool)
        .await
        .map_err(dberr("counting reports"))?;
    for id in releases {
        let mut counts = serde_json::Map::new();
        for o in Outcome::ALL {
            counts.insert(o.as_str().into(), json!(0));
        }
        counts.insert("total".into(), json!(0));
        out.insert(id.clone(), Json::Object(counts));
    }
    for r in rows {
        let e = dberr("counting reports");
        let id: String = r.try_get(0).map_err(&e)?;
        let outcome: String = r.try_get(1).map_err(&e)?;
        let n: i64 = r.try_get(2).map_err(&e)?;
        if let Some(c) = out.get_mut(&id) {
            c[outcome.as_str()] = json!(n);
        }
    }
    Ok(out)
}
