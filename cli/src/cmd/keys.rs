//! `otaledger keys issue`.

use std::path::PathBuf;

use alloy::primitives::B256;
use clap::{Args, Subcommand};
use otaledger_cli::{
    authority::{MASTER_FILE, load_master},
    device::load_leaves,
    keys,
    wallet::read_password_file,
};

use super::{ChainArgs, WalletArgs, print};

/// `otaledger keys …`.
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Issue one entitled device its key for a release (what the key service does per purchase),
    /// signed with the wallet as the key-service key.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// The release id.
    #[arg(long)]
    release: B256,
    /// The device's global index.
    #[arg(long)]
    device: u64,
    /// The batch's leaves.json (holds the device's public key).
    #[arg(long, value_name = "FILE")]
    leaves: PathBuf,
    /// The device's position in that batch.
    #[arg(long)]
    position: u64,
    /// A static attribute of the device besides `model:<M>`; repeat for more.
    #[arg(long = "attribute")]
    attributes: Vec<String>,
    /// The authority directory (master.json).
    #[arg(long, default_value = "authority", value_name = "DIR")]
    authority: PathBuf,
    /// File holding the master key's password.
    #[arg(long, value_name = "FILE")]
    master_password_file: PathBuf,
    /// Where to write the key delivery.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Runs `otaledger keys …`.
pub(crate) async fn run(args: KeysArgs, json: bool) -> eyre::Result<()> {
    let KeysCommand::Issue(a) = args.command;
    let chain = a.chain.resolve().await?;
    let key_service = a.wallet.signer()?;
    let leaves = load_leaves(&a.leaves)?;
    let leaf = leaves
        .iter()
        .find(|l| l.position == a.position)
        .ok_or_else(|| eyre::eyre!("--position {} is not in {}", a.position, a.leaves.display()))?;
    let password = read_password_file(&a.master_password_file)?;
    let master_path = a.authority.join(MASTER_FILE);
    let master =
        tokio::task::spawn_blocking(move || load_master(&master_path, &password)).await??;
    let issued = keys::issue(
        &chain,
        &chain.reader()?,
        &master,
        &key_service,
        a.release,
        a.device,
        &leaf.public_key,
        &a.attributes,
    )
    .await?;
    keys::store(&issued, &a.out)?;
    print(json, &issued, |i| {
        format!(
            "key for release {} issued to device {} ({}) with {:?}: {}",
            i.release_id,
            i.device_index,
            i.device,
            i.attributes,
            a.out.display()
        )
    })
}
