//! `otaledger purchase`.

use alloy::primitives::B256;
use clap::Args;
use otaledger_cli::market;

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
    let bought = market::purchase(
        &chain,
        &provider,
        buyer.address(),
        a.release,
        a.devices,
        a.gift,
    )
    .await?;
    print(json, &bought, |b| {
        format!(
            "bought release {} for devices {:?}: {} {}\ntx {} gas {}",
            b.release_id,
            b.devices,
            b.amount,
            if b.token.is_zero() {
                "wei".to_owned()
            } else {
                format!("of token {}", b.token)
            },
            b.mined.tx,
            b.mined.gas_used
        )
    })
}
