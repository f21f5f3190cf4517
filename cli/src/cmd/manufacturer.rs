//! `otaledger manufacturer register | rotate-signers | update | show`.

use std::path::PathBuf;

use alloy::primitives::Address;
use clap::{Args, Subcommand};
use otaledger_cli::{
    approval::{self, Action},
    registry::{self, Registration},
};

use super::{ChainArgs, WalletArgs, print};

/// `otaledger manufacturer …`.
#[derive(Debug, Args)]
pub(crate) struct ManufacturerArgs {
    #[command(subcommand)]
    command: ManufacturerCommand,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum ManufacturerCommand {
    /// Register a manufacturer with an m-of-n release signer set.
    Register {
        /// Display name.
        #[arg(long)]
        name: String,
        /// A release signer's address; repeat for each (any order).
        #[arg(long = "signer", value_name = "ADDRESS", required = true)]
        signers: Vec<Address>,
        /// How many signers must approve a release.
        #[arg(long)]
        threshold: u8,
        /// Operator [default: the sender].
        #[arg(long, default_value_t = Address::ZERO)]
        operator: Address,
        /// Payee of earnings [default: the operator].
        #[arg(long, default_value_t = Address::ZERO)]
        payee: Address,
        /// CID of the CP-ABE public parameters (or set later with `authority init --manufacturer`).
        #[arg(long, default_value = "")]
        params_cid: String,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Write an approval request to replace the signer set (the current signers approve; the nonce is bound in).
    RotateSigners {
        /// Manufacturer id.
        #[arg(long)]
        id: u32,
        /// A new signer's address; repeat for each (any order).
        #[arg(long = "signer", value_name = "ADDRESS", required = true)]
        signers: Vec<Address>,
        /// How many of the new signers must approve.
        #[arg(long)]
        threshold: u8,
        /// The request file to write [default: rotate-signers.request.json].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Write an approval request to change the operator and payee (the nonce is bound in).
    Update {
        /// Manufacturer id.
        #[arg(long)]
        id: u32,
        /// The new operator.
        #[arg(long)]
        operator: Address,
        /// The new payee.
        #[arg(long)]
        payee: Address,
        /// The request file to write [default: update-manufacturer.request.json].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Show a manufacturer: operator, payee, current signer set.
    Show {
        /// Manufacturer id.
        #[arg(long)]
        id: u32,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

/// Runs `otaledger manufacturer …`.
pub(crate) async fn run(args: ManufacturerArgs, json: bool) -> eyre::Result<()> {
    match args.command {
        ManufacturerCommand::Register {
            name,
            signers,
            threshold,
            operator,
            payee,
            params_cid,
            chain,
            wallet,
        } => {
            let chain = chain.resolve().await?;
            let provider = chain.signer(&wallet.signer()?)?;
            let r = registry::register(
                &chain,
                &provider,
                Registration {
                    name,
                    operator,
                    payee,
                    signers,
                    threshold,
                    params_cid,
                },
            )
            .await?;
            print(json, &r, |r| {
                format!(
                    "manufacturer {} registered ({}-of-{} signers), operator {}\ntx {} gas {}",
                    r.manufacturer_id,
                    r.threshold,
                    r.signers.len(),
                    r.operator,
                    r.mined.tx,
                    r.mined.gas_used
                )
            })
        }
        ManufacturerCommand::RotateSigners {
            id,
            signers,
            threshold,
            out,
            chain,
        } => {
            let chain = chain.resolve().await?;
            let action = Action::RotateSigners { signers, threshold };
            let out = out.unwrap_or_else(|| super::approval::default_request(action.name()));
            let r = approval::request(&chain, &chain.reader()?, Some(id), action, &out).await?;
            super::approval::print_requested(json, &r)
        }
        ManufacturerCommand::Update {
            id,
            operator,
            payee,
            out,
            chain,
        } => {
            let chain = chain.resolve().await?;
            let action = Action::UpdateManufacturer { operator, payee };
            let out = out.unwrap_or_else(|| super::approval::default_request(action.name()));
            let r = approval::request(&chain, &chain.reader()?, Some(id), action, &out).await?;
            super::approval::print_requested(json, &r)
        }
        ManufacturerCommand::Show { id, chain } => {
            let chain = chain.resolve().await?;
            let m = registry::show_manufacturer(&chain, &chain.reader()?, id).await?;
            print(json, &m, |m| {
                format!(
                    "manufacturer {}\n  operator  {}\n  payee     {}\n  nonce     {}\n  signers   {}-of-{}: {}",
                    m.manufacturer_id,
                    m.operator,
                    m.payee,
                    m.nonce,
                    m.threshold,
                    m.signers.len(),
                    m.signers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        }
    }
}
