//! The device SDK's integration suite, one binary (so the alloy-heavy test code links once):
//! equivalence with `otaledger-core`, the storage layout against a real deployment, and one
//! file per attack, each against a real anvil, the real contracts and, where the attack is a
//! lying endpoint, a test-made malicious RPC transport; steps 5–9 also against the real gateway
//! and a key service and report receiver implementing their contracts (`fleet`).

mod attack_arbitrary_software;
mod attack_cross_chain;
mod attack_deactivated_device;
mod attack_endless_data;
mod attack_freeze;
mod attack_key_other_release;
mod attack_lying_indexer;
mod attack_lying_rpc;
mod attack_malicious_mirror;
mod attack_mix_and_match;
mod attack_power_cut;
mod attack_power_cut_process;
mod attack_revoked;
mod attack_rollback;
mod attack_slow_retrieval;
mod attack_stream;
mod attack_tampered_segment;
mod attack_unpaid;
mod attack_wrong_image_hash;
mod common;
mod core_equivalence;
mod fleet;
mod install;
mod layout;
mod properties;
mod properties_formats;
mod reports_offline;
mod review_bundle;
mod review_device_file;
mod review_head_reuse;
mod review_keys;
mod review_partial_modes;
mod review_pieces;
mod review_reports;
mod review_source;
mod review_state;
mod review_stream;
mod review_trials;
mod stream_memory;
mod update;
