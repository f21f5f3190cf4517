//! `otaledger gateway serve`: the trustless gateway over the local block store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use eyre::WrapErr;
use otaledger_ipfs::{Blockstore, GatewayConfig};

/// `otaledger gateway` subcommands.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    #[command(subcommand)]
    command: GatewayCommand,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Serve /ipfs/{cid} as raw blocks and CAR streams (IPFS Trustless Gateway) until Ctrl-C.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Block store directory [default: $OTALEDGER_HOME/ipfs or ~/.otaledger/ipfs].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Requests served at once; more wait for a slot.
    #[arg(long, default_value_t = otaledger_ipfs::gateway::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    max_concurrent: usize,
    /// Slots one client (peer IP, IPv6 by /64) may hold at once.
    #[arg(long, default_value_t = otaledger_ipfs::gateway::DEFAULT_MAX_REQUESTS_PER_CLIENT)]
    max_per_client: usize,
    /// Requests waiting for a slot, all clients together; more get 429.
    #[arg(long, default_value_t = otaledger_ipfs::gateway::DEFAULT_MAX_QUEUED_REQUESTS)]
    max_queued: usize,
    /// Requests of one client waiting for a slot; more get 429.
    #[arg(long, default_value_t = otaledger_ipfs::gateway::DEFAULT_MAX_QUEUED_PER_CLIENT)]
    max_queued_per_client: usize,
    /// Milliseconds a request may wait for a slot (429 after).
    #[arg(long, default_value_t = otaledger_ipfs::gateway::DEFAULT_QUEUE_TIMEOUT.as_millis() as u64)]
    queue_timeout_ms: u64,
    /// Seconds allowed to start a response (504 after).
    #[arg(long, default_value_t = otaledger_ipfs::gateway::DEFAULT_REQUEST_TIMEOUT.as_secs())]
    request_timeout: u64,
    /// Seconds a CAR stream waits for a client that reads nothing before it is cut.
    #[arg(long, default_value_t = otaledger_ipfs::gateway::DEFAULT_STREAM_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
}

/// Run `otaledger gateway …`.
pub(crate) async fn run(args: GatewayArgs, json: bool) -> eyre::Result<()> {
    let GatewayCommand::Serve(s) = args.command;
    let shutdown = crate::shutdown::Shutdown::listen()?;
    let dir = match s.store {
        Some(dir) => dir,
        None => crate::ipfs::default_store_dir()?,
    };
    let store = Blockstore::open(&dir)
        .wrap_err_with(|| format!("opening block store {}", dir.display()))?;
    let config = GatewayConfig {
        max_concurrent_requests: s.max_concurrent.max(1),
        max_requests_per_client: s.max_per_client.max(1),
        max_queued_requests: s.max_queued,
        max_queued_per_client: s.max_queued_per_client,
        queue_timeout: Duration::from_millis(s.queue_timeout_ms),
        request_timeout: Duration::from_secs(s.request_timeout.max(1)),
        stream_idle_timeout: Duration::from_secs(s.idle_timeout.max(1)),
    };
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .wrap_err_with(|| format!("listening on {}", s.listen))?;
    let addr = listener.local_addr()?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "listen": format!("http://{addr}"), "store": dir.display().to_string() })
        );
    } else {
        println!(
            "gateway listening on http://{addr} (store {})",
            dir.display()
        );
    }
    otaledger_ipfs::serve(listener, store, config, shutdown.into_future())
        .await
        .wrap_err("gateway server failed")
}
