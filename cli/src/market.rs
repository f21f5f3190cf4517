//! `purchase`: buying a release for devices, in ETH or an ERC-20.
//!
//! The manifest is read from the release's `ReleasePublished` event (the
//! market needs it in full); the payment is exactly `price × devices`.
//! For an ERC-20 release the market is approved for that amount first.

use alloy::{
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use otaledger_core::bindings::{
    market::UpdateMarket::{self, Purchased},
    registry::{IUpdateRegistry::Manifest, UpdateRegistry::ReleasePublished},
};
use serde::Serialize;

use crate::{
    Error, Result,
    chain::{Chain, Mined, mined},
};

alloy::sol! {
    /// The part of ERC-20 a purchase needs.
    #[sol(rpc)]
    interface IERC20 {
        function approve(address spender, uint256 amount) external returns (bool);
        function allowance(address owner, address spender) external view returns (uint256);
    }
}

/// The manifest of a published release, from its `ReleasePublished` event.
pub async fn published_manifest(
    chain: &Chain,
    provider: &DynProvider,
    release_id: B256,
) -> Result<Manifest> {
    let filter = Filter::new()
        .address(chain.registry())
        .from_block(chain.deployment.deployment_block)
        .event_signature(ReleasePublished::SIGNATURE_HASH)
        .topic1(release_id);
    let logs = provider.get_logs(&filter).await.map_err(|e| Error::Rpc {
        during: format!("looking up release {release_id}"),
        reason: e.to_string(),
    })?;
    logs.iter()
        .find_map(|l| l.log_decode::<ReleasePublished>().ok())
        .map(|l| l.inner.data.manifest)
        .ok_or_else(|| Error::NotFound {
            what: format!("release {release_id}"),
        })
}

/// What `purchase` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bought {
    /// The release.
    pub release_id: B256,
    /// The devices, ascending.
    pub devices: Vec<u64>,
    /// Amount paid.
    pub amount: U256,
    /// Payment token (zero: ETH).
    pub token: Address,
    /// The approval transaction, for an ERC-20 release whose allowance was short.
    pub approve: Option<Mined>,
    /// The purchase transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Buys `release_id` for `devices` (any order; sorted, duplicates refused).
/// `gift`: buy for devices of other owners (`purchaseFor`).
pub async fn purchase(
    chain: &Chain,
    provider: &DynProvider,
    buyer: Address,
    release_id: B256,
    mut devices: Vec<u64>,
    gift: bool,
) -> Result<Bought> {
    devices.sort_unstable();
    if devices.is_empty() {
        return Err(Error::Input {
            field: "--device",
            reason: "name at least one device index".into(),
        });
    }
    if let Some(w) = devices.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::Input {
            field: "--device",
            reason: format!("device {} named twice", w[0]),
        });
    }
    let manifest = published_manifest(chain, provider, release_id).await?;
    let amount = U256::from(manifest.price) * U256::from(devices.len());
    let token = manifest.paymentToken;
    let mut approve = None;
    if token != Address::ZERO {
        let erc20 = IERC20::new(token, provider);
        let allowance = erc20
            .allowance(buyer, chain.market())
            .call()
            .await
            .map_err(|e| crate::chain::contract_error("reading the token allowance", e))?;
        if allowance < amount {
            let (m, _) = mined(
                "approving the market",
                erc20.approve(chain.market(), amount).send().await,
            )
            .await?;
            approve = Some(m);
        }
    }
    let market = UpdateMarket::new(chain.market(), provider);
    let value = if token == Address::ZERO {
        amount
    } else {
        U256::ZERO
    };
    let sent = if gift {
        market
            .purchaseFor(manifest.into(), devices.clone())
            .value(value)
            .send()
            .await
    } else {
        market
            .purchase(manifest.into(), devices.clone())
            .value(value)
            .send()
            .await
    };
    let (mined, receipt) = mined("purchasing", sent).await?;
    let event = receipt
        .decoded_log::<Purchased>()
        .ok_or_else(|| Error::NotFound {
            what: "the Purchased event in the receipt".into(),
        })?;
    Ok(Bought {
        release_id,
        devices,
        amount: event.amount,
        token,
        approve,
        mined,
    })
}
