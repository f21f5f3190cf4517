//! `otaledger indexer run | verify`: the event mirror (logic in `otaledger-indexer`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use eyre::WrapErr;
use otaledger_indexer::{
    Indexer, IndexerConfig,
    auth::{AuthConfig, CookieSecurity},
};

/// `otaledger indexer` subcommands.
#[derive(Debug, Args)]
pub(crate) struct IndexerArgs {
    #[command(subcommand)]
    command: IndexerCommand,
}

#[derive(Debug, Subcommand)]
enum IndexerCommand {
    /// Mirror every contract event into the database and follow the head until
    /// Ctrl-C, serving the read API.
    Run(Box<RunArgs>),
    /// Re-read the chain up to the database's checkpoint and diff it table by
    /// table; exits with status 1 on any difference.
    Verify(Common),
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Address the read API (`/v1`, `/healthz`, `/readyz`, `/metrics`) listens on; `off` for none.
    #[arg(long, default_value = "127.0.0.1:8088")]
    listen: String,
    /// `/readyz` is ready when at most this many blocks behind the head.
    #[arg(long, default_value_t = 5)]
    ready_lag: u64,
    /// Device positions for the dashboard's map: JSON `{"<index>": [x, y]}`
    /// (or `[lat, lon]` with `"projection": "latlon"`); a spiral by index if absent.
    #[arg(long)]
    fleet_map: Option<PathBuf>,
    /// Milliseconds between the dashboard stream's reads of the fleet.
    #[arg(long, default_value_t = 1000)]
    fleet_poll_ms: u64,
    /// Most concurrent dashboard stream clients.
    #[arg(long, default_value_t = 64)]
    fleet_max_clients: usize,
    /// Local IPFS block store to read batch leaf lists from (checked against
    /// the batch roots; see docs/indexer.md).
    #[arg(long)]
    ipfs_store: Option<PathBuf>,
    /// Trustless gateway for a verified fetch of batch leaf lists; repeatable.
    #[arg(long = "ipfs-gateway")]
    ipfs_gateways: Vec<url::Url>,
    /// Pin every release bundle CID and batch leaves CID: into `--ipfs-store`
    /// (missing blocks fetched from `--ipfs-gateway`), or on `--kubo-api`.
    #[arg(long)]
    pin: bool,
    /// Kubo RPC endpoint the pin follower pins on (instead of the local store).
    #[arg(long, requires = "pin")]
    kubo_api: Option<String>,
    /// A node's WebSocket URL: `eth_subscribe` newHeads wakes the follower
    /// (polling goes on at `--poll-ms` as the fallback).
    #[arg(long)]
    ws_url: Option<String>,
    /// Seconds before retrying a leaf list or pin found unavailable; doubles per failure.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    ipfs_retry_first: u64,
    /// Longest wait between retries of an unavailable leaf list or pin, in seconds.
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    ipfs_retry_max: u64,
    /// The URI Sign-In with Ethereum messages must name, byte for byte (the
    /// dashboard's address as browsers reach it); default `http://<listen>/`.
    #[arg(long)]
    siwe_uri: Option<url::Url>,
    /// The domain SIWE messages must name; default the authority of `--siwe-uri`.
    #[arg(long)]
    siwe_domain: Option<String>,
    /// The session cookie's `Secure` attribute: `auto` (when `--siwe-uri` is https), `always`, `never`.
    #[arg(long, value_enum, default_value_t = CookieSecure::Auto)]
    cookie_secure: CookieSecure,
    #[command(flatten)]
    alerts: AlertArgs,
}

/// `--cookie-secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CookieSecure {
    /// `Secure` when the SIWE URI is https.
    Auto,
    /// Always `Secure` (the dashboard is behind an HTTPS proxy).
    Always,
    /// Never (plain HTTP on a trusted host only).
    Never,
}

/// The sign-in settings of `indexer run` serving on `addr`.
fn auth_config(
    siwe_uri: Option<&url::Url>,
    siwe_domain: Option<&str>,
    cookie: CookieSecure,
    addr: std::net::SocketAddr,
) -> eyre::Result<AuthConfig> {
    let uri = match siwe_uri {
        Some(u) => u.clone(),
        None => {
            if addr.ip().is_unspecified() {
                tracing::warn!(
                    %addr,
                    "listening on all interfaces: pass --siwe-uri with the address browsers use, or sign-in refuses their messages"
                );
            }
            url::Url::parse(&format!("http://{addr}/")).wrap_err("the listen address as a URI")?
        }
    };
    if !matches!(uri.scheme(), "http" | "https") {
        eyre::bail!("--siwe-uri {uri} must be http or https");
    }
    let mut config = AuthConfig::for_uri(&uri).map_err(|e| eyre::eyre!("--siwe-uri: {e}"))?;
    if let Some(d) = siwe_domain {
        if d.is_empty()
            || d.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            eyre::bail!("--siwe-domain {d:?} is no host[:port]");
        }
        config.domain = d.to_owned();
    }
    config.cookie = match cookie {
        CookieSecure::Auto => config.cookie,
        CookieSecure::Always => CookieSecurity::Secure,
        CookieSecure::Never => CookieSecurity::PlainHttp,
    };
    Ok(config)
}

/// Anomaly rules and the alert webhook (defaults in docs/indexer.md).
#[derive(Debug, Args)]
struct AlertArgs {
    /// POST every new alert as JSON to this URL (bounded retries; never blocks sync).
    #[arg(long)]
    webhook: Option<String>,
    /// `rotation_then_publish`: blocks after a signer rotation in which a publish alerts.
    #[arg(long, default_value_t = 300)]
    alert_rotation_window: u64,
    /// `silent_device`: blocks after a purchase by which the device must have reported.
    #[arg(long, default_value_t = 7200)]
    alert_silent_window: u64,
    /// `install_failures`: distinct devices with one outcome and class for a release.
    #[arg(long, default_value_t = 5)]
    alert_failure_threshold: u64,
    /// `purchase_surge` / `claim_surge`: events by one address within the surge window.
    #[arg(long, default_value_t = 20)]
    alert_surge_threshold: u64,
    /// `purchase_surge` / `claim_surge`: the window in blocks.
    #[arg(long, default_value_t = 100)]
    alert_surge_window: u64,
}

impl AlertArgs {
    fn config(self) -> otaledger_indexer::alerts::AlertConfig {
        otaledger_indexer::alerts::AlertConfig {
            rotation_window_blocks: self.alert_rotation_window,
            silent_window_blocks: self.alert_silent_window,
            failure_threshold: self.alert_failure_threshold.max(1),
            surge_threshold: self.alert_surge_threshold.max(1),
            surge_window_blocks: self.alert_surge_window,
            webhook: self.webhook,
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
struct Common {
    /// Database: `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "OTALEDGER_DATABASE",
        default_value = "sqlite://otaledger-index.db"
    )]
    database: String,
    /// JSON-RPC URL of a node; repeat for failover across equivalent nodes.
    #[arg(
        long = "rpc-url",
        env = "OTALEDGER_RPC_URL",
        default_value = "http://127.0.0.1:8545",
        value_delimiter = ','
    )]
    rpc_urls: Vec<String>,
    /// Directory of `<chain-id>.json` deployment files.
    #[arg(long, default_value = "deployments")]
    deployments: PathBuf,
    /// Blocks below the head treated as final (also the deepest reorg repaired).
    #[arg(long, default_value_t = 64)]
    finality_depth: u64,
    /// `eth_getLogs` requests in flight during backfill.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Milliseconds between polls of the head.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
}

async fn open(
    c: Common,
    leaves: Option<otaledger_indexer::leaves::LeafSource>,
    pin: Option<otaledger_indexer::pins::PinTarget>,
    ws_url: Option<String>,
    alerts: otaledger_indexer::alerts::AlertConfig,
    ipfs_backoff: otaledger_indexer::backoff::Backoff,
) -> eyre::Result<Indexer> {
    let deployment = otaledger_indexer::load_deployment(&c.rpc_urls, &c.deployments)
        .await
        .wrap_err("finding the deployment")?;
    let mut config = IndexerConfig::new(c.database, c.rpc_urls, deployment);
    config.follow.finality_depth = c.finality_depth;
    config.follow.in_flight = c.in_flight.max(1);
    config.follow.poll_interval = std::time::Duration::from_millis(c.poll_ms.max(1));
    config.leaves = leaves;
    config.pin = pin;
    config.ws_url = ws_url;
    config.alerts = alerts;
    config.ipfs_backoff = ipfs_backoff;
    Indexer::open(config).await.wrap_err("opening the indexer")
}

/// Run `otaledger indexer …`.
pub(crate) async fn run(args: IndexerArgs, json: bool) -> eyre::Result<()> {
    match args.command {
        IndexerCommand::Run(r) => {
            let shutdown = crate::shutdown::Shutdown::listen()?;
            let leaves = (r.ipfs_store.is_some() || !r.ipfs_gateways.is_empty()).then(|| {
                otaledger_indexer::leaves::LeafSource {
                    store: r.ipfs_store.clone(),
                    gateways: r.ipfs_gateways.clone(),
                }
            });
            let pin = match (r.pin, &r.kubo_api, &r.ipfs_store) {
                (false, _, _) => None,
                (true, Some(api), _) => Some(otaledger_indexer::pins::PinTarget::Kubo(
                    otaledger_ipfs::KuboClient::new(api).wrap_err("--kubo-api")?,
                )),
                (true, None, Some(dir)) => Some(otaledger_indexer::pins::PinTarget::Store {
                    dir: dir.clone(),
                    gateways: r.ipfs_gateways.clone(),
                }),
                (true, None, None) => eyre::bail!("--pin needs --ipfs-store or --kubo-api"),
            };
            if r.ipfs_retry_max < r.ipfs_retry_first {
                eyre::bail!(
                    "--ipfs-retry-max {} is shorter than --ipfs-retry-first {}",
                    r.ipfs_retry_max,
                    r.ipfs_retry_first
                );
            }
            let backoff = otaledger_indexer::backoff::Backoff {
                first: std::time::Duration::from_secs(r.ipfs_retry_first),
                cap: std::time::Duration::from_secs(r.ipfs_retry_max),
            };
            let mut indexer = open(
                r.common,
                leaves,
                pin,
                r.ws_url.clone(),
                r.alerts.config(),
                backoff,
            )
            .await?;
            if r.listen != "off" {
                let listener = tokio::net::TcpListener::bind(&r.listen)
                    .await
                    .wrap_err_with(|| format!("listening on {}", r.listen))?;
                let addr = listener.local_addr()?;
                let map = r
                    .fleet_map
                    .as_deref()
                    .map(otaledger_indexer::dashboard::FleetMap::load)
                    .transpose()
                    .wrap_err("loading --fleet-map")?
                    .map(std::sync::Arc::new);
                let dashboard = otaledger_indexer::dashboard::DashboardConfig {
                    map,
                    poll: std::time::Duration::from_millis(r.fleet_poll_ms.max(1)),
                    max_clients: r.fleet_max_clients,
                };
                let auth = auth_config(
                    r.siwe_uri.as_ref(),
                    r.siwe_domain.as_deref(),
                    r.cookie_secure,
                    addr,
                )?;
                let app = otaledger_indexer::dashboard::app_with_auth(
                    indexer.api_state(r.ready_lag),
                    dashboard,
                    auth,
                );
                if json {
                    println!("{}", serde_json::json!({ "api": format!("http://{addr}") }));
                } else {
                    println!("indexer api on http://{addr}");
                }
                // Connect info: sign-in rate-limits login attempts per client network.
                tokio::spawn(async move {
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                    )
                    .await
                });
            }
            indexer
                .run(shutdown.into_future())
                .await
                .wrap_err("indexer stopped")
        }
        IndexerCommand::Verify(c) => {
            let indexer = open(c, None, None, None, Default::default(), Default::default()).await?;
            let report = indexer.verify().await.wrap_err("verifying")?;
            if json {
                let diffs: Vec<_> = report
                    .diffs
                    .iter()
                    .map(|d| serde_json::json!({"table": d.table, "missing": d.missing, "unexpected": d.unexpected, "example": d.example}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "checkpoint": report.checkpoint,
                        "checkpointOnChain": report.checkpoint_on_chain,
                        "clean": report.is_clean(),
                        "diffs": diffs,
                    })
                );
            } else {
                print!("{report}");
            }
            if !report.is_clean() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_settings_follow_the_listen_address_and_options() {
        let addr: std::net::SocketAddr = "127.0.0.1:8088".parse().unwrap();
        let c = auth_config(None, None, CookieSecure::Auto, addr).unwrap();
        assert_eq!(c.domain, "127.0.0.1:8088");
        assert_eq!(c.uri, "http://127.0.0.1:8088/");
        assert_eq!(c.cookie, CookieSecurity::PlainHttp);
        let https: url::Url = "https://fleet.example/".parse().unwrap();
        let c = auth_config(Some(&https), None, CookieSecure::Auto, addr).unwrap();
        assert_eq!(
            (c.domain.as_str(), c.cookie),
            ("fleet.example", CookieSecurity::Secure)
        );
        let c = auth_config(
            Some(&https),
            Some("fleet.example:443"),
            CookieSecure::Never,
            addr,
        )
        .unwrap();
        assert_eq!(
            (c.domain.as_str(), c.cookie),
            ("fleet.example:443", CookieSecurity::PlainHttp)
        );
        let c = auth_config(None, None, CookieSecure::Always, addr).unwrap();
        assert_eq!(c.cookie, CookieSecurity::Secure);
        let ftp: url::Url = "ftp://x.example/".parse().unwrap();
        let e = auth_config(Some(&ftp), None, CookieSecure::Auto, addr).unwrap_err();
        assert!(e.to_string().contains("--siwe-uri"), "{e}");
        let e = auth_config(None, Some("a b"), CookieSecure::Auto, addr).unwrap_err();
        assert!(e.to_string().contains("--siwe-domain"), "{e}");
    }
}
