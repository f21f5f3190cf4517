//! Fuzzes step 2's storage proof verification. Input: `root (32) ‖ slot (32) ‖ value (32) ‖ RLP
//! list of proof nodes`. No input may panic.
#![no_main]

use alloy_primitives::{Address, B256, Bytes, U256};
use libfuzzer_sys::fuzz_target;
use otaledger_device_sdk::state::{StorageProof, verify_storage};

fuzz_target!(|data: &[u8]| {
    if data.len() < 96 {
        return;
    }
    let root = B256::from_slice(&data[..32]);
    let key = B256::from_slice(&data[32..64]);
    let value = U256::from_be_slice(&data[64..96]);
    let mut rest = &data[96..];
    let Ok(proof) = <Vec<Bytes> as alloy_rlp::Decodable>::decode(&mut rest) else {
        return;
    };
    let _ = verify_storage(Address::ZERO, root, &StorageProof { key, value, proof });
});
