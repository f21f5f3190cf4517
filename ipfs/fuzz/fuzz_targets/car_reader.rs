//! Fuzzes the CAR v1 reader feeding a verifier: no input may panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otaledger_ipfs::{Limits, Verifier, car::CarReader};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CarReader::new(data) else {
        return;
    };
    let root = reader.roots()[0];
    let mut verifier = Verifier::new(root, Limits::for_size(1 << 20)).ok();
    while let Ok(Some((cid, block))) = reader.next_block() {
        if let Some(v) = verifier.as_mut() {
            let _ = v.repeat();
            let _ = v.push(&cid, &block);
        }
    }
});
