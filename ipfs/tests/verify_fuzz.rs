//! Stable stand-in for the cargo-fuzz targets in `ipfs/fuzz` (run on nightly by
//! `script/fuzz-ipfs.sh`): the same properties, checked on bounded random mutations of the
//! committed seed corpus. No input may panic; whatever dag-pb decodes re-encodes to itself.

use std::path::Path;

use otaledger_ipfs::{
    DAG_PB, Limits, Verifier, block_cid, car::CarReader, cid::Version, decode_dag_pb,
    decode_unixfs, encode_dag_pb,
};
use proptest::prelude::*;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty());
    seeds
}

/// A seed with a few bytes flipped, inserted, or cut.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(target);
    (
        0..seeds.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(move |(i, edits, cut, do_cut)| {
            let mut v = seeds[i].clone();
            for (at, byte, kind) in edits {
                if v.is_empty() {
                    v.push(byte);
                    continue;
                }
                let pos = at.index(v.len());
                match kind {
                    0 => v[pos] ^= byte,
                    1 => v.insert(pos, byte),
                    _ => {
                        v.remove(pos);
                    }
                }
            }
            if do_cut && !v.is_empty() {
                v.truncate(cut.index(v.len()));
            }
            v
        })
}

fn check_dag_pb(data: &[u8]) {
    if let Ok(node) = decode_dag_pb(data, 1024) {
        assert_eq!(encode_dag_pb(&node.links, node.data), data);
        if let Some(d) = node.data {
            let _ = decode_unixfs(d, node.links.len());
        }
    }
    let cid = block_cid(Version::V1, DAG_PB, data);
    let mut v = Verifier::new(cid, Limits::default()).unwrap();
    let _ = v.push(&cid, data);
}

fn check_car(data: &[u8]) {
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
}

#[test]
fn seeds_are_valid() {
    for seed in corpus("dag_pb") {
        decode_dag_pb(&seed, 1024).unwrap();
    }
    let cars = corpus("car_reader");
    assert!(
        cars.iter()
            .filter(|c| CarReader::new(&c[..]).is_ok())
            .count()
            >= 3
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn dag_pb_mutations(data in mutated("dag_pb")) {
        check_dag_pb(&data);
    }

    #[test]
    fn dag_pb_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_dag_pb(&data);
    }

    #[test]
    fn car_mutations(data in mutated("car_reader")) {
        check_car(&data);
    }
}
