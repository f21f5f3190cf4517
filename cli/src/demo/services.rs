//! The demo's services, each the project's real component in-process: the trustless IPFS
//! gateway over the block store, the key service, and the indexer with its read API and
//! dashboard. All stop on one signal ([`Services::stop`]).

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::signers::local::PrivateKeySigner;
use eyre::{WrapErr, bail, eyre};
use otaledger_cli::{chain::Chain, keyservice};
use otaledger_cpabe::MasterKey;
use otaledger_indexer::{
    Indexer, IndexerConfig,
    dashboard::{DashboardConfig, FleetMap, read_fleet},
    leaves::LeafSource,
    pins::PinTarget,
};
use sqlx::{AnyPool, Row as _};
use tokio::{sync::watch, task::JoinHandle};
use url::Url;

/// The indexer's database: a SQLite file, or a fresh PostgreSQL database dropped on exit.
pub(super) struct Database {
    url: String,
    /// The server's URL as given and the created database's name (PostgreSQL only).
    created: Option<(String, String)>,
}

impl Database {
    /// A SQLite file.
    pub(super) fn sqlite(path: &Path) -> Self {
        Self {
            url: format!("sqlite://{}", path.display()),
            created: None,
        }
    }

    /// Creates `otaledger_demo_<unix ms>_<pid>` on the server at `url` (whose database is
    /// only used to connect).
    pub(super) async fn create_postgres(url: &str) -> eyre::Result<Self> {
        let mut parsed = Url::parse(url).wrap_err("--postgres is not a URL")?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            bail!(
                "--postgres must be a postgres:// URL, not {}://",
                parsed.scheme()
            );
        }
        let name = format!(
            "otaledger_demo_{}_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            std::process::id()
        );
        let admin = sqlx::PgPool::connect(url)
            .await
            .wrap_err_with(|| format!("connecting to --postgres {}", shown(url)))?;
        // `name` is ours: letters, digits and underscores only.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .wrap_err_with(|| format!("creating database {name}"))?;
        admin.close().await;
        parsed.set_path(&format!("/{name}"));
        Ok(Self {
            url: parsed.to_string(),
            created: Some((url.to_owned(), name)),
        })
    }

    /// The URL the indexer opens.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The created PostgreSQL database's name.
    pub(super) fn name(&self) -> Option<&str> {
        self.created.as_ref().map(|(_, n)| n.as_str())
    }

    /// `sqlite` or `postgres`.
    pub(super) fn kind(&self) -> &'static str {
        if self.created.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Drops the database created by [`Database::create_postgres`] (best effort: reported, not
    /// fatal).
    pub(super) async fn drop_database(self) {
        let Some((url, name)) = self.created else {
            return;
        };
        let dropped = async {
            let admin = sqlx::PgPool::connect(&url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin)
            .await?;
            admin.close().await;
            Ok::<_, sqlx::Error>(())
        };
        if let Err(e) = dropped.await {
            eprintln!("could not drop the demo database {name}: {e}");
        }
    }
}

/// A database URL without its credentials, for messages.
fn shown(url: &str) -> String {
    url.split('@').next_back().unwrap_or_default().to_owned()
}

/// What [`Services::start`] needs.
pub(super) struct Options<'a> {
    pub(super) chain: &'a Chain,
    pub(super) endpoint: &'a Url,
    pub(super) store: &'a Path,
    pub(super) keyservice_db: &'a Path,
    pub(super) database_url: &'a str,
    pub(super) port: u16,
    pub(super) manufacturer: u32,
    pub(super) master: MasterKey,
    pub(super) key_service_key: PrivateKeySigner,
    pub(super) confirmations: u64,
}

/// Where the services answer.
#[derive(Debug, Clone)]
pub(super) struct Urls {
    /// The trustless gateway.
    pub(super) gateway: Url,
    /// The key service.
    pub(super) key_service: Url,
    /// The indexer's API (and, once served, the dashboard).
    pub(super) api: Url,
}

/// The running services.
pub(super) struct Services {
    pub(super) urls: Urls,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<eyre::Result<()>>)>,
    api: otaledger_indexer::api::ApiState,
    listener: Option<tokio::net::TcpListener>,
    pool: AnyPool,
}

/// Completes when the stop signal is sent (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl Services {
    /// Starts the gateway, the key service and the indexer's follower; binds the API's port
    /// (served by [`Services::serve_dashboard`] once the map is known).
    pub(super) async fn start(o: Options<'_>) -> eyre::Result<Self> {
        let (stop, rx) = watch::channel(false);
        let mut tasks: Vec<(&'static str, JoinHandle<eyre::Result<()>>)> = Vec::new();

        // The trustless gateway over the block store.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let gateway = http_url(listener.local_addr()?)?;
        let blocks = otaledger_ipfs::Blockstore::open(o.store)
            .wrap_err_with(|| format!("opening block store {}", o.store.display()))?;
        let stop_gateway = stopped(rx.clone());
        tasks.push((
            "gateway",
            tokio::spawn(async move {
                otaledger_ipfs::serve(
                    listener,
                    blocks,
                    otaledger_ipfs::GatewayConfig::default(),
                    stop_gateway,
                )
                .await
                .wrap_err("gateway")
            }),
        ));

        // The key service.
        let config = keyservice::Config {
            rpc_urls: vec![o.endpoint.to_string()],
            chain_id: o.chain.chain_id(),
            registry: o.chain.registry(),
            market: o.chain.market(),
            start_block: o.chain.deployment.deployment_block,
            manufacturer: o.manufacturer,
            db: o.keyservice_db.to_path_buf(),
            store: o.store.to_path_buf(),
            listen: "127.0.0.1:0".parse()?,
            confirmations: o.confirmations,
            finality_depth: 64.max(o.confirmations),
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            queue: 256,
            poll_interval: Duration::from_millis(200),
            attributes: keyservice::StaticAttributes::default(),
        };
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let stop_keys = stopped(rx.clone());
        let keys_task = tokio::spawn(async move {
            keyservice::serve(config, o.master, o.key_service_key, stop_keys, move |a| {
                let _ = bound_tx.send(a);
            })
            .await
            .wrap_err("key service")
        });
        let key_service = match bound_rx.await {
            Ok(addr) => http_url(addr)?,
            Err(_) => {
                return Err(match keys_task.await {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => eyre!("the key service stopped before listening"),
                    Err(e) => eyre!("the key service panicked: {e}"),
                });
            }
        };
        tasks.push(("key service", keys_task));

        // The indexer: its follower now, its API once the fleet's map is known.
        let api_listener = tokio::net::TcpListener::bind(("127.0.0.1", o.port))
            .await
            .wrap_err_with(|| {
                format!(
                    "listening on 127.0.0.1:{} for the dashboard (--port 0 picks a free port)",
                    o.port
                )
            })?;
        let api = http_url(api_listener.local_addr()?)?;
        let mut config = IndexerConfig::new(
            o.database_url.to_owned(),
            vec![o.endpoint.to_string()],
            o.chain.deployment.clone(),
        );
        config.follow.poll_interval = Duration::from_millis(200);
        config.leaves = Some(LeafSource {
            store: Some(o.store.to_path_buf()),
            gateways: Vec::new(),
        });
        config.pin = Some(PinTarget::Store {
            dir: o.store.to_path_buf(),
            gateways: Vec::new(),
        });
        let mut indexer = Indexer::open(config)
            .await
            .wrap_err("opening the indexer")?;
        let api_state = indexer.api_state(5);
        let pool = indexer.pool().clone();
        let stop_indexer = stopped(rx.clone());
        tasks.push((
            "indexer",
            tokio::spawn(async move { indexer.run(stop_indexer).await.wrap_err("indexer") }),
        ));

        Ok(Self {
            urls: Urls {
                gateway,
                key_service,
                api,
            },
            stop,
            tasks,
            api: api_state,
            listener: Some(api_listener),
            pool,
        })
    }

    /// Serves the indexer's API and the dashboard with the fleet's map; returns the dashboard's URL.
    pub(super) async fn serve_dashboard(&mut self, map: &Path) -> eyre::Result<Url> {
        let listener = self
            .listener
            .take()
            .ok_or_else(|| eyre!("the dashboard is served already"))?;
        let map = FleetMap::load(map).wrap_err("loading the fleet map")?;
        // Sign-in names the URL the demo prints (plain HTTP on loopback: no `Secure` cookie).
        let auth = otaledger_indexer::auth::AuthConfig::for_uri(&self.urls.api)
            .map_err(|e| eyre!("the dashboard's sign-in settings: {e}"))?;
        let app = otaledger_indexer::dashboard::app_with_auth(
            self.api.clone(),
            DashboardConfig {
                map: Some(Arc::new(map)),
                poll: Duration::from_millis(500),
                ..DashboardConfig::default()
            },
            auth,
        );
        let stop = stopped(self.stop.subscribe());
        self.tasks.push((
            "dashboard",
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(stop)
                .await
                .wrap_err("dashboard server")
            }),
        ));
        Ok(self.urls.api.clone())
    }

    /// Waits until the indexer's checkpoint reaches `block` and it mirrors `devices` claimed
    /// devices.
    pub(super) async fn wait_indexed(
        &self,
        block: u64,
        devices: usize,
        timeout: Duration,
    ) -> eyre::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_tasks()?;
            let checkpoint: i64 = sqlx::query("SELECT block_number FROM sync_state WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(-1);
            if checkpoint >= block as i64 {
                let fleet = read_fleet(&self.pool, None).await?;
                if fleet.len() >= devices {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the indexer did not reach block {block} with {devices} devices in {} s (checkpoint {checkpoint})",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (at most `timeout`) until the dashboard shows the `bought` devices green and the
    /// rest red; returns every device's status (index → colour) as last read.
    pub(super) async fn wait_dashboard(
        &self,
        bought: &[u64],
        first: u64,
        count: u32,
        timeout: Duration,
    ) -> eyre::Result<HashMap<u64, String>> {
        let deadline = Instant::now() + timeout;
        let bought: std::collections::HashSet<u64> = bought.iter().copied().collect();
        loop {
            let statuses: HashMap<u64, String> = read_fleet(&self.pool, None)
                .await?
                .into_iter()
                .map(|d| (d.index as u64, d.status.to_owned()))
                .collect();
            let settled = (first..first + u64::from(count)).all(|i| {
                let want = if bought.contains(&i) { "green" } else { "red" };
                statuses.get(&i).map(String::as_str) == Some(want)
            });
            if settled || Instant::now() > deadline {
                return Ok(statuses);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A service that stopped early is an error.
    fn check_tasks(&self) -> eyre::Result<()> {
        if let Some((name, _)) = self.tasks.iter().find(|(_, t)| t.is_finished()) {
            bail!("the {name} stopped unexpectedly");
        }
        Ok(())
    }

    /// Signals every service to stop and waits for them, 10 s at most in all (they stop side
    /// by side), then aborts those still running. The dashboard gets 1 s: its live streams
    /// (SSE) stay open as long as a browser shows the page, so they are cut.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let started = tokio::time::Instant::now();
        for (name, task) in self.tasks {
            let abort = task.abort_handle();
            let grace = if name == "dashboard" {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(10)
            };
            match tokio::time::timeout_at(started + grace, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => eprintln!("{name}: {e:#}"),
                Ok(Err(e)) if e.is_cancelled() => {}
                Ok(Err(e)) => eprintln!("{name} panicked: {e}"),
                Err(_) if name == "dashboard" => abort.abort(),
                Err(_) => {
                    eprintln!("{name} did not stop within 10 s: aborted");
                    abort.abort();
                }
            }
        }
        // Closing waits for connections in use; an aborted task's are returned on drop, but
        // a stuck one must not hold the exit.
        if tokio::time::timeout(Duration::from_secs(5), self.pool.close())
            .await
            .is_err()
        {
            eprintln!("the indexer's database pool did not close within 5 s");
        }
    }
}

fn http_url(addr: SocketAddr) -> eyre::Result<Url> {
    Url::parse(&format!("http://{addr}/")).wrap_err_with(|| format!("no URL for {addr}"))
}
