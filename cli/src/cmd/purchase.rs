//! `otaledger purchase`, `refund` and `withdraw`.

use alloy::primitives::{Address, B256};
use clap::Args;
use otaledger_cli::market::{self, Payment};

use super::{ChainArgs, WalletArgs, print};

/// `otaledger purchase --release R --device I…`.
#[derive(Debug, Args)]
pub(crate) struct PurchaseArgs {
    /// The release id.
    #[arg(long)]
    release: B256,
    /// A device index; repeat for more.
    #[arg(long = "device", value_name = "INDEX", required = true)]
    devices: Vec<u64>,
    /// Buy as a gift for devices of other owners (`purchaseFor`).
    #[arg(long = "for")]
    gift: bool,
    /// The ERC-20 token you expect to pay in: refused if the release is priced otherwise.
    #[arg(long, value_name = "ADDRESS")]
    token: Option<Address>,
    /// Pay an ERC-20 release with an EIP-2612 permit signed by your key (one transaction, no `approve`).
    #[arg(long)]
    permit: bool,
    /// How long the permit stays valid, in seconds.
    #[arg(
        long,
        default_value_t = 3600,
        requires = "permit",
        value_name = "SECONDS"
    )]
    permit_ttl: u64,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Runs `otaledger purchase`.
pub(crate) async fn run(a: PurchaseArgs, json: bool) -> eyre::Result<()> {
    let chain = a.chain.resolve().await?;
    let buyer = a.wallet.signer()?;
    let provider = chain.signer(&buyer)?;
    let payment = if a.permit {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        Payment::Permit {
            key: &buyer,
            deadline: now.saturating_add(a.permit_ttl),
        }
    } else {
        Payment::Approve
    };
    let bought = market::purchase_with(
        &chain,
        &provider,
        buyer.address(),
        a.release,
        a.devices,
        a.gift,
        a.token,
        payment,
    )
    .await?;
    print(json, &bought, |b| {
        format!(
            "bought release {} for devices {:?}: {} {}{}\ntx {} gas {}",
            b.release_id,
            b.devices,
            b.amount,
            if b.token.is_zero() {
                "wei".to_owned()
            } else {
                format!("of token {}", b.token)
            },
            if b.permit { " (EIP-2612 permit)" } else { "" },
            b.mined.tx,
            b.mined.gas_used
        )
    })
}

/// `otaledger refund --release R --device I…`.
#[derive(Debug, Args)]
pub(crate) struct RefundArgs {
    /// The revoked release.
    #[arg(long)]
    release: B256,
    /// A device index you own; repeat for more.
    #[arg(long = "device", value_name = "INDEX", required = true)]
    devices: Vec<u64>,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Runs `otaledger refund`.
pub(crate) async fn refund(a: RefundArgs, json: bool) -> eyre::Result<()> {
    let chain = a.chain.resolve().await?;
    let provider = chain.signer(&a.wallet.signer()?)?;
    let r = market::refund(&chain, &provider, a.release, a.devices).await?;
    print(json, &r, |r| {
        format!(
            "refunded {} {} for devices {:?} of release {}\ntx {} gas {}",
            r.amount,
            if r.token.is_zero() {
                "wei".to_owned()
            } else {
                format!("of token {}", r.token)
            },
            r.devices,
            r.release_id,
            r.mined.tx,
            r.mined.gas_used
        )
    })
}

/// `otaledger withdraw --release R`.
#[derive(Debug, Args)]
pub(crate) struct WithdrawArgs {
    /// The settled release.
    #[arg(long)]
    release: B256,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Runs `otaledger withdraw`.
pub(crate) async fn withdraw(a: WithdrawArgs, json: bool) -> eyre::Result<()> {
    let chain = a.chain.resolve().await?;
    let provider = chain.signer(&a.wallet.signer()?)?;
    let w = market::withdraw(&chain, &provider, a.release).await?;
    print(json, &w, |w| {
        format!(
            "paid {} {} of release {} to {} (manufacturer {})\ntx {} gas {}",
            w.amount,
            if w.token.is_zero() {
                "wei".to_owned()
            } else {
                format!("of token {}", w.token)
            },
            w.release_id,
            w.payee,
            w.manufacturer_id,
            w.mined.tx,
            w.mined.gas_used
        )
    })
}
