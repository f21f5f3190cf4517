//! `otaledger`: the OTA Ledger command-line tool.
//!
//! Subcommands:
//! - `demo`: the quickstart's main job, the whole system in one command (a
//!   local chain, the contracts, the gateway, key service, indexer and
//!   dashboard, a manufacturer, a release, a purchase, and a fleet of device-SDK
//!   clients updating for real);
//! - `ipfs add | get | car export | car import`: content addressing that agrees
//!   with Kubo, and verified fetches from untrusted gateways;
//! - `gateway serve`: a trustless gateway over the local block store;
//! - `indexer run | verify`: the event mirror in SQLite or PostgreSQL, and its
//!   check against the chain.
//! - `authority init`, `manufacturer register | show`, `model define | show`,
//!   `release create | sign | publish`, `device provision | claim | open`,
//!   `purchase`, `keys issue`; `approval sign | submit` for threshold-signed
//!   admin actions, `refund`, `withdraw`, `device transfer | show | list`,
//!   `release revoke | list`:
//!   the manufacturer's and owner's side (logic in the `otaledger_cli` library).

// Argument docs are clap's `--help` text, which writes placeholders as `<M>` and
// defaults as `[default: …]`: not HTML tags or links.
#![allow(rustdoc::invalid_html_tags)]

use clap::{Parser, Subcommand};

mod cmd;
mod demo;
mod gateway;
mod indexer;
mod ipfs;
mod shutdown;

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
    /// The whole system in one command: chain, services, dashboard, and a fleet that updates.
    Demo(demo::DemoArgs),
    /// The fleet at scale: `fleet simulate` benchmarks thousands of verifying devices.
    Fleet(demo::simulate::FleetArgs),
    /// Content addressing: add files, fetch them verified from gateways, CAR import/export.
    Ipfs(ipfs::IpfsArgs),
    /// Run the trustless IPFS gateway over the local block store.
    Gateway(gateway::GatewayArgs),
    /// Mirror the contracts' events into SQLite or PostgreSQL, and verify the mirror.
    Indexer(indexer::IndexerArgs),
    /// The manufacturer's CP-ABE authority.
    Authority(cmd::authority::AuthorityArgs),
    /// Manufacturers: register, show.
    Manufacturer(cmd::manufacturer::ManufacturerArgs),
    /// Models (product lines): define, show.
    Model(cmd::model::ModelArgs),
    /// Releases: create (encrypt + bundle + IPFS), sign (offline), publish.
    Release(cmd::release::ReleaseArgs),
    /// Devices: provision a batch, claim one.
    Device(cmd::device::DeviceArgs),
    /// Buy a release for devices (ETH or ERC-20).
    Purchase(cmd::purchase::PurchaseArgs),
    /// Purchased keys: issue one by hand (the key service does this per purchase).
    Keys(cmd::keys::KeysArgs),
    /// Threshold-signed admin actions: sign a request offline, submit the signatures.
    Approval(cmd::approval::ApprovalArgs),
    /// Claim the refund of a release revoked inside its refund window.
    Refund(cmd::purchase::RefundArgs),
    /// Pay a settled release's earnings to the manufacturer's payee.
    Withdraw(cmd::purchase::WithdrawArgs),
}

fn main() -> eyre::Result<()> {
    // Before any thread starts: one malloc arena per core (MALLOC_ARENA_MAX wins if set).
    otaledger_indexer::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args, cli.json).await,
            Command::Fleet(args) => demo::simulate::run(args, cli.json).await,
            Command::Ipfs(args) => ipfs::run(args, cli.json).await,
            Command::Gateway(args) => gateway::run(args, cli.json).await,
            Command::Indexer(args) => indexer::run(args, cli.json).await,
            Command::Authority(args) => cmd::authority::run(args, cli.json).await,
            Command::Manufacturer(args) => cmd::manufacturer::run(args, cli.json).await,
            Command::Model(args) => cmd::model::run(args, cli.json).await,
            Command::Release(args) => cmd::release::run(args, cli.json).await,
            Command::Device(args) => cmd::device::run(args, cli.json).await,
            Command::Purchase(args) => cmd::purchase::run(args, cli.json).await,
            Command::Keys(args) => cmd::keys::run(args, cli.json).await,
            Command::Approval(args) => cmd::approval::run(args, cli.json).await,
            Command::Refund(args) => cmd::purchase::refund(args, cli.json).await,
            Command::Withdraw(args) => cmd::purchase::withdraw(args, cli.json).await,
        }
    });
    // A blocking read of stdin (`demo --pause-before-purchase` interrupted by Ctrl-C) never
    // returns by itself: do not wait for it forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// The indexer's retry schedule: zero is refused by clap, a cap below the first wait by
    /// the command before it connects to anything.
    #[tokio::test]
    async fn indexer_retry_options_are_checked() {
        use clap::Parser;
        let zero =
            super::Cli::try_parse_from(["otaledger", "indexer", "run", "--ipfs-retry-first", "0"]);
        assert!(zero.unwrap_err().to_string().contains("--ipfs-retry-first"));
        let cli = super::Cli::try_parse_from([
            "otaledger",
            "indexer",
            "run",
            "--ipfs-retry-first",
            "60",
            "--ipfs-retry-max",
            "30",
            "--rpc-url",
            "http://127.0.0.1:9",
        ])
        .unwrap();
        let super::Command::Indexer(args) = cli.command else {
            panic!("not the indexer command")
        };
        let err = super::indexer::run(args, true)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--ipfs-retry-max 30 is shorter than --ipfs-retry-first 60"),
            "{err}"
        );
    }
}
