//! Fuzzes step 4 on an ABI-encoded `Approval` after a 32-byte digest. The signer set is taken
//! as proven (its own hash), so the fuzzer reaches the signature checks. No input may panic,
//! and an accepted approval has at least its threshold of distinct, ascending signers.
#![no_main]

use alloy_primitives::B256;
use alloy_sol_types::SolValue;
use libfuzzer_sys::fuzz_target;
use otaledger_device_sdk::{Approval, approval::verify, layout::signers_hash};

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let digest = B256::from_slice(&data[..32]);
    let Ok(approval) = Approval::abi_decode(&data[32..]) else {
        return;
    };
    let proven = signers_hash(&approval.signers, approval.threshold);
    if let Ok(signed) = verify(&approval, proven, digest) {
        assert!(signed.len() >= usize::from(approval.threshold));
        assert!(signed.windows(2).all(|w| w[0] < w[1]));
    }
});
