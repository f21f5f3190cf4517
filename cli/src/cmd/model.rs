//! `otaledger model define | raise-floor | show`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use otaledger_cli::{
    approval::{self, Action},
    registry,
};

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
    /// Write an approval request to raise a model's version floor (the manufacturer's signers approve).
    RaiseFloor {
        /// Model id.
        #[arg(long)]
        id: u32,
        /// The new floor (above the current one).
        #[arg(long)]
        min_version: u64,
        /// The request file to write [default: raise-floor.request.json].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        chain: ChainArgs,
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
        ModelCommand::RaiseFloor {
            id,
            min_version,
            out,
            chain,
        } => {
            let chain = chain.resolve().await?;
            let reader = chain.reader()?;
            let current = registry::show_model(&chain, &reader, id).await?;
            if min_version <= current.min_version {
                eyre::bail!(otaledger_cli::Error::Input {
                    field: "--min-version",
                    reason: format!(
                        "{min_version} is not above model {id}'s current floor {}",
                        current.min_version
                    ),
                });
            }
            let action = Action::RaiseFloor {
                model_id: id,
                min_version,
            };
            let out = out.unwrap_or_else(|| super::approval::default_request(action.name()));
            let r = approval::request(&chain, &reader, None, action, &out).await?;
            super::approval::print_requested(json, &r)
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
