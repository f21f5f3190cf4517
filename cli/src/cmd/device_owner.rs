//! `otaledger device transfer | show | list`: a device owner's commands.

use alloy::primitives::Address;
use clap::Subcommand;
use otaledger_cli::registry;

use super::{ChainArgs, WalletArgs, print};

/// The owner's device subcommands (flattened into `otaledger device …`).
#[derive(Debug, Subcommand)]
pub(crate) enum OwnerCommand {
    /// Transfer a device you own to a new owner.
    Transfer {
        /// The device's index.
        #[arg(long)]
        device: u64,
        /// The new owner.
        #[arg(long)]
        to: Address,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Show a device: owner, model, status.
    Show {
        /// The device's index.
        #[arg(long)]
        device: u64,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// List claimed devices, optionally only an owner's and of one model.
    List {
        /// Only devices this account owns now.
        #[arg(long)]
        owner: Option<Address>,
        /// Only devices of this model.
        #[arg(long)]
        model: Option<u32>,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

fn line(d: &registry::DeviceInfo) -> String {
    format!(
        "device {}: owner {} model {} {}",
        d.device_index, d.owner, d.model_id, d.status
    )
}

/// Runs an owner's device subcommand.
pub(crate) async fn run(c: OwnerCommand, json: bool) -> eyre::Result<()> {
    match c {
        OwnerCommand::Transfer {
            device,
            to,
            chain,
            wallet,
        } => {
            let chain = chain.resolve().await?;
            let sender = wallet.signer()?;
            let provider = chain.signer(&sender)?;
            let t =
                registry::transfer_device(&chain, &provider, sender.address(), device, to).await?;
            print(json, &t, |t| {
                format!(
                    "device {} transferred from {} to {}\ntx {} gas {}",
                    t.device_index, t.from, t.to, t.mined.tx, t.mined.gas_used
                )
            })
        }
        OwnerCommand::Show { device, chain } => {
            let chain = chain.resolve().await?;
            let d = registry::show_device(&chain, &chain.reader()?, device).await?;
            print(json, &d, line)
        }
        OwnerCommand::List {
            owner,
            model,
            chain,
        } => {
            let chain = chain.resolve().await?;
            let list = registry::list_devices(&chain, &chain.reader()?, owner, model).await?;
            print(json, &list, |l| {
                if l.is_empty() {
                    "no devices".to_owned()
                } else {
                    l.iter().map(line).collect::<Vec<_>>().join("\n")
                }
            })
        }
    }
}
