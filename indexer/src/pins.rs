//! The pin follower (`otaledger indexer run --pin`): every release's bundle
//! CID and every batch's leaves CID is pinned, either into a local
//! `otaledger-ipfs` block store (each missing block fetched raw from the
//! gateways, bounded and checked against its CID before it is stored) or on a
//! Kubo node (`pin/add`), and its availability recorded in `pins` and shown
//! with the release in the API (`GET /v1/releases/{id}` → `pin`).

use std::{collections::HashSet, path::PathBuf, time::Duration};

use otaledger_ipfs::{
    Blockstore, Cid, DAG_PB, KuboClient, MAX_BLOCK_SIZE, MAX_LINKS_PER_NODE, check_block,
    decode_dag_pb,
};
use sqlx::{AnyPool, Row as _};

use crate::error::db;
use crate::{Error, Result, backoff::Backoff};

/// Tries of an `unavailable` CID before it is left alone.
pub const MAX_ATTEMPTS: i64 = 10;

/// Most blocks one pinned DAG may have.
pub const MAX_BLOCKS: usize = 1 << 20;

/// Where CIDs are pinned.
#[derive(Debug, Clone)]
pub enum PinTarget {
    /// Every block into this local block store, missing ones fetched from `gateways`.
    Store {
        /// The block store directory.
        dir: PathBuf,
        /// Trustless gateways asked for missing blocks (`?format=raw`).
        gateways: Vec<url::Url>,
    },
    /// `pin/add` on a Kubo node.
    Kubo(KuboClient),
}

/// One CID's availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinStatus {
    /// `pinned`, `unavailable` or `invalid`.
    pub status: &'static str,
    /// The number of blocks, the missing block or the error.
    pub detail: String,
}

/// A block of at most [`MAX_BLOCK_SIZE`] bytes from the first gateway that
/// returns one matching `cid`.
async fn fetch_block(
    http: &reqwest::Client,
    gateways: &[url::Url],
    cid: &Cid,
) -> std::result::Result<Vec<u8>, String> {
    let mut last = String::from("no gateway");
    for g in gateways {
        let mut url = g.clone();
        url.set_path(&format!("{}/ipfs/{cid}", g.path().trim_end_matches('/')));
        url.set_query(Some("format=raw"));
        let attempt = async {
            let mut resp = http
                .get(url)
                .header("accept", "application/vnd.ipld.raw")
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("http {}", resp.status()));
            }
            let mut block = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                if block.len() + chunk.len() > MAX_BLOCK_SIZE {
                    return Err(format!("block larger than {MAX_BLOCK_SIZE} bytes"));
                }
                block.extend_from_slice(&chunk);
            }
            check_block(cid, &block).map_err(|e| e.to_string())?;
            Ok(block)
        };
        match attempt.await {
            Ok(block) => return Ok(block),
            Err(e) => last = format!("{g}: {e}"),
        }
    }
    Err(last)
}

/// Every block of the DAG under `root` into the store at `dir`.
async fn pin_into_store(
    http: &reqwest::Client,
    dir: &PathBuf,
    gateways: &[url::Url],
    root: Cid,
) -> PinStatus {
    let unavailable = |detail: String| PinStatus {
        status: "unavailable",
        detail,
    };
    let store = match Blockstore::open(dir) {
        Ok(s) => s,
        Err(e) => return unavailable(format!("opening the store: {e}")),
    };
    let mut stack = vec![root];
    let mut seen = HashSet::new();
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        if seen.len() > MAX_BLOCKS {
            return PinStatus {
                status: "invalid",
                detail: format!("more than {MAX_BLOCKS} blocks"),
            };
        }
        let block = match store.get(&cid) {
            Ok(Some(b)) => b,
            Ok(None) => match fetch_block(http, gateways, &cid).await {
                Ok(b) => {
                    if let Err(e) = store.put(&cid, &b) {
                        return unavailable(format!("storing {cid}: {e}"));
                    }
                    b
                }
                Err(e) => return unavailable(format!("block {cid} missing: {e}")),
            },
            Err(e) => return unavailable(format!("reading {cid}: {e}")),
        };
        if cid.codec() == DAG_PB {
            match decode_dag_pb(&block, MAX_LINKS_PER_NODE) {
                Ok(node) => stack.extend(node.links.iter().rev().map(|l| l.hash)),
                Err(e) => {
                    return PinStatus {
                        status: "invalid",
                        detail: format!("block {cid}: {e}"),
                    };
                }
            }
        }
    }
    PinStatus {
        status: "pinned",
        detail: format!("{} blocks", seen.len()),
    }
}

/// Pins `cid_text` (a CID string) on `target`.
pub async fn pin(http: &reqwest::Client, target: &PinTarget, cid_text: &str) -> PinStatus {
    let Ok(cid) = Cid::try_from(cid_text) else {
        return PinStatus {
            status: "invalid",
            detail: format!("{cid_text:?} is not a CID"),
        };
    };
    match target {
        PinTarget::Store { dir, gateways } => pin_into_store(http, dir, gateways, cid).await,
        PinTarget::Kubo(kubo) => match kubo.pin_add(&cid).await {
            Ok(()) => PinStatus {
                status: "pinned",
                detail: "pinned by the Kubo node".into(),
            },
            Err(e) => PinStatus {
                status: "unavailable",
                detail: e.to_string(),
            },
        },
    }
}

/// The longest value the `pins` table keeps as its key. A CID's text is far shorter
/// (a CIDv1 of a SHA-256 is 59 characters); anyone can put a longer "CID" on chain (a
/// batch's leaves CID, a release's bundle CID), and PostgreSQL refuses index entries
/// above about 2.7 KB, which stopped every round of the pin follower at that value
/// (`review_indexer_strings::postgres::a_long_leaves_cid_does_not_stop_the_pin_follower`).
pub const MAX_PIN_KEY: usize = 256;

/// The `pins` key of a CID as the chain states it: the text itself, or for a value
/// longer than [`MAX_PIN_KEY`] (no CID) `sha256:` and the hex SHA-256 of the text.
pub fn pin_key(text: &str) -> String {
    if text.len() <= MAX_PIN_KEY {
        return text.to_owned();
    }
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        alloy::hex::encode(sha2::Sha256::digest(text.as_bytes()))
    )
}

/// The `pins` key of a release's bundle CID as the chain has it (binary): its
/// CID string, or the `0x` hex text when it is no CID ([`pin_key`] of either).
pub fn bundle_key(bundle_cid_hex: &str) -> String {
    let text = alloy::hex::decode(bundle_cid_hex)
        .ok()
        .and_then(|b| Cid::try_from(b.as_slice()).ok())
        .map_or_else(|| bundle_cid_hex.to_owned(), |c| c.to_string());
    pin_key(&text)
}

/// One round: every bundle and leaves CID not pinned yet (and not given up
/// on) is pinned and recorded. Returns how many were recorded.
pub async fn pin_pending(pool: &AnyPool, target: &PinTarget, backoff: &Backoff) -> Result<usize> {
    let read = db("reading CIDs to pin");
    let mut wanted: Vec<(String, &'static str)> = Vec::new();
    for row in sqlx::query("SELECT DISTINCT bundle_cid FROM releases")
        .fetch_all(pool)
        .await
        .map_err(&read)?
    {
        let hex: String = row.try_get(0).map_err(&read)?;
        wanted.push((bundle_key(&hex), "bundle"));
    }
    for row in sqlx::query("SELECT DISTINCT leaves_cid FROM batches")
        .fetch_all(pool)
        .await
        .map_err(&read)?
    {
        let text: String = row.try_get(0).map_err(&read)?;
        wanted.push((pin_key(&text), "leaves"));
    }
    let mut done = HashSet::new();
    let mut attempts = std::collections::HashMap::new();
    let now = crate::backoff::now_ms();
    for row in sqlx::query("SELECT cid, status, attempts, next_attempt_at FROM pins")
        .fetch_all(pool)
        .await
        .map_err(&read)?
    {
        let cid: String = row.try_get(0).map_err(&read)?;
        let status: String = row.try_get(1).map_err(&read)?;
        let n: i64 = row.try_get(2).map_err(&read)?;
        let next: i64 = row.try_get(3).map_err(&read)?;
        // Pinned or invalid, given up on, or still backing off.
        if status != "unavailable" || n >= MAX_ATTEMPTS || next > now {
            done.insert(cid.clone());
        }
        attempts.insert(cid, n);
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Pin {
            reason: e.to_string(),
        })?;
    let mut recorded = 0;
    let mut this_round = HashSet::new();
    for (cid, kind) in wanted {
        if done.contains(&cid) || !this_round.insert(cid.clone()) {
            continue;
        }
        let status = if cid.len() > MAX_PIN_KEY || cid.starts_with("sha256:") {
            PinStatus {
                status: "invalid",
                detail: "longer than any CID".into(),
            }
        } else {
            pin(&http, target, &cid).await
        };
        // One CID's failure to record is logged and the round goes on with the rest.
        match record(pool, &cid, kind, status, &attempts, backoff).await {
            Ok(()) => recorded += 1,
            Err(e) => tracing::warn!(cid = %cid, error = %e, "recording a pin failed"),
        }
    }
    Ok(recorded)
}

/// Records the outcome of pinning `cid` (its previous row replaced).
async fn record(
    pool: &AnyPool,
    cid: &str,
    kind: &'static str,
    status: PinStatus,
    attempts: &std::collections::HashMap<String, i64>,
    backoff: &Backoff,
) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db("beginning a transaction"))?;
    sqlx::query("DELETE FROM pins WHERE cid = $1")
        .bind(cid.to_owned())
        .execute(&mut *tx)
        .await
        .map_err(db("recording a pin"))?;
    let tries = attempts.get(cid).copied().unwrap_or(0) + 1;
    let next_attempt_at = if status.status == "unavailable" {
        backoff.next_attempt_at(tries, crate::backoff::now_ms())
    } else {
        0
    };
    sqlx::query(
        "INSERT INTO pins (cid, kind, status, detail, attempts, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(cid.to_owned())
    .bind(kind)
    .bind(status.status)
    .bind(status.detail)
    .bind(tries)
    .bind(next_attempt_at)
    .execute(&mut *tx)
    .await
    .map_err(db("recording a pin"))?;
    tx.commit().await.map_err(db("committing a pin"))?;
    Ok(())
}

/// The recorded status of `cid` (a CID's text as the chain states it, or a key as
/// [`bundle_key`] and [`pin_key`] make it), if any.
pub async fn status(pool: &AnyPool, cid: &str) -> Result<Option<PinStatus>> {
    let row = sqlx::query("SELECT status, detail FROM pins WHERE cid = $1")
        .bind(pin_key(cid))
        .fetch_optional(pool)
        .await
        .map_err(db("reading a pin"))?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get(0).map_err(db("reading a pin"))?;
    let detail: String = row.try_get(1).map_err(db("reading a pin"))?;
    let status = match status.as_str() {
        "pinned" => "pinned",
        "invalid" => "invalid",
        _ => "unavailable",
    };
    Ok(Some(PinStatus { status, detail }))
}

/// Pins pending CIDs every `interval`, forever (spawned beside the follower).
pub async fn follow(pool: AnyPool, target: PinTarget, interval: Duration, backoff: Backoff) {
    loop {
        match pin_pending(&pool, &target, &backoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(cids = n, "pins recorded"),
            Err(e) => tracing::warn!(error = %e, "pinning failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
