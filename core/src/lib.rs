//! Shared protocol of OTA Ledger.
//!
//! - [`deployment`]: `deployments/<chain-id>.json`, where one chain's contracts
//!   live, and CREATE2 addresses;
//! - [`device_file`]: `device.toml`, what a device boots with;
//! - [`bindings`]: the contracts' Rust bindings, from the committed Foundry artifacts;
//! - [`bundle`]: the encrypted release bundle (`otaledger-bundle` v1);
//! - [`manifest`]: the release manifest, its `manifest.json` file and signature files;
//! - [`key_delivery`]: a device's purchased CP-ABE key, encrypted and signed for it;
//! - [`report`]: a device's signed install report (`otaledger-report/1`);
//! - [`fsutil`]: all-or-nothing file output;
//! - [`signing`]: EIP-712 messages and m-of-n threshold approvals;
//! - [`merkle`]: device provisioning batches (leaves, root, proofs);
//! - [`leaves`]: a batch's leaf list (`leaves.json`), bounded parsing and its root;
//! - [`deploy`]: deploying both contracts at deterministic CREATE2 addresses;
//! - [`follow`]: the chain follower (adaptive `eth_getLogs`, reorgs, exactly-once
//!   checkpoints) behind the indexer and the key service;
//! - `test_support` (feature `test-support`): a deployed local chain and a
//!   scenario emitting every contract event, for integration tests;
//! - [`toolchain`]: finding the pinned Foundry binaries (anvil) for the demo and tests.

pub mod bindings;
pub mod bundle;
pub mod deploy;
pub mod deployment;
pub mod device_file;
mod error;
pub mod follow;
pub mod fsutil;
pub mod key_delivery;
pub mod leaves;
pub mod manifest;
pub mod merkle;
pub mod report;
pub mod signing;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod toolchain;

pub use deployment::{CREATE2_DEPLOYER, Deployment, create2_address};
pub use error::{Error, Result};
pub use toolchain::{FoundryTool, find_foundry_tool, spawn_anvil, workspace_root};
