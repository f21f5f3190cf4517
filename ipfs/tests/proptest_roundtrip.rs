//! Property: import → CAR → read → verify → bytes is the identity, for random sizes, chunkers
//! and profiles (with runs of repeated bytes so duplicate blocks occur), and the verifier and
//! CAR reader never panic on mutated input.

use otaledger_ipfs::{
    Blockstore, ImportOptions, Limits, Profile, Pushed, Verifier,
    car::CarReader,
    import,
    traverse::{DagScope, blocks_for, export_car},
};
use proptest::prelude::*;

fn profile() -> impl Strategy<Value = Profile> {
    prop_oneof![
        Just(Profile::Kubo),
        Just(Profile::KuboV1),
        Just(Profile::UnixfsV1_2025)
    ]
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    // Random bytes followed by a run of one repeated byte.
    (
        proptest::collection::vec(any::<u8>(), 0..40_000),
        any::<u8>(),
        0usize..30_000,
    )
        .prop_map(|(mut v, b, n)| {
            v.extend(std::iter::repeat_n(b, n));
            v
        })
}

/// Thousands of fsynced block files per case: use a RAM-backed directory where there is one.
fn store_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn roundtrip(bytes: &[u8], opts: &ImportOptions) -> (Vec<u8>, Vec<u8>) {
    let dir = store_dir();
    let store = Blockstore::open(dir.path()).unwrap();
    let imported = import(bytes, opts, &mut &store, &mut |_| {}).unwrap();
    assert_eq!(imported.size, bytes.len() as u64);
    let mut car = Vec::new();
    export_car(&store, &imported.root, DagScope::Entity, &mut car).unwrap();
    let mut reader = CarReader::new(&car[..]).unwrap();
    assert_eq!(reader.roots(), [imported.root]);
    let mut v = Verifier::new(imported.root, Limits::for_size(bytes.len() as u64)).unwrap();
    let mut out = Vec::new();
    loop {
        while let Some(r) = v.repeat().unwrap() {
            out.extend_from_within(r.offset as usize..(r.offset + r.len) as usize);
        }
        let Some((cid, block)) = reader.next_block().unwrap() else {
            break;
        };
        if let Pushed::Data(d) = v.push(&cid, &block).unwrap() {
            out.extend_from_slice(d);
        }
    }
    assert!(v.is_done());
    (out, car)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn import_car_verify_roundtrip(
        bytes in content(),
        profile in profile(),
        chunk in prop_oneof![8usize..64, 64usize..4096, Just(262_144usize)],
    ) {
        let opts = ImportOptions { chunk_size: Some(chunk), ..ImportOptions::profile(profile) };
        let (out, _) = roundtrip(&bytes, &opts);
        prop_assert_eq!(out, bytes);
    }

    #[test]
    fn resume_at_any_offset_yields_the_suffix(
        bytes in content(),
        profile in profile(),
        chunk in 8usize..2048,
        at in any::<prop::sample::Index>(),
    ) {
        let dir = store_dir();
        let store = Blockstore::open(dir.path()).unwrap();
        let opts = ImportOptions { chunk_size: Some(chunk), ..ImportOptions::profile(profile) };
        let root = import(&bytes[..], &opts, &mut &store, &mut |_| {}).unwrap().root;
        let from = at.index(bytes.len() + 1) as u64;
        // The server sends what `blocks_for` yields (no block twice); the verifier accepts
        // exactly that, rebuilding repeated subtrees with `repeat`.
        let mut v = Verifier::with_range(root, Limits::default(), from).unwrap();
        // A resuming client holds the bytes before `from` from its earlier attempt.
        let mut out = bytes[..from as usize].to_vec();
        let mut blocks = blocks_for(&store, &root, DagScope::Entity, Some((from, None)));
        loop {
            while let Some(r) = v.repeat().unwrap() {
                let start = r.offset as usize;
                out.extend_from_within(start..start + r.len as usize);
            }
            let Some(item) = blocks.next() else { break };
            let (cid, block) = item.unwrap();
            if let Pushed::Data(d) = v.push(&cid, &block).unwrap() {
                out.extend_from_slice(d);
            }
        }
        prop_assert!(v.is_done());
        prop_assert_eq!(out, bytes);
    }

    #[test]
    fn mutated_car_never_panics_nor_yields_wrong_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 1..5_000),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let opts = ImportOptions { chunk_size: Some(256), ..ImportOptions::profile(Profile::Kubo) };
        let (_, mut car) = roundtrip(&bytes, &opts);
        let root = CarReader::new(&car[..]).unwrap().roots()[0];
        for (at, x) in flips {
            let i = at.index(car.len());
            car[i] ^= x | 1;
        }
        // Whatever the mutation, the reader + verifier either fail or yield exactly the file.
        let Ok(mut reader) = CarReader::new(&car[..]) else { return Ok(()) };
        let mut v = Verifier::new(root, Limits::for_size(bytes.len() as u64)).unwrap();
        let mut out = Vec::new();
        while let Ok(Some((cid, block))) = reader.next_block() {
            match v.push(&cid, &block) {
                Ok(Pushed::Data(d)) => out.extend_from_slice(d),
                Ok(Pushed::Node) => {}
                Err(_) => break,
            }
        }
        prop_assert_eq!(&out[..], &bytes[..out.len()]);
    }
}
