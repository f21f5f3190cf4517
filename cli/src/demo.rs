//! `otaledger demo`: the quickstart's main job.
//!
//! Starts a local anvil (or uses `--rpc-url`), deploys both contracts at their
//! CREATE2 addresses, registers a manufacturer with a 2-of-3 signer set,
//! defines a model, provisions a batch of devices, lets an owner claim some
//! with the devices' own signatures, publishes a release signed by two of the
//! three keys, buys it for the owner's devices, lets the refund window pass
//! and withdraws the earnings — printing addresses and the gas of every step.

use std::path::PathBuf;

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use clap::Args;
use eyre::{WrapErr, bail, eyre};
use otaledger_core::{
    bindings::{
        market::UpdateMarket,
        registry::{IUpdateRegistry::Manifest, UpdateRegistry},
    },
    deploy::{self, DEFAULT_REFUND_WINDOW, DEFAULT_SALT},
    merkle::{DeviceLeaf, DeviceTree},
    signing::{Claim, SignerSet, registry_domain, release_id, sign_compact},
    spawn_anvil,
};
use serde::Serialize;

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
    /// Devices in the provisioning batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    devices: u32,
    /// Devices the owner claims and buys the release for.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=256))]
    buy: u32,
    /// Where to write `<chain-id>.json`.
    #[arg(long, default_value = "deployments")]
    deployments: PathBuf,
}

/// One measured transaction.
#[derive(Debug, Serialize)]
struct Step {
    step: String,
    gas_used: u64,
}

/// What the demo prints with `--json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    chain_id: u64,
    registry: Address,
    market: Address,
    deployment_file: PathBuf,
    manufacturer_id: u32,
    model_id: u32,
    release_id: B256,
    devices_provisioned: u32,
    devices_bought: u32,
    steps: Vec<Step>,
}

struct Reporter {
    json: bool,
    steps: Vec<Step>,
}

impl Reporter {
    fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("{}", line.as_ref());
        }
    }

    fn gas(&mut self, step: impl Into<String>, gas_used: u64, detail: impl AsRef<str>) {
        let step = step.into();
        self.say(format!(
            "  {step:<34} {gas_used:>10} gas  {}",
            detail.as_ref()
        ));
        self.steps.push(Step { step, gas_used });
    }
}

async fn mined<N>(
    pending: Result<alloy::providers::PendingTransactionBuilder<N>, alloy::contract::Error>,
    what: &str,
) -> eyre::Result<TransactionReceipt>
where
    N: alloy::network::Network<ReceiptResponse = TransactionReceipt>,
{
    let receipt = pending
        .wrap_err_with(|| format!("{what}: transaction rejected"))?
        .get_receipt()
        .await
        .wrap_err_with(|| format!("{what}: no receipt"))?;
    if !receipt.status() {
        bail!("{what}: transaction {} reverted", receipt.transaction_hash);
    }
    Ok(receipt)
}

/// Runs the demo.
pub(crate) async fn run(args: DemoArgs, json: bool) -> eyre::Result<()> {
    let mut out = Reporter {
        json,
        steps: Vec::new(),
    };
    let _anvil;
    let (endpoint, operator, owner) = match (&args.rpc_url, &args.private_key) {
        (Some(url), Some(key)) => (url.clone(), key.clone(), key.clone()),
        _ => {
            let anvil = spawn_anvil().wrap_err(
                "starting anvil (run `npm ci` in the repository, or set OTALEDGER_ANVIL)",
            )?;
            let endpoint = anvil.endpoint_url();
            let operator: PrivateKeySigner = anvil.keys()[0].clone().into();
            let owner: PrivateKeySigner = anvil.keys()[1].clone().into();
            out.say(format!(
                "started anvil at {endpoint} (chain {})",
                anvil.chain_id()
            ));
            _anvil = anvil;
            (endpoint, operator, owner)
        }
    };
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(operator.clone()))
        .connect_http(endpoint.clone());
    let owner_provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(owner.clone()))
        .connect_http(endpoint);

    // 1. Contracts at their CREATE2 addresses.
    let commit = option_env!("OTALEDGER_COMMIT").unwrap_or("unknown");
    let deployed = deploy::deploy(&provider, DEFAULT_SALT, DEFAULT_REFUND_WINDOW, commit).await?;
    let d = deployed.deployment.clone();
    let file = d.store(&args.deployments)?;
    out.say(format!(
        "UpdateRegistry {}\nUpdateMarket   {}\ndeployment     {}",
        d.registry,
        d.market,
        file.display()
    ));
    out.gas("deploy UpdateRegistry", deployed.registry_gas, "");
    out.gas("deploy UpdateMarket", deployed.market_gas, "");
    let registry = UpdateRegistry::new(d.registry, &provider);
    let market = UpdateMarket::new(d.market, &owner_provider);
    let domain = registry_domain(d.chain_id, d.registry);

    // 2. A manufacturer whose releases need two of its three signing keys.
    let keys: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    let set = SignerSet::new(keys.iter().map(|k| k.address()).collect(), 2)?;
    let receipt = mined(
        registry
            .registerManufacturer(
                "Acme Thermostats".into(),
                Address::ZERO,
                Address::ZERO,
                set.signers().to_vec(),
                2,
                String::new(),
            )
            .send()
            .await,
        "registerManufacturer",
    )
    .await?;
    let mfr = receipt
        .decoded_log::<UpdateRegistry::ManufacturerRegistered>()
        .ok_or_else(|| eyre!("no ManufacturerRegistered event"))?
        .manufacturerId;
    out.gas(
        "registerManufacturer (2-of-3)",
        receipt.gas_used,
        format!("manufacturer #{mfr}"),
    );
    let receipt = mined(
        registry.defineModel(mfr, "thermo-x".into(), 1).send().await,
        "defineModel",
    )
    .await?;
    let model_id = receipt
        .decoded_log::<UpdateRegistry::ModelDefined>()
        .ok_or_else(|| eyre!("no ModelDefined event"))?
        .modelId;
    out.gas(
        "defineModel",
        receipt.gas_used,
        format!("model #{model_id} thermo-x"),
    );

    // 3. A batch of devices: one Merkle root on chain, the leaves off chain.
    let device_keys: Vec<PrivateKeySigner> =
        (0..args.buy).map(|_| PrivateKeySigner::random()).collect();
    let leaves: Vec<DeviceLeaf> = (0..args.devices)
        .map(|i| DeviceLeaf {
            position: u64::from(i),
            device: device_keys.get(i as usize).map_or_else(
                || Address::from_word(keccak256(i.to_be_bytes())),
                |k| k.address(),
            ),
            model_id,
        })
        .collect();
    let tree = DeviceTree::new(&leaves)?;
    let receipt = mined(
        registry
            .provisionDevices(mfr, tree.root(), args.devices, String::new())
            .send()
            .await,
        "provisionDevices",
    )
    .await?;
    let batch = receipt
        .decoded_log::<UpdateRegistry::DevicesProvisioned>()
        .ok_or_else(|| eyre!("no DevicesProvisioned event"))?;
    let per_device = receipt.gas_used / u64::from(args.devices);
    out.gas(
        "provisionDevices",
        receipt.gas_used,
        format!("{} devices, {per_device} gas each", args.devices),
    );

    // 4. The owner claims devices; each device signs its consent with its own key.
    for (i, key) in device_keys.iter().enumerate() {
        let leaf = leaves[i];
        let index = batch.firstIndex + leaf.position;
        let claim = Claim {
            owner: owner.address(),
            deviceIndex: index,
        };
        let signature = sign_compact(key, claim.eip712_signing_hash(&domain))?;
        let receipt = mined(
            registry
                .claimDevice(
                    batch.batchId,
                    index,
                    leaf.device,
                    model_id,
                    owner.address(),
                    tree.proof(i)?,
                    Bytes::from(signature.to_vec()),
                )
                .send()
                .await,
            "claimDevice",
        )
        .await?;
        out.gas(
            format!("claimDevice #{index}"),
            receipt.gas_used,
            format!("owner {}", owner.address()),
        );
    }

    // 5. A release signed by two of the three keys; anyone may submit it.
    let now = provider
        .get_block_by_number(Default::default())
        .await?
        .ok_or_else(|| eyre!("no latest block"))?
        .header
        .timestamp;
    let price: u128 = 10_000_000_000_000_000; // 0.01 ETH per device
    let manifest = Manifest {
        modelId: model_id,
        version: 2,
        bundleSha256: keccak256(b"demo bundle"),
        bundleSize: 4 * 1024 * 1024,
        bundleCid: Bytes::from_static(b"demo-bundle-cid"),
        imageSha256: keccak256(b"demo image"),
        price,
        paymentToken: Address::ZERO,
        policyId: keccak256(b"\"model:thermo-x\" and \"release:2\""),
        expiry: now + 365 * 24 * 3600,
        metadataHash: B256::ZERO,
    };
    let approval = set.approve_typed(&manifest, &domain, &[&keys[0], &keys[2]])?;
    let receipt = mined(
        registry
            .publishRelease(manifest.clone(), approval)
            .send()
            .await,
        "publishRelease",
    )
    .await?;
    let id = release_id(&manifest);
    out.gas(
        "publishRelease (2 signatures)",
        receipt.gas_used,
        format!("release {id}"),
    );

    // 6. The owner buys the release for the claimed devices.
    let devices: Vec<u64> = leaves
        .iter()
        .take(device_keys.len())
        .map(|l| batch.firstIndex + l.position)
        .collect();
    let total = U256::from(price) * U256::from(devices.len());
    let receipt = mined(
        market
            .purchase(manifest.clone().into(), devices.clone())
            .value(total)
            .send()
            .await,
        "purchase",
    )
    .await?;
    out.gas(
        "purchase",
        receipt.gas_used,
        format!("{} devices, {} wei", devices.len(), total),
    );

    // 7. After the refund window the manufacturer's payee withdraws (a local chain can skip time).
    if args.rpc_url.is_none() {
        provider
            .raw_request::<_, serde_json::Value>(
                "evm_increaseTime".into(),
                (DEFAULT_REFUND_WINDOW + 1,),
            )
            .await?;
        provider
            .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
            .await?;
        let seller = UpdateMarket::new(d.market, &provider);
        let receipt = mined(
            seller.withdraw(manifest.clone().into()).send().await,
            "withdraw",
        )
        .await?;
        out.gas(
            "withdraw (after refund window)",
            receipt.gas_used,
            format!("{total} wei to {}", operator.address()),
        );
    } else {
        out.say(format!(
            "  withdraw: possible after the {}-day refund window",
            DEFAULT_REFUND_WINDOW / 86_400
        ));
    }

    if json {
        let summary = Summary {
            chain_id: d.chain_id,
            registry: d.registry,
            market: d.market,
            deployment_file: file,
            manufacturer_id: mfr,
            model_id,
            release_id: id,
            devices_provisioned: args.devices,
            devices_bought: args.buy,
            steps: out.steps,
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        out.say("demo complete: published, bought and paid out on chain");
    }
    Ok(())
}
