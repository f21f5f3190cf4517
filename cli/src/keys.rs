//! Issuing one purchased key by hand (`keys issue`) and opening it on a
//! device (`device open`): the building blocks of the key service, which will
//! follow `Purchased` events and call [`issue`] for each (release, device).
//!
//! A key is issued only to a device that is entitled on chain to the release,
//! and holds the device's static attributes and the release attribute in one
//! CP-ABE key (FAME keys do not combine), encrypted to the device's identity
//! key and signed by the key service (`otaledger-key` v1, docs/bundle-format.md).

use std::path::Path;

use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use otaledger_core::{
    bindings::{
        market::UpdateMarket,
        registry::UpdateRegistry::{self, DeviceClaimed},
    },
    bundle::{Opened, model_attribute, open_to_path, release_attribute},
    fsutil::write_atomic,
    key_delivery::{KeyDelivery, Recipient, public_key_address},
};
use otaledger_cpabe::{MasterKey, keygen, rand_core::OsRng};
use serde::Serialize;

use crate::{
    Error, Result,
    chain::{Chain, contract_error},
    device::DeviceConfig,
    market::published_manifest,
};

/// What `keys issue` made.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    /// The release.
    pub release_id: B256,
    /// The device's index.
    pub device_index: u64,
    /// The device's address.
    pub device: Address,
    /// The attributes in the issued key.
    pub attributes: Vec<String>,
    /// The key service that signed.
    pub key_service: Address,
    /// The encoded delivery.
    #[serde(skip)]
    pub delivery: Vec<u8>,
}

/// Issues the device with identity public key `public_key` (index
/// `device_index`) its key for `release_id`, after checking on chain that the
/// device is that index, of the release's model, and entitled to the release.
#[allow(clippy::too_many_arguments)]
pub async fn issue(
    chain: &Chain,
    provider: &DynProvider,
    master: &MasterKey,
    key_service: &PrivateKeySigner,
    release_id: B256,
    device_index: u64,
    public_key: &[u8],
    static_attributes: &[String],
) -> Result<Issued> {
    let manifest = published_manifest(chain, provider, release_id).await?;
    let device_address = public_key_address(public_key)?;
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let device = registry
        .device(device_index)
        .call()
        .await
        .map_err(|e| contract_error("reading the device", e))?;
    // The chain records which address was claimed at this index: the key goes to that device only.
    let filter = Filter::new()
        .address(chain.registry())
        .from_block(chain.deployment.deployment_block)
        .event_signature(DeviceClaimed::SIGNATURE_HASH)
        .topic1(B256::left_padding_from(&device_index.to_be_bytes()));
    let logs = provider.get_logs(&filter).await.map_err(|e| Error::Rpc {
        during: format!("reading the claim of device {device_index}"),
        reason: e.to_string(),
    })?;
    let claimed = logs
        .iter()
        .find_map(|l| l.log_decode::<DeviceClaimed>().ok())
        .map(|l| l.inner.data.device)
        .ok_or_else(|| Error::NotFound {
            what: format!("a claim of device {device_index}"),
        })?;
    if claimed != device_address {
        return Err(Error::Input {
            field: "--device",
            reason: format!(
                "device {device_index} is {claimed} on chain, the public key is {device_address}'s"
            ),
        });
    }
    if device.modelId != manifest.modelId {
        return Err(Error::Input {
            field: "--device",
            reason: format!(
                "device {device_index} is of model {}, the release of model {}",
                device.modelId, manifest.modelId
            ),
        });
    }
    let market = UpdateMarket::new(chain.market(), provider);
    let entitled = market
        .isEntitled(release_id, device_index)
        .call()
        .await
        .map_err(|e| contract_error("reading the entitlement", e))?;
    if !entitled {
        return Err(Error::NotEntitled {
            release_id,
            device_index,
        });
    }
    let attributes = key_attributes(manifest.modelId, manifest.version, static_attributes);
    let delivery = seal_key(
        master,
        key_service,
        chain.chain_id(),
        chain.registry(),
        release_id,
        public_key,
        &attributes,
    )?;
    Ok(Issued {
        release_id,
        device_index,
        device: device_address,
        attributes,
        key_service: key_service.address(),
        delivery,
    })
}

/// The attributes of a purchased key: `model:<M>`, `release:<M>/<V>`, then the
/// device's other static attributes (without repeats), in that order.
pub fn key_attributes(model_id: u32, version: u64, static_attributes: &[String]) -> Vec<String> {
    let mut attributes = vec![
        model_attribute(model_id),
        release_attribute(model_id, version),
    ];
    for a in static_attributes {
        if !attributes.contains(a) {
            attributes.push(a.clone());
        }
    }
    attributes
}

/// The CPU work of one issuance, without any chain check: a CP-ABE key for
/// `attributes`, sealed to the device's identity `public_key` for
/// `release_id` and signed by `key_service` (`otaledger-key` v1 bytes).
/// The plaintext CP-ABE key is dropped (zeroised by its type) before returning.
#[allow(clippy::too_many_arguments)]
pub fn seal_key(
    master: &MasterKey,
    key_service: &PrivateKeySigner,
    chain_id: u64,
    registry: Address,
    release_id: B256,
    public_key: &[u8],
    attributes: &[String],
) -> Result<Vec<u8>> {
    let key =
        keygen(master, attributes, &mut OsRng).map_err(|source| otaledger_core::Error::CpAbe {
            during: "issuing the key",
            source,
        })?;
    let delivery = KeyDelivery::seal(
        chain_id,
        registry,
        release_id,
        public_key,
        &key,
        key_service,
    )?;
    Ok(delivery.to_bytes()?)
}

/// Writes an issued delivery, all or nothing.
pub fn store(issued: &Issued, path: &Path) -> Result<()> {
    Ok(write_atomic(path, &issued.delivery)?)
}

/// What `device open` verified.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceOpened {
    /// SHA-256 of the image.
    pub image_sha256: B256,
    /// Its length.
    pub image_len: u64,
    /// Model and version the bundle was made for.
    pub model_id: u32,
    /// The version.
    pub version: u64,
}

/// Opens `bundle` into `out` as the device in `device_dir` would: its key
/// delivery must be signed by its key service and addressed to it, and the
/// bundle must be for its chain, registry and model. `out` appears only if
/// every segment verified.
pub fn device_open(
    device_dir: &Path,
    delivery: &Path,
    bundle: &Path,
    out: &Path,
) -> Result<DeviceOpened> {
    let config = DeviceConfig::load(device_dir)?;
    let identity = config.identity(device_dir)?;
    let bytes = std::fs::read(delivery).map_err(Error::io(delivery))?;
    let key = KeyDelivery::decode(&bytes)?.open(
        &Recipient {
            chain_id: config.chain_id,
            registry: config.registry,
            key_service: config.key_service.address,
        },
        &identity.to_bytes().0,
    )?;
    let file = std::fs::File::open(bundle).map_err(Error::io(bundle))?;
    let (header, _) = otaledger_core::bundle::read_header(&mut std::io::BufReader::new(file))?;
    let t = header.target();
    if (t.chain_id, t.registry, t.model_id) != (config.chain_id, config.registry, config.model_id) {
        return Err(Error::Input {
            field: "--bundle",
            reason: format!(
                "the bundle is for chain {} registry {} model {}, this device is chain {} registry {} model {}",
                t.chain_id,
                t.registry,
                t.model_id,
                config.chain_id,
                config.registry,
                config.model_id
            ),
        });
    }
    let (
        header,
        Opened {
            image_sha256,
            image_len,
        },
    ) = open_to_path(bundle, &key, out)?;
    Ok(DeviceOpened {
        image_sha256,
        image_len,
        model_id: header.target().model_id,
        version: header.target().version,
    })
}
