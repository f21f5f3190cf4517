//! The OTA Ledger indexer: an exactly-once, reorg-safe mirror of every event
//! of `UpdateRegistry` and `UpdateMarket` in PostgreSQL or SQLite.
//!
//! - [`rows`]: the schema's tables and the decoding of each event (through the
//!   `sol!` bindings) into their rows;
//! - [`db`]: every SQL statement, one schema for both databases, migrations at
//!   start-up, and the follower's [`DbStore`];
//! - [`verify`]: re-reading the chain and diffing it against the database;
//! - [`api`]: the auditors' read API (axum, JSON under `/v1`);
//! - [`pins`]: the pin follower (bundle and leaves CIDs pinned, availability recorded);
//! - [`subscribe`]: `eth_subscribe` newHeads waking the follower;
//! - [`leaves`]: batch leaf lists fetched through IPFS and checked against the
//!   batch roots, beside the follower.
//! - [`reports`]: signed install reports (`POST /v1/reports`);
//! - [`alerts`]: the anomaly rules, their alerts and the webhook;
//! - [`metrics`]: Prometheus metrics (`/metrics`);
//! - [`backoff`]: retry backoff of unavailable leaf lists and pins;
//! - [`memory`]: the process's malloc arenas, one per core;
//! - [`auth`], [`siwe`], [`roles`], [`private`]: Sign-In with Ethereum,
//!   roles read from chain state at request time, and the endpoints behind
//!   sign-in (device labels, manufacturer statistics; `docs/auth.md`).
//!
//! Fetching, reorg detection and checkpointing are `otaledger_core::follow`'s
//! (the same follower serves the key service); this crate is its store.
//! The design and its guarantees, each with its test, are in `docs/indexer.md`.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod backoff;
pub mod dashboard;
pub mod db;
pub mod devices;
mod error;
pub mod leaves;
pub mod limit;
pub mod memory;
pub mod metrics;
pub mod openapi;
pub mod pins;
pub mod private;
pub mod reports;
pub mod roles;
pub mod rows;
pub mod siwe;
pub mod subscribe;
pub mod verify;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use otaledger_core::{
    Deployment,
    follow::{FollowConfig, Follower, Progress, RetryPolicy, rpc::Rpc},
};
use sqlx::AnyPool;

pub use db::DbStore;
pub use error::{Error, Result};

/// What an indexer needs: where the chain and the database are.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// `sqlite://PATH` or `postgres://…`.
    pub database_url: String,
    /// JSON-RPC URLs of equivalent nodes, tried in order with failover.
    pub rpc_urls: Vec<String>,
    /// The contracts (from `deployments/<chain-id>.json`).
    pub deployment: Deployment,
    /// Timeout of one RPC request.
    pub request_timeout: Duration,
    /// Retry schedule of one RPC request.
    pub retry: RetryPolicy,
    /// The follower's tuning (finality depth, ranges, in-flight requests, poll interval).
    pub follow: FollowConfig,
    /// Where batch leaf lists are fetched from (`None`: not fetched).
    pub leaves: Option<leaves::LeafSource>,
    /// Where bundle and leaves CIDs are pinned (`None`: no pin follower).
    pub pin: Option<pins::PinTarget>,
    /// A node's WebSocket URL for `eth_subscribe` newHeads (`None`: polls only).
    pub ws_url: Option<String>,
    /// Anomaly rules' thresholds and windows, and the alert webhook.
    pub alerts: alerts::AlertConfig,
    /// Retry schedule of leaf lists and pins found unavailable.
    pub ipfs_backoff: backoff::Backoff,
}

impl IndexerConfig {
    /// Defaults for `deployment` on `rpc_urls` into `database_url`: 10 s per
    /// request, [`RetryPolicy::default`], [`FollowConfig::new`] from the
    /// deployment block over both contracts.
    pub fn new(database_url: String, rpc_urls: Vec<String>, deployment: Deployment) -> Self {
        let mut follow = FollowConfig::new(
            vec![deployment.registry, deployment.market],
            deployment.deployment_block,
        );
        // The approvals are read from the publishing transactions' calldata,
        // fetched in the follower's pipelined fetch stage.
        follow.calldata_of = vec![(
            deployment.registry,
            <otaledger_core::bindings::registry::UpdateRegistry::ReleasePublished as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
        )];
        Self {
            database_url,
            rpc_urls,
            deployment,
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            follow,
            leaves: None,
            pin: None,
            ws_url: None,
            alerts: alerts::AlertConfig::default(),
            ipfs_backoff: backoff::Backoff::default(),
        }
    }
}

/// The deployment the nodes at `rpc_urls` serve: asks them their chain id
/// and reads `<deployments_dir>/<chain-id>.json`.
pub async fn load_deployment(
    rpc_urls: &[String],
    deployments_dir: &std::path::Path,
) -> Result<Deployment> {
    let rpc = Rpc::new(
        rpc_urls.to_vec(),
        Duration::from_secs(10),
        RetryPolicy::default(),
    )?;
    let chain_id = rpc.chain_id().await?;
    Ok(Deployment::load(deployments_dir, chain_id)?)
}

/// A running indexer: the follower over its database store.
#[derive(Debug)]
pub struct Indexer {
    follower: Follower<DbStore>,
    pool: AnyPool,
    reader: AnyPool,
    rpc: Arc<Rpc>,
    config: IndexerConfig,
    head: Arc<AtomicU64>,
    monitor: Arc<alerts::Monitor>,
}

impl Indexer {
    /// Connects to the database (running the migrations), checks that it
    /// mirrors this chain and deployment (or claims an empty one), and checks
    /// that the RPC nodes serve the deployment's chain.
    pub async fn open(config: IndexerConfig) -> Result<Self> {
        let rpc = Arc::new(Rpc::new(
            config.rpc_urls.clone(),
            config.request_timeout,
            config.retry,
        )?);
        let chain_id = rpc.chain_id().await?;
        let d = &config.deployment;
        if chain_id != d.chain_id {
            return Err(otaledger_core::Error::ChainIdMismatch {
                path: "rpc".into(),
                expected: d.chain_id,
                found: chain_id,
            }
            .into());
        }
        let pool = db::connect(&config.database_url).await?;
        db::claim(&pool, d.chain_id, d.registry, d.market).await?;
        let reader = db::connect_reader(&config.database_url).await?;
        let monitor = Arc::new(alerts::Monitor::new(
            config.alerts.clone(),
            d.chain_id,
            d.registry,
            rpc.clone(),
        ));
        let store = DbStore::new(pool.clone(), rpc.clone(), d.registry, d.market)
            .with_metrics(monitor.metrics.clone());
        let follower = Follower::new(rpc.clone(), config.follow.clone(), store);
        Ok(Self {
            follower,
            pool,
            reader,
            rpc,
            config,
            head: Arc::new(AtomicU64::new(0)),
            monitor,
        })
    }

    /// The database pool (for the API and tests).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The newest head seen (0 before the first pass), shared with the API's `/readyz`.
    pub fn head(&self) -> Arc<AtomicU64> {
        self.head.clone()
    }

    /// The API's state over this indexer's database, ready when at most
    /// `max_lag` blocks behind the head.
    pub fn api_state(&self, max_lag: u64) -> api::ApiState {
        api::ApiState {
            pool: self.pool.clone(),
            reader: self.reader.clone(),
            head: self.head.clone(),
            max_lag,
            monitor: self.monitor.clone(),
        }
    }

    /// Metrics, alert rules and webhook of this indexer.
    pub fn monitor(&self) -> &Arc<alerts::Monitor> {
        &self.monitor
    }

    /// One pass: repair a reorg if any, then write everything up to the head.
    pub async fn sync(&mut self) -> Result<Progress> {
        let started = std::time::Instant::now();
        let progress = self.follower.sync().await?;
        let followed = started.elapsed();
        self.head.store(progress.head, Ordering::Relaxed);
        self.monitor.metrics.add_events(progress.logs as u64);
        self.monitor.metrics.reorg(progress.reorg_depth);
        alerts::evaluate_chain(&self.pool, &self.monitor).await?;
        tracing::debug!(
            logs = progress.logs,
            follow_ms = followed.as_millis() as u64,
            rules_ms = (started.elapsed() - followed).as_millis() as u64,
            "sync pass timings"
        );
        Ok(progress)
    }

    /// Follows the chain (one pass per poll interval) until `stop` completes.
    /// Leaf lists (if a source is configured) are checked by a task of their
    /// own, so fetching them never blocks the sync.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let mut stop = std::pin::pin!(stop);
        let _leaves = self.config.leaves.clone().map(|source| {
            AbortOnDrop(tokio::spawn(leaves::follow(
                self.pool.clone(),
                source,
                self.config.follow.poll_interval,
                self.config.ipfs_backoff,
            )))
        });
        let _pins = self.config.pin.clone().map(|target| {
            AbortOnDrop(tokio::spawn(pins::follow(
                self.pool.clone(),
                target,
                self.config.follow.poll_interval,
                self.config.ipfs_backoff,
            )))
        });
        // New heads from a WebSocket subscription wake a pass early; the
        // poll interval still applies (the fallback when the socket is down).
        let wake = Arc::new(tokio::sync::Notify::new());
        let _heads = self
            .config
            .ws_url
            .clone()
            .map(|url| AbortOnDrop(tokio::spawn(subscribe::follow(url, wake.clone()))));
        loop {
            let progress = self.sync().await?;
            tracing::debug!(?progress, "sync pass done");
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(self.config.follow.poll_interval) => {}
                _ = wake.notified() => {}
            }
        }
    }

    /// Re-reads the chain up to the checkpoint and diffs it with the database.
    pub async fn verify(&self) -> Result<verify::Report> {
        verify::verify(&self.pool, &self.rpc, &self.config).await
    }
}

/// Stops a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
