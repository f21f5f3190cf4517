//! DAG traversal and CAR export: scopes, entity-bytes ranges, duplicates, missing blocks, and
//! resuming a verifier from a byte offset with exactly the blocks the range yields.

use std::collections::HashSet;

use otaledger_ipfs::{
    Blockstore, BlockstoreError, Cid, Error, ImportOptions, Limits, Profile, Pushed, Verifier,
    car::CarReader,
    import,
    traverse::{DagScope, blocks_for, export_car, export_car_range},
};

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678_9abc_def1u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn store_with(bytes: &[u8], chunk: usize) -> (tempfile::TempDir, Blockstore, Cid) {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path()).unwrap();
    let opts = ImportOptions {
        chunk_size: Some(chunk),
        ..ImportOptions::profile(Profile::KuboV1)
    };
    let root = import(bytes, &opts, &mut &store, &mut |_| {}).unwrap().root;
    (dir, store, root)
}

/// Feeds blocks to a verifier resumed at `from`; returns the bytes emitted.
fn verify_from(root: Cid, from: u64, blocks: &[(Cid, Vec<u8>)]) -> (Verifier, Vec<u8>) {
    let mut v = Verifier::with_range(root, Limits::default(), from).unwrap();
    let mut out = Vec::new();
    for (cid, block) in blocks {
        assert_eq!(v.position(), from + out.len() as u64);
        if let Pushed::Data(d) = v.push(cid, block).unwrap() {
            out.extend_from_slice(d);
        }
    }
    (v, out)
}

#[test]
fn resume_from_any_offset_with_entity_bytes() {
    // 200 leaves of 1 KiB under 174 links: two interior levels.
    let bytes = data(200 * 1024 + 100);
    let (_dir, store, root) = store_with(&bytes, 1024);
    let len = bytes.len() as u64;
    for from in [
        0,
        1,
        1023,
        1024,
        1025,
        174 * 1024,
        174 * 1024 + 5,
        len - 1,
        len,
    ] {
        let blocks: Vec<_> = blocks_for(&store, &root, DagScope::Entity, Some((from, None)))
            .collect::<Result<_, _>>()
            .unwrap();
        let (v, out) = verify_from(root, from, &blocks);
        assert!(v.is_done(), "from {from}");
        assert_eq!(out, bytes[from as usize..], "from {from}");
    }
}

#[test]
fn bounded_range_sends_only_overlapping_leaves() {
    let bytes = data(200 * 1024);
    let (_dir, store, root) = store_with(&bytes, 1024);
    let (from, to) = (3000u64, 5000u64);
    let blocks: Vec<_> = blocks_for(&store, &root, DagScope::Entity, Some((from, Some(to))))
        .collect::<Result<_, _>>()
        .unwrap();
    // root + first interior node + leaves 2..=4 (bytes 2048..5120)
    assert_eq!(blocks.len(), 2 + 3);
    let (v, out) = verify_from(root, from, &blocks);
    assert!(!v.is_done());
    assert!(out.len() as u64 > to - from);
    assert_eq!(
        out[..=(to - from) as usize],
        bytes[from as usize..=to as usize]
    );
}

#[test]
fn scopes_block_entity_all() {
    let bytes = data(50 * 1024);
    let (_dir, store, root) = store_with(&bytes, 1024);
    let block: Vec<_> = blocks_for(&store, &root, DagScope::Block, None)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(block.len(), 1);
    assert_eq!(block[0].0, root);
    let all: Vec<_> = blocks_for(&store, &root, DagScope::All, None)
        .collect::<Result<_, _>>()
        .unwrap();
    let entity: Vec<_> = blocks_for(&store, &root, DagScope::Entity, None)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all, entity);
    assert_eq!(all.len(), 51);
    assert_eq!(store.iter().count(), 51);
}

#[test]
fn no_duplicates_and_repeat_reconstructs() {
    // Zeros: every leaf is the same block.
    let bytes = vec![0u8; 10 * 1024];
    let (_dir, store, root) = store_with(&bytes, 1024);
    let mut car = Vec::new();
    assert_eq!(
        export_car(&store, &root, DagScope::Entity, &mut car).unwrap(),
        2
    );
    let mut reader = CarReader::new(&car[..]).unwrap();
    assert_eq!(reader.roots(), [root]);
    let mut v = Verifier::new(root, Limits::for_size(10 * 1024)).unwrap();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    loop {
        while let Some(r) = v.repeat().unwrap() {
            out.extend_from_within(r.offset as usize..(r.offset + r.len) as usize);
        }
        let Some((cid, block)) = reader.next_block().unwrap() else {
            break;
        };
        assert!(seen.insert(cid));
        if let Pushed::Data(d) = v.push(&cid, &block).unwrap() {
            out.extend_from_slice(d);
        }
    }
    assert!(v.is_done());
    assert_eq!(out, bytes);
}

#[test]
fn range_export_writes_a_readable_car() {
    let bytes = data(20 * 1024);
    let (_dir, store, root) = store_with(&bytes, 1024);
    let mut car = Vec::new();
    let n = export_car_range(
        &store,
        &root,
        DagScope::Entity,
        Some((10 * 1024, None)),
        &mut car,
    )
    .unwrap();
    assert_eq!(n, 11);
    let blocks: Vec<_> = CarReader::new(&car[..])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let (v, out) = verify_from(root, 10 * 1024, &blocks);
    assert!(v.is_done());
    assert_eq!(out, bytes[10 * 1024..]);
}

#[test]
fn missing_block_is_an_error() {
    let bytes = data(5 * 1024);
    let (_dir, store, root) = store_with(&bytes, 1024);
    let blocks: Vec<_> = blocks_for(&store, &root, DagScope::All, None)
        .collect::<Result<_, _>>()
        .unwrap();
    store.delete(&blocks[2].0).unwrap();
    let result: Result<Vec<_>, _> = blocks_for(&store, &root, DagScope::All, None).collect();
    assert!(matches!(
        result,
        Err(Error::Blockstore(BlockstoreError::NotFound { cid })) if cid == blocks[2].0
    ));
}
