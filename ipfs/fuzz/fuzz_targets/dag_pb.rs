//! Fuzzes the strict dag-pb and UnixFS decoders and the verifier on one block: no input may
//! panic, and whatever decodes must re-encode to the same bytes (canonical form is unique).
#![no_main]

use libfuzzer_sys::fuzz_target;
use otaledger_ipfs::{
    DAG_PB, Limits, Verifier, block_cid, cid::Version, decode_dag_pb, decode_unixfs, encode_dag_pb,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = decode_dag_pb(data, 1024) {
        assert_eq!(encode_dag_pb(&node.links, node.data), data);
        if let Some(d) = node.data {
            let _ = decode_unixfs(d, node.links.len());
        }
    }
    let cid = block_cid(Version::V1, DAG_PB, data);
    if let Ok(mut v) = Verifier::new(cid, Limits::default()) {
        let _ = v.push(&cid, data);
        let _ = v.next_needed();
    }
});
