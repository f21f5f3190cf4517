//! `otaledger authority init`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use otaledger_cli::{
    authority::{self, DEFAULT_LOG_N},
    registry,
};
use serde::Serialize;

use super::{ChainArgs, MasterPasswordArgs, WalletArgs, print};

/// `otaledger authority …`.
#[derive(Debug, Args)]
pub(crate) struct AuthorityArgs {
    #[command(subcommand)]
    command: AuthorityCommand,
}

#[derive(Debug, Subcommand)]
enum AuthorityCommand {
    /// Create the CP-ABE authority: public parameters (added to IPFS, CID set on chain with
    /// --manufacturer) and the password-encrypted master key.
    Init {
        /// Authority directory (params.cpabe, master.json).
        #[arg(long, default_value = "authority", value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        master_password: MasterPasswordArgs,
        /// Block store directory [default: $OTALEDGER_HOME/ipfs or ~/.otaledger/ipfs].
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Publish the parameters' CID for this manufacturer (`setParamsCid`; needs --rpc-url and a wallet).
        #[arg(long, value_name = "ID")]
        manufacturer: Option<u32>,
        /// scrypt cost of the master key file (log2 N).
        #[arg(long, default_value_t = DEFAULT_LOG_N, value_parser = clap::value_parser!(u8).range(10..=20))]
        scrypt_log_n: u8,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitOutput {
    #[serde(flatten)]
    made: authority::Initialized,
    set_params_cid: Option<otaledger_cli::chain::Mined>,
}

/// Runs `otaledger authority …`.
pub(crate) async fn run(args: AuthorityArgs, json: bool) -> eyre::Result<()> {
    let AuthorityCommand::Init {
        dir,
        master_password,
        store,
        manufacturer,
        scrypt_log_n,
        chain,
        wallet,
    } = args.command;
    // Resolve everything that can fail before creating the authority.
    let on_chain = match manufacturer {
        Some(id) => {
            let chain = chain.resolve().await?;
            let provider = chain.signer(&wallet.signer()?)?;
            Some((id, chain, provider))
        }
        None => None,
    };
    let password = master_password.read(true)?;
    let store = match store {
        Some(s) => s,
        None => crate::ipfs::default_store_dir()?,
    };
    let made =
        tokio::task::spawn_blocking(move || authority::init(&dir, &password, &store, scrypt_log_n))
            .await??;
    let set_params_cid = match on_chain {
        Some((id, chain, provider)) => {
            Some(registry::set_params_cid(&chain, &provider, id, made.params_cid.clone()).await?)
        }
        None => None,
    };
    print(
        json,
        &InitOutput {
            made,
            set_params_cid,
        },
        |o| {
            let mut text = format!(
                "authority created\n  params  {} (cid {})\n  master  {} (encrypted; keep it and its password safe)",
                o.made.params.display(),
                o.made.params_cid,
                o.made.master.display()
            );
            if let Some(m) = &o.set_params_cid {
                text.push_str(&format!("\n  setParamsCid tx {} gas {}", m.tx, m.gas_used));
            }
            text
        },
    )
}
