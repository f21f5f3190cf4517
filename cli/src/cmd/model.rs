//! `otaledger model define | show`.

use clap::{Args, Subcommand};
use otaledger_cli::registry;

use super::{ChainArgs, WalletArgs, print};

/// `otaledger model …`.
#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Define a model (product line); the sender must be the manufacturer's operator.
    Define {
        /// Manufacturer id.
        #[arg(long)]
        manufacturer: u32,
        /// Model name.
        #[arg(long)]
        name: String,
        /// Initial version floor.
        #[arg(long, default_value_t = 0)]
        min_version: u64,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Show a model: manufacturer, latest version, floor.
    Show {
        /// Model id.
        #[arg(long)]
        id: u32,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

/// Runs `otaledger model …`.
pub(crate) async fn run(args: ModelArgs, json: bool) -> eyre::Result<()> {
    match args.command {
        ModelCommand::Define {
            manufacturer,
            name,
            min_version,
            chain,
            wallet,
        } => {
            let chain = chain.resolve().await?;
            let provider = chain.signer(&wallet.signer()?)?;
            let d =
                registry::define_model(&chain, &provider, manufacturer, name, min_version).await?;
            print(json, &d, |d| {
                format!(
                    "model {} defined for manufacturer {}\ntx {} gas {}",
                    d.model_id, d.manufacturer_id, d.mined.tx, d.mined.gas_used
                )
            })
        }
        ModelCommand::Show { id, chain } => {
            let chain = chain.resolve().await?;
            let m = registry::show_model(&chain, &chain.reader()?, id).await?;
            print(json, &m, |m| {
                format!(
                    "model {} of manufacturer {}: latest version {}, floor {}",
                    m.model_id, m.manufacturer_id, m.latest_version, m.min_version
                )
            })
        }
    }
}
