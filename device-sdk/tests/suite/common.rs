//! The test world: a real anvil with the real contracts (deployed as the project deploys them),
//! a manufacturer with a 2-of-3 signer set, two models, claimed devices, and helpers to publish,
//! buy, revoke and mine; plus a malicious RPC transport wrapping the honest one.

use alloy::{
    network::EthereumWallet,
    node_bindings::AnvilInstance,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
    sol_types::{SolStruct, SolValue},
};
use otaledger_core::{
    bindings::{
        market::UpdateMarket,
        registry::{IUpdateRegistry, UpdateRegistry},
    },
    deploy::{self, DEFAULT_REFUND_WINDOW},
    merkle::{DeviceLeaf, DeviceTree},
    signing::{Claim, SignerSet, registry_domain, sign_compact},
    spawn_anvil,
};
use otaledger_device_sdk::{
    Approval, DeviceConfig, DeviceState, Limits, Manifest, Quorum, Result as SdkResult,
    client::{Client, Clock, HttpRpc, Rpc, RpcFuture, SystemClock},
    head::RawHeader,
    state::AccountProof,
};

/// Sends a contract call and waits for a successful receipt.
#[macro_export]
macro_rules! mined {
    ($call:expr) => {{
        let receipt = $call.send().await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status(), "transaction reverted");
        receipt
    }};
}

pub(crate) const PRICE: u128 = 1_000_000_000_000_000;
/// Confirmations in the tests: anvil mines a block per transaction, [`World::settle`] mines
/// this many on top.
pub(crate) const CONFIRMATIONS: u64 = 2;

pub(crate) type Registry = UpdateRegistry::UpdateRegistryInstance<DynProvider>;
pub(crate) type Market = UpdateMarket::UpdateMarketInstance<DynProvider>;

/// A deployed system with one manufacturer.
pub(crate) struct World {
    pub(crate) anvil: AnvilInstance,
    pub(crate) provider: DynProvider,
    pub(crate) registry: Registry,
    pub(crate) market: Market,
    pub(crate) chain_id: u64,
    pub(crate) keys: Vec<PrivateKeySigner>,
    pub(crate) set: SignerSet,
    pub(crate) manufacturer: u32,
    /// The devices' model and a second model of the same manufacturer.
    pub(crate) model: u32,
    pub(crate) other_model: u32,
    /// Two claimed, active devices of `model`, and one of `other_model`.
    pub(crate) devices: [u64; 2],
    pub(crate) other_device: u64,
    /// The devices' provisioning batch.
    pub(crate) batch: u64,
}

impl World {
    pub(crate) async fn new() -> Self {
        Self::with_salt(deploy::DEFAULT_SALT).await
    }

    pub(crate) async fn with_salt(salt: B256) -> Self {
        let anvil = spawn_anvil().unwrap();
        let deployer: PrivateKeySigner = anvil.keys()[0].clone().into();
        let owner: PrivateKeySigner = anvil.keys()[1].clone().into();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(deployer.clone()))
            .connect_http(anvil.endpoint_url())
            .erased();
        let owner_provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(owner.clone()))
            .connect_http(anvil.endpoint_url())
            .erased();
        let deployed = deploy::deploy(&provider, salt, DEFAULT_REFUND_WINDOW, "test")
            .await
            .unwrap();
        let d = deployed.deployment;
        let registry = UpdateRegistry::new(d.registry, provider.clone());
        let market = UpdateMarket::new(d.market, owner_provider);

        let keys: Vec<PrivateKeySigner> = (1..=3u8)
            .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(0x10 + i)).unwrap())
            .collect();
        let set = SignerSet::new(keys.iter().map(|k| k.address()).collect(), 2).unwrap();
        let receipt = mined!(registry.registerManufacturer(
            "Acme".into(),
            Address::ZERO,
            Address::ZERO,
            set.signers().to_vec(),
            2,
            String::new(),
        ));
        let manufacturer = receipt
            .decoded_log::<UpdateRegistry::ManufacturerRegistered>()
            .unwrap()
            .manufacturerId;
        let mut models = Vec::new();
        for name in ["thermo-x", "thermo-y"] {
            let receipt = mined!(registry.defineModel(manufacturer, name.into(), 0));
            models.push(
                receipt
                    .decoded_log::<UpdateRegistry::ModelDefined>()
                    .unwrap()
                    .modelId,
            );
        }
        let (model, other_model) = (models[0], models[1]);

        // Provision and claim three devices: two of `model`, one of `other_model`.
        let device_keys: Vec<PrivateKeySigner> = (1..=3u8)
            .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(0x20 + i)).unwrap())
            .collect();
        let leaves: Vec<DeviceLeaf> = device_keys
            .iter()
            .enumerate()
            .map(|(i, k)| DeviceLeaf {
                position: i as u64,
                device: k.address(),
                model_id: if i < 2 { model } else { other_model },
            })
            .collect();
        let tree = DeviceTree::new(&leaves).unwrap();
        let receipt = mined!(registry.provisionDevices(
            manufacturer,
            tree.root(),
            leaves.len() as u32,
            String::new()
        ));
        let batch = receipt
            .decoded_log::<UpdateRegistry::DevicesProvisioned>()
            .unwrap();
        let domain = registry_domain(d.chain_id, d.registry);
        for (i, leaf) in leaves.iter().enumerate() {
            let index = batch.firstIndex + i as u64;
            let claim = Claim {
                owner: owner.address(),
                deviceIndex: index,
            };
            let signature =
                sign_compact(&device_keys[i], claim.eip712_signing_hash(&domain)).unwrap();
            mined!(registry.claimDevice(
                batch.batchId,
                index,
                leaf.device,
                leaf.model_id,
                owner.address(),
                tree.proof(i).unwrap(),
                signature.to_vec().into(),
            ));
        }
        Self {
            anvil,
            provider,
            registry,
            market,
            chain_id: d.chain_id,
            keys,
            set,
            manufacturer,
            model,
            other_model,
            devices: [batch.firstIndex, batch.firstIndex + 1],
            other_device: batch.firstIndex + 2,
            batch: batch.batchId,
        }
    }

    pub(crate) fn domain(&self) -> alloy::sol_types::Eip712Domain {
        registry_domain(self.chain_id, *self.registry.address())
    }

    /// A manifest for `model` at `version` (not yet published).
    pub(crate) async fn manifest(&self, model: u32, version: u64) -> IUpdateRegistry::Manifest {
        let now = self.timestamp().await;
        IUpdateRegistry::Manifest {
            modelId: model,
            version,
            bundleSha256: keccak256(format!("bundle {model}/{version}")),
            bundleSize: 1_000_000 + version,
            bundleCid: Bytes::from(format!("cid {model}/{version}").into_bytes()),
            imageSha256: keccak256(format!("image {model}/{version}")),
            price: PRICE,
            paymentToken: Address::ZERO,
            policyId: keccak256(format!("model:{model} and release:{model}/{version}")),
            expiry: now + 365 * 24 * 3600,
            metadataHash: B256::ZERO,
        }
    }

    /// The signers' approval of `m` (signers 0 and 2, the threshold).
    pub(crate) fn approve(&self, m: &IUpdateRegistry::Manifest) -> IUpdateRegistry::Approval {
        self.set
            .approve_typed(m, &self.domain(), &[&self.keys[0], &self.keys[2]])
            .unwrap()
    }

    /// Publishes `model` at `version` and returns the manifest and its approval.
    pub(crate) async fn publish(
        &self,
        model: u32,
        version: u64,
    ) -> (IUpdateRegistry::Manifest, IUpdateRegistry::Approval) {
        let m = self.manifest(model, version).await;
        let approval = self.approve(&m);
        mined!(self.registry.publishRelease(m.clone(), approval.clone()));
        (m, approval)
    }

    /// The owner buys `m` for `devices`.
    pub(crate) async fn purchase(&self, m: &IUpdateRegistry::Manifest, devices: &[u64]) {
        mined!(
            self.market
                .purchase(m.clone().into(), devices.to_vec())
                .value(U256::from(PRICE * devices.len() as u128))
        );
    }

    /// Publishes and buys for device 0: the usual valid update.
    pub(crate) async fn release(&self, version: u64) -> (Manifest, Approval) {
        let (m, a) = self.publish(self.model, version).await;
        self.purchase(&m, &[self.devices[0]]).await;
        (to_device(&m), to_device_approval(&a))
    }

    /// Mines the confirmations so the latest state is inside the trusted head.
    pub(crate) async fn settle(&self) {
        self.provider
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (CONFIRMATIONS,))
            .await
            .unwrap();
    }

    pub(crate) async fn timestamp(&self) -> u64 {
        self.provider
            .get_block_by_number(Default::default())
            .await
            .unwrap()
            .unwrap()
            .header
            .timestamp
    }

    pub(crate) fn config(&self, device_index: u64) -> DeviceConfig {
        DeviceConfig {
            chain_id: self.chain_id,
            registry: *self.registry.address(),
            market: *self.market.address(),
            manufacturer_id: self.manufacturer,
            model_id: self.model,
            device_index,
        }
    }

    pub(crate) fn honest(&self) -> HttpRpc {
        HttpRpc::new(self.anvil.endpoint_url()).unwrap()
    }

    /// A device client for `devices[0]` over `rpcs` (k = strict majority), its state in `dir`.
    pub(crate) fn client(&self, dir: &tempfile::TempDir, rpcs: Vec<Box<dyn Rpc>>) -> Client {
        self.client_with(dir, rpcs, Box::new(SystemClock), self.devices[0])
    }

    pub(crate) fn client_with(
        &self,
        dir: &tempfile::TempDir,
        rpcs: Vec<Box<dyn Rpc>>,
        clock: Box<dyn Clock>,
        device: u64,
    ) -> Client {
        let mut limits = Limits::new(Quorum::majority(rpcs.len()).unwrap());
        limits.confirmations = CONFIRMATIONS;
        Client::new(
            self.config(device),
            limits,
            rpcs,
            clock,
            Box::new(otaledger_device_sdk::client::FileStorage::new(
                dir.path().join("state.json"),
            )),
        )
        .unwrap()
    }

    /// One honest endpoint and a device clock the test moves, set to the chain's time.
    pub(crate) async fn moving_client(
        &self,
        dir: &tempfile::TempDir,
    ) -> (Client, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let now = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(self.timestamp().await));
        let client = self.client_with(
            dir,
            vec![Box::new(self.honest())],
            Box::new(MovingClock(now.clone())),
            self.devices[0],
        );
        (client, now)
    }

    /// One honest endpoint.
    pub(crate) fn honest_client(&self, dir: &tempfile::TempDir) -> Client {
        self.client(dir, vec![Box::new(self.honest())])
    }
}

pub(crate) fn to_device(m: &IUpdateRegistry::Manifest) -> Manifest {
    Manifest::abi_decode(&m.abi_encode()).unwrap()
}

pub(crate) fn to_core(m: &Manifest) -> IUpdateRegistry::Manifest {
    IUpdateRegistry::Manifest::abi_decode(&m.abi_encode()).unwrap()
}

pub(crate) fn to_device_approval(a: &IUpdateRegistry::Approval) -> Approval {
    Approval::abi_decode(&a.abi_encode()).unwrap()
}

/// The stored state after a check (nothing stored = the default).
pub(crate) fn stored(client: &Client) -> DeviceState {
    client.state().unwrap()
}

/// A device clock the test moves (shared with whatever moves it).
#[derive(Clone)]
pub(crate) struct MovingClock(pub(crate) std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Clock for MovingClock {
    fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A fixed device clock.
pub(crate) struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0
    }
}

/// How a [`Liar`] lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lie {
    /// Changes the value of the last storage slot of every proof (keeps the honest proof).
    ForgeStorageValue,
    /// Flips a byte in the last node of every storage proof.
    ForgeStorageNode,
    /// Drops the last node of the account proof.
    TruncateAccountProof,
    /// Drops the last node of every storage proof.
    TruncateStorageProof,
    /// Changes a header field but claims the honest hash.
    HeaderFieldsMismatch,
    /// Serves a self-consistent header of its own fork (another state root, its own hash).
    Fork,
    /// Serves the header of an older block than asked.
    OldBlock,
    /// Answers the last slot's neighbour instead of the slot asked for.
    WrongSlot,
    /// Answers for another account (the other contract).
    WrongAccount,
    /// Pads the account proof with a hundred extra nodes.
    Bloat,
}

/// An endpoint that forwards to an honest one and lies as configured.
pub(crate) struct Liar {
    pub(crate) inner: HttpRpc,
    pub(crate) lie: Lie,
}

impl Liar {
    pub(crate) fn boxed(inner: HttpRpc, lie: Lie) -> Box<dyn Rpc> {
        Box::new(Self { inner, lie })
    }
}

fn reencode(rlp: &[u8], edit: impl FnOnce(&mut alloy::consensus::Header)) -> RawHeader {
    use alloy::rlp::Decodable;
    let mut header = alloy::consensus::Header::decode(&mut &rlp[..]).unwrap();
    edit(&mut header);
    RawHeader {
        claimed_hash: header.hash_slow(),
        rlp: alloy::rlp::encode(&header),
    }
}

impl Rpc for Liar {
    fn block_number(&self) -> RpcFuture<'_, u64> {
        self.inner.block_number()
    }

    fn header(&self, number: u64) -> RpcFuture<'_, RawHeader> {
        Box::pin(async move {
            match self.lie {
                Lie::OldBlock => self.inner.header(number.saturating_sub(1)).await,
                Lie::HeaderFieldsMismatch => {
                    let honest = self.inner.header(number).await?;
                    let forged = reencode(&honest.rlp, |h| h.state_root = B256::repeat_byte(0xee));
                    Ok(RawHeader {
                        claimed_hash: honest.claimed_hash,
                        rlp: forged.rlp,
                    })
                }
                Lie::Fork => {
                    let honest = self.inner.header(number).await?;
                    Ok(reencode(&honest.rlp, |h| {
                        h.state_root = B256::repeat_byte(0xf0);
                        h.extra_data = Bytes::from_static(b"fork");
                    }))
                }
                _ => self.inner.header(number).await,
            }
        })
    }

    fn proof(
        &self,
        address: Address,
        slots: Vec<B256>,
        number: u64,
    ) -> RpcFuture<'_, AccountProof> {
        Box::pin(async move {
            let mut slots = slots;
            let mut address = address;
            match self.lie {
                Lie::WrongSlot => {
                    if let Some(last) = slots.last_mut() {
                        *last = B256::from(U256::from_be_bytes(last.0).wrapping_add(U256::from(1)));
                    }
                }
                Lie::WrongAccount => address = Address::repeat_byte(0x42),
                _ => {}
            }
            let mut p = self.inner.proof(address, slots, number).await?;
            match self.lie {
                Lie::Bloat => {
                    let first = p.account_proof[0].clone();
                    p.account_proof.extend(std::iter::repeat_n(first, 100));
                }
                Lie::ForgeStorageValue => {
                    if let Some(s) = p.storage_proof.last_mut() {
                        s.value = if s.value.is_zero() {
                            U256::MAX
                        } else {
                            U256::ZERO
                        };
                    }
                }
                Lie::ForgeStorageNode => {
                    for s in &mut p.storage_proof {
                        if let Some(node) = s.proof.last_mut() {
                            let mut bytes = node.to_vec();
                            let last = bytes.len() - 1;
                            bytes[last] ^= 1;
                            *node = bytes.into();
                        }
                    }
                }
                Lie::TruncateAccountProof => {
                    p.account_proof.pop();
                }
                Lie::TruncateStorageProof => {
                    for s in &mut p.storage_proof {
                        s.proof.pop();
                    }
                }
                _ => {}
            }
            Ok(p)
        })
    }
}

/// Runs a check and expects a refusal.
pub(crate) async fn refused(
    client: &Client,
    m: &Manifest,
    a: &Approval,
) -> otaledger_device_sdk::Error {
    let before = stored(client);
    let result: SdkResult<_> = client.check(m, a).await;
    let err = result.expect_err("the check passed, expected a refusal");
    assert_eq!(stored(client), before, "a refused check must store nothing");
    err
}
