//! Fuzzes step 7's bundle header decoding (`otaledger_core::bundle`, which the device runs on the
//! downloaded bundle before any key is used): no input may panic; only the canonical encoding
//! decodes; the incremental parser never asks for more than `MAX_HEADER_LEN` bytes and, when it
//! completes, took a prefix that decodes to the same header; the streaming reader the device uses
//! (`read_header`) agrees with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otaledger_core::bundle::{Header, Parsed, limits::MAX_HEADER_LEN, read_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::decode(data) {
        assert_eq!(h.as_bytes(), data, "only the canonical encoding decodes");
        let _ = h.target();
    }
    let prefix = match Header::parse_prefix(data) {
        Ok(Parsed::Incomplete { needed }) => {
            assert!(needed <= MAX_HEADER_LEN, "asks for {needed} bytes");
            assert!(needed > data.len(), "asks for bytes it has");
            None
        }
        Ok(Parsed::Complete(h, used)) => {
            assert!(used <= data.len());
            assert_eq!(h.as_bytes(), &data[..used]);
            Some(used)
        }
        Err(_) => None,
    };
    let mut reader = data;
    if let Ok((h, rest)) = read_header(&mut reader) {
        let used = prefix.expect("read_header decoded what parse_prefix refused");
        assert_eq!(h.as_bytes(), &data[..used]);
        assert_eq!(rest.len() + reader.len(), data.len() - used);
    }
});
