//! The OTA Ledger device SDK: what a device runs to decide, without trusting any server, whether
//! an update may be installed.
//!
//! The crate has two layers:
//! - a sans-IO verification core, `no_std` + `alloc` (always built): it owns no socket, file,
//!   clock or random source; it takes bytes (header RLP, EIP-1186 proofs, a manifest and its
//!   approval) and returns typed verdicts. Its [`pipeline`] is a sequence of numbered steps, each
//!   stopping one class of attack with its own [`Error`] variant:
//!   1. [`head`]: a trusted block header (k-of-n agreement, recomputed hash, freshness, never
//!      behind the highest block seen);
//!   2. [`state`]: the registry's and the market's storage words, proven against that header's
//!      state root (slots in [`layout`]);
//!   3. [`policy`]: the release is published, live, for this device's model, the latest, newer
//!      than the installed version and not below the floor; the device is active and entitled;
//!   4. [`approval`]: the manifest's threshold signatures, by the proven signer set, under this
//!      chain's and this registry's EIP-712 domain.
//! - with the `std` feature (on by default), a [`client`] that drives the pipeline over its
//!   transports ([`client::Rpc`], [`client::Clock`], [`client::Storage`]), which are traits so
//!   that tests inject malicious ones; a JSON-RPC over HTTP implementation is included.
//!
//! The manifest and approval types and their EIP-712 hashing come from `sol!` over the same
//! Foundry artifacts the rest of the project uses ([`contracts`]); nothing is copied by hand.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use alloy_primitives as primitives;

pub mod approval;
pub mod contracts;
mod error;
pub mod head;
pub mod layout;
mod limits;
pub mod pipeline;
pub mod policy;
pub mod state;

#[cfg(feature = "std")]
pub mod client;

pub use contracts::{Approval, Manifest};
pub use error::{Error, HeaderFault, Result};
pub use limits::{
    DEFAULT_CONFIRMATIONS, DEFAULT_HEAD_REUSE_SECS, DEFAULT_MAX_AGE_SECS,
    DEFAULT_MAX_CLOCK_SKEW_SECS, Limits, MAX_HEADER_SIZE, MAX_PROOF_NODE_SIZE, MAX_PROOF_NODES,
    Quorum,
};
pub use pipeline::{
    ApprovedUpdate, Checker, DeviceConfig, DeviceState, HeadVerified, LatestVerified, PolicyPassed,
    ProofRequest, StateVerified, check_update,
};
