//! The key service's SQLite file: what the follower mirrored (batches,
//! releases, purchases, the checkpoint and recent block hashes) and what the
//! service issued. Schema in `cli/migrations/keyservice/`, migrated at
//! start-up.
//!
//! [`KeyStore`] is the follower's [`FollowStore`]: a batch's rows, its block
//! hashes and the checkpoint commit in one transaction, and a reorg deletes
//! the mirrored rows above the common ancestor in one transaction. Issued keys
//! are never deleted by a rewind (a delivered key cannot be taken back); the
//! service only issues a purchase after its confirmations, so a purchase
//! rewound before then is never issued.

use std::{path::Path, str::FromStr, time::Duration};

use alloy::{
    primitives::{Address, B256},
    rpc::types::Log,
    sol_types::SolEvent,
};
use otaledger_core::{
    bindings::{
        market::UpdateMarket::Purchased,
        registry::UpdateRegistry::{DevicesProvisioned, ReleasePublished, ReleaseRevoked},
    },
    follow::{Batch, BlockRef, FollowStore},
};
use sqlx::{
    Row as _, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{Error, Result};

fn db(during: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Database { during, source }
}

/// Lowercase `0x` hex, the database's spelling of hashes and addresses.
pub(crate) fn hex_text(bytes: &[u8]) -> String {
    alloy::hex::encode_prefixed(bytes)
}

/// Opens (creating if absent) the database at `path` and migrates it.
pub async fn open(path: &Path) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(db("parsing the database options"))?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL: a committed transaction survives a process crash
        // (kill -9); only a power loss can drop the newest commits.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(db("opening the database"))?;
    sqlx::migrate!("./migrations/keyservice")
        .run(&pool)
        .await
        .map_err(|source| Error::Migrate { source })?;
    Ok(pool)
}

/// Records the deployment the database follows on first use; refuses a
/// database made for another chain or registry.
pub async fn claim(
    pool: &SqlitePool,
    chain_id: u64,
    registry: Address,
    market: Address,
) -> Result<()> {
    let row = sqlx::query("SELECT chain_id, registry FROM sync_state WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(db("reading the sync state"))?;
    match row {
        None => {
            sqlx::query(
                "INSERT INTO sync_state (id, chain_id, registry, market, block_number, block_hash) \
                 VALUES (1, ?1, ?2, ?3, -1, '')",
            )
            .bind(chain_id as i64)
            .bind(hex_text(registry.as_slice()))
            .bind(hex_text(market.as_slice()))
            .execute(pool)
            .await
            .map_err(db("initialising the sync state"))?;
            Ok(())
        }
        Some(row) => {
            let stored_chain: i64 = row.try_get(0).map_err(db("reading the sync state"))?;
            let stored_registry: String = row.try_get(1).map_err(db("reading the sync state"))?;
            if stored_chain != chain_id as i64 || stored_registry != hex_text(registry.as_slice()) {
                return Err(Error::OtherDeployment {
                    stored_chain,
                    stored_registry,
                    chain: chain_id,
                    registry,
                });
            }
            Ok(())
        }
    }
}

/// The checkpoint: the last block whose logs are all in the database.
pub async fn checkpoint(pool: &SqlitePool) -> Result<Option<BlockRef>> {
    let row = sqlx::query("SELECT block_number, block_hash FROM sync_state WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(db("reading the checkpoint"))?;
    let Some(row) = row else { return Ok(None) };
    let number: i64 = row.try_get(0).map_err(db("reading the checkpoint"))?;
    let hash: String = row.try_get(1).map_err(db("reading the checkpoint"))?;
    if number < 0 {
        return Ok(None);
    }
    Ok(Some(BlockRef {
        number: number as u64,
        hash: hash.parse::<B256>().unwrap_or_default(),
    }))
}

/// One mirrored fact decoded from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fact {
    Batch {
        batch_id: u64,
        first_index: u64,
        count: u32,
        root: B256,
        leaves_cid: String,
    },
    Release {
        release_id: B256,
        model_id: u32,
        version: u64,
    },
    Revoked {
        release_id: B256,
    },
    Purchase {
        release_id: B256,
        devices: Vec<u64>,
    },
}

/// The follower's store for the key service: the manufacturer's batches,
/// every release and every purchase, with the checkpoint.
#[derive(Debug, Clone)]
pub struct KeyStore {
    pool: SqlitePool,
    registry: Address,
    market: Address,
    manufacturer: u32,
}

impl KeyStore {
    /// A store over `pool` for the contracts at `registry` and `market`,
    /// keeping the batches of `manufacturer` only.
    pub fn new(pool: SqlitePool, registry: Address, market: Address, manufacturer: u32) -> Self {
        Self {
            pool,
            registry,
            market,
            manufacturer,
        }
    }

    /// The database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn decode(&self, log: &Log) -> Option<Fact> {
        let topic = *log.topic0()?;
        if log.address() == self.market && topic == Purchased::SIGNATURE_HASH {
            let e = log.log_decode::<Purchased>().ok()?.inner.data;
            return Some(Fact::Purchase {
                release_id: e.releaseId,
                devices: e.deviceIndexes,
            });
        }
        if log.address() != self.registry {
            return None;
        }
        if topic == DevicesProvisioned::SIGNATURE_HASH {
            let e = log.log_decode::<DevicesProvisioned>().ok()?.inner.data;
            return (e.manufacturerId == self.manufacturer).then_some(Fact::Batch {
                batch_id: e.batchId,
                first_index: e.firstIndex,
                count: e.count,
                root: e.root,
                leaves_cid: e.leavesCid,
            });
        }
        if topic == ReleasePublished::SIGNATURE_HASH {
            let e = log.log_decode::<ReleasePublished>().ok()?.inner.data;
            return Some(Fact::Release {
                release_id: e.releaseId,
                model_id: e.modelId,
                version: e.version,
            });
        }
        if topic == ReleaseRevoked::SIGNATURE_HASH {
            let e = log.log_decode::<ReleaseRevoked>().ok()?.inner.data;
            return Some(Fact::Revoked {
                release_id: e.releaseId,
            });
        }
        None
    }
}

impl FollowStore for KeyStore {
    type Error = Error;
    /// Nothing: the key service's facts are few and decoded in `apply`.
    type Prepared = ();

    fn preparer(&self) -> otaledger_core::follow::Preparer<(), Error> {
        std::sync::Arc::new(|_, _| Ok(()))
    }

    async fn checkpoint(&mut self) -> Result<Option<BlockRef>> {
        checkpoint(&self.pool).await
    }

    async fn recent_blocks(&mut self) -> Result<Vec<BlockRef>> {
        let rows = sqlx::query(
            "SELECT block_number, block_hash FROM recent_blocks ORDER BY block_number DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading recent blocks"))?;
        rows.iter()
            .map(|row| {
                let number: i64 = row.try_get(0).map_err(db("reading recent blocks"))?;
                let hash: String = row.try_get(1).map_err(db("reading recent blocks"))?;
                Ok(BlockRef {
                    number: number as u64,
                    hash: hash.parse().unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn apply(&mut self, batch: &Batch, (): ()) -> Result<()> {
        let facts: Vec<(u64, Fact)> = batch
            .logs
            .iter()
            .filter_map(|l| Some((l.block_number?, self.decode(l)?)))
            .collect();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("beginning a transaction"))?;
        let found: i64 = sqlx::query("SELECT block_number FROM sync_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(db("reading the checkpoint"))?
            .try_get(0)
            .map_err(db("reading the checkpoint"))?;
        // The batch must follow the checkpoint (or be the first one): a
        // second process on the same file cannot interleave its writes.
        if found >= 0 && found != batch.from as i64 - 1 {
            return Err(Error::Database {
                during: "applying a batch",
                source: sqlx::Error::Protocol(format!(
                    "the checkpoint is block {found}, the batch starts at {}: is another key service using this database?",
                    batch.from
                )),
            });
        }
        for (block, fact) in &facts {
            let block = *block as i64;
            match fact {
                Fact::Batch {
                    batch_id,
                    first_index,
                    count,
                    root,
                    leaves_cid,
                } => {
                    sqlx::query(
                        "INSERT INTO batches (batch_id, first_index, device_count, root, leaves_cid, block_number) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (batch_id) DO NOTHING",
                    )
                    .bind(*batch_id as i64)
                    .bind(*first_index as i64)
                    .bind(i64::from(*count))
                    .bind(hex_text(root.as_slice()))
                    .bind(leaves_cid)
                    .bind(block)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a batch"))?;
                }
                Fact::Release {
                    release_id,
                    model_id,
                    version,
                } => {
                    sqlx::query(
                        "INSERT INTO releases (release_id, model_id, version, block_number) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (release_id) DO NOTHING",
                    )
                    .bind(hex_text(release_id.as_slice()))
                    .bind(i64::from(*model_id))
                    .bind(*version as i64)
                    .bind(block)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a release"))?;
                }
                Fact::Revoked { release_id } => {
                    sqlx::query(
                        "UPDATE releases SET revoked_block = ?2 WHERE release_id = ?1 AND revoked_block IS NULL",
                    )
                    .bind(hex_text(release_id.as_slice()))
                    .bind(block)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a revocation"))?;
                }
                Fact::Purchase {
                    release_id,
                    devices,
                } => {
                    for device in devices {
                        sqlx::query(
                            "INSERT INTO purchases (release_id, device_index, block_number) \
                             VALUES (?1, ?2, ?3) ON CONFLICT (release_id, device_index) DO NOTHING",
                        )
                        .bind(hex_text(release_id.as_slice()))
                        .bind(*device as i64)
                        .bind(block)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("storing a purchase"))?;
                    }
                }
            }
        }
        for block in &batch.blocks {
            sqlx::query(
                "INSERT INTO recent_blocks (block_number, block_hash) VALUES (?1, ?2) \
                 ON CONFLICT (block_number) DO UPDATE SET block_hash = excluded.block_hash",
            )
            .bind(block.number as i64)
            .bind(hex_text(block.hash.as_slice()))
            .execute(&mut *tx)
            .await
            .map_err(db("remembering block hashes"))?;
        }
        sqlx::query("DELETE FROM recent_blocks WHERE block_number < ?1")
            .bind(batch.keep_from as i64)
            .execute(&mut *tx)
            .await
            .map_err(db("forgetting old block hashes"))?;
        sqlx::query("UPDATE sync_state SET block_number = ?1, block_hash = ?2 WHERE id = 1")
            .bind(batch.to.number as i64)
            .bind(hex_text(batch.to.hash.as_slice()))
            .execute(&mut *tx)
            .await
            .map_err(db("moving the checkpoint"))?;
        tx.commit().await.map_err(db("committing a batch"))
    }

    async fn rewind(&mut self, ancestor: BlockRef) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("beginning a transaction"))?;
        let above = ancestor.number as i64;
        for (sql, during) in [
            (
                "DELETE FROM purchases WHERE block_number > ?1",
                "rewinding purchases",
            ),
            (
                "DELETE FROM releases WHERE block_number > ?1",
                "rewinding releases",
            ),
            (
                "UPDATE releases SET revoked_block = NULL WHERE revoked_block > ?1",
                "rewinding revocations",
            ),
            (
                "DELETE FROM batches WHERE block_number > ?1",
                "rewinding batches",
            ),
            (
                "DELETE FROM recent_blocks WHERE block_number > ?1",
                "rewinding block hashes",
            ),
        ] {
            sqlx::query(sql)
                .bind(above)
                .execute(&mut *tx)
                .await
                .map_err(db(during))?;
        }
        sqlx::query("UPDATE sync_state SET block_number = ?1, block_hash = ?2 WHERE id = 1")
            .bind(above)
            .bind(hex_text(ancestor.hash.as_slice()))
            .execute(&mut *tx)
            .await
            .map_err(db("rewinding the checkpoint"))?;
        tx.commit().await.map_err(db("committing a rewind"))
    }
}

/// A purchase whose confirmations are complete and that has no key and no
/// refusal yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The release.
    pub release_id: B256,
    /// The device's global index.
    pub device_index: u64,
    /// Block of the purchase.
    pub purchase_block: u64,
    /// The release's model.
    pub model_id: u32,
    /// The release's version.
    pub version: u64,
    /// Whether the release was revoked (with its confirmations).
    pub revoked: bool,
    /// The manufacturer's batch holding the device, if any.
    pub batch: Option<BatchRow>,
}

/// A batch of the manufacturer's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRow {
    /// The batch id.
    pub batch_id: u64,
    /// Global index of its first device.
    pub first_index: u64,
    /// Devices in it.
    pub count: u64,
    /// Its Merkle root on chain.
    pub root: B256,
    /// CID of its leaf list.
    pub leaves_cid: String,
}

/// Up to `limit` purchases that have at least `confirmations` blocks on top
/// at `checkpoint` (`block + confirmations ≤ checkpoint`), oldest first.
pub async fn due(
    pool: &SqlitePool,
    checkpoint: u64,
    confirmations: u64,
    limit: usize,
) -> Result<Vec<Due>> {
    let Some(last) = checkpoint.checked_sub(confirmations) else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "SELECT p.release_id, p.device_index, p.block_number, r.model_id, r.version, \
                (r.revoked_block IS NOT NULL AND r.revoked_block <= ?1) AS revoked, \
                b.batch_id, b.first_index, b.device_count, b.root, b.leaves_cid \
         FROM purchases p \
         JOIN releases r ON r.release_id = p.release_id \
         LEFT JOIN batches b ON b.first_index <= p.device_index \
              AND p.device_index < b.first_index + b.device_count AND b.block_number <= ?1 \
         WHERE p.block_number <= ?1 AND r.block_number <= ?1 \
           AND NOT EXISTS (SELECT 1 FROM issued_keys k \
                           WHERE k.release_id = p.release_id AND k.device_index = p.device_index) \
           AND NOT EXISTS (SELECT 1 FROM refusals f \
                           WHERE f.release_id = p.release_id AND f.device_index = p.device_index) \
         ORDER BY p.block_number, p.release_id, p.device_index LIMIT ?2",
    )
    .bind(last as i64)
    .bind(limit as i64)
    .fetch_all(pool)
    .await
    .map_err(db("listing due purchases"))?;
    let during = "listing due purchases";
    rows.iter()
        .map(|row| {
            let release: String = row.try_get(0).map_err(db(during))?;
            let batch_id: Option<i64> = row.try_get(6).map_err(db(during))?;
            let batch = match batch_id {
                None => None,
                Some(id) => Some(BatchRow {
                    batch_id: id as u64,
                    first_index: row.try_get::<i64, _>(7).map_err(db(during))? as u64,
                    count: row.try_get::<i64, _>(8).map_err(db(during))? as u64,
                    root: row
                        .try_get::<String, _>(9)
                        .map_err(db(during))?
                        .parse()
                        .unwrap_or_default(),
                    leaves_cid: row.try_get(10).map_err(db(during))?,
                }),
            };
            Ok(Due {
                release_id: release.parse().unwrap_or_default(),
                device_index: row.try_get::<i64, _>(1).map_err(db(during))? as u64,
                purchase_block: row.try_get::<i64, _>(2).map_err(db(during))? as u64,
                model_id: row.try_get::<i64, _>(3).map_err(db(during))? as u32,
                version: row.try_get::<i64, _>(4).map_err(db(during))? as u64,
                revoked: row.try_get::<bool, _>(5).map_err(db(during))?,
                batch,
            })
        })
        .collect()
}

/// Purchases with their confirmations that have neither a key nor a refusal.
pub async fn pending(pool: &SqlitePool, checkpoint: u64, confirmations: u64) -> Result<u64> {
    let Some(last) = checkpoint.checked_sub(confirmations) else {
        return Ok(0);
    };
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM purchases p WHERE p.block_number <= ?1 \
           AND NOT EXISTS (SELECT 1 FROM issued_keys k \
                           WHERE k.release_id = p.release_id AND k.device_index = p.device_index) \
           AND NOT EXISTS (SELECT 1 FROM refusals f \
                           WHERE f.release_id = p.release_id AND f.device_index = p.device_index)",
    )
    .bind(last as i64)
    .fetch_one(pool)
    .await
    .map_err(db("counting pending purchases"))?
    .try_get(0)
    .map_err(db("counting pending purchases"))?;
    Ok(n as u64)
}

/// A key the service issued, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The release.
    pub release_id: B256,
    /// The device's global index.
    pub device_index: u64,
    /// The device's address.
    pub device: Address,
    /// The key's attributes.
    pub attributes: Vec<String>,
    /// The `otaledger-key` v1 bytes (encrypted to the device: not a secret).
    pub delivery: Vec<u8>,
    /// Its CID in the local block store.
    pub cid: String,
    /// Block of the purchase it was issued for.
    pub purchase_block: u64,
}

/// Stores an issued key unless one exists for its (release, device); true if
/// this call stored it.
pub async fn insert_key(pool: &SqlitePool, key: &KeyRow) -> Result<bool> {
    let attributes = serde_json::to_string(&key.attributes).unwrap_or_default();
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let done = sqlx::query(
        "INSERT INTO issued_keys (release_id, device_index, device, attributes, delivery, cid, purchase_block, issued_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (release_id, device_index) DO NOTHING",
    )
    .bind(hex_text(key.release_id.as_slice()))
    .bind(key.device_index as i64)
    .bind(hex_text(key.device.as_slice()))
    .bind(attributes)
    .bind(key.delivery.as_slice())
    .bind(&key.cid)
    .bind(key.purchase_block as i64)
    .bind(issued_at)
    .execute(pool)
    .await
    .map_err(db("storing an issued key"))?;
    Ok(done.rows_affected() == 1)
}

/// Records that a purchase will never get a key, and why.
pub async fn refuse(
    pool: &SqlitePool,
    release_id: B256,
    device_index: u64,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refusals (release_id, device_index, reason) VALUES (?1, ?2, ?3) \
         ON CONFLICT (release_id, device_index) DO NOTHING",
    )
    .bind(hex_text(release_id.as_slice()))
    .bind(device_index as i64)
    .bind(reason)
    .execute(pool)
    .await
    .map_err(db("storing a refusal"))?;
    Ok(())
}

/// The delivery issued to `device_index` for `release_id`, if any.
pub async fn delivery(
    pool: &SqlitePool,
    release_id: B256,
    device_index: u64,
) -> Result<Option<Vec<u8>>> {
    let row =
        sqlx::query("SELECT delivery FROM issued_keys WHERE release_id = ?1 AND device_index = ?2")
            .bind(hex_text(release_id.as_slice()))
            .bind(device_index as i64)
            .fetch_optional(pool)
            .await
            .map_err(db("reading a key"))?;
    row.map(|r| r.try_get::<Vec<u8>, _>(0).map_err(db("reading a key")))
        .transpose()
}

/// Every issued key's delivery and CID (for re-adding missing blocks at start-up).
pub async fn all_keys(pool: &SqlitePool) -> Result<Vec<(Vec<u8>, String)>> {
    let rows = sqlx::query("SELECT delivery, cid FROM issued_keys")
        .fetch_all(pool)
        .await
        .map_err(db("listing keys"))?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(db("listing keys"))?,
                r.try_get(1).map_err(db("listing keys"))?,
            ))
        })
        .collect()
}

/// How many keys were issued in all.
pub async fn key_count(pool: &SqlitePool) -> Result<u64> {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM issued_keys")
        .fetch_one(pool)
        .await
        .map_err(db("counting keys"))?
        .try_get(0)
        .map_err(db("counting keys"))?;
    Ok(n as u64)
}
