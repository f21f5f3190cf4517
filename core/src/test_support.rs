//! Test helpers shared by the integration tests of several crates (feature
//! `test-support`): a local anvil with both contracts deployed, and a
//! [`Scenario`] that drives them through every event of `UpdateRegistry` and
//! `UpdateMarket` as real use would.

use alloy::{
    network::EthereumWallet,
    node_bindings::AnvilInstance,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};

use crate::{
    Deployment, Error, Result,
    bindings::{
        market::UpdateMarket,
        registry::{IUpdateRegistry::Manifest, UpdateRegistry},
    },
    deploy::{self, DEFAULT_REFUND_WINDOW, DEFAULT_SALT},
    merkle::{DeviceLeaf, DeviceTree},
    signing::{
        Claim, RaiseFloor, RevokeRelease, RotateSigners, SignerSet, UpdateManufacturer,
        registry_domain, release_id, sign_compact,
    },
};

/// Price of every scenario release: 0.01 ETH.
pub const PRICE: u128 = 10_000_000_000_000_000;

fn rpc(during: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Error {
    move |e| Error::Rpc {
        during,
        reason: e.to_string(),
    }
}

/// Sends a call, waits for its receipt and fails on a revert. (It polls the
/// receipt itself: alloy's block heartbeat does not notice blocks mined again
/// at the same heights after an `evm_revert`.)
macro_rules! send {
    ($during:literal, $call:expr) => {{
        let pending = $call.send().await.map_err(|e| rpc($during)(&e))?;
        let receipt = wait_receipt(pending.provider(), *pending.tx_hash(), $during).await?;
        if !receipt.status() {
            return Err(Error::Rpc {
                during: $during,
                reason: "reverted".into(),
            });
        }
        receipt
    }};
}

async fn wait_receipt<P: Provider>(
    provider: &P,
    tx: B256,
    during: &'static str,
) -> Result<alloy::rpc::types::TransactionReceipt> {
    // On anvil's automine the first poll finds it; with interval mining (or a busy node) the
    // polls back off from 10 ms to 100 ms, so hundreds of senders do not flood the node.
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        if let Some(receipt) = provider
            .get_transaction_receipt(tx)
            .await
            .map_err(|e| rpc(during)(&e))?
        {
            return Ok(receipt);
        }
        if started.elapsed() > PATIENCE {
            return Err(Error::Rpc {
                during,
                reason: format!("transaction {tx} not mined after {} s", PATIENCE.as_secs()),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
    }
}

/// A provider sending from anvil's dev account `i`.
fn wallet(anvil: &AnvilInstance, i: usize) -> DynProvider {
    wallet_of(anvil, anvil.keys()[i].clone().into())
}

/// A provider sending from `key`. The nonce is asked for before every transaction (not
/// cached), so sending goes on after an `evm_revert`.
fn wallet_of(anvil: &AnvilInstance, key: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(key))
        .connect_http(anvil.endpoint_url())
        .erased()
}

/// A running anvil with both contracts deployed.
#[derive(Debug)]
pub struct Chain {
    /// The node (stops when dropped).
    pub anvil: AnvilInstance,
    /// Where the contracts are.
    pub deployment: Deployment,
    /// The deployer's provider (anvil key 0): operator and payee of the scenario's manufacturer.
    pub provider: DynProvider,
    /// The device owner's provider (anvil key 1).
    pub owner: DynProvider,
}

impl Chain {
    /// Spawns anvil (extra `args`, e.g. `--block-time`) and deploys both contracts.
    pub async fn start(args: &[&str]) -> Result<Self> {
        let anvil = crate::toolchain::spawn_anvil_with(args)?;
        Self::on(anvil).await
    }

    /// Deploys both contracts on a running `anvil`.
    pub async fn on(anvil: AnvilInstance) -> Result<Self> {
        let provider = wallet(&anvil, 0);
        let owner = wallet(&anvil, 1);
        let deployed =
            deploy::deploy(&provider, DEFAULT_SALT, DEFAULT_REFUND_WINDOW, "test").await?;
        Ok(Self {
            anvil,
            deployment: deployed.deployment,
            provider,
            owner,
        })
    }

    /// A provider sending from `key`, which anvil funds with 1,000 ETH (`anvil_setBalance`).
    pub async fn funded_wallet(&self, key: PrivateKeySigner) -> Result<DynProvider> {
        self.raw(
            "anvil_setBalance",
            serde_json::json!([key.address(), "0x3635c9adc5dea00000"]),
        )
        .await?;
        Ok(wallet_of(&self.anvil, key))
    }

    /// The node's HTTP URL.
    pub fn url(&self) -> String {
        self.anvil.endpoint()
    }

    /// A raw JSON-RPC call to the node (`evm_snapshot`, `evm_revert`, `evm_mine`, …).
    pub async fn raw(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value> {
        self.provider
            .raw_request::<_, serde_json::Value>(method.into(), params)
            .await
            .map_err(|e| rpc(method)(&e))
    }

    /// The newest block number.
    pub async fn head(&self) -> Result<u64> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| rpc("eth_blockNumber")(&e))
    }
}

/// A manufacturer with a 2-of-3 signer set, driven through every event:
/// each [`round`](Self::round) emits all fifteen kinds of registry and market
/// events at least once.
#[derive(Debug)]
pub struct Scenario {
    chain_id: u64,
    registry: Address,
    market: Address,
    /// The manufacturer's id.
    pub manufacturer: u32,
    keys: Vec<PrivateKeySigner>,
    set: SignerSet,
    rounds: u64,
    /// Every claimed device: its global index, identity key and model.
    pub devices: Vec<(u64, PrivateKeySigner, u32)>,
    /// Every published release: its id and manifest, in publishing order.
    pub releases: Vec<(B256, Manifest)>,
    extra_versions: u64,
    /// The manufacturer's operator and payee (anvil's key 0 unless [`Scenario::register_fresh`]).
    operator: DynProvider,
    operator_address: Address,
    /// The devices' owner (anvil's key 1 unless [`Scenario::register_fresh`]).
    owner: DynProvider,
    owner_address: Address,
    /// The release bought in the round under way, withdrawn once past the refund window.
    to_withdraw: Option<Manifest>,
}

impl Scenario {
    /// Registers a manufacturer on `chain`, operated by anvil's key 0, its devices owned by
    /// key 1.
    pub async fn register(chain: &Chain) -> Result<Self> {
        Self::register_with(
            chain,
            (chain.provider.clone(), chain.anvil.addresses()[0]),
            (chain.owner.clone(), chain.anvil.addresses()[1]),
        )
        .await
    }

    /// Registers a manufacturer operated by a fresh funded account, its devices owned by
    /// another: scenarios on their own accounts can play their rounds side by side
    /// ([`Scenario::round_until_refunds`], then one `evm_increaseTime` for all, then
    /// [`Scenario::round_after_refund_window`]).
    pub async fn register_fresh(chain: &Chain) -> Result<Self> {
        let (operator, owner) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let (operator_address, owner_address) = (operator.address(), owner.address());
        Self::register_with(
            chain,
            (chain.funded_wallet(operator).await?, operator_address),
            (chain.funded_wallet(owner).await?, owner_address),
        )
        .await
    }

    async fn register_with(
        chain: &Chain,
        (operator, operator_address): (DynProvider, Address),
        (owner, owner_address): (DynProvider, Address),
    ) -> Result<Self> {
        let d = &chain.deployment;
        let keys: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
        let set = SignerSet::new(keys.iter().map(|k| k.address()).collect(), 2)?;
        let registry = UpdateRegistry::new(d.registry, &operator);
        let receipt = send!(
            "registerManufacturer",
            registry.registerManufacturer(
                "Acme".into(),
                Address::ZERO,
                Address::ZERO,
                set.signers().to_vec(),
                2,
                "bafyparams".into(),
            )
        );
        let manufacturer = receipt
            .decoded_log::<UpdateRegistry::ManufacturerRegistered>()
            .ok_or_else(|| rpc("registerManufacturer")(&"no ManufacturerRegistered event"))?
            .manufacturerId;
        Ok(Self {
            chain_id: d.chain_id,
            registry: d.registry,
            market: d.market,
            manufacturer,
            keys,
            set,
            rounds: 0,
            devices: Vec::new(),
            releases: Vec::new(),
            extra_versions: 0,
            operator,
            operator_address,
            owner,
            owner_address,
            to_withdraw: None,
        })
    }

    fn manifest(&self, model_id: u32, version: u64, expiry: u64) -> Manifest {
        Manifest {
            modelId: model_id,
            version,
            bundleSha256: keccak256(format!("bundle {model_id}/{version}")),
            bundleSize: 1_000 + version,
            bundleCid: Bytes::from(format!("cid-{model_id}-{version}").into_bytes()),
            imageSha256: keccak256(format!("image {model_id}/{version}")),
            price: PRICE,
            paymentToken: Address::ZERO,
            policyId: keccak256(format!("model:{model_id} and release:{model_id}/{version}")),
            expiry,
            metadataHash: B256::ZERO,
        }
    }

    async fn publish(&mut self, m: &Manifest) -> Result<()> {
        self.publish_by(m, &[0, 2]).await
    }

    async fn publish_by(&mut self, m: &Manifest, signers: &[usize]) -> Result<()> {
        let registry = UpdateRegistry::new(self.registry, &self.operator);
        let domain = registry_domain(self.chain_id, self.registry);
        let keys: Vec<&PrivateKeySigner> = signers.iter().map(|i| &self.keys[*i]).collect();
        let approval = self.set.approve_typed(m, &domain, &keys)?;
        send!(
            "publishRelease",
            registry.publishRelease(m.clone(), approval)
        );
        self.releases.push((release_id(m), m.clone()));
        Ok(())
    }

    /// Publishes one more release (versions 101, 102, …) of the newest
    /// model of the last [`round`](Self::round), approved by the current
    /// signer keys at `signers` (positions in the sorted set); returns its id.
    pub async fn publish_next(&mut self, _chain: &Chain, signers: &[usize]) -> Result<B256> {
        let model_id = self
            .releases
            .last()
            .map(|(_, m)| m.modelId)
            .ok_or_else(|| rpc("publish_next")(&"no round was played yet"))?;
        let expiry = self
            .releases
            .last()
            .map(|(_, m)| m.expiry)
            .unwrap_or(u64::MAX);
        self.extra_versions += 1;
        let m = self.manifest(model_id, 100 + self.extra_versions, expiry);
        self.publish_by(&m, signers).await?;
        Ok(release_id(&m))
    }

    /// One `ParamsCidSet` event naming `tag`: a one-block change that makes two
    /// branches of a reorg differ.
    pub async fn touch(&self, _chain: &Chain, tag: &str) -> Result<()> {
        let registry = UpdateRegistry::new(self.registry, &self.operator);
        send!(
            "setParamsCid",
            registry.setParamsCid(self.manufacturer, format!("bafy-{tag}"))
        );
        Ok(())
    }

    /// One round of real use (about twenty transactions): a model, a batch of
    /// three claimed devices, a transfer, a deactivation, three releases (one
    /// bought and withdrawn after the refund window, one bought, revoked with
    /// signatures and refunded, one revoked in an emergency), a floor raise, a
    /// new parameters CID, a signer rotation and an operator/payee update.
    pub async fn round(&mut self, chain: &Chain) -> Result<()> {
        self.round_until_refunds(chain).await?;
        // Past the refund window, v1's earnings go to the payee.
        chain
            .raw(
                "evm_increaseTime",
                serde_json::json!([DEFAULT_REFUND_WINDOW + 1]),
            )
            .await?;
        self.round_after_refund_window(chain).await
    }

    /// A [`round`](Self::round) up to the refund window's end: everything but the withdrawal.
    pub async fn round_until_refunds(&mut self, _chain: &Chain) -> Result<()> {
        self.rounds += 1;
        let r = self.rounds;
        // Owned handles (cheap clones), so `self` stays free for `publish`.
        let (operator_provider, owner_provider) = (self.operator.clone(), self.owner.clone());
        let registry = UpdateRegistry::new(self.registry, &operator_provider);
        let market = UpdateMarket::new(self.market, &owner_provider);
        let domain = registry_domain(self.chain_id, self.registry);
        let owner = self.owner_address;

        send!(
            "setParamsCid",
            registry.setParamsCid(self.manufacturer, format!("bafyparams-{r}"))
        );
        let receipt = send!(
            "defineModel",
            registry.defineModel(self.manufacturer, format!("model-{r}"), 0)
        );
        let model_id = receipt
            .decoded_log::<UpdateRegistry::ModelDefined>()
            .ok_or_else(|| rpc("defineModel")(&"no ModelDefined event"))?
            .modelId;

        // Three devices, claimed by the owner with their own signatures.
        let device_keys: Vec<PrivateKeySigner> =
            (0..3).map(|_| PrivateKeySigner::random()).collect();
        let leaves: Vec<DeviceLeaf> = device_keys
            .iter()
            .enumerate()
            .map(|(i, k)| DeviceLeaf {
                position: i as u64,
                device: k.address(),
                model_id,
            })
            .collect();
        let tree = DeviceTree::new(&leaves)?;
        let receipt = send!(
            "provisionDevices",
            registry.provisionDevices(self.manufacturer, tree.root(), 3, format!("bafyleaves-{r}"))
        );
        let batch = receipt
            .decoded_log::<UpdateRegistry::DevicesProvisioned>()
            .ok_or_else(|| rpc("provisionDevices")(&"no DevicesProvisioned event"))?;
        let index = |i: usize| batch.firstIndex + i as u64;
        for (i, key) in device_keys.iter().enumerate() {
            self.devices.push((index(i), key.clone(), model_id));
        }
        for (i, leaf) in leaves.iter().enumerate() {
            let claim = Claim {
                owner,
                deviceIndex: index(i),
            };
            let signature = sign_compact(&device_keys[i], claim.eip712_signing_hash(&domain))?;
            send!(
                "claimDevice",
                registry.claimDevice(
                    batch.batchId,
                    index(i),
                    leaf.device,
                    model_id,
                    owner,
                    tree.proof(i)?,
                    signature.to_vec().into(),
                )
            );
        }
        let owner_registry = UpdateRegistry::new(self.registry, &owner_provider);
        send!(
            "transferDevice",
            owner_registry
                .transferDevice(index(2), Address::repeat_byte(((r - 1) % 255 + 1) as u8))
        );
        send!(
            "setDeviceActive",
            registry.setDeviceActive(batch.batchId, index(2), false)
        );

        let now = operator_provider
            .get_block_by_number(Default::default())
            .await
            .map_err(|e| rpc("eth_getBlockByNumber")(&e))?
            .map(|b| b.header.timestamp)
            .unwrap_or_default();
        let expiry = now + 10 * 365 * 24 * 3600;

        // v1: bought for two devices, withdrawn after the refund window.
        let v1 = self.manifest(model_id, 1, expiry);
        self.publish(&v1).await?;
        send!(
            "purchase",
            market
                .purchase(v1.clone().into(), vec![index(0), index(1)])
                .value(U256::from(PRICE * 2))
        );
        // v2: bought, revoked with signatures, refunded.
        let v2 = self.manifest(model_id, 2, expiry);
        self.publish(&v2).await?;
        send!(
            "purchase",
            market
                .purchase(v2.clone().into(), vec![index(0)])
                .value(U256::from(PRICE))
        );
        let revoke = RevokeRelease {
            releaseId: release_id(&v2),
            reason: format!("bad build {r}"),
        };
        let approval = self
            .set
            .approve_typed(&revoke, &domain, &[&self.keys[1], &self.keys[2]])?;
        send!(
            "revokeRelease",
            registry.revokeRelease(revoke.releaseId, revoke.reason.clone(), approval)
        );
        send!(
            "claimRefund",
            market.claimRefund(v2.clone().into(), vec![index(0)])
        );
        // v3: revoked in an emergency by the operator.
        let v3 = self.manifest(model_id, 3, expiry);
        self.publish(&v3).await?;
        send!(
            "emergencyRevoke",
            registry.emergencyRevoke(release_id(&v3), "emergency".into())
        );
        // The floor rises with signatures.
        let floor = RaiseFloor {
            modelId: model_id,
            minVersion: 1,
        };
        let approval = self
            .set
            .approve_typed(&floor, &domain, &[&self.keys[0], &self.keys[1]])?;
        send!("raiseFloor", registry.raiseFloor(model_id, 1, approval));

        // Operator/payee update, then a signer rotation (both consume the nonce).
        let nonce = registry
            .manufacturer(self.manufacturer)
            .call()
            .await
            .map_err(|e| rpc("manufacturer")(&e))?
            .nonce;
        let operator = self.operator_address;
        let update = UpdateManufacturer {
            manufacturerId: self.manufacturer,
            nonce,
            operator,
            payee: operator,
        };
        let approval = self
            .set
            .approve_typed(&update, &domain, &[&self.keys[0], &self.keys[2]])?;
        send!(
            "updateManufacturer",
            registry.updateManufacturer(self.manufacturer, operator, operator, approval)
        );
        let new_keys: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
        let new_set = SignerSet::new(new_keys.iter().map(|k| k.address()).collect(), 2)?;
        let rotate = RotateSigners {
            manufacturerId: self.manufacturer,
            nonce: nonce + 1,
            signers: new_set.signers().to_vec(),
            threshold: 2,
        };
        let approval = self
            .set
            .approve_typed(&rotate, &domain, &[&self.keys[1], &self.keys[2]])?;
        send!(
            "rotateSigners",
            registry.rotateSigners(self.manufacturer, new_set.signers().to_vec(), 2, approval)
        );
        // Keys stay sorted by address, as the set is.
        let mut sorted = new_keys;
        sorted.sort_by_key(|k| k.address());
        self.keys = sorted;
        self.set = new_set;
        self.to_withdraw = Some(v1);
        Ok(())
    }

    /// The end of a [`round`](Self::round), once the chain's time is past the refund window:
    /// the round's first release's earnings go to the payee.
    pub async fn round_after_refund_window(&mut self, _chain: &Chain) -> Result<()> {
        let Some(v1) = self.to_withdraw.take() else {
            return Ok(());
        };
        let market = UpdateMarket::new(self.market, &self.operator);
        send!("withdraw", market.withdraw(v1.into()));
        Ok(())
    }
}
