//! `otaledger ipfs …`: add files (to the local store or a Kubo node), fetch them verified from
//! gateways, and move DAGs in and out of the store as CAR files.
//!
//! Flags follow Kubo's `ipfs add` where Kubo has the same thing, so habits carry over.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use eyre::{WrapErr, bail, eyre};
use otaledger_ipfs::car::CarReader;
use otaledger_ipfs::fetch::{FetchMode, FetchProgress};
use otaledger_ipfs::traverse::{DagScope, export_car};
use otaledger_ipfs::{
    Blockstore, Cid, FetchOptions, ImportOptions, KuboAddParams, KuboClient, NullSink, Profile,
    fetch, import_path, parse_chunker, probe_size,
};
use serde::Serialize;

/// `otaledger ipfs` subcommands.
#[derive(Debug, Args)]
pub(crate) struct IpfsArgs {
    #[command(subcommand)]
    command: IpfsCommand,
}

#[derive(Debug, Subcommand)]
enum IpfsCommand {
    /// Add a file (as `ipfs add`): print its CID and store its blocks locally or on a Kubo node.
    Add(AddArgs),
    /// Fetch a file by CID from untrusted gateways, verifying every block.
    Get(GetArgs),
    /// CAR files: export a DAG from the store, import one into it.
    Car(CarArgs),
}

/// Where blocks live: the local store, unless `--api` names a Kubo node.
#[derive(Debug, Args)]
pub(crate) struct StoreArg {
    /// Block store directory [default: $OTALEDGER_HOME/ipfs or ~/.otaledger/ipfs; blocks go to DIR/blocks].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

impl StoreArg {
    fn open(&self) -> eyre::Result<Blockstore> {
        let dir = match &self.store {
            Some(dir) => dir.clone(),
            None => default_store_dir()?,
        };
        Blockstore::open(&dir).wrap_err_with(|| format!("opening block store {}", dir.display()))
    }
}

/// `$OTALEDGER_HOME/ipfs`, or `~/.otaledger/ipfs`.
pub(crate) fn default_store_dir() -> eyre::Result<PathBuf> {
    if let Some(home) = std::env::var_os("OTALEDGER_HOME") {
        return Ok(PathBuf::from(home).join("ipfs"));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| eyre!("neither OTALEDGER_HOME nor HOME is set: pass --store"))?;
    Ok(PathBuf::from(home).join(".otaledger").join("ipfs"))
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The file to add (directories are not supported).
    file: PathBuf,
    /// Import profile: kubo (CIDv0), kubo-v1 (CIDv1, raw leaves; the default) or unixfs-v1-2025.
    #[arg(long, default_value = "kubo-v1")]
    profile: Profile,
    /// CID version (1 also turns raw leaves on unless --raw-leaves=false), as in Kubo.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    cid_version: Option<u8>,
    /// Use raw blocks for leaves (`--raw-leaves=false` to turn off).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    raw_leaves: Option<bool>,
    /// Chunker, `size-N` (bytes, at most 1 MiB).
    #[arg(long, value_name = "size-N")]
    chunker: Option<String>,
    /// Only compute the CID; store nothing.
    #[arg(short = 'n', long)]
    only_hash: bool,
    /// Print only the CID.
    #[arg(short = 'Q', long)]
    quieter: bool,
    #[command(flatten)]
    store: StoreArg,
    /// Add through this Kubo RPC API (e.g. http://127.0.0.1:5001) instead of the local store.
    #[arg(long, value_name = "URL", conflicts_with = "store")]
    api: Option<String>,
    /// Send `Authorization: <value>` to the Kubo API (e.g. "Bearer <token>").
    #[arg(
        long,
        value_name = "VALUE",
        requires = "api",
        env = "OTALEDGER_KUBO_AUTH",
        hide_env_values = true
    )]
    api_auth: Option<String>,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// Root CID of the file.
    cid: Cid,
    /// Where to write the file (written only once every byte was verified).
    #[arg(short = 'o', long, value_name = "FILE")]
    output: PathBuf,
    /// Trustless gateway base URL; repeat for fallbacks, tried in order.
    #[arg(long = "gateway", value_name = "URL", required = true)]
    gateways: Vec<url::Url>,
    /// Expected file size in bytes (from the chain). Without it the size the root block declares
    /// is used, which bounds the download only by what a gateway claims.
    #[arg(long)]
    size: Option<u64>,
    /// Slowest acceptable transfer, bytes per second (at least 1).
    #[arg(long, default_value_t = otaledger_ipfs::fetch::DEFAULT_MIN_RATE, value_parser = clap::value_parser!(u64).range(1..))]
    min_rate: u64,
    /// Window over which --min-rate is measured, seconds (1 to 3600): also the longest silence
    /// tolerated.
    #[arg(long, default_value_t = otaledger_ipfs::fetch::DEFAULT_RATE_GRACE.as_secs(), value_parser = clap::value_parser!(u64).range(1..=otaledger_ipfs::fetch::MAX_RATE_GRACE.as_secs()))]
    rate_grace: u64,
}

#[derive(Debug, Args)]
struct CarArgs {
    #[command(subcommand)]
    command: CarCommand,
}

#[derive(Debug, Subcommand)]
enum CarCommand {
    /// Write the DAG under CID (every block, DFS order, no duplicates) as a CAR v1 file.
    Export {
        /// Root CID.
        cid: Cid,
        /// Output CAR file.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Read a CAR v1 file into the store, checking every block's hash.
    Import {
        /// Input CAR file.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
}

/// Run `otaledger ipfs …`.
pub(crate) async fn run(args: IpfsArgs, json: bool) -> eyre::Result<()> {
    match args.command {
        IpfsCommand::Add(a) => add(a, json).await,
        IpfsCommand::Get(g) => get(g, json).await,
        IpfsCommand::Car(CarArgs {
            command: CarCommand::Export { cid, output, store },
        }) => car_export(cid, &output, &store, json).await,
        IpfsCommand::Car(CarArgs {
            command: CarCommand::Import { file, store },
        }) => car_import(&file, &store, json).await,
    }
}

/// A progress bar on stderr, only when stderr is a terminal and the output is not JSON.
fn progress_bar(total: u64, json: bool) -> Option<indicatif::ProgressBar> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

fn print_json(value: &impl Serialize) -> eyre::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

#[derive(Serialize)]
struct AddOutput {
    cid: String,
    name: String,
    size: u64,
    profile: String,
    stored_in: Option<String>,
}

async fn add(a: AddArgs, json: bool) -> eyre::Result<()> {
    let chunk_size = a
        .chunker
        .as_deref()
        .map(parse_chunker)
        .transpose()
        .wrap_err("--chunker")?;
    let opts = ImportOptions {
        profile: a.profile,
        cid_version: a.cid_version,
        raw_leaves: a.raw_leaves,
        chunk_size,
    };
    let name = a
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| eyre!("{} has no file name", a.file.display()))?;
    let meta =
        std::fs::metadata(&a.file).wrap_err_with(|| format!("reading {}", a.file.display()))?;
    if !meta.is_file() {
        bail!(
            "{} is not a regular file (directories are not supported)",
            a.file.display()
        );
    }

    let (cid, stored_in) = if let Some(api) = &a.api {
        let mut kubo = KuboClient::new(api)?;
        if let Some(auth) = &a.api_auth {
            kubo = kubo.with_authorization(auth.clone());
        }
        let mut params = KuboAddParams::from_import(&opts);
        params.only_hash = a.only_hash;
        params.pin = !a.only_hash;
        let added = kubo.add(&a.file, &params).await.wrap_err_with(|| {
            format!("adding {} through the Kubo API at {api}", a.file.display())
        })?;
        // Kubo's node configuration can change the DAG (e.g. links per node): say so if it did.
        let file = a.file.clone();
        let local = tokio::task::spawn_blocking(move || {
            import_path(&file, &opts, &mut NullSink, &mut |_| {}).map_err(eyre::Report::from)
        })
        .await??;
        if local.root != added.cid {
            eprintln!(
                "warning: Kubo returned {} but the {} profile gives {} here: check the node's Import settings",
                added.cid, a.profile, local.root
            );
        }
        (added.cid, Some(api.clone()))
    } else {
        let store = if a.only_hash {
            None
        } else {
            Some(a.store.open()?)
        };
        let stored_in = store
            .as_ref()
            .map(|_| a.store.store.clone().map_or_else(default_store_dir, Ok))
            .transpose()?;
        let bar = progress_bar(meta.len(), json);
        let bar2 = bar.clone();
        let file = a.file.clone();
        let imported = tokio::task::spawn_blocking(move || {
            let mut progress = |n: u64| {
                if let Some(b) = &bar2 {
                    b.set_position(n);
                }
            };
            match &store {
                // Blocks are written on the store's writer thread while the next are hashed
                // (a regular file: checked above).
                Some(store) => std::fs::File::open(&file)
                    .map_err(eyre::Report::from)
                    .and_then(|f| Ok(store.import(f, &opts, &mut progress)?)),
                None => import_path(&file, &opts, &mut NullSink, &mut progress)
                    .map_err(eyre::Report::from),
            }
        })
        .await?
        .wrap_err_with(|| format!("importing {}", a.file.display()))?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        (imported.root, stored_in.map(|d| d.display().to_string()))
    };

    if json {
        print_json(&AddOutput {
            cid: cid.to_string(),
            name,
            size: meta.len(),
            profile: a.profile.to_string(),
            stored_in,
        })
    } else if a.quieter {
        println!("{cid}");
        Ok(())
    } else {
        println!("added {cid} {name}");
        Ok(())
    }
}

#[derive(Serialize)]
struct GetOutput {
    cid: String,
    path: String,
    size: u64,
    gateway: String,
    mode: &'static str,
    failed_attempts: Vec<String>,
}

async fn get(g: GetArgs, json: bool) -> eyre::Result<()> {
    let mut opts = FetchOptions {
        min_rate: g.min_rate,
        rate_grace: std::time::Duration::from_secs(g.rate_grace),
        ..FetchOptions::default()
    };
    let size = match g.size {
        Some(size) => size,
        None => probe_size(g.cid, &g.gateways, &opts)
            .await
            .wrap_err_with(|| format!("reading the size of {} from the gateways", g.cid))?,
    };
    let bar = progress_bar(size, json);
    if let Some(bar) = bar.clone() {
        opts.progress = Some(Arc::new(move |p: FetchProgress| {
            bar.set_position(p.position)
        }));
    }
    let result = fetch(g.cid, size, &g.gateways, &g.output, &opts).await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result.wrap_err_with(|| {
        format!(
            "fetching {} ({size} bytes) into {}",
            g.cid,
            g.output.display()
        )
    })?;
    for f in &report.failures {
        eprintln!("warning: {f}");
    }
    let mode = match report.completed_by.1 {
        FetchMode::Car => "car",
        FetchMode::Raw => "raw",
    };
    if json {
        print_json(&GetOutput {
            cid: g.cid.to_string(),
            path: report.path.display().to_string(),
            size: report.size,
            gateway: report.completed_by.0.to_string(),
            mode,
            failed_attempts: report.failures.iter().map(ToString::to_string).collect(),
        })
    } else {
        println!(
            "{} {} bytes -> {}",
            g.cid,
            report.size,
            report.path.display()
        );
        Ok(())
    }
}

#[derive(Serialize)]
struct CarExportOutput {
    cid: String,
    path: String,
    blocks: u64,
}

async fn car_export(cid: Cid, output: &Path, store: &StoreArg, json: bool) -> eyre::Result<()> {
    let store = store.open()?;
    let output = output.to_path_buf();
    let out = output.clone();
    let blocks = tokio::task::spawn_blocking(move || -> eyre::Result<u64> {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::NamedTempFile::new_in(&dir)
            .wrap_err_with(|| format!("creating a file in {}", dir.display()))?;
        let mut w = std::io::BufWriter::new(tmp);
        let blocks = export_car(&store, &cid, DagScope::All, &mut w)
            .wrap_err_with(|| format!("exporting {cid}"))?;
        let tmp = w.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&out)
            .wrap_err_with(|| format!("writing {}", out.display()))?;
        Ok(blocks)
    })
    .await??;
    if json {
        print_json(&CarExportOutput {
            cid: cid.to_string(),
            path: output.display().to_string(),
            blocks,
        })
    } else {
        println!("exported {cid} ({blocks} blocks) to {}", output.display());
        Ok(())
    }
}

#[derive(Serialize)]
struct CarImportOutput {
    roots: Vec<String>,
    blocks: u64,
}

async fn car_import(file: &Path, store: &StoreArg, json: bool) -> eyre::Result<()> {
    let store = store.open()?;
    let path = file.to_path_buf();
    let (roots, blocks) = tokio::task::spawn_blocking(move || -> eyre::Result<(Vec<Cid>, u64)> {
        let f =
            std::fs::File::open(&path).wrap_err_with(|| format!("opening {}", path.display()))?;
        let mut car = CarReader::new(f)
            .wrap_err_with(|| format!("reading the CAR header of {}", path.display()))?;
        let roots = car.roots().to_vec();
        let mut blocks = 0u64;
        while let Some((cid, data)) = car
            .next_block()
            .wrap_err_with(|| format!("reading block {} of {}", blocks + 1, path.display()))?
        {
            store
                .put(&cid, &data)
                .wrap_err_with(|| format!("storing {cid}"))?;
            blocks += 1;
        }
        Ok((roots, blocks))
    })
    .await??;
    if json {
        print_json(&CarImportOutput {
            roots: roots.iter().map(ToString::to_string).collect(),
            blocks,
        })
    } else {
        let roots: Vec<String> = roots.iter().map(ToString::to_string).collect();
        println!("imported {blocks} blocks, roots {}", roots.join(" "));
        Ok(())
    }
}
