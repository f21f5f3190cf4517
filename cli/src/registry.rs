//! `manufacturer register | show`, `model define | show`, and the current
//! signer set of a manufacturer (the registry stores only its hash; the set
//! itself comes from the latest `ManufacturerRegistered`/`SignersRotated` event,
//! checked against that hash).

use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use otaledger_core::{
    bindings::registry::UpdateRegistry::{
        self, ManufacturerRegistered, ModelDefined, SignersRotated,
    },
    signing::SignerSet,
};
use serde::Serialize;

use crate::{
    Error, Result,
    chain::{Chain, Mined, contract_error, mined},
};

/// The manufacturer's current signer set, from its events, checked against the
/// `signersHash` the registry stores.
pub async fn current_signer_set(
    chain: &Chain,
    provider: &DynProvider,
    manufacturer_id: u32,
) -> Result<SignerSet> {
    let topic = B256::left_padding_from(&manufacturer_id.to_be_bytes());
    let filter = Filter::new()
        .address(chain.registry())
        .from_block(chain.deployment.deployment_block)
        .event_signature(vec![
            ManufacturerRegistered::SIGNATURE_HASH,
            SignersRotated::SIGNATURE_HASH,
        ])
        .topic1(topic);
    let logs = provider.get_logs(&filter).await.map_err(|e| Error::Rpc {
        during: format!("reading the signer sets of manufacturer {manufacturer_id}"),
        reason: e.to_string(),
    })?;
    // Logs come in chain order: the last one is the current set.
    let latest = logs.iter().rev().find_map(|log| {
        if let Ok(e) = log.log_decode::<SignersRotated>() {
            return Some((e.inner.data.signers.clone(), e.inner.data.threshold));
        }
        log.log_decode::<ManufacturerRegistered>()
            .ok()
            .map(|e| (e.inner.data.signers.clone(), e.inner.data.threshold))
    });
    let Some((signers, threshold)) = latest else {
        return Err(Error::NotFound {
            what: format!("manufacturer {manufacturer_id}"),
        });
    };
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let stored = registry
        .manufacturer(manufacturer_id)
        .call()
        .await
        .map_err(|e| contract_error("reading the manufacturer", e))?
        .signersHash;
    let from_events = registry
        .signersHash(signers.clone(), threshold)
        .call()
        .await
        .map_err(|e| contract_error("hashing the signer set", e))?;
    if stored != from_events {
        return Err(Error::NotFound {
            what: format!(
                "the signer set of manufacturer {manufacturer_id} in its events (hash {from_events}) is not the registered one ({stored})"
            ),
        });
    }
    Ok(SignerSet::new(signers, threshold)?)
}

/// What `manufacturer register` needs.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Display name.
    pub name: String,
    /// Operator (zero: the sender).
    pub operator: Address,
    /// Payee (zero: the operator).
    pub payee: Address,
    /// Release signers (any order).
    pub signers: Vec<Address>,
    /// How many must sign.
    pub threshold: u8,
    /// CID of the CP-ABE public parameters, or empty (set later by `authority init`).
    pub params_cid: String,
}

/// A registered manufacturer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The new manufacturer id.
    pub manufacturer_id: u32,
    /// The operator.
    pub operator: Address,
    /// Signers, ascending.
    pub signers: Vec<Address>,
    /// Threshold.
    pub threshold: u8,
    /// The transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Registers a manufacturer.
pub async fn register(
    chain: &Chain,
    provider: &DynProvider,
    r: Registration,
) -> Result<Registered> {
    // Checked and sorted here, so a bad set is named before any transaction.
    let set = SignerSet::new(r.signers, r.threshold)?;
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let (mined, receipt) = mined(
        "registering the manufacturer",
        registry
            .registerManufacturer(
                r.name,
                r.operator,
                r.payee,
                set.signers().to_vec(),
                set.threshold(),
                r.params_cid,
            )
            .send()
            .await,
    )
    .await?;
    let event = receipt
        .decoded_log::<ManufacturerRegistered>()
        .ok_or_else(|| Error::NotFound {
            what: "the ManufacturerRegistered event in the receipt".into(),
        })?;
    Ok(Registered {
        manufacturer_id: event.manufacturerId,
        operator: event.operator,
        signers: set.signers().to_vec(),
        threshold: set.threshold(),
        mined,
    })
}

/// A manufacturer as the registry and its events describe it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManufacturerInfo {
    /// Its id.
    pub manufacturer_id: u32,
    /// The operator.
    pub operator: Address,
    /// The payee.
    pub payee: Address,
    /// The nonce of threshold-approved changes.
    pub nonce: u64,
    /// Current signers, ascending.
    pub signers: Vec<Address>,
    /// Current threshold.
    pub threshold: u8,
}

/// Reads a manufacturer.
pub async fn show_manufacturer(
    chain: &Chain,
    provider: &DynProvider,
    id: u32,
) -> Result<ManufacturerInfo> {
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let m = registry
        .manufacturer(id)
        .call()
        .await
        .map_err(|e| contract_error("reading the manufacturer", e))?;
    let set = current_signer_set(chain, provider, id).await?;
    Ok(ManufacturerInfo {
        manufacturer_id: id,
        operator: m.operator,
        payee: m.payee,
        nonce: m.nonce,
        signers: set.signers().to_vec(),
        threshold: set.threshold(),
    })
}

/// A defined model.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Defined {
    /// The new model id.
    pub model_id: u32,
    /// Its manufacturer.
    pub manufacturer_id: u32,
    /// The transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Defines a model (the sender must be the manufacturer's operator).
pub async fn define_model(
    chain: &Chain,
    provider: &DynProvider,
    manufacturer_id: u32,
    name: String,
    min_version: u64,
) -> Result<Defined> {
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let (mined, receipt) = mined(
        "defining the model",
        registry
            .defineModel(manufacturer_id, name, min_version)
            .send()
            .await,
    )
    .await?;
    let event = receipt
        .decoded_log::<ModelDefined>()
        .ok_or_else(|| Error::NotFound {
            what: "the ModelDefined event in the receipt".into(),
        })?;
    Ok(Defined {
        model_id: event.modelId,
        manufacturer_id,
        mined,
    })
}

/// A model as the registry stores it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// Its id.
    pub model_id: u32,
    /// Its manufacturer.
    pub manufacturer_id: u32,
    /// The latest published version (0: none).
    pub latest_version: u64,
    /// The version floor.
    pub min_version: u64,
}

/// Reads a model.
pub async fn show_model(chain: &Chain, provider: &DynProvider, id: u32) -> Result<ModelInfo> {
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let m = registry
        .model(id)
        .call()
        .await
        .map_err(|e| contract_error("reading the model", e))?;
    if m.manufacturerId == 0 {
        return Err(Error::NotFound {
            what: format!("model {id}"),
        });
    }
    Ok(ModelInfo {
        model_id: id,
        manufacturer_id: m.manufacturerId,
        latest_version: m.latestVersion,
        min_version: m.minVersion,
    })
}

/// Publishes the CID of the CP-ABE public parameters (operator only).
pub async fn set_params_cid(
    chain: &Chain,
    provider: &DynProvider,
    manufacturer_id: u32,
    cid: String,
) -> Result<Mined> {
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let (mined, _) = mined(
        "setting the parameters cid",
        registry.setParamsCid(manufacturer_id, cid).send().await,
    )
    .await?;
    Ok(mined)
}

/// A device as the registry stores it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    /// Its global index.
    pub device_index: u64,
    /// Its owner (zero while unclaimed).
    pub owner: Address,
    /// Its model (zero while unclaimed).
    pub model_id: u32,
    /// `unclaimed`, `active` or `deactivated`.
    pub status: &'static str,
}

fn status_name(status: u8) -> &'static str {
    match status {
        0 => "unclaimed",
        1 => "active",
        2 => "deactivated",
        _ => "unknown",
    }
}

/// Reads a device; an index beyond the provisioned ones is [`Error::NotFound`].
pub async fn show_device(chain: &Chain, provider: &DynProvider, index: u64) -> Result<DeviceInfo> {
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let provisioned = registry
        .counters()
        .call()
        .await
        .map_err(|e| contract_error("reading the counters", e))?
        .devices;
    if index >= provisioned {
        return Err(Error::NotFound {
            what: format!("device {index} (devices 0..{provisioned} are provisioned)"),
        });
    }
    let d = registry
        .device(index)
        .call()
        .await
        .map_err(|e| contract_error("reading the device", e))?;
    Ok(DeviceInfo {
        device_index: index,
        owner: d.owner,
        model_id: d.modelId,
        status: status_name(d.status as u8),
    })
}

/// The claimed devices, optionally only those `owner` owns now and of `model`, ascending.
/// Candidates come from `DeviceClaimed` and `DeviceTransferred` events; the
/// current owner, model and status are read from the registry.
pub async fn list_devices(
    chain: &Chain,
    provider: &DynProvider,
    owner: Option<Address>,
    model: Option<u32>,
) -> Result<Vec<DeviceInfo>> {
    use otaledger_core::bindings::registry::UpdateRegistry::{DeviceClaimed, DeviceTransferred};
    let base = Filter::new()
        .address(chain.registry())
        .from_block(chain.deployment.deployment_block);
    let rpc = |e: alloy::transports::TransportError| Error::Rpc {
        during: "reading device events".into(),
        reason: e.to_string(),
    };
    let mut claimed = base.clone().event_signature(DeviceClaimed::SIGNATURE_HASH);
    if let Some(o) = owner {
        claimed = claimed.topic2(o.into_word());
    }
    let mut indexes: Vec<u64> = provider
        .get_logs(&claimed)
        .await
        .map_err(rpc)?
        .iter()
        .filter_map(|l| l.log_decode::<DeviceClaimed>().ok())
        .map(|l| l.inner.data.deviceIndex)
        .collect();
    if let Some(o) = owner {
        let received = base
            .event_signature(DeviceTransferred::SIGNATURE_HASH)
            .topic3(o.into_word());
        indexes.extend(
            provider
                .get_logs(&received)
                .await
                .map_err(rpc)?
                .iter()
                .filter_map(|l| l.log_decode::<DeviceTransferred>().ok())
                .map(|l| l.inner.data.deviceIndex),
        );
    }
    indexes.sort_unstable();
    indexes.dedup();
    let mut out = Vec::with_capacity(indexes.len());
    for index in indexes {
        let d = show_device(chain, provider, index).await?;
        if owner.is_some_and(|o| o != d.owner) || model.is_some_and(|m| m != d.model_id) {
            continue;
        }
        out.push(d);
    }
    Ok(out)
}

/// A device transfer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transferred {
    /// The device.
    pub device_index: u64,
    /// The previous owner (the sender).
    pub from: Address,
    /// The new owner.
    pub to: Address,
    /// The transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Transfers a device the sender owns to `to`.
pub async fn transfer_device(
    chain: &Chain,
    provider: &DynProvider,
    from: Address,
    index: u64,
    to: Address,
) -> Result<Transferred> {
    if to.is_zero() {
        return Err(Error::Input {
            field: "--to",
            reason: "must not be the zero address".into(),
        });
    }
    let registry = UpdateRegistry::new(chain.registry(), provider);
    let (mined, _) = mined(
        "transferring the device",
        registry.transferDevice(index, to).send().await,
    )
    .await?;
    Ok(Transferred {
        device_index: index,
        from,
        to,
        mined,
    })
}
