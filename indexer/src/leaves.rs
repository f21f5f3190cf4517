//! Batch leaf lists: each batch's `leavesCid` is fetched through
//! `otaledger-ipfs` (a local block store and/or verified fetch from
//! gateways), parsed and checked by `otaledger_core::leaves`, and its Merkle
//! root compared with the batch's on-chain root. A matching list's devices go
//! into `device_identities`; anything else is recorded in `batch_leaves` as
//! `mismatch`, `invalid` or `unavailable` and never trusted.
//!
//! This runs beside the follower ([`follow`]), on its own schedule: a slow or
//! missing list never holds the sync back.

use std::{path::PathBuf, time::Duration};

use alloy::primitives::B256;
use otaledger_core::leaves::{LeafEntry, MAX_LEAF_LIST_SIZE, leaves_root, parse_leaves};
use otaledger_ipfs::{Blockstore, Cid, FetchOptions, Limits, Pushed, Verifier};
use sqlx::{AnyPool, Row as _};

use crate::error::db;
use crate::{Result, backoff::Backoff};

/// Tries of an `unavailable` list before it is left alone.
pub const MAX_ATTEMPTS: i64 = 10;

/// Batches looked at per round.
const BATCHES_PER_ROUND: i64 = 64;

/// Where leaf lists come from: a local block store, gateways, or both (the
/// store first).
#[derive(Debug, Clone, Default)]
pub struct LeafSource {
    /// A local `otaledger-ipfs` block store directory.
    pub store: Option<PathBuf>,
    /// Trustless gateways for a verified fetch.
    pub gateways: Vec<url::Url>,
}

/// What was found for one batch's leaf list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The list's root equals the batch's root and its length the device count.
    Verified(Vec<LeafEntry>),
    /// A well-formed list that is not the batch's (`root` is the list's).
    Mismatch {
        /// The list's Merkle root.
        root: B256,
        /// What differs.
        detail: String,
    },
    /// Not a CID, not a leaf list, or too large.
    Invalid(String),
    /// Neither the store nor a gateway delivered it.
    Unavailable(String),
}

impl Outcome {
    /// The `batch_leaves.status` text.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Verified(_) => "verified",
            Self::Mismatch { .. } => "mismatch",
            Self::Invalid(_) => "invalid",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// The file `cid` from the local store, verified block by block; `Err` is the
/// outcome to record.
fn from_store(dir: &PathBuf, cid: Cid) -> std::result::Result<Vec<u8>, Outcome> {
    let store = Blockstore::open(dir)
        .map_err(|e| Outcome::Unavailable(format!("opening the store: {e}")))?;
    let limits = Limits {
        max_total_size: MAX_LEAF_LIST_SIZE,
        ..Limits::default()
    };
    let invalid = |e: otaledger_ipfs::VerifyError| Outcome::Invalid(e.to_string());
    let mut verifier = Verifier::new(cid, limits).map_err(invalid)?;
    let mut out: Vec<u8> = Vec::new();
    while let Some(next) = verifier.next_needed().copied() {
        if let Some(repeat) = verifier.repeat().map_err(invalid)? {
            let (from, len) = (repeat.offset as usize, repeat.len as usize);
            let end = from.checked_add(len).filter(|e| *e <= out.len());
            let Some(end) = end else {
                return Err(Outcome::Invalid(
                    "a repeated subtree outside the file".into(),
                ));
            };
            out.extend_from_within(from..end);
            continue;
        }
        let block = store
            .get(&next)
            .map_err(|e| Outcome::Unavailable(format!("reading block {next}: {e}")))?
            .ok_or_else(|| Outcome::Unavailable(format!("block {next} is not in the store")))?;
        if let Pushed::Data(data) = verifier.push(&next, &block).map_err(invalid)? {
            out.extend_from_slice(data);
        }
        if out.len() as u64 > MAX_LEAF_LIST_SIZE {
            return Err(Outcome::Invalid(format!(
                "larger than {MAX_LEAF_LIST_SIZE} bytes"
            )));
        }
    }
    Ok(out)
}

/// The file `cid` from the gateways (verified fetch).
async fn from_gateways(gateways: &[url::Url], cid: Cid) -> std::result::Result<Vec<u8>, Outcome> {
    let opts = FetchOptions {
        limits: Limits {
            max_total_size: MAX_LEAF_LIST_SIZE,
            ..Limits::default()
        },
        ..FetchOptions::default()
    };
    let size = otaledger_ipfs::probe_size(cid, gateways, &opts)
        .await
        .map_err(|e| Outcome::Unavailable(e.to_string()))?;
    if size > MAX_LEAF_LIST_SIZE {
        return Err(Outcome::Invalid(format!(
            "{size} bytes, more than {MAX_LEAF_LIST_SIZE}"
        )));
    }
    let dir = tempfile::tempdir().map_err(|e| Outcome::Unavailable(e.to_string()))?;
    let path = dir.path().join("leaves.json");
    otaledger_ipfs::fetch(cid, size, gateways, &path, &opts)
        .await
        .map_err(|e| Outcome::Unavailable(e.to_string()))?;
    tokio::fs::read(&path)
        .await
        .map_err(|e| Outcome::Unavailable(e.to_string()))
}

/// Fetches the list `leaves_cid` and checks it against the batch's `root`
/// and `device_count`.
pub async fn check_list(
    source: &LeafSource,
    leaves_cid: &str,
    root: B256,
    device_count: u64,
) -> Outcome {
    let Ok(cid) = Cid::try_from(leaves_cid) else {
        return Outcome::Invalid(format!("{leaves_cid:?} is not a CID"));
    };
    let mut why = String::from("no local store or gateway configured");
    let mut bytes = None;
    if let Some(dir) = &source.store {
        let dir = dir.clone();
        match tokio::task::spawn_blocking(move || from_store(&dir, cid)).await {
            Ok(Ok(b)) => bytes = Some(b),
            Ok(Err(Outcome::Unavailable(reason))) => why = reason,
            Ok(Err(other)) => return other,
            Err(e) => why = e.to_string(),
        }
    }
    if bytes.is_none() && !source.gateways.is_empty() {
        match from_gateways(&source.gateways, cid).await {
            Ok(b) => bytes = Some(b),
            Err(Outcome::Unavailable(reason)) => why = reason,
            Err(other) => return other,
        }
    }
    let Some(bytes) = bytes else {
        return Outcome::Unavailable(why);
    };
    let leaves = match parse_leaves(&bytes) {
        Ok(l) => l,
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    let found = match leaves_root(&leaves) {
        Ok(r) => r,
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    if found != root {
        return Outcome::Mismatch {
            root: found,
            detail: format!("the list's root is {found}, the batch's {root}"),
        };
    }
    if leaves.len() as u64 != device_count {
        return Outcome::Mismatch {
            root: found,
            detail: format!(
                "{} devices in the list, {device_count} in the batch",
                leaves.len()
            ),
        };
    }
    Outcome::Verified(leaves)
}

/// One round: every batch without a recorded list (and every `unavailable`
/// one with tries left) is fetched, checked and recorded. Returns how many
/// batches were recorded.
pub async fn check_pending(
    pool: &AnyPool,
    source: &LeafSource,
    backoff: &Backoff,
) -> Result<usize> {
    let pending = sqlx::query(
        "SELECT b.block_number, b.log_index, b.block_hash, b.batch_id, b.first_index, \
         b.device_count, b.root, b.leaves_cid, COALESCE(l.attempts, 0) \
         FROM batches b LEFT JOIN batch_leaves l \
         ON l.block_number = b.block_number AND l.log_index = b.log_index \
         WHERE l.status IS NULL OR (l.status = 'unavailable' AND l.attempts < $1 \
         AND l.next_attempt_at <= $2) \
         ORDER BY b.block_number, b.log_index LIMIT $3",
    )
    .bind(MAX_ATTEMPTS)
    .bind(crate::backoff::now_ms())
    .bind(BATCHES_PER_ROUND)
    .fetch_all(pool)
    .await
    .map_err(db("reading pending batches"))?;
    let read = db("reading pending batches");
    let mut recorded = 0;
    for row in pending {
        let block: i64 = row.try_get(0).map_err(&read)?;
        let log: i64 = row.try_get(1).map_err(&read)?;
        let hash: String = row.try_get(2).map_err(&read)?;
        let batch_id: i64 = row.try_get(3).map_err(&read)?;
        let first_index: i64 = row.try_get(4).map_err(&read)?;
        let count: i64 = row.try_get(5).map_err(&read)?;
        let root: String = row.try_get(6).map_err(&read)?;
        let cid: String = row.try_get(7).map_err(&read)?;
        let attempts: i64 = row.try_get(8).map_err(&read)?;
        let outcome = check_list(
            source,
            &cid,
            root.parse().unwrap_or_default(),
            count.max(0) as u64,
        )
        .await;
        let mut tx = pool.begin().await.map_err(db("beginning a transaction"))?;
        // The batch may have gone in a reorg meanwhile: record nothing then.
        let still: i64 = sqlx::query(
            "SELECT COUNT(*) FROM batches WHERE block_number = $1 AND log_index = $2 AND block_hash = $3",
        )
        .bind(block)
        .bind(log)
        .bind(hash)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("checking a batch"))?
        .try_get(0)
        .map_err(db("checking a batch"))?;
        if still != 1 {
            continue;
        }
        for table in ["device_identities", "batch_leaves"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE block_number = $1 AND log_index = $2"
            )))
            .bind(block)
            .bind(log)
            .execute(&mut *tx)
            .await
            .map_err(db("replacing a leaf list record"))?;
        }
        let (computed, detail) = match &outcome {
            Outcome::Verified(leaves) => (
                Some(
                    leaves_root(leaves)
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                ),
                format!("{} devices", leaves.len()),
            ),
            Outcome::Mismatch { root, detail } => (Some(root.to_string()), detail.clone()),
            Outcome::Invalid(d) | Outcome::Unavailable(d) => (None, d.clone()),
        };
        // Unavailable: not again before the backoff for this many tries.
        let next_attempt_at = match outcome {
            Outcome::Unavailable(_) => {
                backoff.next_attempt_at(attempts + 1, crate::backoff::now_ms())
            }
            _ => 0,
        };
        sqlx::query(
            "INSERT INTO batch_leaves (block_number, log_index, batch_id, leaves_cid, status, \
             computed_root, detail, attempts, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(block)
        .bind(log)
        .bind(batch_id)
        .bind(cid)
        .bind(outcome.status())
        .bind(computed)
        .bind(detail)
        .bind(attempts + 1)
        .bind(next_attempt_at)
        .execute(&mut *tx)
        .await
        .map_err(db("recording a leaf list"))?;
        if let Outcome::Verified(leaves) = &outcome {
            let sqlite = crate::db::anonymous_params(&tx);
            for chunk in leaves.chunks(100) {
                let mut sql = String::from(
                    "INSERT INTO device_identities (block_number, log_index, position, batch_id, \
                     device_index, device, model_id, public_key) VALUES ",
                );
                for i in 0..chunk.len() {
                    let b = i * 8;
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    let p: Vec<String> = (1..=8).map(|c| crate::db::param(sqlite, b + c)).collect();
                    sql.push_str(&format!("({})", p.join(", ")));
                }
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for leaf in chunk {
                    query = query
                        .bind(block)
                        .bind(log)
                        .bind(leaf.position as i64)
                        .bind(batch_id)
                        .bind(first_index + leaf.position as i64)
                        .bind(format!("0x{}", alloy::hex::encode(leaf.device)))
                        .bind(i64::from(leaf.model_id))
                        .bind(format!("0x{}", alloy::hex::encode(&leaf.public_key)));
                }
                query
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing device identities"))?;
            }
        }
        tx.commit().await.map_err(db("committing a leaf list"))?;
        recorded += 1;
    }
    Ok(recorded)
}

/// Checks pending leaf lists every `interval`, forever (spawned beside the
/// follower; a failing round is logged and retried).
pub async fn follow(pool: AnyPool, source: LeafSource, interval: Duration, backoff: Backoff) {
    loop {
        match check_pending(&pool, &source, &backoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(batches = n, "leaf lists recorded"),
            Err(e) => tracing::warn!(error = %e, "checking leaf lists failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
