//! Roles read from chain state at request time (never cached past the
//! request): a device's owner is the registry's `device(index).owner`; a
//! manufacturer's operator is `manufacturer(id).operator`; its signers are
//! the newest signer set the indexer mirrored for it, believed only when its
//! hash equals the registry's `manufacturer(id).signersHash` (so a lagging
//! or tampered mirror never grants the role). Everyone is an auditor.
//!
//! Anyone can sign in with a fresh key, so the reads are bounded: at most
//! [`MAX_CONCURRENT_ROLE_CALLS`] role calls run at once whatever the number
//! of sessions (the rest wait their turn), and the candidate lists have limits.

use std::sync::Arc;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::SolCall,
};
use otaledger_core::{bindings::registry::UpdateRegistry, follow::rpc::Rpc};
use serde::Serialize;
use sqlx::{AnyPool, Row as _};

use crate::{Error, Result};

/// Most role calls (`eth_call`s) in flight at once, for all sessions together.
pub const MAX_CONCURRENT_ROLE_CALLS: usize = 16;
/// Longest a role call waits for a slot; then the request is answered 503
/// rather than queueing without bound behind others.
pub const ROLE_CALL_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The registry's views through the indexer's RPC client.
#[derive(Debug, Clone)]
pub struct ChainRoles {
    rpc: Arc<Rpc>,
    registry: Address,
    calls: Arc<tokio::sync::Semaphore>,
}

/// A device's record on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Its owner (zero when unclaimed).
    pub owner: Address,
    /// Its model.
    pub model_id: u32,
    /// 0 unclaimed, 1 active, 2 deactivated.
    pub status: u8,
}

/// What an address is to one manufacturer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ManufacturerRole {
    /// The manufacturer.
    pub id: u32,
    /// It is the manufacturer's operator.
    pub operator: bool,
    /// It is in the manufacturer's current signer set.
    pub signer: bool,
}

impl ManufacturerRole {
    /// Operator or signer.
    pub fn any(&self) -> bool {
        self.operator || self.signer
    }
}

fn decode_err(during: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Follow {
        source: otaledger_core::Error::Rpc {
            during,
            reason: format!("undecodable return data: {e}"),
        },
    }
}

/// `keccak256(uint256(threshold) ‖ signers, each a 32-byte word)`, the
/// registry's `signersHash`.
pub fn signers_hash(signers: &[Address], threshold: u8) -> B256 {
    let mut words = Vec::with_capacity(32 * (signers.len() + 1));
    words.extend_from_slice(&U256::from(threshold).to_be_bytes::<32>());
    for s in signers {
        words.extend_from_slice(&[0u8; 12]);
        words.extend_from_slice(s.as_slice());
    }
    keccak256(words)
}

impl ChainRoles {
    /// Reads `registry` through `rpc`.
    pub fn new(rpc: Arc<Rpc>, registry: Address) -> Self {
        Self {
            rpc,
            registry,
            calls: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_ROLE_CALLS)),
        }
    }

    /// `eth_call` of `data` on the registry at the latest block, waiting for
    /// one of the [`MAX_CONCURRENT_ROLE_CALLS`] slots at most
    /// [`ROLE_CALL_QUEUE_WAIT`] ([`Error::Busy`] then).
    async fn call(&self, data: Vec<u8>) -> Result<Bytes> {
        let _slot = tokio::time::timeout(ROLE_CALL_QUEUE_WAIT, self.calls.acquire())
            .await
            .map_err(|_| Error::Busy {
                what: "chain role reads",
            })?
            .expect("the semaphore is never closed");
        Ok(self
            .rpc
            .call_latest(self.registry, Bytes::from(data))
            .await?)
    }

    /// `device(index)` now.
    pub async fn device(&self, index: u64) -> Result<DeviceRecord> {
        let out = self
            .call(UpdateRegistry::deviceCall { deviceIndex: index }.abi_encode())
            .await?;
        let d = UpdateRegistry::deviceCall::abi_decode_returns(&out)
            .map_err(|e| decode_err("device", e))?;
        Ok(DeviceRecord {
            owner: d.owner,
            model_id: d.modelId,
            status: d.status,
        })
    }

    /// What `who` is to manufacturer `id` now.
    pub async fn manufacturer(
        &self,
        pool: &AnyPool,
        id: u32,
        who: Address,
    ) -> Result<ManufacturerRole> {
        let out = self
            .call(UpdateRegistry::manufacturerCall { manufacturerId: id }.abi_encode())
            .await?;
        let m = UpdateRegistry::manufacturerCall::abi_decode_returns(&out)
            .map_err(|e| decode_err("manufacturer", e))?;
        let operator = m.operator != Address::ZERO && m.operator == who;
        let signer = match mirrored_signer_set(pool, id).await? {
            Some((signers, threshold)) => {
                signers_hash(&signers, threshold) == m.signersHash && signers.contains(&who)
            }
            None => false,
        };
        Ok(ManufacturerRole {
            id,
            operator,
            signer,
        })
    }
}

fn db(during: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Database { during, source }
}

/// The newest signer set the indexer mirrored for manufacturer `id`, in
/// registered order, with its threshold.
pub async fn mirrored_signer_set(pool: &AnyPool, id: u32) -> Result<Option<(Vec<Address>, u8)>> {
    let set = sqlx::query(
        "SELECT block_number, log_index, threshold FROM signer_sets WHERE manufacturer_id = $1 \
         ORDER BY block_number DESC, log_index DESC LIMIT 1",
    )
    .bind(i64::from(id))
    .fetch_optional(pool)
    .await
    .map_err(db("reading a signer set"))?;
    let Some(set) = set else { return Ok(None) };
    let e = db("reading a signer set");
    let (block, log, threshold): (i64, i64, i64) = (
        set.try_get(0).map_err(&e)?,
        set.try_get(1).map_err(&e)?,
        set.try_get(2).map_err(&e)?,
    );
    let members = sqlx::query(
        "SELECT signer FROM signer_set_members WHERE block_number = $1 AND log_index = $2 \
         ORDER BY position",
    )
    .bind(block)
    .bind(log)
    .fetch_all(pool)
    .await
    .map_err(&e)?;
    let mut signers = Vec::with_capacity(members.len());
    for r in members {
        let s: String = r.try_get(0).map_err(&e)?;
        match s.parse::<Address>() {
            Ok(a) => signers.push(a),
            Err(_) => return Ok(None),
        }
    }
    Ok(u8::try_from(threshold).ok().map(|t| (signers, t)))
}

/// Manufacturers the mirror connects to `who` (as operator in a registration
/// or update, or as a member of any signer set): the candidates whose role
/// [`ChainRoles::manufacturer`] then checks on chain; at most `limit`, lowest ids first.
pub async fn candidate_manufacturers(pool: &AnyPool, who: Address, limit: i64) -> Result<Vec<u32>> {
    let who = format!("{who:#x}");
    let rows = sqlx::query(
        "SELECT manufacturer_id FROM manufacturers WHERE operator = $1 \
         UNION SELECT manufacturer_id FROM manufacturer_updates WHERE operator = $2 \
         UNION SELECT manufacturer_id FROM signer_set_members WHERE signer = $3 \
         ORDER BY 1 LIMIT $4",
    )
    .bind(who.clone())
    .bind(who.clone())
    .bind(who)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db("finding manufacturers of an address"))?;
    rows.iter()
        .map(|r| {
            let id: i64 = r
                .try_get(0)
                .map_err(db("finding manufacturers of an address"))?;
            Ok(u32::try_from(id).unwrap_or(u32::MAX))
        })
        .collect()
}

/// Devices the mirror says `who` owns now (claimed by it and not
/// transferred away, or transferred to it last), at most `limit`: the
/// candidates whose ownership [`ChainRoles::device`] then checks on chain.
pub async fn candidate_devices(pool: &AnyPool, who: Address, limit: i64) -> Result<Vec<u64>> {
    let filter = crate::devices::DeviceFilter {
        owner: Some(format!("{who:#x}")),
        ..Default::default()
    };
    Ok(crate::devices::list(pool, &filter, None, limit)
        .await?
        .iter()
        .map(|d| d.device_index as u64)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signers_hash_is_threshold_then_padded_addresses() {
        let a = Address::repeat_byte(0x11);
        let mut expected = vec![0u8; 31];
        expected.push(2);
        expected.extend_from_slice(&[0u8; 12]);
        expected.extend_from_slice(a.as_slice());
        assert_eq!(signers_hash(&[a], 2), keccak256(expected));
    }
}
