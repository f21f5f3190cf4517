//! `otaledger demo`: the quickstart's main job.

use clap::Args;

/// Options of `otaledger demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {}

/// Runs the demo.
pub(crate) async fn run(_args: DemoArgs, _json: bool) -> eyre::Result<()> {
    eyre::bail!("the demo needs the contract bindings (coming in this change)")
}
