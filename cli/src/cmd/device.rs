//! `otaledger device provision | open | run | claim | claim-request`.

use std::path::PathBuf;

use alloy::primitives::Address;
use clap::{Args, Subcommand};
use otaledger_cli::{
    authority::{MASTER_FILE, load_master},
    device::{self, ProvisionOptions},
};

use super::{ChainArgs, MasterPasswordArgs, WalletArgs, print, progress_bar};

/// `otaledger device …`.
#[derive(Debug, Args)]
pub(crate) struct DeviceArgs {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum DeviceCommand {
    /// Provision a batch: identity keys, CP-ABE keys, the Merkle batch on chain, one directory
    /// per device with its device.toml.
    Provision(ProvisionArgs),
    /// Decrypt a bundle as the device in DIR does: its key delivery, its checks, all-or-nothing output.
    Open {
        /// The device's directory.
        #[arg(long, value_name = "DIR")]
        device_dir: PathBuf,
        /// The key delivery (`keys issue` output).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The bundle.
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
        /// Where to write the image (only if every segment verified).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Run the device in DIR: check for an update without trusting any server, and install it
    /// (exit codes in docs/cli.md: 0 updated, 10 up to date, 11 not entitled, 20–27 refused).
    Run {
        /// The device's directory (from `device provision`).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// One attempt, then exit with its code.
        #[arg(long)]
        once: bool,
        /// Seconds between attempts when not `--once`.
        #[arg(long, default_value_t = 3600, value_name = "SECS")]
        interval: u64,
        /// Blocks below the latest at which the trusted head is taken.
        #[arg(long, default_value_t = otaledger_device_sdk::DEFAULT_CONFIRMATIONS)]
        confirmations: u64,
        /// Minimum download rate in bytes per second, at least 1 (slower gateways are abandoned).
        #[arg(long, default_value_t = otaledger_ipfs::fetch::DEFAULT_MIN_RATE, value_parser = clap::value_parser!(u64).range(1..))]
        min_rate: u64,
        /// Seconds one key-service request may take (then the next key service is asked).
        #[arg(long, value_name = "SECS", default_value_t = otaledger_device_sdk::client::DEFAULT_KEY_SERVICE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
        key_timeout: u64,
        /// An indexer asked for the release's manifest and approval before the RPC endpoints'
        /// logs (repeatable, asked in order; untrusted: a refused answer falls back to the next).
        #[arg(long = "indexer", value_name = "URL")]
        indexers: Vec<String>,
        /// Seconds one indexer request may take (then the next source is asked).
        #[arg(long, value_name = "SECS", default_value_t = otaledger_device_sdk::client::DEFAULT_INDEXER_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
        indexer_timeout: u64,
    },
    /// Claim a provisioned device for an owner, with the device's consent signature.
    Claim {
        /// The device's directory (from `device provision`).
        #[arg(long, value_name = "DIR")]
        device_dir: PathBuf,
        /// The first owner [default: the sender].
        #[arg(long)]
        owner: Option<Address>,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Write the device's signed consent to be claimed by one owner (`claim.json`,
    /// `otaledger-claim/1`), for the owner to submit from the dashboard or any wallet.
    ClaimRequest {
        /// The device's directory (from `device provision`).
        #[arg(long, value_name = "DIR")]
        device_dir: PathBuf,
        /// The owner the device consents to (only this address can ever receive it this way).
        #[arg(long)]
        owner: Address,
        /// Write the file here (atomically) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Owners' commands: transfer, show, list (in `device_owner.rs`).
    #[command(flatten)]
    Owner(super::device_owner::OwnerCommand),
}

#[derive(Debug, Args)]
struct ProvisionArgs {
    /// Manufacturer id (the sender must be its operator).
    #[arg(long)]
    manufacturer: u32,
    /// Model id.
    #[arg(long)]
    model: u32,
    /// Number of devices.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(device::MAX_BATCH)))]
    count: u32,
    /// Output directory (one `device-NNNNN` directory per device).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A static attribute besides `model:<M>`; repeat for more.
    #[arg(long = "attribute")]
    attributes: Vec<String>,
    /// The key service's address (devices accept key deliveries it signs).
    #[arg(long)]
    key_service: Address,
    /// RPC endpoint written into the devices; repeat for more [default: --rpc-url].
    #[arg(long = "device-rpc", value_name = "URL")]
    device_rpc: Vec<url::Url>,
    /// Trustless gateway written into the devices; repeat for more.
    #[arg(long = "gateway", value_name = "URL")]
    gateways: Vec<url::Url>,
    /// Key-service endpoint written into the devices (`GET /v1/keys/…`); repeat for more.
    #[arg(long = "key-service-url", value_name = "URL")]
    key_service_urls: Vec<url::Url>,
    /// Indexer receiving the devices' install reports (`POST /v1/reports`); repeat for more.
    #[arg(long = "report-url", value_name = "URL")]
    report_urls: Vec<url::Url>,
    /// Indexer written into the devices, asked for a release's manifest and approval before
    /// the RPC endpoints' logs (`GET /v1/models/…/releases/…`, checked like any source);
    /// repeat for more.
    #[arg(long = "indexer", value_name = "URL")]
    indexer_urls: Vec<url::Url>,
    /// The authority directory (master.json).
    #[arg(long, default_value = "authority", value_name = "DIR")]
    authority: PathBuf,
    #[command(flatten)]
    master_password: MasterPasswordArgs,
    /// Block store directory [default: $OTALEDGER_HOME/ipfs or ~/.otaledger/ipfs].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Runs `otaledger device …`.
pub(crate) async fn run(args: DeviceArgs, json: bool) -> eyre::Result<()> {
    match args.command {
        DeviceCommand::Provision(a) => provision(a, json).await,
        DeviceCommand::Owner(c) => super::device_owner::run(c, json).await,
        DeviceCommand::Open {
            device_dir,
            key,
            bundle,
            out,
        } => {
            let opened = otaledger_cli::keys::device_open(&device_dir, &key, &bundle, &out)?;
            print(json, &opened, |o| {
                format!(
                    "model {} version {}: {} bytes, sha256 {} -> {}",
                    o.model_id,
                    o.version,
                    o.image_len,
                    o.image_sha256,
                    out.display()
                )
            })
        }
        DeviceCommand::Run {
            dir,
            once,
            interval,
            confirmations,
            min_rate,
            key_timeout,
            indexers,
            indexer_timeout,
        } => {
            let opts = otaledger_cli::device_run::RunOptions {
                confirmations,
                min_rate,
                key_timeout: std::time::Duration::from_secs(key_timeout),
                indexers,
                indexer_timeout: std::time::Duration::from_secs(indexer_timeout),
            };
            run_device(&dir, once, interval, opts, json).await
        }
        DeviceCommand::ClaimRequest {
            device_dir,
            owner,
            out,
        } => {
            let request = device::claim_request(&device_dir, owner, None)?;
            let text = request.to_json();
            match out {
                Some(path) => {
                    otaledger_core::fsutil::write_atomic(&path, text.as_bytes())?;
                    if !json {
                        println!(
                            "device {} consents to be claimed by {}: {}",
                            request.device_index,
                            request.owner,
                            path.display()
                        );
                    } else {
                        print!("{text}");
                    }
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        DeviceCommand::Claim {
            device_dir,
            owner,
            chain,
            wallet,
        } => {
            let chain = chain.resolve().await?;
            let sender = wallet.signer()?;
            let provider = chain.signer(&sender)?;
            let c = device::claim(
                &chain,
                &provider,
                &device_dir,
                owner.unwrap_or(sender.address()),
            )
            .await?;
            print(json, &c, |c| {
                format!(
                    "device {} ({}) claimed by {}\ntx {} gas {}",
                    c.device_index, c.device, c.owner, c.mined.tx, c.mined.gas_used
                )
            })
        }
    }
}

async fn provision(a: ProvisionArgs, json: bool) -> eyre::Result<()> {
    let chain = a.chain.resolve().await?;
    let provider = chain.signer(&a.wallet.signer()?)?;
    let password = a.master_password.read(false)?;
    let master_path = a.authority.join(MASTER_FILE);
    let master =
        tokio::task::spawn_blocking(move || load_master(&master_path, &password)).await??;
    let store = match a.store {
        Some(s) => s,
        None => crate::ipfs::default_store_dir()?,
    };
    let rpc_urls = if a.device_rpc.is_empty() {
        chain.rpc_url.iter().cloned().collect()
    } else {
        a.device_rpc
    };
    let opts = ProvisionOptions {
        manufacturer_id: a.manufacturer,
        model_id: a.model,
        count: a.count,
        out_dir: a.out,
        attributes: a.attributes,
        key_service: a.key_service,
        rpc_urls,
        gateways: a.gateways,
        key_service_urls: a.key_service_urls,
        report_urls: a.report_urls,
        indexer_urls: a.indexer_urls,
        store,
    };
    let bar = progress_bar(json);
    if let Some(b) = &bar {
        b.set_length(u64::from(a.count));
        b.set_message("keys");
    }
    let bar2 = bar.clone();
    let made = device::provision(&chain, &provider, &master, &opts, &mut |n| {
        if let Some(b) = &bar2 {
            b.set_position(n);
        }
    })
    .await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    print(json, &made, |p| {
        format!(
            "batch {} provisioned: devices {}..{} in {}\n  root {}  leaves {}\ntx {} gas {}",
            p.batch_id,
            p.first_index,
            p.first_index + u64::from(p.count),
            p.out_dir.display(),
            p.root,
            p.leaves_cid,
            p.mined.tx,
            p.mined.gas_used
        )
    })
}

async fn run_device(
    dir: &std::path::Path,
    once: bool,
    interval: u64,
    opts: otaledger_cli::device_run::RunOptions,
    json: bool,
) -> eyre::Result<()> {
    use otaledger_cli::device_run;
    let updater = device_run::updater(dir, &opts)?;
    let mut updater = updater.with_observer(move |e| {
        if json {
            println!(
                "{}",
                serde_json::json!({"event": "step", "step": e.step, "message": e.message})
            );
        } else {
            println!("{:<9} {}", e.step, e.message);
        }
    });
    let show = move |result: &Result<
        otaledger_device_sdk::client::Outcome,
        otaledger_device_sdk::Error,
    >| {
        let code = device_run::exit_code(result);
        match (result, json) {
            (Ok(o), true) => println!(
                "{}",
                serde_json::json!({"event": "result", "exitCode": code, "result": o})
            ),
            (Ok(o), false) => println!("result    {o:?} (exit {code})"),
            (Err(e), true) => println!(
                "{}",
                serde_json::json!({"event": "result", "exitCode": code, "error": e.to_string(), "class": e.class(), "step": e.step()})
            ),
            (Err(e), false) => println!("result    refused [{}]: {e} (exit {code})", e.class()),
        }
        code
    };
    if once {
        let result = updater.run_once().await;
        let code = show(&result);
        std::process::exit(code);
    }
    device_run::run_forever(
        &mut updater,
        std::time::Duration::from_secs(interval.max(1)),
        |r| {
            show(r);
        },
    )
    .await
}
