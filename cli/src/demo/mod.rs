//! `otaledger demo`: the whole system in one command.
//!
//! Every stage is the project's real component, started in-process (or, for
//! anvil, as a child process) and stopped when the demo ends:
//!
//! 1. a chain: the pinned anvil ([`spawn_anvil`]) or `--rpc-url` with a funded key;
//! 2. the contracts at their CREATE2 addresses ([`deploy::deploy`]);
//! 3. a manufacturer with a 2-of-3 signer set ([`registry::register`]), its
//!    CP-ABE authority ([`authority::init`], parameters' CID on chain) and a model;
//!    with `--token`, the ERC-20 (`DemoToken`, EIP-2612) the release is priced in;
//! 4. the services: the IPFS block store and trustless gateway
//!    ([`otaledger_ipfs::serve`]), the key service (`keyservice::serve`) and
//!    the indexer (SQLite or `--postgres`) with its read API and dashboard;
//! 5. a fleet provisioned into the state directory ([`device::provision`]),
//!    claimed by the owner with every device's own signature, drawn on the
//!    dashboard's map at positions the demo writes to `fleet-map.json`;
//! 6. a release from a generated image ([`release::create`]: bundle, CP-ABE
//!    encryption, IPFS import, manifest), signed offline by two of the three
//!    signers and published;
//! 7. the owner buys it for `--buyers` devices ([`market::purchase_with`], in the
//!    token with a permit), or with
//!    `--no-purchase` someone else does (the dashboard with a browser wallet);
//! 8. the fleet: every device a real device-SDK updater over its own directory
//!    ([`fleet`]), checking, updating and reporting to the indexer; the demo
//!    waits until the dashboard shows exactly the bought devices green.
//!
//! Then it keeps serving the dashboard until Ctrl-C (or ends at once with
//! `--exit-when-done`) and stops every task and child.

mod fleet;
mod relay;
mod services;
pub(crate) mod simulate;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use clap::Args;
use eyre::{WrapErr, bail, eyre};
use otaledger_cli::{
    authority, chain::Chain, chain::Mined, device, market, registry, release,
    wallet::read_password_file,
};
use otaledger_core::{
    bindings::{demo_token::DemoToken, market::UpdateMarket},
    bundle::{ReleaseTarget, limits::DEFAULT_SEGMENT_SIZE},
    deploy::{self, DEFAULT_REFUND_WINDOW, DEFAULT_SALT},
    spawn_anvil,
};
use serde::Serialize;

/// The file that marks a directory as the demo's own (so it may be wiped on the next run).
const MARKER: &str = ".otaledger-demo";
/// Price per device: 0.01 ETH.
const PRICE_WEI: u128 = 10_000_000_000_000_000;
/// The release's price in the demo's token with `--token`: 10 dUSD (six decimals).
const PRICE_DUSD: u128 = 10_000_000;
/// The demo token's whole supply, held by the owner: 10,000,000 dUSD.
const DUSD_SUPPLY: u128 = 10_000_000_000_000;
/// The released image's size.
const IMAGE_SIZE: usize = 256 * 1024;
/// The release's version.
const VERSION: u64 = 1;

/// Options of `otaledger demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Use this JSON-RPC endpoint instead of starting a local anvil (needs `--private-key`).
    #[arg(long, requires = "private_key")]
    rpc_url: Option<url::Url>,
    /// Funded key that deploys and acts as manufacturer operator and owner on `--rpc-url`
    /// (read from the environment so it does not land in shell history).
    #[arg(long, env = "OTALEDGER_PRIVATE_KEY", hide_env_values = true)]
    private_key: Option<PrivateKeySigner>,
    /// Devices in the fleet.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    devices: u32,
    /// Devices the owner buys the release for (spread over the fleet).
    #[arg(long, default_value_t = 20)]
    buyers: u32,
    /// Run the indexer on this PostgreSQL server instead of SQLite: the demo
    /// creates a fresh database on it (`otaledger_demo_<time>`) and drops it on exit.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Port of the indexer's API and dashboard on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8088)]
    port: u16,
    /// State directory (wiped at the start of every run; refused if it holds
    /// anything but an earlier demo's state).
    #[arg(long, default_value = ".otaledger-demo")]
    dir: PathBuf,
    /// End after the fleet round instead of serving the dashboard until Ctrl-C.
    #[arg(long)]
    exit_when_done: bool,
    /// Once the fleet is provisioned, the release published and the dashboard up, print a
    /// line saying so (with `--json`, a JSON line on stdout with the dashboard's URL) and
    /// wait for a line on stdin before buying and running the fleet round, so a viewer can
    /// load the page and watch the purchase arrive.
    #[arg(long)]
    pause_before_purchase: bool,
    /// Do not buy: after the pause (see `--pause-before-purchase`) the devices entitled to the
    /// release on chain count as bought, so the owner can buy on the dashboard with a browser
    /// wallet (the owner is anvil's second dev account) and the fleet round updates exactly those.
    #[arg(long, conflicts_with = "buyers")]
    no_purchase: bool,
    /// Price the release in an ERC-20 instead of ETH: the demo deploys `DemoToken` ("Demo
    /// USD", dUSD, six decimals, EIP-2612 permits; 10 dUSD a device) with its whole supply
    /// held by the owner, who pays with a permit (one transaction; in the dashboard, one
    /// signature and one transaction).
    #[arg(long)]
    token: bool,
    /// Devices provisioned but not claimed (a second batch, kept out of the fleet round): each
    /// directory under `DIR/unclaimed/` holds the device's signed consent to be claimed by the
    /// owner (`claim.json`), for the owner to claim in the dashboard.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    unclaimed: u32,
    /// Devices updating at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    parallel: u32,
    /// Blocks the devices keep below the latest for their head, and the key service waits on
    /// top of a purchase [default: 0 on the local anvil, which mines a block per
    /// transaction; 6 with `--rpc-url`].
    #[arg(long)]
    confirmations: Option<u64>,
    /// Seconds the fleet round may take before the demo gives up on the devices still waiting.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Set by `fleet simulate`: its image size, relays and measurements.
    #[arg(skip)]
    sim: Option<simulate::Sim>,
}

/// One measured transaction.
#[derive(Debug, Clone, Serialize)]
struct Step {
    step: String,
    gas_used: u64,
    tx: B256,
}

/// One device in the summary.
#[derive(Debug, Clone, Serialize)]
struct DeviceSummary {
    address: Address,
    index: u64,
    bought: bool,
    installed_version: u64,
    verdict: String,
    dashboard_status: String,
}

/// The `--json` summary (the last line on stdout).
#[derive(Debug, Serialize)]
struct Summary {
    dashboard: String,
    chain_id: u64,
    registry: Address,
    market: Address,
    manufacturer_id: u32,
    model_id: u32,
    release_id: B256,
    version: u64,
    bundle_cid: String,
    database: &'static str,
    /// The PostgreSQL database the demo created (dropped on exit).
    database_name: Option<String>,
    device_count: u32,
    bought: usize,
    updated: usize,
    not_updated: usize,
    devices: Vec<DeviceSummary>,
    steps: Vec<Step>,
    stage_ms: Vec<(String, u128)>,
}

/// Prints one line per stage and keeps the gas and times for the summary.
struct Progress {
    json: bool,
    stage: usize,
    /// Stages this run prints (one more with `--token`).
    stages: usize,
    started: Instant,
    steps: Vec<Step>,
    stage_ms: Vec<(String, u128)>,
}

/// Stages printed with a counter (without `--token`'s).
const STAGES: usize = 8;

impl Progress {
    /// A line outside the stage numbering (stderr with `--json`, so stdout
    /// ends with the summary alone).
    fn say(&self, line: impl AsRef<str>) {
        if self.json {
            eprintln!("{}", line.as_ref());
        } else {
            println!("{}", line.as_ref());
        }
    }

    fn stage(&mut self, name: &str, detail: impl AsRef<str>) {
        self.stage += 1;
        let ms = self.started.elapsed().as_millis();
        self.stage_ms.push((name.to_owned(), ms));
        self.say(format!(
            "[{}/{}] {name:<12} {} ({:.1} s)",
            self.stage,
            self.stages,
            detail.as_ref(),
            ms as f64 / 1000.0
        ));
    }

    fn gas(&mut self, step: impl Into<String>, mined: &Mined) {
        let step = step.into();
        self.say(format!("        {step:<32} {:>10} gas", mined.gas_used));
        self.steps.push(Step {
            step,
            gas_used: mined.gas_used,
            tx: mined.tx,
        });
    }
}

/// Runs the demo; Ctrl-C at any point stops it and everything it started.
pub(crate) async fn run(args: DemoArgs, json: bool) -> eyre::Result<()> {
    run_measured(args, json).await.map(|_| ())
}

/// [`run`], returning what `fleet simulate` measured (`None` if interrupted or not simulating).
async fn run_measured(args: DemoArgs, json: bool) -> eyre::Result<Option<simulate::Measured>> {
    if !args.no_purchase && args.buyers > args.devices {
        bail!(
            "--buyers {} is more than --devices {}",
            args.buyers,
            args.devices
        );
    }
    // The services log through `tracing`: silent unless RUST_LOG asks.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let dir = prepare_dir(&args.dir)?;
    // One listener for the whole run: a Ctrl-C between the round's end and the wait below
    // is kept, not lost.
    let mut shutdown = crate::shutdown::Shutdown::listen()?;
    let mut demo = Demo::default();
    let result = tokio::select! {
        r = demo.run(&args, &dir, json) => r,
        () = shutdown.recv() => {
            eprintln!("interrupted: stopping");
            demo.stop().await;
            return Ok(None);
        }
    };
    if result.is_ok() && !args.exit_when_done {
        shutdown.recv().await;
        if json {
            eprintln!("stopping");
        } else {
            println!("stopping");
        }
    }
    demo.stop().await;
    result.map(|()| demo.measured.take())
}

/// Makes `dir` an empty demo state directory: created if absent, wiped if it holds an earlier
/// run (the marker file), refused if it holds anything else.
fn prepare_dir(dir: &Path) -> eyre::Result<PathBuf> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).wrap_err_with(|| format!("reading --dir {}", dir.display()))?;
        if entries.next().is_some() {
            if !dir.join(MARKER).exists() {
                bail!(
                    "--dir {} is not empty and holds no earlier demo state ({MARKER}): refusing to wipe it",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir).wrap_err_with(|| {
                format!("removing the earlier demo state in {}", dir.display())
            })?;
        }
    }
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "state of `otaledger demo`; the next run wipes this directory\n",
    )?;
    std::path::absolute(dir).wrap_err("resolving --dir")
}

/// What the demo started, stopped by [`Demo::stop`].
#[derive(Default)]
struct Demo {
    services: Option<services::Services>,
    anvil: Option<alloy::node_bindings::AnvilInstance>,
    database: Option<services::Database>,
    /// The relays between the devices and the RPC endpoint and gateway (`fleet simulate`).
    relays: Option<(relay::Relay, relay::Relay)>,
    /// What `fleet simulate` measured.
    measured: Option<simulate::Measured>,
}

impl Demo {
    async fn stop(&mut self) {
        self.relays.take();
        if let Some(services) = self.services.take() {
            services.stop().await;
        }
        if let Some(db) = self.database.take() {
            db.drop_database().await;
        }
        // Dropping the instance kills the anvil child.
        self.anvil.take();
    }

    async fn run(&mut self, args: &DemoArgs, dir: &Path, json: bool) -> eyre::Result<()> {
        let mut out = Progress {
            json,
            stage: 0,
            stages: STAGES + usize::from(args.token),
            started: Instant::now(),
            steps: Vec::new(),
            stage_ms: Vec::new(),
        };

        // 1. The chain.
        // On its own anvil the manufacturer's signers are dev accounts 5–7, so a browser
        // wallet holding anvil's well-known keys can sign releases in the dashboard; on
        // another chain they are fresh keys (kept in `signers/`).
        let (endpoint, operator, owner, local, dev_signers) =
            match (&args.rpc_url, &args.private_key) {
                (Some(url), Some(key)) => (url.clone(), key.clone(), key.clone(), false, None),
                _ => {
                    let anvil = spawn_anvil().wrap_err(
                        "starting anvil (run `npm ci` in the repository, or set OTALEDGER_ANVIL)",
                    )?;
                    let endpoint = anvil.endpoint_url();
                    let operator: PrivateKeySigner = anvil.keys()[0].clone().into();
                    let owner: PrivateKeySigner = anvil.keys()[1].clone().into();
                    let dev_signers: Vec<PrivateKeySigner> =
                        (5..8).map(|i| anvil.keys()[i].clone().into()).collect();
                    self.anvil = Some(anvil);
                    (endpoint, operator, owner, true, Some(dev_signers))
                }
            };
        let deployments = dir.join("deployments");
        let reader = alloy::providers::ProviderBuilder::new().connect_http(endpoint.clone());
        let chain_id = reader
            .get_chain_id()
            .await
            .wrap_err_with(|| format!("asking {endpoint} for its chain id"))?;
        out.stage(
            "chain",
            format!(
                "{} {endpoint} (chain {chain_id})",
                if local { "anvil at" } else { "node" }
            ),
        );

        // 2. The contracts.
        let deployer = alloy::providers::ProviderBuilder::new()
            .wallet(alloy::network::EthereumWallet::from(operator.clone()))
            .connect_http(endpoint.clone());
        let commit = option_env!("OTALEDGER_COMMIT").unwrap_or("unknown");
        let deployed =
            deploy::deploy(&deployer, DEFAULT_SALT, DEFAULT_REFUND_WINDOW, commit).await?;
        deployed.deployment.store(&deployments)?;
        let chain = Chain {
            deployment: deployed.deployment.clone(),
            rpc_url: Some(endpoint.clone()),
        };
        out.stage(
            "contracts",
            format!(
                "UpdateRegistry {} UpdateMarket {}",
                chain.registry(),
                chain.market()
            ),
        );
        for (name, gas) in [
            ("deploy UpdateRegistry", deployed.registry_gas),
            ("deploy UpdateMarket", deployed.market_gas),
        ] {
            if gas > 0 {
                out.say(format!("        {name:<32} {gas:>10} gas"));
            }
        }
        // Providers keep a nonce cache from their first transaction: each phase takes a fresh
        // one, so the phases may share one key (`--rpc-url` with a single funded key).
        let op = chain.signer(&operator)?;

        // 3. The manufacturer: 2-of-3 signers, its authority, a model.
        let signers: Vec<PrivateKeySigner> =
            dev_signers.unwrap_or_else(|| (0..3).map(|_| PrivateKeySigner::random()).collect());
        // Kept (mode 0600) so the demo's manufacturer can go on with the CLI afterwards
        // (`release sign`, `approval sign`: the end-to-end tests in tests/ do).
        let signers_dir = dir.join("signers");
        std::fs::create_dir_all(&signers_dir)?;
        for (i, key) in signers.iter().enumerate() {
            write_secret(
                &signers_dir.join(format!("signer-{i}.key")),
                &alloy::hex::encode_prefixed(key.to_bytes()),
            )?;
        }
        let registered = registry::register(
            &chain,
            &op,
            registry::Registration {
                name: "Acme Thermostats".into(),
                operator: Address::ZERO,
                payee: Address::ZERO,
                signers: signers.iter().map(PrivateKeySigner::address).collect(),
                threshold: 2,
                params_cid: String::new(),
            },
        )
        .await?;
        let mfr = registered.manufacturer_id;
        let authority_dir = dir.join("authority");
        let store = dir.join("ipfs");
        let password_file = dir.join("master-password.txt");
        write_secret(&password_file, &random_password())?;
        let password = read_password_file(&password_file)?;
        let (init, master) = {
            let (a, s, p) = (authority_dir.clone(), store.clone(), password.clone());
            tokio::task::spawn_blocking(move || -> otaledger_cli::Result<_> {
                let init = authority::init(&a, &p, &s, authority::DEFAULT_LOG_N)?;
                let master = authority::load_master(&init.master, &p)?;
                Ok((init, master))
            })
            .await??
        };
        let params_set =
            registry::set_params_cid(&chain, &op, mfr, init.params_cid.clone()).await?;
        let model = registry::define_model(&chain, &op, mfr, "thermo-x".into(), VERSION).await?;
        out.stage(
            "manufacturer",
            format!(
                "#{mfr} (2-of-3 signers), CP-ABE authority {}, model #{} thermo-x",
                init.params_cid, model.model_id
            ),
        );
        out.gas("registerManufacturer (2-of-3)", &registered.mined);
        out.gas("setParamsCid", &params_set);
        out.gas("defineModel", &model.mined);
        let token = if args.token {
            let (deployed, receipt) = otaledger_cli::chain::mined(
                "deploying the demo token",
                DemoToken::deploy_builder(
                    &op,
                    owner.address(),
                    alloy::primitives::U256::from(DUSD_SUPPLY),
                )
                .send()
                .await,
            )
            .await?;
            let address = receipt
                .contract_address
                .ok_or_else(|| eyre!("the demo token's deployment created no contract"))?;
            out.stage(
                "token",
                format!(
                    "DemoToken (dUSD, EIP-2612) at {address}, {} dUSD held by the owner",
                    DUSD_SUPPLY / 1_000_000
                ),
            );
            out.gas("DemoToken deployment", &deployed);
            Some(address)
        } else {
            None
        };

        // 4. The services.
        let database = match &args.postgres {
            Some(url) => services::Database::create_postgres(url).await?,
            None => services::Database::sqlite(&dir.join("indexer.sqlite")),
        };
        let database_kind = database.kind();
        let database_url = database.url().to_owned();
        let database_name = database.name().map(str::to_owned);
        self.database = Some(database);
        let key_service_key = PrivateKeySigner::random();
        // Kept (mode 0600) so `keys serve` can take over as the devices' key service later.
        write_secret(
            &dir.join("keyservice.key"),
            &alloy::hex::encode_prefixed(key_service_key.to_bytes()),
        )?;
        let key_service = key_service_key.address();
        let confirmations = args.confirmations.unwrap_or(if local {
            0
        } else {
            otaledger_device_sdk::DEFAULT_CONFIRMATIONS
        });
        let services = services::Services::start(services::Options {
            chain: &chain,
            endpoint: &endpoint,
            store: &store,
            keyservice_db: &dir.join("keyservice.sqlite"),
            database_url: &database_url,
            port: args.port,
            manufacturer: mfr,
            master,
            key_service_key,
            confirmations,
        })
        .await?;
        let urls = services.urls.clone();
        self.services = Some(services);
        // `fleet simulate`: the devices reach the chain and the gateway through relays that
        // count (and with `--relay cache`, cache) what they ask.
        let (device_rpc, device_gateway) = match args.sim.map(|s| s.relay) {
            None | Some(simulate::RelayMode::None) => (endpoint.clone(), urls.gateway.clone()),
            Some(mode) => {
                let cache = mode == simulate::RelayMode::Cache;
                let rpc =
                    relay::Relay::start(endpoint.clone(), relay::Upstream::Rpc, cache).await?;
                let gateway =
                    relay::Relay::start(urls.gateway.clone(), relay::Upstream::Gateway, cache)
                        .await?;
                let pair = (rpc.url.clone(), gateway.url.clone());
                self.relays = Some((rpc, gateway));
                pair
            }
        };
        out.stage(
            "services",
            format!(
                "gateway {}  key service {}  indexer ({database_kind}) {}",
                urls.gateway, urls.key_service, urls.api
            ),
        );

        // 5. The fleet: provisioned, placed on the map, claimed by the owner.
        let fleet_dir = dir.join("fleet");
        let master = authority::load_master(&init.master, &password)?;
        // Every device of the demo talks to its services; its indexer takes reports and
        // answers for releases.
        let provision_options = |count: u32, out_dir: PathBuf| device::ProvisionOptions {
            manufacturer_id: mfr,
            model_id: model.model_id,
            count,
            out_dir,
            attributes: Vec::new(),
            key_service,
            rpc_urls: vec![device_rpc.clone()],
            gateways: vec![device_gateway.clone()],
            key_service_urls: vec![urls.key_service.clone()],
            report_urls: vec![urls.api.clone()],
            indexer_urls: vec![urls.api.clone()],
            store: store.clone(),
        };
        let provisioned = device::provision(
            &chain,
            &op,
            &master,
            &provision_options(args.devices, fleet_dir.clone()),
            &mut |_| {},
        )
        .await?;
        // Devices the owner claims later, in the dashboard, each with its consent file.
        let mut claim_files = Vec::new();
        if args.unclaimed > 0 {
            let unclaimed_dir = dir.join("unclaimed");
            device::provision(
                &chain,
                &op,
                &master,
                &provision_options(args.unclaimed, unclaimed_dir.clone()),
                &mut |_| {},
            )
            .await?;
            for i in 0..args.unclaimed {
                let d = unclaimed_dir.join(format!("device-{i:05}"));
                let request = device::claim_request(&d, owner.address(), Some(&chain))?;
                let path = d.join("claim.json");
                otaledger_core::fsutil::write_atomic(&path, request.to_json().as_bytes())?;
                claim_files.push(path.display().to_string());
            }
        }
        drop(master);
        let first = provisioned.first_index;
        let map_path = dir.join("fleet-map.json");
        write_map(&map_path, first, args.devices)?;
        let dirs: Vec<PathBuf> = (0..args.devices)
            .map(|i| fleet_dir.join(format!("device-{i:05}")))
            .collect();
        let owner_provider = chain.signer(&owner)?;
        // Up to CLAIMS_IN_FLIGHT claims at once: the provider hands out consecutive nonces
        // (its nonce cache), so the transactions need not wait for each other's receipts
        // (one after another, 1,000 claims took 71 s on anvil).
        let claim_gas: Vec<_> = {
            use futures_util::{StreamExt as _, TryStreamExt as _};
            const CLAIMS_IN_FLIGHT: usize = 64;
            let (chain, provider, who) = (&chain, &owner_provider, owner.address());
            futures_util::stream::iter(dirs.iter())
                .map(|d| async move {
                    device::claim(chain, provider, d, who)
                        .await
                        .map(|c| c.mined)
                })
                .buffered(CLAIMS_IN_FLIGHT)
                .try_collect()
                .await?
        };
        let dashboard = self
            .services
            .as_mut()
            .ok_or_else(|| eyre!("services stopped"))?
            .serve_dashboard(&map_path)
            .await?;
        out.stage(
            "fleet",
            format!(
                "{} devices #{first}..#{} provisioned (batch {}, leaves {}) and claimed by {}",
                args.devices,
                first + u64::from(args.devices) - 1,
                provisioned.batch_id,
                provisioned.leaves_cid,
                owner.address()
            ),
        );
        out.gas(
            format!("provisionDevices ({})", args.devices),
            &provisioned.mined,
        );
        if let Some(c) = claim_gas.first() {
            out.gas(format!("claimDevice (each of {})", claim_gas.len()), c);
        }
        if !claim_files.is_empty() {
            out.say(format!(
                "        {} more devices provisioned, unclaimed: the owner can claim them in the dashboard with {}",
                claim_files.len(),
                dir.join("unclaimed/device-*/claim.json").display()
            ));
        }
        out.say(format!("        dashboard: {dashboard}"));

        // 6. The release: generated image, encrypted bundle, two signatures, published.
        let release_dir = dir.join("release");
        std::fs::create_dir_all(&release_dir)?;
        let image = release_dir.join("image.bin");
        std::fs::write(
            &image,
            generated_image(args.sim.map_or(IMAGE_SIZE, |s| s.image_size)),
        )?;
        let now = op
            .get_block_by_number(Default::default())
            .await?
            .ok_or_else(|| eyre!("no latest block"))?
            .header
            .timestamp;
        let create = release::CreateOptions {
            target: ReleaseTarget {
                chain_id: chain.chain_id(),
                registry: chain.registry(),
                model_id: model.model_id,
                version: VERSION,
            },
            image,
            policy: None,
            price: if token.is_some() {
                PRICE_DUSD
            } else {
                PRICE_WEI
            },
            token: token.unwrap_or(Address::ZERO),
            expiry: now + 365 * 24 * 3600,
            metadata_hash: B256::ZERO,
            params: init.params.clone(),
            out_dir: release_dir.join("v1"),
            store: store.clone(),
            segment_size: DEFAULT_SEGMENT_SIZE,
        };
        let created =
            tokio::task::spawn_blocking(move || release::create(&create, &mut |_, _, _| {}))
                .await??;
        let sigs = [&signers[0], &signers[2]]
            .iter()
            .map(|k| {
                release::sign(&created.manifest, k, None, Some(&created.bundle))
                    .map(|s| s.signature_file)
            })
            .collect::<otaledger_cli::Result<Vec<_>>>()?;
        let published = release::publish(&chain, &operator, &created.manifest, &sigs).await?;
        // `fleet simulate` measures from here: the release is on chain.
        let published_at = Instant::now();
        let anvil_pid = self.anvil.as_ref().map(|a| a.child().id());
        let cpu_before = (
            simulate::ProcStat::of(None).cpu,
            simulate::ProcStat::of(anvil_pid).cpu,
        );
        let relay_before = self
            .relays
            .as_ref()
            .map(|(r, g)| (r.stats.counts(), g.stats.counts()));
        out.stage(
            "release",
            format!(
                "v{VERSION} {} ({} bytes, policy {}), signed by 2 of 3, published",
                created.cid, created.bundle_size, created.policy
            ),
        );
        out.gas("publishRelease (2 signatures)", &published.mined);
        if args.pause_before_purchase {
            // The viewer sees the published release's fleet (every device red), not a
            // dashboard still catching up.
            self.services
                .as_ref()
                .ok_or_else(|| eyre!("services stopped"))?
                .wait_indexed(
                    published.mined.block,
                    args.devices as usize,
                    Duration::from_secs(60),
                )
                .await?;
            pause(
                &Paused {
                    event: "paused-before-purchase",
                    dashboard: dashboard.as_str(),
                    // Only the demo's own anvil: a `--rpc-url` may carry credentials.
                    rpc: local.then_some(endpoint.as_str()),
                    owner: owner.address(),
                    operator: operator.address(),
                    signers: signers.iter().map(PrivateKeySigner::address).collect(),
                    token,
                    claim_files: &claim_files,
                },
                json,
            )
            .await?;
        }

        // 7. The owner buys it for a subset (or, with --no-purchase, bought elsewhere).
        let bought: Vec<u64> = if args.no_purchase {
            let market = UpdateMarket::new(chain.market(), &reader);
            let mut entitled = Vec::new();
            for index in first..first + u64::from(args.devices) {
                if market
                    .isEntitled(created.release_id, index)
                    .call()
                    .await
                    .wrap_err_with(|| format!("reading device {index}'s entitlement"))?
                {
                    entitled.push(index);
                }
            }
            entitled
        } else {
            buyer_positions(args.devices, args.buyers)
                .iter()
                .map(|p| first + p)
                .collect()
        };
        let owner_provider = chain.signer(&owner)?;
        // At most PURCHASE_CHUNK devices per transaction: a purchase costs about 4,600 gas a
        // device, and 10,000 devices would not fit anvil's 30M block gas limit.
        const PURCHASE_CHUNK: usize = 2_000;
        let mut purchases = Vec::new();
        if !args.no_purchase {
            for chunk in bought.chunks(PURCHASE_CHUNK) {
                // In the token, the owner signs a permit (valid for an hour of chain time):
                // one transaction, no `approve`.
                let payment = match token {
                    Some(_) => market::Payment::Permit {
                        key: &owner,
                        deadline: owner_provider
                            .get_block_by_number(Default::default())
                            .await?
                            .ok_or_else(|| eyre!("no latest block"))?
                            .header
                            .timestamp
                            + 3600,
                    },
                    None => market::Payment::Approve,
                };
                purchases.push(
                    market::purchase_with(
                        &chain,
                        &owner_provider,
                        owner.address(),
                        created.release_id,
                        chunk.to_vec(),
                        false,
                        Some(token.unwrap_or(Address::ZERO)),
                        payment,
                    )
                    .await?,
                );
            }
        }
        out.stage(
            "purchase",
            match purchases.first() {
                Some(_) => format!(
                    "{} of {} devices for {}{}",
                    bought.len(),
                    args.devices,
                    price_text(
                        purchases
                            .iter()
                            .fold(alloy::primitives::U256::ZERO, |sum, p| sum + p.amount),
                        token.is_some()
                    ),
                    if purchases.len() > 1 {
                        format!(" in {} transactions", purchases.len())
                    } else {
                        String::new()
                    }
                ),
                None if args.no_purchase => format!(
                    "{} of {} devices bought outside the demo (entitled on chain)",
                    bought.len(),
                    args.devices
                ),
                None => format!("none of {} devices", args.devices),
            },
        );
        for p in &purchases {
            out.gas(format!("purchase ({} devices)", p.devices.len()), &p.mined);
        }

        // 8. The indexer has the fleet and the purchase before the devices report.
        let services = self
            .services
            .as_ref()
            .ok_or_else(|| eyre!("services stopped"))?;
        let last_block = match purchases.last() {
            Some(p) => p.mined.block,
            None => reader.get_block_number().await?,
        };
        services
            .wait_indexed(last_block, args.devices as usize, Duration::from_secs(60))
            .await?;

        // 9. The fleet round.
        let devices = fleet::Fleet::load(&dirs, &bought)?;
        let round_began = Instant::now();
        let results = devices
            .round(fleet::RoundOptions {
                confirmations,
                parallel: args.parallel as usize,
                timeout: Duration::from_secs(args.timeout),
                json,
            })
            .await?;
        if args.sim.is_some() {
            let round = round_began.elapsed();
            let (process, anvil) = (
                simulate::ProcStat::of(None),
                simulate::ProcStat::of(anvil_pid),
            );
            let relays = self.relays.as_ref().zip(relay_before.as_ref());
            self.measured = Some(simulate::Measured {
                results: results.clone(),
                bundle_size: created.bundle_size,
                database: database_kind,
                publish_to_round: round_began - published_at,
                round,
                cpu_self: process.cpu - cpu_before.0,
                cpu_anvil: anvil.cpu - cpu_before.1,
                peak_rss_self: process.peak_rss,
                peak_rss_anvil: anvil.peak_rss,
                rpc: relays.map(|((r, _), (r0, _))| r.stats.counts().since(r0)),
                gateway: relays.map(|((_, g), (_, g0))| g.stats.counts().since(g0)),
                stage_ms: out.stage_ms.clone(),
            });
        }
        let statuses = services
            .wait_dashboard(&bought, first, args.devices, Duration::from_secs(30))
            .await?;
        let updated = results
            .iter()
            .filter(|r| r.installed_version == VERSION)
            .count();
        let devices_summary: Vec<DeviceSummary> = results
            .iter()
            .map(|r| DeviceSummary {
                address: r.address,
                index: r.index,
                bought: r.bought,
                installed_version: r.installed_version,
                verdict: r.verdict.clone(),
                dashboard_status: statuses.get(&r.index).cloned().unwrap_or_default(),
            })
            .collect();
        let green = devices_summary
            .iter()
            .filter(|d| d.dashboard_status == "green")
            .count();
        out.stage(
            "updates",
            format!(
                "{updated} of {} bought devices installed v{VERSION}, {} not updated; dashboard: {green} green",
                bought.len(),
                results.len() - updated
            ),
        );
        let summary = Summary {
            dashboard: dashboard.to_string(),
            chain_id: chain.chain_id(),
            registry: chain.registry(),
            market: chain.market(),
            manufacturer_id: mfr,
            model_id: model.model_id,
            release_id: created.release_id,
            version: VERSION,
            bundle_cid: created.cid.clone(),
            database: database_kind,
            database_name,
            device_count: args.devices,
            bought: bought.len(),
            updated,
            not_updated: results.len() - updated,
            devices: devices_summary,
            steps: out.steps.clone(),
            stage_ms: out.stage_ms.clone(),
        };
        let wrong: Vec<String> = summary
            .devices
            .iter()
            .filter(|d| d.bought != (d.installed_version == VERSION))
            .map(|d| format!("#{} (bought {}, {})", d.index, d.bought, d.verdict))
            .collect();
        if !args.exit_when_done {
            out.say(format!(
                "serving the dashboard at {dashboard} (state in {}); Ctrl-C to stop",
                dir.display()
            ));
        }
        if args.sim.is_some() {
            // `fleet simulate` reports (and judges) what it measured.
            return Ok(());
        }
        if json {
            println!("{}", serde_json::to_string(&summary)?);
        }
        if !wrong.is_empty() {
            bail!(
                "devices did not end as bought (installed iff bought): {}",
                wrong.join(", ")
            );
        }
        Ok(())
    }
}

/// An amount in wei, or in the demo token's smallest unit (six decimals) as dUSD.
fn price_text(amount: alloy::primitives::U256, token: bool) -> String {
    if !token {
        return format!("{amount} wei");
    }
    let unit = alloy::primitives::U256::from(1_000_000u64);
    let cents = amount % unit;
    if cents.is_zero() {
        format!("{} dUSD", amount / unit)
    } else {
        format!("{}.{:06} dUSD", amount / unit, cents.to::<u64>())
    }
}

/// The line `--pause-before-purchase` prints: on stdout, so a driving process reads it
/// before the summary.
#[derive(Debug, Serialize)]
struct Paused<'a> {
    event: &'static str,
    dashboard: &'a str,
    /// The demo's anvil (absent with `--rpc-url`), for a wallet pointed at the demo chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    rpc: Option<&'a str>,
    /// The fleet's owner.
    owner: Address,
    /// The manufacturer's operator.
    operator: Address,
    /// The manufacturer's signers (2 of them approve a release).
    signers: Vec<Address>,
    /// The demo token the release is priced in (`--token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<Address>,
    /// Claim files of the unclaimed devices (`--unclaimed`).
    claim_files: &'a [String],
}

/// Says the demo is paused before the purchase and waits for a line (or end of input) on stdin.
async fn pause(paused: &Paused<'_>, json: bool) -> eyre::Result<()> {
    use std::io::Write;
    if json {
        println!("{}", serde_json::to_string(paused)?);
    } else {
        println!(
            "paused before the purchase: load {}, then press Enter to go on",
            paused.dashboard
        );
    }
    std::io::stdout().flush()?;
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| ())
    })
    .await?
    .wrap_err("reading stdin to end the pause")
}

/// Positions of the bought devices in the batch: `buyers` spread evenly over `devices`.
fn buyer_positions(devices: u32, buyers: u32) -> Vec<u64> {
    (0..u64::from(buyers))
        .map(|j| j * u64::from(devices) / u64::from(buyers))
        .collect()
}

/// Writes the dashboard's map: the fleet over a city region (latitude, longitude, around
/// Munich) on a jittered grid, placed deterministically by index.
fn write_map(path: &Path, first: u64, count: u32) -> eyre::Result<()> {
    const NORTH: f64 = 48.25;
    const WEST: f64 = 11.35;
    const HEIGHT: f64 = 0.20;
    const WIDTH: f64 = 0.45;
    let n = f64::from(count.max(1));
    let cols = (n * WIDTH / HEIGHT).sqrt().ceil().max(1.0);
    let rows = (n / cols).ceil().max(1.0);
    let jitter = |i: u64, salt: u64| {
        let mut x = (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
        x ^= x >> 31;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 29;
        (x % 1000) as f64 / 1000.0 - 0.5
    };
    let mut map = serde_json::Map::new();
    map.insert("projection".into(), "latlon".into());
    for i in 0..u64::from(count) {
        let c = (i as f64) % cols;
        let r = ((i as f64) / cols).floor();
        let x = (c + 0.5 + 0.6 * jitter(i, 1)) / cols;
        let y = (r + 0.5 + 0.6 * jitter(i, 2)) / rows;
        map.insert(
            (first + i).to_string(),
            serde_json::json!([NORTH - y * HEIGHT, WEST + x * WIDTH]),
        );
    }
    std::fs::write(path, serde_json::to_vec_pretty(&map)?)
        .wrap_err_with(|| format!("writing {}", path.display()))
}

/// A firmware image with content that does not compress to nothing (xorshift bytes).
fn generated_image(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A random password for the demo's master key file.
fn random_password() -> String {
    use rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    alloy::hex::encode(bytes)
}

/// Writes a secret file with owner-only permissions.
fn write_secret(path: &Path, text: &str) -> eyre::Result<()> {
    std::fs::write(path, format!("{text}\n"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buyers_are_distinct_and_in_range() {
        for (n, b) in [(50, 20), (8, 3), (1, 1), (5, 5), (10, 0)] {
            let p = buyer_positions(n, b);
            assert_eq!(p.len(), b as usize);
            let mut d = p.clone();
            d.dedup();
            assert_eq!(d, p, "{n} {b}");
            assert!(p.iter().all(|x| *x < u64::from(n)));
        }
    }

    #[test]
    fn the_state_dir_is_wiped_only_when_it_is_the_demos() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        prepare_dir(&dir).unwrap();
        std::fs::write(dir.join("leftover"), "x").unwrap();
        prepare_dir(&dir).unwrap();
        assert!(!dir.join("leftover").exists());
        let foreign = t.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
        let err = prepare_dir(&foreign).unwrap_err().to_string();
        assert!(err.contains("refusing to wipe"), "{err}");
        assert!(foreign.join("notes.txt").exists());
    }

    #[test]
    fn the_map_parses_as_the_dashboard_reads_it() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("map.json");
        write_map(&path, 7, 50).unwrap();
        let map = otaledger_indexer::dashboard::FleetMap::load(&path).unwrap();
        assert_eq!(
            map.projection,
            otaledger_indexer::dashboard::Projection::Latlon
        );
    }
}
