//! Fuzzes step 1's header check on raw bytes: no input may panic, and a header is accepted (for
//! the number it names and the hash of its bytes) exactly when the bytes are its canonical
//! encoding.
#![no_main]

use alloy_primitives::keccak256;
use libfuzzer_sys::fuzz_target;
use otaledger_device_sdk::{
    Limits, Quorum,
    head::{Header, RawHeader, check_header},
};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::new(Quorum::new(1, 1).expect("1 of 1 is a quorum"));
    let raw = RawHeader {
        claimed_hash: keccak256(data),
        rlp: data.to_vec(),
    };
    let number = match <Header as alloy_rlp::Decodable>::decode(&mut &data[..]) {
        Ok(h) => {
            let canonical = alloy_rlp::encode(&h) == data && data.len() <= limits.max_header_size;
            assert_eq!(check_header(0, h.number, &raw, &limits).is_ok(), canonical);
            h.number
        }
        Err(_) => 0,
    };
    // Another block number than the header's is always refused.
    assert!(check_header(0, number.wrapping_add(1), &raw, &limits).is_err());
});
