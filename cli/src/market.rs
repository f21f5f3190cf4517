//! `purchase`: buying a release for devices, in ETH or an ERC-20.
//!
//! The manifest is read from the release's `ReleasePublished` event (the
//! market needs it in full); the payment is exactly `price × devices`.
//! For an ERC-20 release the market is approved for that amount first, or
//! (`--permit`) the buyer signs an EIP-2612 permit that the market applies in
//! the purchase transaction itself. Also `refund` (a release revoked inside its
//! refund window) and `withdraw` (a settled release's escrow to the payee).

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

    /// The part of EIP-2612 a permit purchase needs.
    #[sol(rpc)]
    interface IERC20Permit {
        function nonces(address owner) external view returns (uint256);
        function DOMAIN_SEPARATOR() external view returns (bytes32);
    }

    /// EIP-2612's typed message.
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}

/// How an ERC-20 purchase pays.
#[derive(Debug, Clone, Copy)]
pub enum Payment<'a> {
    /// `approve` the market first when the allowance is short (two transactions).
    Approve,
    /// Sign an EIP-2612 permit with the buyer's key, valid until `deadline`
    /// (unix seconds); one transaction.
    Permit {
        /// The buyer's key (signs the permit).
        key: &'a alloy::signers::local::PrivateKeySigner,
        /// The permit's deadline.
        deadline: u64,
    },
}

/// An EIP-2612 permit of `value` for `spender` signed by `key` on `token`.
pub async fn sign_permit(
    provider: &DynProvider,
    token: Address,
    key: &alloy::signers::local::PrivateKeySigner,
    spender: Address,
    value: U256,
    deadline: u64,
) -> Result<otaledger_core::bindings::market::IUpdateMarket::Permit> {
    use alloy::{primitives::keccak256, signers::SignerSync, sol_types::SolStruct};
    let t = IERC20Permit::new(token, provider);
    let not_permit = |e: alloy::contract::Error| Error::Input {
        field: "--permit",
        reason: format!("token {token} does not implement EIP-2612 permits ({e})"),
    };
    let nonce = t.nonces(key.address()).call().await.map_err(not_permit)?;
    let separator = t.DOMAIN_SEPARATOR().call().await.map_err(not_permit)?;
    let message = Permit {
        owner: key.address(),
        spender,
        value,
        nonce,
        deadline: U256::from(deadline),
    };
    let mut preimage = Vec::with_capacity(66);
    preimage.extend_from_slice(b"\x19\x01");
    preimage.extend_from_slice(separator.as_slice());
    preimage.extend_from_slice(message.eip712_hash_struct().as_slice());
    let digest = keccak256(&preimage);
    let sig = key.sign_hash_sync(&digest).map_err(|e| Error::Input {
        field: "--permit",
        reason: format!("signing the permit failed: {e}"),
    })?;
    Ok(otaledger_core::bindings::market::IUpdateMarket::Permit {
        value,
        deadline: U256::from(deadline),
        v: 27 + u8::from(sig.v()),
        r: sig.r().into(),
        s: sig.s().into(),
    })
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
    /// Whether the market was approved with an EIP-2612 permit in the purchase itself.
    pub permit: bool,
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
    devices: Vec<u64>,
    gift: bool,
) -> Result<Bought> {
    purchase_with(
        chain,
        provider,
        buyer,
        release_id,
        devices,
        gift,
        None,
        Payment::Approve,
    )
    .await
}

/// Sorts device indexes and refuses an empty list or duplicates.
fn ascending_devices(mut devices: Vec<u64>) -> Result<Vec<u64>> {
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
    Ok(devices)
}

/// [`purchase`] with a choice of ERC-20 payment and, with `expect_token`, a
/// check that the release is priced in that token (zero: ETH).
#[allow(clippy::too_many_arguments)]
pub async fn purchase_with(
    chain: &Chain,
    provider: &DynProvider,
    buyer: Address,
    release_id: B256,
    devices: Vec<u64>,
    gift: bool,
    expect_token: Option<Address>,
    payment: Payment<'_>,
) -> Result<Bought> {
    let devices = ascending_devices(devices)?;
    let manifest = published_manifest(chain, provider, release_id).await?;
    let amount = U256::from(manifest.price) * U256::from(devices.len());
    let token = manifest.paymentToken;
    if let Some(expected) = expect_token
        && expected != token
    {
        return Err(Error::Input {
            field: "--token",
            reason: format!(
                "release {release_id} is priced in {}, not {expected}",
                if token.is_zero() {
                    "ETH".to_owned()
                } else {
                    format!("token {token}")
                }
            ),
        });
    }
    let mut approve = None;
    let market = UpdateMarket::new(chain.market(), provider);
    if let Payment::Permit { key, deadline } = payment {
        if token.is_zero() {
            return Err(Error::Input {
                field: "--permit",
                reason: format!(
                    "release {release_id} is priced in ETH; permits are for ERC-20 tokens"
                ),
            });
        }
        let permit = sign_permit(provider, token, key, chain.market(), amount, deadline).await?;
        let sent = if gift {
            market
                .purchaseForWithPermit(manifest.into(), devices.clone(), permit)
                .send()
                .await
        } else {
            market
                .purchaseWithPermit(manifest.into(), devices.clone(), permit)
                .send()
                .await
        };
        let (mined, receipt) = mined("purchasing with a permit", sent).await?;
        let event = receipt
            .decoded_log::<Purchased>()
            .ok_or_else(|| Error::NotFound {
                what: "the Purchased event in the receipt".into(),
            })?;
        return Ok(Bought {
            release_id,
            devices,
            amount: event.amount,
            token,
            approve: None,
            permit: true,
            mined,
        });
    }
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
        permit: false,
        mined,
    })
}

/// What `refund` paid back.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundPaid {
    /// The release.
    pub release_id: B256,
    /// The devices, ascending.
    pub devices: Vec<u64>,
    /// Amount refunded.
    pub amount: U256,
    /// Payment token (zero: ETH).
    pub token: Address,
    /// The transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Claims the refund of a release revoked inside its refund window for the sender's devices.
pub async fn refund(
    chain: &Chain,
    provider: &DynProvider,
    release_id: B256,
    devices: Vec<u64>,
) -> Result<RefundPaid> {
    let devices = ascending_devices(devices)?;
    let manifest = published_manifest(chain, provider, release_id).await?;
    let token = manifest.paymentToken;
    let market = UpdateMarket::new(chain.market(), provider);
    let (mined, receipt) = mined(
        "claiming the refund",
        market
            .claimRefund(manifest.into(), devices.clone())
            .send()
            .await,
    )
    .await?;
    let event = receipt
        .decoded_log::<UpdateMarket::Refunded>()
        .ok_or_else(|| Error::NotFound {
            what: "the Refunded event in the receipt".into(),
        })?;
    Ok(RefundPaid {
        release_id,
        devices,
        amount: event.amount,
        token,
        mined,
    })
}

/// What `withdraw` paid out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WithdrawPaid {
    /// The release.
    pub release_id: B256,
    /// The manufacturer.
    pub manufacturer_id: u32,
    /// Who was paid (the manufacturer's payee).
    pub payee: Address,
    /// Amount paid.
    pub amount: U256,
    /// Payment token (zero: ETH).
    pub token: Address,
    /// The transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Pays a settled release's escrow to its manufacturer's payee (anyone may send it).
pub async fn withdraw(
    chain: &Chain,
    provider: &DynProvider,
    release_id: B256,
) -> Result<WithdrawPaid> {
    let manifest = published_manifest(chain, provider, release_id).await?;
    let token = manifest.paymentToken;
    let market = UpdateMarket::new(chain.market(), provider);
    let (mined, receipt) = mined(
        "withdrawing the earnings",
        market.withdraw(manifest.into()).send().await,
    )
    .await?;
    let event = receipt
        .decoded_log::<UpdateMarket::Withdrawn>()
        .ok_or_else(|| Error::NotFound {
            what: "the Withdrawn event in the receipt".into(),
        })?;
    Ok(WithdrawPaid {
        release_id,
        manufacturer_id: event.manufacturerId,
        payee: event.payee,
        amount: event.amount,
        token,
        mined,
    })
}
