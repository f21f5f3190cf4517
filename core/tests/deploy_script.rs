//! `script/deploy.sh` (forge script + CREATE2) against a real anvil: the
//! deployment file it writes parses as a [`Deployment`], and its addresses are
//! the ones the Rust side computes and deploys to.
//!
//! Needs the pinned npm toolchain (`npm ci`), as `make test` installs it.

use std::process::Command;

use alloy::providers::{Provider, ProviderBuilder};
use otaledger_core::{
    Deployment,
    deploy::{DEFAULT_REFUND_WINDOW, DEFAULT_SALT, addresses},
    workspace_root,
};

/// A chain id no other test or demo uses, so the file it writes is its own.
const CHAIN_ID: u64 = 424_242;

#[tokio::test]
async fn forge_deploy_script_writes_the_deployment_at_the_rust_create2_addresses() {
    let root = workspace_root();
    let anvil = otaledger_core::toolchain::spawn_anvil_with(&["--chain-id", &CHAIN_ID.to_string()])
        .unwrap();
    let key = alloy::hex::encode_prefixed(anvil.keys()[0].to_bytes());
    let deployments = root.join("deployments");
    let file = Deployment::path_in(&deployments, CHAIN_ID);
    let _ = std::fs::remove_file(&file);

    let output = Command::new(root.join("script/deploy.sh"))
        .current_dir(&root)
        .args([
            "--rpc-url",
            anvil.endpoint_url().as_str(),
            "--private-key",
            &key,
        ])
        .env("GIT_COMMIT", "test-commit")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "deploy.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let deployment = Deployment::load(&deployments, CHAIN_ID).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        (deployment.registry, deployment.market),
        addresses(DEFAULT_SALT, DEFAULT_REFUND_WINDOW)
    );
    assert_eq!(deployment.salt, DEFAULT_SALT);
    assert_eq!(deployment.commit, "test-commit");
    assert!(
        !Deployment::path_in(&deployments, CHAIN_ID)
            .with_extension("json.pending")
            .exists()
    );
    // Equal CREATE2 addresses mean equal init code: the Solidity build deployed
    // exactly the committed artifacts' bytecode.
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    assert!(
        !provider
            .get_code_at(deployment.registry)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !provider
            .get_code_at(deployment.market)
            .await
            .unwrap()
            .is_empty()
    );
}
