//! Finding the pinned Foundry binaries (anvil for the demo and the tests).
//!
//! The npm package `@foundry-rs/<tool>` ships the real binary in
//! `node_modules/@foundry-rs/<tool>-<os>-<arch>/bin/<tool>`; its
//! `node_modules/.bin` wrapper always exits 0, so it is never used.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A Foundry tool shipped through npm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundryTool {
    /// The local Ethereum node.
    Anvil,
    /// The build and test tool.
    Forge,
    /// The RPC command-line client.
    Cast,
}

impl FoundryTool {
    fn name(self) -> &'static str {
        match self {
            Self::Anvil => "anvil",
            Self::Forge => "forge",
            Self::Cast => "cast",
        }
    }

    fn env(self) -> &'static str {
        match self {
            Self::Anvil => "OTALEDGER_ANVIL",
            Self::Forge => "OTALEDGER_FORGE",
            Self::Cast => "OTALEDGER_CAST",
        }
    }
}

/// Finds `tool`: the path in its environment variable (`OTALEDGER_ANVIL`, …) if
/// set, else the npm package's real binary under `node_modules` in `start` or
/// any of its parents, else the tool on `PATH`.
pub fn find_foundry_tool(tool: FoundryTool, start: &Path) -> Result<PathBuf> {
    let name = tool.name();
    if let Some(path) = std::env::var_os(tool.env()) {
        return Ok(PathBuf::from(path));
    }
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let relative = format!("node_modules/@foundry-rs/{name}-{os}-{arch}/bin/{name}");
    let mut looked = Vec::new();
    for dir in start.ancestors() {
        let candidate = dir.join(&relative);
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            // The npm wrapper in node_modules/.bin always exits 0: skip it.
            if candidate.is_file() && !dir.ends_with("node_modules/.bin") {
                return Ok(candidate);
            }
        }
        looked.push("$PATH".into());
    }
    Err(Error::ToolNotFound {
        tool: name,
        env: tool.env(),
        looked: looked.join(", "),
    })
}

/// The repository root when running from a checkout (the workspace of this
/// crate), used by tests and the demo to find `node_modules` and `deployments/`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Spawns the pinned anvil (found with [`find_foundry_tool`] from the current
/// directory, then from this checkout) on a free port of 127.0.0.1.
/// The node stops when the returned instance is dropped.
pub fn spawn_anvil() -> Result<alloy::node_bindings::AnvilInstance> {
    spawn_anvil_with(&[])
}

/// [`spawn_anvil`] with extra command-line arguments (e.g. `--chain-id`).
///
/// Unless `args` says otherwise, the node keeps its historical states in memory only
/// (`--max-persisted-states 0`: the last 500 or so blocks can be proven against). Without
/// it anvil writes every older state to `~/.foundry/anvil/tmp/`, about 170 KiB per block
/// even for empty ones, and leaves it there when it is killed, as a dropped instance is.
pub fn spawn_anvil_with(args: &[&str]) -> Result<alloy::node_bindings::AnvilInstance> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let path = find_foundry_tool(FoundryTool::Anvil, &cwd)
        .or_else(|_| find_foundry_tool(FoundryTool::Anvil, &workspace_root()))?;
    let chooses_history = args
        .iter()
        .any(|a| a.starts_with("--max-persisted-states") || a.starts_with("--prune-history"));
    let memory_only: &[&str] = if chooses_history {
        &[]
    } else {
        &["--max-persisted-states", "0"]
    };
    // Loading a saved state (the indexer benchmark's is 1.2 GB) takes longer than alloy's
    // 10 s wait for the node to listen, more so on a busy machine.
    let wait_ms = if args.contains(&"--load-state") {
        300_000
    } else {
        10_000
    };
    alloy::node_bindings::Anvil::at(&path)
        .host("127.0.0.1")
        .timeout(wait_ms)
        .args(memory_only)
        .args(args)
        .try_spawn()
        .map_err(|e| Error::NodeSpawn {
            path,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_anvil_from_a_subdirectory_of_the_checkout() {
        // `make test` runs `npm ci` first, so the pinned binary is there.
        let found =
            find_foundry_tool(FoundryTool::Anvil, &workspace_root().join("core/src")).unwrap();
        assert!(found.ends_with("bin/anvil"), "{}", found.display());
        assert!(!found.to_string_lossy().contains("node_modules/.bin"));
    }

    /// Old states are dropped, not written to disk: 700 blocks later the first block can no
    /// longer be proven against (anvil would read it back from `~/.foundry/anvil/tmp/` had it
    /// persisted it), while a recent one still can.
    #[tokio::test]
    async fn spawned_anvil_keeps_its_history_in_memory_only() {
        use alloy::providers::{Provider, ProviderBuilder};
        let anvil = spawn_anvil().unwrap();
        let node = ProviderBuilder::new().connect_http(anvil.endpoint_url());
        let account = anvil.addresses()[0];
        let proof_at = |block: u64| {
            node.raw_request::<_, serde_json::Value>(
                "eth_getProof".into(),
                serde_json::json!([account, [], format!("{block:#x}")]),
            )
        };
        node.raw_request::<_, serde_json::Value>("anvil_mine".into(), serde_json::json!(["0x2bc"]))
            .await
            .unwrap();
        let head = node.get_block_number().await.unwrap();
        assert_eq!(head, 700);
        assert!(
            proof_at(head - 100).await.is_ok(),
            "a recent block is provable"
        );
        let old = proof_at(1)
            .await
            .expect_err("block 1 should be gone from memory");
        assert!(old.to_string().contains("BlockOutOfRange"), "{old}");
    }
}
