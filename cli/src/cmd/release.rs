//! `otaledger release create | sign | publish | revoke | show | list`.

use std::path::PathBuf;

use alloy::primitives::{Address, B256};
use clap::{Args, Subcommand};
use otaledger_cli::{
    approval::{self, Action},
    release::{self, CreateOptions, Stage},
};
use otaledger_core::bundle::{ReleaseTarget, limits::DEFAULT_SEGMENT_SIZE};

use eyre::WrapErr as _;

use super::{ChainArgs, WalletArgs, print, progress_bar};

/// `otaledger release …`.
#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    #[command(subcommand)]
    command: ReleaseCommand,
}

#[derive(Debug, Subcommand)]
enum ReleaseCommand {
    /// Encrypt an image into a bundle, add it to the local IPFS store, write the unsigned manifest.json.
    Create(CreateArgs),
    /// Sign a manifest.json (offline: one signer, one signature file).
    Sign(SignArgs),
    /// Publish a manifest with a threshold of signature files.
    Publish(PublishArgs),
    /// Revoke a release: write an approval request for the signers, or `--emergency` (the operator alone, now).
    Revoke {
        /// The release id.
        #[arg(long)]
        release: B256,
        /// Why (recorded in the event).
        #[arg(long)]
        reason: String,
        /// Revoke now as the manufacturer's operator, without signatures (`emergencyRevoke`).
        #[arg(long)]
        emergency: bool,
        /// The request file to write [default: revoke-release.request.json].
        #[arg(long, value_name = "FILE", conflicts_with = "emergency")]
        out: Option<PathBuf>,
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// List a model's published releases with their status.
    List {
        /// Model id.
        #[arg(long)]
        model: u32,
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Show a published release: manifest and status.
    Show {
        /// The release id.
        #[arg(long)]
        release: B256,
        #[command(flatten)]
        chain: ChainArgs,
    },
}

#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
struct CreateArgs {
    /// Model id.
    #[arg(long)]
    model: u32,
    /// Version (must be above the model's latest on chain when published).
    #[arg(long)]
    version: u64,
    /// The firmware image.
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// CP-ABE policy [default: "model:<M>" and "release:<M>/<V>"].
    #[arg(long)]
    policy: Option<String>,
    /// Price per device in wei (or the token's smallest unit).
    #[arg(long, default_value_t = 0)]
    price: u128,
    /// ERC-20 token to pay in [default: ETH].
    #[arg(long, default_value_t = Address::ZERO)]
    token: Address,
    /// When the release stops being publishable and buyable: a unix time, or a duration from
    /// now such as `90d` or `12h`.
    #[arg(long, default_value = "365d", value_parser = parse_expiry)]
    expiry: u64,
    /// SHA-256 of the release metadata document (notes, SBOM, provenance).
    #[arg(long, default_value_t = B256::ZERO)]
    metadata_hash: B256,
    /// The authority's CP-ABE public parameters.
    #[arg(long, default_value = "authority/params.cpabe", value_name = "FILE")]
    params: PathBuf,
    /// Output directory for bundle.bin and manifest.json [default: release-<M>-<V>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Block store directory [default: $OTALEDGER_HOME/ipfs or ~/.otaledger/ipfs].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Plaintext bytes per bundle segment.
    #[arg(long, default_value_t = DEFAULT_SEGMENT_SIZE)]
    segment_size: u32,
    /// Also add the bundle to this Kubo node (its HTTP RPC API, e.g. http://127.0.0.1:5001) and
    /// pin it there; refused if the node stores it under another CID than the manifest names
    /// (its Import settings differ from kubo-v1).
    #[arg(long, value_name = "URL")]
    api: Option<String>,
    /// `Authorization` header value for `--api` (e.g. `Basic …` for an IPFS Cluster proxy).
    #[arg(long, value_name = "VALUE", requires = "api")]
    api_auth: Option<String>,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Debug, Args)]
struct SignArgs {
    /// The manifest to sign.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// Where to write the signature [default: <manifest dir>/<signer>.sig.json].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The bundle the manifest names: checked first (size, SHA-256, the header's chain,
    /// registry, model, version and policy against the manifest's).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    #[command(flatten)]
    wallet: WalletArgs,
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// The manifest to publish.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// A signature file; repeat for each signer (any order).
    #[arg(long = "sig", value_name = "FILE", required = true)]
    sigs: Vec<PathBuf>,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// `--expiry`: a unix time, or `<n>d` / `<n>h` from now.
fn parse_expiry(text: &str) -> Result<u64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let relative = |n: &str, unit: u64| {
        n.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .and_then(|d| d.checked_add(now))
            .ok_or_else(|| format!("{text:?} is not a number of days or hours"))
    };
    if let Some(n) = text.strip_suffix('d') {
        return relative(n, 86_400);
    }
    if let Some(n) = text.strip_suffix('h') {
        return relative(n, 3_600);
    }
    let at: u64 = text
        .parse()
        .map_err(|_| format!("{text:?} is neither a unix time nor a duration like 90d"))?;
    if at <= now {
        return Err(format!("{at} is not in the future (now is {now})"));
    }
    Ok(at)
}

/// Runs `otaledger release …`.
pub(crate) async fn run(args: ReleaseArgs, json: bool) -> eyre::Result<()> {
    match args.command {
        ReleaseCommand::Create(a) => create(a, json).await,
        ReleaseCommand::Sign(a) => {
            let key = a.wallet.signer()?;
            let signed = release::sign(&a.manifest, &key, a.out, a.bundle.as_deref())?;
            print(json, &signed, |s| {
                format!(
                    "signed release {} as {}\nsignature: {}",
                    s.release_id,
                    s.signer,
                    s.signature_file.display()
                )
            })
        }
        ReleaseCommand::Revoke {
            release,
            reason,
            emergency,
            out,
            chain,
            wallet,
        } => {
            let chain = chain.resolve().await?;
            if emergency {
                let provider = chain.signer(&wallet.signer()?)?;
                let mined = approval::emergency_revoke(&chain, &provider, release, reason).await?;
                #[derive(serde::Serialize)]
                #[serde(rename_all = "camelCase")]
                struct Revoked {
                    release_id: B256,
                    emergency: bool,
                    #[serde(flatten)]
                    mined: otaledger_cli::chain::Mined,
                }
                let r = Revoked {
                    release_id: release,
                    emergency: true,
                    mined,
                };
                return print(json, &r, |r| {
                    format!(
                        "release {} revoked (emergency)\ntx {} gas {}",
                        r.release_id, r.mined.tx, r.mined.gas_used
                    )
                });
            }
            let action = Action::RevokeRelease {
                release_id: release,
                reason,
            };
            let out = out.unwrap_or_else(|| super::approval::default_request(action.name()));
            let r = approval::request(&chain, &chain.reader()?, None, action, &out).await?;
            super::approval::print_requested(json, &r)
        }
        ReleaseCommand::List { model, chain } => {
            let chain = chain.resolve().await?;
            let list = release::list(&chain, &chain.reader()?, model).await?;
            print(json, &list, |list| {
                if list.is_empty() {
                    return format!("model {model} has no published releases");
                }
                list.iter()
                    .map(|r| {
                        format!(
                            "{} version {} price {} {}{}",
                            r.release_id,
                            r.version,
                            r.price,
                            if r.payment_token.is_zero() {
                                "wei".to_owned()
                            } else {
                                format!("token {}", r.payment_token)
                            },
                            r.revoked_at
                                .map(|t| format!(" (revoked at {t})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        ReleaseCommand::Show { release, chain } => {
            let chain = chain.resolve().await?;
            let info = release::show(&chain, &chain.reader()?, release).await?;
            print(json, &info, |r| {
                format!(
                    "release {}: model {} version {}\n  bundle   {} ({} bytes, sha256 {})\n  image    sha256 {}\n  price    {} ({})\n  expiry   {}\n  status   published at {}{}",
                    r.release_id,
                    r.model_id,
                    r.version,
                    r.bundle_cid,
                    r.bundle_size,
                    r.bundle_sha256,
                    r.image_sha256,
                    r.price,
                    if r.payment_token.is_zero() {
                        "wei".to_owned()
                    } else {
                        format!("token {}", r.payment_token)
                    },
                    r.expiry,
                    r.published_at,
                    r.revoked_at
                        .map(|t| format!(", revoked at {t}"))
                        .unwrap_or_default()
                )
            })
        }
        ReleaseCommand::Publish(a) => {
            let chain = a.chain.resolve().await?;
            let sender = a.wallet.signer()?;
            let published = release::publish(&chain, &sender, &a.manifest, &a.sigs).await?;
            print(json, &published, |p| {
                format!(
                    "published release {} (model {} version {}) signed by {}\ntx {} block {} gas {}",
                    p.release_id,
                    p.model_id,
                    p.version,
                    p.signers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    p.mined.tx,
                    p.mined.block,
                    p.mined.gas_used
                )
            })
        }
    }
}

async fn create(a: CreateArgs, json: bool) -> eyre::Result<()> {
    let chain = a.chain.resolve().await?;
    let store = match a.store {
        Some(s) => s,
        None => crate::ipfs::default_store_dir()?,
    };
    let (api, api_auth) = (a.api.clone(), a.api_auth.clone());
    let opts = CreateOptions {
        target: ReleaseTarget {
            chain_id: chain.chain_id(),
            registry: chain.registry(),
            model_id: a.model,
            version: a.version,
        },
        image: a.image,
        policy: a.policy,
        price: a.price,
        token: a.token,
        expiry: a.expiry,
        metadata_hash: a.metadata_hash,
        params: a.params,
        out_dir: a
            .out
            .unwrap_or_else(|| format!("release-{}-{}", a.model, a.version).into()),
        store,
        segment_size: a.segment_size,
    };
    let bar = progress_bar(json);
    let bar2 = bar.clone();
    let created = tokio::task::spawn_blocking(move || {
        let mut stage_seen = None;
        release::create(&opts, &mut |stage, done, total| {
            if let Some(b) = &bar2 {
                if stage_seen != Some(stage) {
                    stage_seen = Some(stage);
                    b.set_message(match stage {
                        Stage::Encrypting => "encrypt",
                        Stage::Importing => "ipfs add",
                    });
                    b.set_length(total);
                }
                b.set_position(done);
            }
        })
    })
    .await??;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // The bundle on the manufacturer's Kubo node, under exactly the manifest's CID.
    let pinned_on = match &api {
        Some(api) => {
            let mut kubo =
                otaledger_ipfs::KuboClient::new(api).wrap_err_with(|| format!("--api {api}"))?;
            if let Some(auth) = &api_auth {
                kubo = kubo.with_authorization(auth.clone());
            }
            let mut params = otaledger_ipfs::KuboAddParams::from_import(
                &otaledger_ipfs::ImportOptions::profile(otaledger_ipfs::Profile::KuboV1),
            );
            params.pin = true;
            let added = kubo.add(&created.bundle, &params).await.wrap_err_with(|| {
                format!(
                    "adding {} through the Kubo API at {api}",
                    created.bundle.display()
                )
            })?;
            if added.cid.to_string() != created.cid {
                eyre::bail!(
                    "the Kubo node at {api} stored the bundle as {} but the manifest names {}: \
                     its Import settings differ from kubo-v1 (CIDv1, raw leaves, 256 KiB chunks), \
                     so gateways asked for the manifest's CID would not find it there",
                    added.cid,
                    created.cid
                );
            }
            Some(api.clone())
        }
        None => None,
    };
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Output<'a> {
        #[serde(flatten)]
        created: &'a release::Created,
        /// The Kubo node the bundle was added to and pinned on, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        pinned_on: Option<String>,
    }
    let out = Output {
        created: &created,
        pinned_on,
    };
    print(json, &out, |o| {
        let c = o.created;
        let pinned = o
            .pinned_on
            .as_ref()
            .map(|api| format!("\n  pinned   on the Kubo node at {api}"))
            .unwrap_or_default();
        format!(
            "release {}\n  policy   {}\n  bundle   {} ({} bytes, cid {}){pinned}\n  manifest {} (unsigned: `otaledger release sign --manifest {}`)",
            c.release_id,
            c.policy,
            c.bundle.display(),
            c.bundle_size,
            c.cid,
            c.manifest.display(),
            c.manifest.display()
        )
    })
}
