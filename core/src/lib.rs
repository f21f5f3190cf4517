//! Shared protocol of OTA Ledger.
//!
//! - [`deployment`]: `deployments/<chain-id>.json`, where one chain's contracts
//!   live, and CREATE2 addresses;
//! - [`toolchain`]: finding the pinned Foundry binaries (anvil) for the demo and tests.

pub mod deployment;
mod error;
pub mod toolchain;

pub use deployment::{CREATE2_DEPLOYER, Deployment, create2_address};
pub use error::{Error, Result};
pub use toolchain::{FoundryTool, find_foundry_tool, workspace_root};
