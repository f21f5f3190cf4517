//! Argument parsing and printing for the manufacturer and owner commands; the
//! logic is in the `otaledger_cli` library.

pub(crate) mod approval;
pub(crate) mod authority;
pub(crate) mod device;
pub(crate) mod device_owner;
pub(crate) mod keys;
pub(crate) mod manufacturer;
pub(crate) mod model;
pub(crate) mod purchase;
pub(crate) mod release;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use otaledger_cli::{
    chain::{Chain, ChainOptions},
    wallet::WalletOptions,
};
use serde::Serialize;

/// `--rpc-url`, `--chain`, `--deployments`, as Foundry spells them.
#[derive(Debug, Clone, Args)]
pub(crate) struct ChainArgs {
    /// JSON-RPC endpoint.
    #[arg(long, env = "ETH_RPC_URL", value_name = "URL")]
    rpc_url: Option<url::Url>,
    /// Chain id (offline commands need it when there is no --rpc-url; checked against the node otherwise).
    #[arg(long, value_name = "ID")]
    chain: Option<u64>,
    /// Directory of `<chain-id>.json` deployment files.
    #[arg(long, default_value = "deployments", value_name = "DIR")]
    deployments: PathBuf,
}

impl ChainArgs {
    pub(crate) async fn resolve(&self) -> eyre::Result<Chain> {
        Ok(ChainOptions {
            rpc_url: self.rpc_url.clone(),
            chain: self.chain,
            deployments: self.deployments.clone(),
        }
        .resolve()
        .await?)
    }
}

/// `--private-key`, or `--keystore` with `--password-file`, as Foundry spells them.
#[derive(Debug, Clone, Args)]
pub(crate) struct WalletArgs {
    /// Raw private key (hex); read from the environment so it stays out of shell history.
    #[arg(
        long,
        env = "OTALEDGER_PRIVATE_KEY",
        hide_env_values = true,
        value_name = "HEX"
    )]
    private_key: Option<String>,
    /// Encrypted JSON keystore (the format `cast wallet new` writes).
    #[arg(
        long,
        env = "ETH_KEYSTORE",
        value_name = "FILE",
        conflicts_with = "private_key"
    )]
    keystore: Option<PathBuf>,
    /// File holding the keystore password.
    #[arg(long, value_name = "FILE", requires = "keystore")]
    password_file: Option<PathBuf>,
    /// The keystore password (from the environment only).
    #[arg(long, env = "ETH_PASSWORD", hide_env_values = true, hide = true)]
    password: Option<String>,
}

impl WalletArgs {
    pub(crate) fn signer(&self) -> eyre::Result<alloy::signers::local::PrivateKeySigner> {
        Ok(WalletOptions {
            private_key: self.private_key.clone(),
            keystore: self.keystore.clone(),
            password_file: self.password_file.clone(),
            password: self.password.clone(),
        }
        .signer()?)
    }
}

/// The CP-ABE master key's password: `--master-password-file`, else
/// `OTALEDGER_MASTER_PASSWORD`, else a prompt on the terminal.
#[derive(Debug, Clone, Args)]
pub(crate) struct MasterPasswordArgs {
    /// File holding the master key's password [default: $OTALEDGER_MASTER_PASSWORD, else asked on the terminal].
    #[arg(long, value_name = "FILE")]
    master_password_file: Option<PathBuf>,
    /// The master key's password (from the environment only).
    #[arg(
        long,
        env = "OTALEDGER_MASTER_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    master_password: Option<String>,
}

impl MasterPasswordArgs {
    /// The password; `new` asks twice on a terminal (a new master key's password).
    pub(crate) fn read(&self, new: bool) -> eyre::Result<String> {
        let what = if new {
            "the new master key"
        } else {
            "the master key"
        };
        Ok(otaledger_cli::wallet::password(
            otaledger_cli::wallet::PasswordFrom {
                file: self.master_password_file.as_deref(),
                value: self.master_password.as_deref(),
                flag: "--master-password-file",
                env: "OTALEDGER_MASTER_PASSWORD",
                what,
            },
            new,
        )?)
    }
}

/// Prints `value` as one line of JSON, or `text` for people.
pub(crate) fn print<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> eyre::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, value)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", text(value))?;
    }
    Ok(())
}

/// A progress bar on stderr, only on a terminal and without `--json`.
pub(crate) fn progress_bar(json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>10} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
