//! `otaledger`: the OTA Ledger command-line tool.
//!
//! Subcommands:
//! - `demo`: the quickstart's main job (a local chain, the contracts, one
//!   publish-and-purchase round, with the gas of every step);
//! - `ipfs add | get | car export | car import`: content addressing that agrees
//!   with Kubo, and verified fetches from untrusted gateways;
//! - `gateway serve`: a trustless gateway over the local block store;
//! - `indexer run | verify`: the event mirror in SQLite or PostgreSQL, and its
//!   check against the chain.
//!
//! Manufacturer, owner and key-service commands come with their issues.

use clap::{Parser, Subcommand};

mod demo;
mod gateway;
mod indexer;
mod ipfs;

/// OTA Ledger: secure, decentralised software updates for IoT fleets.
#[derive(Debug, Parser)]
#[command(name = "otaledger", version, about, propagate_version = true)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the end-to-end demo on a local anvil chain it starts.
    Demo(demo::DemoArgs),
    /// Content addressing: add files, fetch them verified from gateways, CAR import/export.
    Ipfs(ipfs::IpfsArgs),
    /// Run the trustless IPFS gateway over the local block store.
    Gateway(gateway::GatewayArgs),
    /// Mirror the contracts' events into SQLite or PostgreSQL, and verify the mirror.
    Indexer(indexer::IndexerArgs),
}

fn main() -> eyre::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args, cli.json).await,
            Command::Ipfs(args) => ipfs::run(args, cli.json).await,
            Command::Gateway(args) => gateway::run(args, cli.json).await,
            Command::Indexer(args) => indexer::run(args, cli.json).await,
        }
    })
}
