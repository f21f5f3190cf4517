//! The device SDK's integration suite, one binary (so the alloy-heavy test code links once):
//! equivalence with `otaledger-core`, the storage layout against a real deployment, and one
//! file per attack, each against a real anvil, the real contracts and, where the attack is a
//! lying endpoint, a test-made malicious RPC transport.

mod attack_arbitrary_software;
mod attack_cross_chain;
mod attack_deactivated_device;
mod attack_freeze;
mod attack_lying_rpc;
mod attack_mix_and_match;
mod attack_revoked;
mod attack_rollback;
mod attack_unpaid;
mod common;
mod core_equivalence;
mod layout;
mod properties;
mod update;
