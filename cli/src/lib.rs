//! The library behind the `otaledger` binary: every command's logic lives
//! here, so tests, the demo and other tools call it directly; the binary only
//! parses arguments, calls these functions and prints.
//!
//! - [`chain`]: `--rpc-url` / `--chain` / `deployments/<chain-id>.json`,
//!   providers, sending transactions and decoding reverts into the contracts'
//!   custom errors;
//! - [`wallet`]: `--private-key`, or `cast wallet` keystores with a password file;
//! - [`authority`]: the manufacturer's CP-ABE authority (`authority init`);
//! - [`registry`]: manufacturers, signer sets and models;
//! - [`release`]: `release create | sign | publish`;
//! - [`device`]: `device provision | claim` and `device.toml`;
//! - [`device_run`]: `device run`, the reference device client (device SDK);
//! - [`market`]: buying releases (`purchase`);
//! - [`approval`]: threshold-signed admin actions (request, offline
//!   signatures, submission);
//! - [`keys`]: issuing one purchased key (`keys issue`) and opening a bundle
//!   as a device does (`device open`).
//! - [`keyservice`]: the key service daemon (`keys serve`).

// Argument docs are clap's `--help` text, which writes placeholders as `<M>` and
// defaults as `[default: …]`: not HTML tags or links.
#![allow(rustdoc::invalid_html_tags)]

pub mod approval;
pub mod authority;
pub mod chain;
pub mod device;
pub mod device_run;
mod error;
pub mod keys;
pub mod keyservice;
pub mod market;
pub mod registry;
pub mod release;
pub mod wallet;

pub use error::{Error, Result};
