//! `device provision | claim`: a batch of devices with their identity keys,
//! Merkle batch on chain, and one directory per device with everything it
//! boots with.
//!
//! A device directory (`<out>/device-<position>/`) holds:
//! - `identity.key`: the device's secp256k1 identity secret key, hex, one line
//!   (owner-only permissions); its address is the device's id on chain;
//! - `cpabe.key`: its CP-ABE key for its static attributes (`model:<modelId>`
//!   and any `--attribute`), `otaledger-cpabe` encoding (owner-only);
//! - `device.toml` (format `otaledger-device/1`), written last, once the
//!   batch is on chain:
//!
//! ```toml
//! format = "otaledger-device/1"
//! chain_id = 31337
//! registry = "0x…"
//! market = "0x…"
//! manufacturer_id = 1
//! model_id = 1
//! batch_id = 1
//! device_index = 12            # global index on chain
//! position = 3                 # leaf position in the batch
//! address = "0x…"              # the identity key's address
//! public_key = "0x04…"         # its uncompressed public key
//! identity_key_file = "identity.key"
//! cpabe_key_file = "cpabe.key"
//! attributes = ["model:1"]
//! merkle_proof = ["0x…", …]    # for claimDevice
//! [rpc]
//! urls = ["http://…"]
//! [ipfs]
//! gateways = ["http://…"]
//! [key_service]
//! address = "0x…"              # signs key deliveries (docs/bundle-format.md)
//! urls = ["http://…"]          # GET /v1/keys/<release>/<device>
//! [reports]
//! urls = ["http://…"]          # POST /v1/reports
//! ```
//!
//! The batch's leaf list (`leaves.json`: position, device, modelId and the
//! identity public key per leaf)
//! is written beside the directories and added to the IPFS store; its CID
//! goes on chain with the batch.

use std::path::{Path, PathBuf};

use alloy::{
    primitives::{Address, B256},
    providers::DynProvider,
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use otaledger_core::{
    bindings::registry::UpdateRegistry::{self, DevicesProvisioned},
    bundle::model_attribute,
    fsutil::write_atomic,
    merkle::{DeviceLeaf, DeviceTree},
    signing::{Claim, registry_domain, sign_compact},
};
use otaledger_cpabe::{MasterKey, keygen, rand_core::OsRng};
use otaledger_ipfs::{Blockstore, ImportOptions, Profile, import_path};
use serde::Serialize;
use url::Url;
use zeroize::Zeroizing;

use crate::{
    Error, Result,
    chain::{Chain, Mined, mined},
};

/// `device.toml` and its parts now live in `otaledger_core::device_file` (the device client
/// reads them too); re-exported so the rest of the CLI compiles unchanged.
pub use otaledger_core::device_file::{
    DEVICE_FORMAT, DeviceConfig, IndexerConfig, IpfsConfig, KeyServiceConfig, ReportsConfig,
    RpcConfig,
};
/// Most devices in one `device provision` run.
pub const MAX_BATCH: u32 = 100_000;

/// What `device provision` needs.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// The manufacturer (the sender must be its operator).
    pub manufacturer_id: u32,
    /// The model of every device in the batch.
    pub model_id: u32,
    /// How many devices.
    pub count: u32,
    /// Output directory (created; must be empty or absent).
    pub out_dir: PathBuf,
    /// Static attributes besides `model:<modelId>`.
    pub attributes: Vec<String>,
    /// The key service's address, written into every device.
    pub key_service: Address,
    /// RPC endpoints for the devices.
    pub rpc_urls: Vec<Url>,
    /// Gateways for the devices.
    pub gateways: Vec<Url>,
    /// Key-service endpoints for the devices (`GET /v1/keys/<release>/<device>`).
    pub key_service_urls: Vec<Url>,
    /// Indexers the devices send install reports to (`POST /v1/reports`).
    pub report_urls: Vec<Url>,
    /// Indexers the devices ask for releases (`[indexer] urls`).
    pub indexer_urls: Vec<Url>,
    /// The IPFS block store for the leaf list.
    pub store: PathBuf,
}

/// What `device provision` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned {
    /// The batch id.
    pub batch_id: u64,
    /// Global index of the first device.
    pub first_index: u64,
    /// Devices in the batch.
    pub count: u32,
    /// The batch's Merkle root.
    pub root: B256,
    /// CID of `leaves.json`.
    pub leaves_cid: String,
    /// The directory holding one directory per device.
    pub out_dir: PathBuf,
    /// The transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Owner-only permissions on a secret file.
fn restrict(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(Error::io(path))?;
    }
    Ok(())
}

/// One entry of `leaves.json` (the type lives in `otaledger_core::leaves`,
/// shared with the key service and the indexer).
pub use otaledger_core::leaves::LeafEntry;

/// Reads a batch's `leaves.json`, bounded and checked (entries in batch
/// order, each public key its address's): `otaledger_core::leaves::load_leaves`.
pub fn load_leaves(path: &Path) -> Result<Vec<LeafEntry>> {
    Ok(otaledger_core::leaves::load_leaves(path)?)
}

/// Provisions a batch: keys and CP-ABE keys first (so none is lost if the
/// transaction fails), then the batch on chain, then each `device.toml`.
pub async fn provision(
    chain: &Chain,
    provider: &DynProvider,
    master: &MasterKey,
    opts: &ProvisionOptions,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Provisioned> {
    if opts.count == 0 || opts.count > MAX_BATCH {
        return Err(Error::Input {
            field: "--count",
            reason: format!("{} is outside 1..={MAX_BATCH}", opts.count),
        });
    }
    if opts.out_dir.exists()
        && std::fs::read_dir(&opts.out_dir)
            .map_err(Error::io(&opts.out_dir))?
            .next()
            .is_some()
    {
        return Err(Error::Input {
            field: "--out",
            reason: format!("{} is not empty", opts.out_dir.display()),
        });
    }
    let mut attributes = vec![model_attribute(opts.model_id)];
    attributes.extend(opts.attributes.iter().cloned());

    let mut leaves = Vec::with_capacity(opts.count as usize);
    let mut public_keys = Vec::with_capacity(opts.count as usize);
    let mut dirs = Vec::with_capacity(opts.count as usize);
    for position in 0..u64::from(opts.count) {
        let identity = PrivateKeySigner::random();
        let dir = opts.out_dir.join(format!("device-{position:05}"));
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let key_path = dir.join("identity.key");
        let secret = Zeroizing::new(format!("{}\n", alloy::hex::encode(identity.to_bytes())));
        write_atomic(&key_path, secret.as_bytes())?;
        restrict(&key_path)?;
        let cpabe = keygen(master, &attributes, &mut OsRng).map_err(|source| {
            otaledger_core::Error::CpAbe {
                during: "issuing a device key",
                source,
            }
        })?;
        let cpabe_path = dir.join("cpabe.key");
        write_atomic(&cpabe_path, &Zeroizing::new(cpabe.to_bytes()))?;
        restrict(&cpabe_path)?;
        leaves.push(DeviceLeaf {
            position,
            device: identity.address(),
            model_id: opts.model_id,
        });
        public_keys.push(alloy::primitives::Bytes::from(
            otaledger_core::key_delivery::identity_public_key(&identity),
        ));
        dirs.push(dir);
        progress(position + 1);
    }
    let tree = DeviceTree::new(&leaves)?;
    let leaves_path = opts.out_dir.join("leaves.json");
    let leaves_json: Vec<LeafEntry> = leaves
        .iter()
        .zip(&public_keys)
        .map(|(l, k)| LeafEntry {
            position: l.position,
            device: l.device,
            model_id: l.model_id,
            public_key: k.clone(),
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&leaves_json).unwrap_or_default();
    text.push('\n');
    write_atomic(&leaves_path, text.as_bytes())?;
    let store = Blockstore::open(&opts.store).map_err(|source| Error::Ipfs {
        during: "opening the block store",
        source: Box::new(source.into()),
    })?;
    let leaves_cid = import_path(
        &leaves_path,
        &ImportOptions::profile(Profile::KuboV1),
        &mut &store,
        &mut |_| {},
    )
    .map_err(|source| Error::Ipfs {
        during: "importing the leaf list",
        source: Box::new(source),
    })?
    .root
    .to_string();

    let registry = UpdateRegistry::new(chain.registry(), provider);
    let (mined, receipt) = mined(
        "provisioning the batch",
        registry
            .provisionDevices(
                opts.manufacturer_id,
                tree.root(),
                opts.count,
                leaves_cid.clone(),
            )
            .send()
            .await,
    )
    .await?;
    let event = receipt
        .decoded_log::<DevicesProvisioned>()
        .ok_or_else(|| Error::NotFound {
            what: "the DevicesProvisioned event in the receipt".into(),
        })?;
    for ((leaf, dir), public_key) in leaves.iter().zip(&dirs).zip(&public_keys) {
        let config = DeviceConfig {
            format: DEVICE_FORMAT.into(),
            chain_id: chain.chain_id(),
            registry: chain.registry(),
            market: chain.market(),
            manufacturer_id: opts.manufacturer_id,
            model_id: opts.model_id,
            batch_id: event.batchId,
            device_index: event.firstIndex + leaf.position,
            position: leaf.position,
            address: leaf.device,
            public_key: public_key.clone(),
            identity_key_file: "identity.key".into(),
            cpabe_key_file: "cpabe.key".into(),
            attributes: attributes.clone(),
            merkle_proof: tree.proof(leaf.position as usize)?,
            rpc: RpcConfig {
                urls: opts.rpc_urls.iter().map(ToString::to_string).collect(),
            },
            ipfs: IpfsConfig {
                gateways: opts.gateways.iter().map(ToString::to_string).collect(),
            },
            key_service: KeyServiceConfig {
                address: opts.key_service,
                urls: opts
                    .key_service_urls
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
            reports: ReportsConfig {
                urls: opts.report_urls.iter().map(ToString::to_string).collect(),
            },
            indexer: IndexerConfig {
                urls: opts.indexer_urls.iter().map(ToString::to_string).collect(),
            },
        };
        let text = config.to_toml()?;
        write_atomic(&dir.join("device.toml"), text.as_bytes())?;
    }
    Ok(Provisioned {
        batch_id: event.batchId,
        first_index: event.firstIndex,
        count: opts.count,
        root: tree.root(),
        leaves_cid,
        out_dir: opts.out_dir.clone(),
        mined,
    })
}

/// What `device claim` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claimed {
    /// The device's global index.
    pub device_index: u64,
    /// Its address.
    pub device: Address,
    /// Its new owner.
    pub owner: Address,
    /// The transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Format tag of a claim request file.
pub const CLAIM_FORMAT: &str = "otaledger-claim/1";

/// `claim.json` (`otaledger-claim/1`): everything `claimDevice` needs, with the device's consent
/// (its identity key's EIP-712 `Claim(owner, deviceIndex)` signature, 64-byte EIP-2098) for one
/// owner. Whoever holds it can submit the claim (the dashboard does, from the owner's wallet);
/// it can only ever give the device to `owner`. Written by `otaledger device claim-request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRequest {
    /// Always [`CLAIM_FORMAT`].
    pub format: &'static str,
    /// The chain.
    pub chain_id: u64,
    /// The registry.
    #[serde(serialize_with = "lower_hex")]
    pub registry: Address,
    /// The device's batch.
    pub batch_id: u64,
    /// The device's global index.
    pub device_index: u64,
    /// The device's identity address.
    #[serde(serialize_with = "lower_hex")]
    pub device: Address,
    /// Its model.
    pub model_id: u32,
    /// The owner the device consents to.
    #[serde(serialize_with = "lower_hex")]
    pub owner: Address,
    /// The Merkle proof of the device's leaf.
    pub proof: Vec<B256>,
    /// The device's consent, 64-byte EIP-2098.
    pub signature: alloy::primitives::Bytes,
}

fn lower_hex<S: serde::Serializer>(a: &Address, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{a:#x}"))
}

impl ClaimRequest {
    /// The canonical file form: two-space indentation, a final newline.
    pub fn to_json(&self) -> String {
        // Strings, numbers and arrays of them only: serialising cannot fail.
        let text = serde_json::to_string_pretty(self).expect("a claim request serialises");
        format!("{text}\n")
    }
}

/// The claim of the device in `dir` for `owner`, signed by the device's identity key (as the
/// device would sign it when its owner pairs with it). Checked against `chain` when given.
pub fn claim_request(dir: &Path, owner: Address, chain: Option<&Chain>) -> Result<ClaimRequest> {
    let config = DeviceConfig::load(dir)?;
    if let Some(chain) = chain
        && (config.chain_id != chain.chain_id() || config.registry != chain.registry())
    {
        return Err(Error::Input {
            field: "--device-dir",
            reason: format!(
                "the device is for chain {} registry {}",
                config.chain_id, config.registry
            ),
        });
    }
    if owner == Address::ZERO {
        return Err(Error::Input {
            field: "--owner",
            reason: "the zero address cannot own a device".into(),
        });
    }
    let identity = config.identity(dir)?;
    let claim = Claim {
        owner,
        deviceIndex: config.device_index,
    };
    let digest = claim.eip712_signing_hash(&registry_domain(config.chain_id, config.registry));
    let signature = sign_compact(&identity, digest)?;
    Ok(ClaimRequest {
        format: CLAIM_FORMAT,
        chain_id: config.chain_id,
        registry: config.registry,
        batch_id: config.batch_id,
        device_index: config.device_index,
        device: config.address,
        model_id: config.model_id,
        owner,
        proof: config.merkle_proof.clone(),
        signature: signature.to_vec().into(),
    })
}

/// Claims the device in `dir` for `owner`, with the device's own consent
/// signature (made here from its identity key, as the device would).
pub async fn claim(
    chain: &Chain,
    provider: &DynProvider,
    dir: &Path,
    owner: Address,
) -> Result<Claimed> {
    let request = claim_request(dir, owner, Some(chain))?;
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let (mined, _) = mined(
        "claiming the device",
        registry
            .claimDevice(
                request.batch_id,
                request.device_index,
                request.device,
                request.model_id,
                owner,
                request.proof.clone(),
                request.signature.clone(),
            )
            .send()
            .await,
    )
    .await?;
    Ok(Claimed {
        device_index: request.device_index,
        device: request.device,
        owner,
        mined,
    })
}
