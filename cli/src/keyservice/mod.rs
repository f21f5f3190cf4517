//! `otaledger keys serve`: the manufacturer's key service as a daemon.
//!
//! It follows the registry's `DevicesProvisioned` (the manufacturer's
//! batches), `ReleasePublished`/`ReleaseRevoked` and the market's `Purchased`
//! events from the chain with the shared follower ([`otaledger_core::follow`])
//! into a SQLite file ([`store`]). After each pass, every purchase with at
//! least `confirmations` blocks on top of it gets one CP-ABE key holding the
//! device's static attributes and `release:<model>/<version>` (FAME keys do
//! not combine), sealed to the device's identity key from the batch's leaf
//! list ([`leaves`], checked against the on-chain Merkle root) and signed by
//! the key-service wallet ([`crate::keys::seal_key`]). The delivery is stored
//! (primary key (release, device): a restart never reissues), then added to
//! the local IPFS block store, and served over HTTP (`http`).
//!
//! Exactly once across crashes: purchases and the follower's checkpoint commit
//! in one transaction; a key is issued only for a purchase still in the
//! database after its confirmations (a reorg before then deletes the row);
//! the key row is the only record of issuance and is written once. A key
//! computed but not committed before a crash never left the process, so the
//! restart computes a new one in its place. A delivered key cannot be taken
//! back: a reorg deeper than the confirmations after issuance does not revoke
//! it (docs/security.md).

pub(crate) mod http;
pub mod leaves;
pub mod store;

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use futures_util::StreamExt;
use otaledger_core::follow::{FollowConfig, Follower, RetryPolicy, rpc::Rpc};
use otaledger_cpabe::MasterKey;
use otaledger_ipfs::{BlockSink, Blockstore, Cid, ImportOptions, Profile, import};
use serde::Deserialize;
use sqlx::SqlitePool;

use self::{
    leaves::LeavesError,
    store::{Due, KeyRow, KeyStore},
};
use crate::{Error, Result, device::LeafEntry, keys::key_attributes};

/// Most attributes one entry of the attributes file may add.
pub const MAX_EXTRA_ATTRIBUTES: usize = 64;
/// Longest attribute (as `otaledger-cpabe` accepts).
pub const MAX_ATTRIBUTE_LEN: usize = 256;
/// Largest attributes file.
pub const MAX_ATTRIBUTES_FILE: u64 = 1024 * 1024;

/// The static attributes a device's key holds besides `model:<M>`, from the
/// `--attributes` JSON file: per model and per batch (both apply).
///
/// ```json
/// { "models": { "1": ["region:eu"] }, "batches": { "3": ["hw:rev2"] } }
/// ```
///
/// These must equal what `device provision --attribute` gave the batch (its
/// `device.toml` `attributes`), or a bundle whose policy names them will not
/// open with the purchased key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticAttributes {
    /// Model id → attributes of every device of that model.
    #[serde(default)]
    pub models: BTreeMap<u32, Vec<String>>,
    /// Batch id → attributes of every device of that batch.
    #[serde(default)]
    pub batches: BTreeMap<u64, Vec<String>>,
}

impl StaticAttributes {
    /// Reads and checks an attributes file.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(Error::io(path))?;
        if meta.len() > MAX_ATTRIBUTES_FILE {
            return Err(Error::Input {
                field: "--attributes",
                reason: format!(
                    "{} is {} bytes, at most {MAX_ATTRIBUTES_FILE}",
                    path.display(),
                    meta.len()
                ),
            });
        }
        let text = std::fs::read(path).map_err(Error::io(path))?;
        let parsed: Self = serde_json::from_slice(&text).map_err(|e| Error::Input {
            field: "--attributes",
            reason: format!("{}: {e}", path.display()),
        })?;
        parsed.check()?;
        Ok(parsed)
    }

    /// Every list is at most [`MAX_EXTRA_ATTRIBUTES`] non-empty attributes of at
    /// most [`MAX_ATTRIBUTE_LEN`] bytes.
    pub fn check(&self) -> Result<()> {
        let lists = self
            .models
            .iter()
            .map(|(k, v)| (format!("models.{k}"), v))
            .chain(
                self.batches
                    .iter()
                    .map(|(k, v)| (format!("batches.{k}"), v)),
            );
        for (name, list) in lists {
            if list.len() > MAX_EXTRA_ATTRIBUTES {
                return Err(Error::Input {
                    field: "--attributes",
                    reason: format!(
                        "{name} has {} attributes, at most {MAX_EXTRA_ATTRIBUTES}",
                        list.len()
                    ),
                });
            }
            if let Some(a) = list
                .iter()
                .find(|a| a.is_empty() || a.len() > MAX_ATTRIBUTE_LEN)
            {
                return Err(Error::Input {
                    field: "--attributes",
                    reason: format!(
                        "{name}: attribute {a:?} is empty or longer than {MAX_ATTRIBUTE_LEN} bytes"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The extra attributes of a device of `model` in `batch`.
    pub fn for_device(&self, model: u32, batch: u64) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in self
            .models
            .get(&model)
            .into_iter()
            .chain(self.batches.get(&batch))
            .flatten()
        {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }
}

/// What the key service needs besides its secrets.
#[derive(Debug, Clone)]
pub struct Config {
    /// JSON-RPC endpoints (failover in order).
    pub rpc_urls: Vec<String>,
    /// The chain id (checked against the node).
    pub chain_id: u64,
    /// The registry.
    pub registry: Address,
    /// The market.
    pub market: Address,
    /// First block to read (the deployment block).
    pub start_block: u64,
    /// The manufacturer whose devices get keys.
    pub manufacturer: u32,
    /// The SQLite file.
    pub db: PathBuf,
    /// The IPFS block store (leaf lists are read from it, deliveries added to it).
    pub store: PathBuf,
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Blocks on top of a purchase before it is issued (0: at once).
    pub confirmations: u64,
    /// The follower's reorg window (at least `confirmations`).
    pub finality_depth: u64,
    /// Issuance threads.
    pub workers: usize,
    /// Most purchases taken into one round of issuance (the bounded queue).
    pub queue: usize,
    /// Pause between follower passes once caught up.
    pub poll_interval: Duration,
    /// Static attributes per model and batch.
    pub attributes: StaticAttributes,
}

/// Counters and gauges behind `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) issued: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) pending: AtomicU64,
    pub(crate) head: AtomicU64,
    pub(crate) checkpoint: AtomicU64,
    pub(crate) workers: AtomicU64,
}

/// What the HTTP handlers share with the issuing loop.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) pool: SqlitePool,
    pub(crate) metrics: Metrics,
}

/// Blocks of a UnixFS DAG: (CID, bytes).
type Blocks = Vec<(Cid, Vec<u8>)>;

/// Collects an import's blocks so they reach the store only after the key row commits.
#[derive(Debug, Default)]
struct Collect(Blocks);

impl BlockSink for Collect {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), otaledger_ipfs::Error> {
        self.0.push((*cid, data.to_vec()));
        Ok(())
    }
}

/// The UnixFS (`kubo-v1`) blocks and root CID of a delivery.
fn delivery_blocks(delivery: &[u8]) -> Result<(Cid, Blocks)> {
    let mut sink = Collect::default();
    let imported = import(
        delivery,
        &ImportOptions::profile(Profile::KuboV1),
        &mut sink,
        &mut |_| {},
    )
    .map_err(|source| Error::Ipfs {
        during: "hashing a key delivery",
        source: Box::new(source),
    })?;
    Ok((imported.root, sink.0))
}

fn put_blocks(store: &Blockstore, blocks: &[(Cid, Vec<u8>)]) -> Result<()> {
    for (cid, data) in blocks {
        store.put(cid, data).map_err(|source| Error::Ipfs {
            during: "adding a key delivery to the block store",
            source: Box::new(source.into()),
        })?;
    }
    Ok(())
}

/// One computed key, ready to be stored.
struct Computed {
    row: KeyRow,
    blocks: Blocks,
}

/// What to do with one due purchase.
enum Plan {
    Issue {
        due: Due,
        leaf: LeafEntry,
        attributes: Vec<String>,
    },
    Refuse {
        due: Due,
        reason: String,
    },
    /// Not possible yet (the leaf list is not in the block store): next pass.
    Later,
}

/// The running service.
struct Service {
    config: Config,
    master: Arc<MasterKey>,
    signer: Arc<PrivateKeySigner>,
    shared: Arc<Shared>,
    blockstore: Arc<Blockstore>,
    leaves: HashMap<u64, Arc<Vec<LeafEntry>>>,
}

/// Runs the key service until `stop` completes: binds the HTTP API (calling
/// `on_listen` with the bound address), then follows and issues.
pub async fn serve(
    config: Config,
    master: MasterKey,
    signer: PrivateKeySigner,
    stop: impl Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<()> {
    if config.rpc_urls.is_empty() {
        return Err(Error::NoRpc);
    }
    if config.finality_depth < config.confirmations {
        return Err(Error::Input {
            field: "--finality-depth",
            reason: format!(
                "{} is below --confirmations {}: a reorg the service must repair could be deeper than its window",
                config.finality_depth, config.confirmations
            ),
        });
    }
    let rpc = Arc::new(Rpc::new(
        config.rpc_urls.clone(),
        Duration::from_secs(10),
        RetryPolicy::default(),
    )?);
    let node_chain = rpc.chain_id().await?;
    if node_chain != config.chain_id {
        return Err(Error::ChainMismatch {
            given: config.chain_id,
            node: node_chain,
        });
    }
    if let Some(parent) = config.db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    let pool = store::open(&config.db).await?;
    store::claim(&pool, config.chain_id, config.registry, config.market).await?;
    let blockstore = Arc::new(
        Blockstore::open(&config.store).map_err(|source| Error::Ipfs {
            during: "opening the block store",
            source: Box::new(source.into()),
        })?,
    );
    let shared = Arc::new(Shared {
        pool: pool.clone(),
        metrics: Metrics::default(),
    });
    let workers = config.workers.max(1);
    shared
        .metrics
        .workers
        .store(workers as u64, Ordering::Relaxed);
    let mut service = Service {
        config,
        master: Arc::new(master),
        signer: Arc::new(signer),
        shared: shared.clone(),
        blockstore,
        leaves: HashMap::new(),
    };
    service.restore_blocks().await?;
    service.refresh_gauges(None).await?;

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind(service.config.listen)
        .await
        .map_err(|e| Error::Input {
            field: "--listen",
            reason: format!("binding {}: {e}", service.config.listen),
        })?;
    let bound = listener.local_addr().map_err(|e| Error::Input {
        field: "--listen",
        reason: e.to_string(),
    })?;
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, http::router(shared))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(
        listen = %bound,
        key_service = %service.signer.address(),
        manufacturer = service.config.manufacturer,
        confirmations = service.config.confirmations,
        workers,
        "key service started"
    );
    on_listen(bound);

    let mut follow = FollowConfig::new(
        vec![service.config.registry, service.config.market],
        service.config.start_block,
    );
    follow.finality_depth = service.config.finality_depth;
    follow.poll_interval = service.config.poll_interval;
    let mut follower = Follower::new(
        rpc,
        follow,
        KeyStore::new(
            pool,
            service.config.registry,
            service.config.market,
            service.config.manufacturer,
        ),
    );
    let result = service.run(&mut follower, &mut stop_rx).await;
    // Stop the HTTP server too (it may already be stopping).
    drop(stop_rx);
    if result.is_err() {
        server.abort();
    } else if let Ok(Err(e)) = server.await {
        tracing::warn!(error = %e, "http server stopped with an error");
    }
    tracing::info!("key service stopped");
    result
}

impl Service {
    async fn run(
        &mut self,
        follower: &mut Follower<KeyStore>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<()> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let sync = tokio::select! {
                s = follower.sync() => s,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            match sync {
                Ok(progress) => {
                    let m = &self.shared.metrics;
                    m.head.store(progress.head, Ordering::Relaxed);
                    if let Some(cp) = progress.checkpoint {
                        m.checkpoint.store(cp.number, Ordering::Relaxed);
                        if progress.reorg_depth > 0 {
                            tracing::warn!(depth = progress.reorg_depth, "reorg repaired");
                        }
                        while !*stop.borrow() {
                            if self.issue_round(cp.number).await? == 0 {
                                break;
                            }
                        }
                    }
                    self.refresh_gauges(progress.checkpoint.map(|c| c.number))
                        .await?;
                }
                Err(e @ otaledger_core::Error::ReorgTooDeep { .. }) => return Err(e.into()),
                Err(e) => tracing::warn!(error = %e, "follower pass failed; retrying"),
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    async fn refresh_gauges(&self, checkpoint: Option<u64>) -> Result<()> {
        let m = &self.shared.metrics;
        m.stored.store(
            store::key_count(&self.shared.pool).await?,
            Ordering::Relaxed,
        );
        if let Some(cp) = checkpoint {
            m.pending.store(
                store::pending(&self.shared.pool, cp, self.config.confirmations).await?,
                Ordering::Relaxed,
            );
        }
        Ok(())
    }

    /// Re-adds to the block store any stored delivery whose blocks are missing
    /// (a crash between the key's commit and the store write).
    async fn restore_blocks(&self) -> Result<()> {
        let keys = store::all_keys(&self.shared.pool).await?;
        let blockstore = self.blockstore.clone();
        let restored = tokio::task::spawn_blocking(move || -> Result<usize> {
            let mut restored = 0;
            for (delivery, cid) in keys {
                let (root, blocks) = delivery_blocks(&delivery)?;
                let present = blocks
                    .iter()
                    .all(|(c, _)| blockstore.has(c).unwrap_or(false));
                if root.to_string() != cid || !present {
                    put_blocks(&blockstore, &blocks)?;
                    restored += 1;
                }
            }
            Ok(restored)
        })
        .await
        .map_err(|e| Error::Input {
            field: "--store",
            reason: format!("restoring blocks: {e}"),
        })??;
        if restored > 0 {
            tracing::info!(restored, "re-added key deliveries to the block store");
        }
        Ok(())
    }

    /// The leaf list of `due`'s batch, cached once verified.
    async fn batch_leaves(&mut self, due: &Due) -> Result<Option<Arc<Vec<LeafEntry>>>, String> {
        let Some(batch) = &due.batch else {
            return Ok(None);
        };
        if let Some(l) = self.leaves.get(&batch.batch_id) {
            return Ok(Some(l.clone()));
        }
        let store = self.blockstore.clone();
        let row = batch.clone();
        let loaded = tokio::task::spawn_blocking(move || leaves::load(&store, &row))
            .await
            .map_err(|e| format!("loading leaves: {e}"))?;
        match loaded {
            Ok(l) => {
                let l = Arc::new(l);
                self.leaves.insert(batch.batch_id, l.clone());
                Ok(Some(l))
            }
            Err(LeavesError::Invalid(reason)) => Err(reason),
            Err(LeavesError::Missing(reason)) => {
                tracing::warn!(batch = batch.batch_id, %reason, "leaf list not available yet");
                Ok(None)
            }
        }
    }

    async fn plan(&mut self, due: Due) -> Plan {
        if due.revoked {
            return Plan::Refuse {
                reason: format!("release {} is revoked", due.release_id),
                due,
            };
        }
        let Some(batch) = due.batch.clone() else {
            return Plan::Refuse {
                reason: format!(
                    "device {} is not in a batch of manufacturer {}",
                    due.device_index, self.config.manufacturer
                ),
                due,
            };
        };
        let leaves = match self.batch_leaves(&due).await {
            Ok(Some(l)) => l,
            Ok(None) => return Plan::Later,
            Err(reason) => return Plan::Refuse { due, reason },
        };
        let position = (due.device_index - batch.first_index) as usize;
        let Some(leaf) = leaves.get(position).cloned() else {
            return Plan::Refuse {
                reason: format!("position {position} is outside batch {}", batch.batch_id),
                due,
            };
        };
        if leaf.model_id != due.model_id {
            return Plan::Refuse {
                reason: format!(
                    "device {} is of model {}, the release of model {}",
                    due.device_index, leaf.model_id, due.model_id
                ),
                due,
            };
        }
        let extra = self
            .config
            .attributes
            .for_device(leaf.model_id, batch.batch_id);
        let attributes = key_attributes(due.model_id, due.version, &extra);
        Plan::Issue {
            due,
            leaf,
            attributes,
        }
    }

    /// Issues up to `queue` due purchases on the worker pool; returns how many
    /// purchases it settled (issued or refused).
    async fn issue_round(&mut self, checkpoint: u64) -> Result<usize> {
        let due = store::due(
            &self.shared.pool,
            checkpoint,
            self.config.confirmations,
            self.config.queue.max(1),
        )
        .await?;
        let mut jobs = Vec::with_capacity(due.len());
        let mut settled = 0;
        for d in due {
            match self.plan(d).await {
                Plan::Issue {
                    due,
                    leaf,
                    attributes,
                } => jobs.push((due, leaf, attributes)),
                Plan::Refuse { due, reason } => {
                    tracing::warn!(
                        release = %due.release_id,
                        device = due.device_index,
                        %reason,
                        "purchase refused: no key"
                    );
                    store::refuse(&self.shared.pool, due.release_id, due.device_index, &reason)
                        .await?;
                    self.shared.metrics.refused.fetch_add(1, Ordering::Relaxed);
                    settled += 1;
                }
                Plan::Later => {}
            }
        }
        let chain_id = self.config.chain_id;
        let registry = self.config.registry;
        let computed = futures_util::stream::iter(jobs)
            .map(|(due, leaf, attributes)| {
                let master = self.master.clone();
                let signer = self.signer.clone();
                async move {
                    let (release_id, device_index) = (due.release_id, due.device_index);
                    let result = tokio::task::spawn_blocking(move || -> Result<Computed> {
                        let delivery = crate::keys::seal_key(
                            &master,
                            &signer,
                            chain_id,
                            registry,
                            due.release_id,
                            &leaf.public_key,
                            &attributes,
                        )?;
                        let (cid, blocks) = delivery_blocks(&delivery)?;
                        Ok(Computed {
                            row: KeyRow {
                                release_id: due.release_id,
                                device_index: due.device_index,
                                device: leaf.device,
                                attributes,
                                delivery,
                                cid: cid.to_string(),
                                purchase_block: due.purchase_block,
                            },
                            blocks,
                        })
                    })
                    .await;
                    (release_id, device_index, result)
                }
            })
            .buffer_unordered(self.shared.metrics.workers.load(Ordering::Relaxed) as usize);
        let mut computed = std::pin::pin!(computed);
        while let Some((release_id, device_index, result)) = computed.next().await {
            let c = match result {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::error!(release = %release_id, device = device_index, error = %e, "issuing failed; will retry");
                    self.shared.metrics.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    tracing::error!(release = %release_id, device = device_index, error = %e, "issuing worker failed; will retry");
                    self.shared.metrics.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            // The row first: once it commits the key exists and is served; the
            // blocks follow (re-added at start-up if a crash comes between).
            if store::insert_key(&self.shared.pool, &c.row).await? {
                let store = self.blockstore.clone();
                let blocks = c.blocks;
                tokio::task::spawn_blocking(move || put_blocks(&store, &blocks))
                    .await
                    .map_err(|e| Error::Input {
                        field: "--store",
                        reason: e.to_string(),
                    })??;
                self.shared.metrics.issued.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    release = %c.row.release_id,
                    device = c.row.device_index,
                    address = %c.row.device,
                    attributes = ?c.row.attributes,
                    cid = %c.row.cid,
                    "key issued"
                );
            }
            settled += 1;
        }
        Ok(settled)
    }
}
