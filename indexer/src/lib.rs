//! The OTA Ledger indexer: an exactly-once, reorg-safe mirror of every event
//! of `UpdateRegistry` and `UpdateMarket` in PostgreSQL or SQLite.
//!
//! - [`rows`]: the schema's tables and the decoding of each event (through the
//!   `sol!` bindings) into their rows;
//! - [`db`]: every SQL statement, one schema for both databases, migrations at
//!   start-up, and the follower's [`DbStore`];
//! - [`verify`]: re-reading the chain and diffing it against the database;
//! - [`api`]: the auditors' read API (axum, JSON under `/v1`);
//! - [`reports`]: signed install reports (`POST /v1/reports`);
//! - [`alerts`]: the anomaly rules, their alerts and the webhook;
//! - [`metrics`]: Prometheus metrics (`/metrics`).
//!
//! Fetching, reorg detection and checkpointing are `otaledger_core::follow`'s
//! (the same follower serves the key service); this crate is its store.
//! The design and its guarantees, each with its test, are in `docs/indexer.md`.

pub mod alerts;
pub mod api;
pub mod db;
mod error;
pub mod metrics;
pub mod reports;
pub mod rows;
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
    /// Anomaly rules' thresholds and windows, and the alert webhook.
    pub alerts: alerts::AlertConfig,
}

impl IndexerConfig {
    /// Defaults for `deployment` on `rpc_urls` into `database_url`: 10 s per
    /// request, [`RetryPolicy::default`], [`FollowConfig::new`] from the
    /// deployment block over both contracts.
    pub fn new(database_url: String, rpc_urls: Vec<String>, deployment: Deployment) -> Self {
        let follow = FollowConfig::new(
            vec![deployment.registry, deployment.market],
            deployment.deployment_block,
        );
        Self {
            database_url,
            rpc_urls,
            deployment,
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            follow,
            alerts: alerts::AlertConfig::default(),
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
        let progress = self.follower.sync().await?;
        self.head.store(progress.head, Ordering::Relaxed);
        self.monitor.metrics.add_events(progress.logs as u64);
        self.monitor.metrics.reorg(progress.reorg_depth);
        alerts::evaluate_chain(&self.pool, &self.monitor).await?;
        Ok(progress)
    }

    /// Follows the chain (one pass per poll interval) until `stop` completes.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let mut stop = std::pin::pin!(stop);
        loop {
            let progress = self.sync().await?;
            tracing::debug!(?progress, "sync pass done");
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(self.config.follow.poll_interval) => {}
            }
        }
    }

    /// Re-reads the chain up to the checkpoint and diffs it with the database.
    pub async fn verify(&self) -> Result<verify::Report> {
        verify::verify(&self.pool, &self.rpc, &self.config).await
    }
}
