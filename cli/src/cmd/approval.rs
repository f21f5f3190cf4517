//! `otaledger approval sign | submit`: the offline signatures of a
//! threshold-approved admin action and their submission (requests are written
//! by `manufacturer rotate-signers | update`, `model raise-floor` and
//! `release revoke`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use otaledger_cli::approval::{self, Requested};

use super::{ChainArgs, WalletArgs, print};

/// `otaledger approval …`.
#[derive(Debug, Args)]
pub(crate) struct ApprovalArgs {
    #[command(subcommand)]
    command: ApprovalCommand,
}

#[derive(Debug, Subcommand)]
enum ApprovalCommand {
    /// Sign an approval request (offline: one signer, one signature file).
    Sign {
        /// The approval request.
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
        /// Where to write the signature [default: <request dir>/<signer>.approval.sig.json].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Submit a request with a threshold of signature files (ordered by signer).
    Submit {
        /// The approval request.
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
        /// A signature file; repeat for each signer (any order).
        #[arg(long = "sig", value_name = "FILE", required = true)]
        sigs: Vec<PathBuf>,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

/// Runs `otaledger approval …`.
pub(crate) async fn run(args: ApprovalArgs, json: bool) -> eyre::Result<()> {
    match args.command {
        ApprovalCommand::Sign {
            request,
            out,
            wallet,
        } => {
            let key = wallet.signer()?;
            let signed = approval::sign(&request, &key, out)?;
            print(json, &signed, |s| {
                format!(
                    "signed {} (digest {}) as {}\nsignature: {}",
                    s.action,
                    s.digest,
                    s.signer,
                    s.signature_file.display()
                )
            })
        }
        ApprovalCommand::Submit {
            request,
            sigs,
            chain,
            wallet,
        } => {
            let chain = chain.resolve().await?;
            let provider = chain.signer(&wallet.signer()?)?;
            let done = approval::submit(&chain, &provider, &request, &sigs).await?;
            print(json, &done, |d| {
                format!(
                    "{} of manufacturer {} approved by {}\ntx {} block {} gas {}",
                    d.action,
                    d.manufacturer_id,
                    d.signers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    d.mined.tx,
                    d.mined.block,
                    d.mined.gas_used
                )
            })
        }
    }
}

/// Prints a written request with the next step.
pub(crate) fn print_requested(json: bool, r: &Requested) -> eyre::Result<()> {
    print(json, r, |r| {
        format!(
            "wrote the {} request {} (manufacturer {}{}), digest {}\nnext: {} signers run `otaledger approval sign --request {}`, then `otaledger approval submit --request {} --sig …`",
            r.action,
            r.request.display(),
            r.manufacturer_id,
            r.nonce.map(|n| format!(", nonce {n}")).unwrap_or_default(),
            r.digest,
            r.threshold,
            r.request.display(),
            r.request.display()
        )
    })
}

/// The default request file name of an action.
pub(crate) fn default_request(action: &str) -> PathBuf {
    Path::new(&format!("{action}.request.json")).to_owned()
}
