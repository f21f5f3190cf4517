//! `otaledger keys issue | serve`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::primitives::B256;
use clap::{Args, Subcommand};
use otaledger_cli::{
    authority::{MASTER_FILE, load_master},
    device::load_leaves,
    keys,
    keyservice::{self, StaticAttributes},
};

use super::{ChainArgs, MasterPasswordArgs, WalletArgs, print};

/// `otaledger keys …`.
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Issue one entitled device its key for a release (what the key service does per purchase),
    /// signed with the wallet as the key-service key.
    Issue(IssueArgs),
    /// Run the key service: follow purchases on chain and issue each paid
    /// device its key after the confirmations, served over HTTP.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The manufacturer whose devices get keys.
    #[arg(long)]
    manufacturer: u32,
    /// The authority directory (master.json).
    #[arg(long, default_value = "authority", value_name = "DIR")]
    authority: PathBuf,
    #[command(flatten)]
    master_password: MasterPasswordArgs,
    /// The service's SQLite file (created if absent).
    #[arg(long, default_value = "keyservice.sqlite", value_name = "FILE")]
    db: PathBuf,
    /// The IPFS block store: leaf lists are read from it, deliveries added to it.
    #[arg(long, default_value = "ipfs", value_name = "DIR")]
    store: PathBuf,
    /// Static attributes per model and batch (JSON, see docs/cli.md); the
    /// default is `model:<M>` only.
    #[arg(long, value_name = "FILE")]
    attributes: Option<PathBuf>,
    /// Address of the HTTP API (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8547")]
    listen: SocketAddr,
    /// Blocks on top of a purchase before its key is issued (0: at once).
    #[arg(long, default_value_t = 2)]
    confirmations: u64,
    /// Deepest reorg the follower repairs (at least --confirmations).
    #[arg(long, default_value_t = 64)]
    finality_depth: u64,
    /// Issuance worker threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Most purchases taken into one round of issuance.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Milliseconds between polls of the chain head once caught up.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// The release id.
    #[arg(long)]
    release: B256,
    /// The device's global index.
    #[arg(long)]
    device: u64,
    /// The batch's leaves.json (holds the device's public key).
    #[arg(long, value_name = "FILE")]
    leaves: PathBuf,
    /// The device's position in that batch.
    #[arg(long)]
    position: u64,
    /// A static attribute of the device besides `model:<M>`; repeat for more.
    #[arg(long = "attribute")]
    attributes: Vec<String>,
    /// The authority directory (master.json).
    #[arg(long, default_value = "authority", value_name = "DIR")]
    authority: PathBuf,
    #[command(flatten)]
    master_password: MasterPasswordArgs,
    /// Where to write the key delivery.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Runs `otaledger keys …`.
pub(crate) async fn run(args: KeysArgs, json: bool) -> eyre::Result<()> {
    let a = match args.command {
        KeysCommand::Issue(a) => a,
        KeysCommand::Serve(a) => return serve(a, json).await,
    };
    let chain = a.chain.resolve().await?;
    let key_service = a.wallet.signer()?;
    let leaves = load_leaves(&a.leaves)?;
    let leaf = leaves
        .iter()
        .find(|l| l.position == a.position)
        .ok_or_else(|| eyre::eyre!("--position {} is not in {}", a.position, a.leaves.display()))?;
    let password = a.master_password.read(false)?;
    let master_path = a.authority.join(MASTER_FILE);
    let master =
        tokio::task::spawn_blocking(move || load_master(&master_path, &password)).await??;
    let issued = keys::issue(
        &chain,
        &chain.reader()?,
        &master,
        &key_service,
        a.release,
        a.device,
        &leaf.public_key,
        &a.attributes,
    )
    .await?;
    keys::store(&issued, &a.out)?;
    print(json, &issued, |i| {
        format!(
            "key for release {} issued to device {} ({}) with {:?}: {}",
            i.release_id,
            i.device_index,
            i.device,
            i.attributes,
            a.out.display()
        )
    })
}

/// Structured logs on stderr (`RUST_LOG` filters; default `info`), JSON-free
/// `key=value` fields. Secrets are never passed to a log call.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn serve(a: ServeArgs, json: bool) -> eyre::Result<()> {
    init_logs();
    let shutdown = crate::shutdown::Shutdown::listen()?;
    let chain = a.chain.resolve().await?;
    let rpc_url = chain.rpc()?.to_string();
    let key_service = a.wallet.signer()?;
    let attributes = match &a.attributes {
        Some(path) => StaticAttributes::load(path)?,
        None => StaticAttributes::default(),
    };
    let password = a.master_password.read(false)?;
    let master_path = a.authority.join(MASTER_FILE);
    let master =
        tokio::task::spawn_blocking(move || load_master(&master_path, &password)).await??;
    let workers = a.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if workers == 0 {
        eyre::bail!("--workers must be at least 1");
    }
    let config = keyservice::Config {
        rpc_urls: vec![rpc_url],
        chain_id: chain.chain_id(),
        registry: chain.registry(),
        market: chain.market(),
        start_block: chain.deployment.deployment_block,
        manufacturer: a.manufacturer,
        db: a.db,
        store: a.store,
        listen: a.listen,
        confirmations: a.confirmations,
        finality_depth: a.finality_depth,
        workers,
        queue: a.queue,
        poll_interval: Duration::from_millis(a.poll_ms.max(10)),
        attributes,
    };
    let key_service_address = key_service.address();
    keyservice::serve(
        config,
        master,
        key_service,
        async move {
            shutdown.into_future().await;
            tracing::info!("stopping: finishing the keys in flight");
        },
        move |bound| {
            let value = serde_json::json!({
                "listen": bound.to_string(),
                "keyService": key_service_address,
            });
            let _ = print(json, &value, |_| {
                format!("key service {key_service_address} listening on http://{bound}")
            });
        },
    )
    .await?;
    Ok(())
}
