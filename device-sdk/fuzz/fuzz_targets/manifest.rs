//! Fuzzes what a release source hands the device (the manifest and approval, decoded from the
//! publishing transaction's `publishRelease` calldata, or a bare ABI-encoded manifest): no input
//! may panic, and whatever decodes has one meaning (it re-encodes and decodes to itself), so the
//! release id the device computes from it is the one step 2 proves.
#![no_main]

use alloy_sol_types::{SolCall, SolValue};
use libfuzzer_sys::fuzz_target;
use otaledger_device_sdk::{
    Manifest,
    contracts::{registry::UpdateRegistry::publishReleaseCall, release_id},
};

fuzz_target!(|data: &[u8]| {
    if let Ok(call) = publishReleaseCall::abi_decode(data) {
        let again = publishReleaseCall::abi_decode(&call.abi_encode()).expect("re-encoding decodes");
        assert_eq!(again.manifest, call.manifest);
        assert_eq!(again.approval, call.approval);
        assert_eq!(release_id(&again.manifest), release_id(&call.manifest));
    }
    if let Ok(m) = Manifest::abi_decode(data) {
        let again = Manifest::abi_decode(&m.abi_encode()).expect("re-encoding decodes");
        assert_eq!(again, m);
        let _ = release_id(&m);
    }
});
