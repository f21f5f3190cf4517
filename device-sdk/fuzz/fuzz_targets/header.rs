//! Fuzzes step 1's header check on raw bytes: no input may panic, and a header is accepted only
//! in its canonical encoding, for the hash and number it claims.
#![no_main]

use alloy_primitives::keccak256;
use libfuzzer_sys::fuzz_target;
use otaledger_device_sdk::{
    Limits, Quorum,
    head::{RawHeader, check_header},
};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::new(Quorum::new(1, 1).expect("1 of 1 is a quorum"));
    let raw = RawHeader {
        claimed_hash: keccak256(data),
        rlp: data.to_vec(),
    };
    // The number is unknown to the fuzzer: try the one the bytes claim, if any.
    for number in [0, 1, u64::MAX] {
        if let Ok(head) = check_header(0, number, &raw, &limits) {
            assert_eq!(head.hash, keccak256(data));
            assert_eq!(head.number, number);
        }
    }
    if let Ok(h) = <otaledger_device_sdk::head::Header as alloy_rlp::Decodable>::decode(&mut &data[..]) {
        let head = check_header(0, h.number, &raw, &limits);
        assert_eq!(head.is_ok(), alloy_rlp::encode(&h) == data);
    }
});
