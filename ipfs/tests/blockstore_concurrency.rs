//! The blockstore under concurrent writers and readers: readers see whole blocks or none.

use std::{sync::Arc, thread};

use otaledger_ipfs::{Blockstore, RAW, block_cid, cid};

#[test]
fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path()).unwrap();
    let blocks: Arc<Vec<_>> = Arc::new(
        (0..64u32)
            .map(|i| {
                let data = vec![i as u8; 10_000 + i as usize];
                (block_cid(cid::Version::V1, RAW, &data), data)
            })
            .collect(),
    );
    let mut handles = Vec::new();
    for t in 0..4 {
        let store = store.clone();
        let blocks = Arc::clone(&blocks);
        handles.push(thread::spawn(move || {
            for (i, (cid, data)) in blocks.iter().enumerate() {
                if (i + t) % 2 == 0 {
                    store.put(cid, data).unwrap();
                } else if let Some(got) = store.get(cid).unwrap() {
                    assert_eq!(&got, data);
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    for (cid, data) in blocks.iter() {
        assert_eq!(store.get(cid).unwrap().as_ref(), Some(data));
    }
    assert_eq!(store.iter().count(), 64);
    // No temporary files are left behind.
    let leftovers = walk(dir.path())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn reopened_store_keeps_blocks_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let cid = block_cid(cid::Version::V1, RAW, b"persist");
    Blockstore::open(dir.path())
        .unwrap()
        .put(&cid, b"persist")
        .unwrap();
    let store = Blockstore::open(dir.path()).unwrap();
    assert_eq!(store.get(&cid).unwrap().unwrap(), b"persist");
    let path = store.path_of(&cid);
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    let key = name.strip_suffix(".data").unwrap();
    let shard = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(shard, &key[key.len() - 3..key.len() - 1]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("blocks/SHARDING")).unwrap(),
        "/repo/flatfs/shard/v1/next-to-last/2\n"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

// --- Review of `Blockstore::writer()` / `BlockWriter`: attempts to get a block stored that
// does not match its CID, an error lost, a panic, a temporary file left behind, or a block
// written after the writer stopped. ---

use otaledger_ipfs::{
    BlockSink, BlockstoreError, Cid, DAG_PB, Error, SHA2_256, multihash::Multihash,
    sha256_multihash,
};

fn temp_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect()
}

fn raw(data: &[u8]) -> Cid {
    block_cid(cid::Version::V1, RAW, data)
}

fn numbered(i: u32) -> Vec<u8> {
    format!("block number {i}").into_bytes()
}

/// CIDs that do not name `data`: a wrong digest (raw and dag-pb, CIDv0 and CIDv1), the
/// identity multihash, other hash codes carrying the sha256 digest, a truncated digest.
fn lying_cids(data: &[u8]) -> Vec<(&'static str, Cid)> {
    let right = sha256_multihash(data);
    let wrong = sha256_multihash(b"something else");
    let wrap = |code: u64, digest: &[u8]| Multihash::<64>::wrap(code, digest).unwrap();
    vec![
        ("raw v1, other digest", Cid::new_v1(RAW, wrong)),
        ("dag-pb v1, other digest", Cid::new_v1(DAG_PB, wrong)),
        ("dag-pb v0, other digest", Cid::new_v0(wrong).unwrap()),
        ("identity multihash", Cid::new_v1(RAW, wrap(0x00, data))),
        (
            "sha2-512 code, sha256 digest",
            Cid::new_v1(RAW, wrap(0x13, right.digest())),
        ),
        (
            "blake3 code, sha256 digest",
            Cid::new_v1(RAW, wrap(0x1e, right.digest())),
        ),
        (
            "sha2-256 truncated to 20 bytes",
            Cid::new_v1(RAW, wrap(SHA2_256, &right.digest()[..20])),
        ),
        (
            "sha2-256, empty digest",
            Cid::new_v1(RAW, wrap(SHA2_256, &[])),
        ),
        (
            "sha2-256 code, 64-byte digest",
            Cid::new_v1(
                RAW,
                wrap(SHA2_256, &[right.digest(), right.digest()].concat()),
            ),
        ),
    ]
}

#[test]
fn writer_refuses_every_cid_that_does_not_name_its_block() {
    let data = b"the real block".to_vec();
    for (what, lying) in lying_cids(&data) {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(dir.path()).unwrap();
        let good = raw(b"before");
        let mut writer = store.writer().unwrap();
        writer.put_block(&good, b"before").unwrap();
        // Handing it over may succeed (the check is on the writer's thread); finish must not.
        let handed = writer.put_block(&lying, &data);
        let finished = writer.finish();
        assert!(
            matches!(finished, Err(BlockstoreError::Rejected(_))) || handed.is_err(),
            "{what}: handed {handed:?}, finished {finished:?}"
        );
        assert!(!store.has(&lying).unwrap(), "{what}: stored");
        assert!(!store.path_of(&lying).exists(), "{what}: file exists");
        assert_eq!(store.require(&good).unwrap(), b"before", "{what}");
        let stored: Vec<_> = store.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(stored, vec![*good.hash()], "{what}");
        assert_eq!(temp_files(dir.path()), Vec::<std::path::PathBuf>::new());
        // `put` agrees.
        assert!(
            matches!(store.put(&lying, &data), Err(BlockstoreError::Rejected(_))),
            "{what}: put accepted it"
        );
    }
}

/// The writer and `put` accept exactly the same (CID, bytes) pairs, whatever the codec and
/// CID version: the writer is no back door around `put`'s check.
#[test]
fn writer_and_put_accept_the_same_blocks() {
    let data = b"same bytes".to_vec();
    let mh = sha256_multihash(&data);
    let mut cases: Vec<(&str, Cid)> = vec![
        ("raw v1", Cid::new_v1(RAW, mh)),
        ("dag-pb v1", Cid::new_v1(DAG_PB, mh)),
        ("dag-pb v0", Cid::new_v0(mh).unwrap()),
        ("dag-cbor v1", Cid::new_v1(0x71, mh)),
    ];
    cases.extend(lying_cids(&data));
    for (what, cid) in cases {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let by_put = Blockstore::open(a.path()).unwrap().put(&cid, &data).is_ok();
        let store = Blockstore::open(b.path()).unwrap();
        let mut writer = store.writer().unwrap();
        let by_writer = writer.put_block(&cid, &data).is_ok() && writer.finish().is_ok();
        assert_eq!(by_put, by_writer, "{what}");
        assert_eq!(store.has(&cid).unwrap(), by_put, "{what}");
        if by_put {
            assert_eq!(store.require(&cid).unwrap(), data, "{what}");
        }
    }
}

/// A bad block in the middle of thousands: every block before it is stored, none after it,
/// the error comes back (from a later `put_block` or from `finish`), and no temporary file
/// is left.
#[test]
fn writer_stores_nothing_after_a_refused_block_among_thousands() {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path()).unwrap();
    let bad_at = 300u32;
    let total = 1_500u32;
    let mut writer = store.writer().unwrap();
    let mut refused_at = None;
    for i in 0..total {
        let data = numbered(i);
        let cid = if i == bad_at {
            raw(b"not this block")
        } else {
            raw(&data)
        };
        if let Err(e) = writer.put_block(&cid, &data) {
            assert!(
                matches!(e, Error::Blockstore(BlockstoreError::Rejected(_))),
                "{e}"
            );
            refused_at = Some(i);
            break;
        }
    }
    let refused_at = refused_at.expect("every put after the bad block succeeded");
    assert!(refused_at > bad_at);
    // Used after the error: always refused, nothing more stored.
    for i in 0..50 {
        let data = numbered(total + i);
        assert!(writer.put_block(&raw(&data), &data).is_err());
        assert!(!store.has(&raw(&data)).unwrap());
    }
    assert!(writer.finish().is_err());
    for i in 0..total {
        let data = numbered(i);
        if i == bad_at {
            continue;
        }
        assert_eq!(store.has(&raw(&data)).unwrap(), i < bad_at, "block {i}");
    }
    assert!(!store.has(&raw(b"not this block")).unwrap());
    assert_eq!(store.iter().count(), bad_at as usize);
    assert!(temp_files(dir.path()).is_empty());
}

/// The bad block is the last one: no later `put_block` reports it, so `finish` must.
#[test]
fn writer_reports_a_bad_last_block_at_finish() {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path()).unwrap();
    let mut writer = store.writer().unwrap();
    for i in 0..20 {
        let data = numbered(i);
        writer.put_block(&raw(&data), &data).unwrap();
    }
    writer.put_block(&raw(b"x"), b"y").unwrap();
    assert!(matches!(writer.finish(), Err(BlockstoreError::Rejected(_))));
    assert_eq!(store.iter().count(), 20);
}

/// Thousands of small blocks, one block far above the usual chunk size, and the same bytes
/// under a CIDv0 and a CIDv1 (one file): all stored, checked, counted once.
#[test]
fn writer_stores_thousands_of_blocks_and_a_huge_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path()).unwrap();
    let mut writer = store.writer().unwrap();
    let n = 2_000u32;
    for i in 0..n {
        let data = numbered(i);
        writer.put_block(&raw(&data), &data).unwrap();
    }
    let huge: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    writer.put_block(&raw(&huge), &huge).unwrap();
    let node = b"dag-pb bytes".to_vec();
    let v0 = block_cid(cid::Version::V0, DAG_PB, &node);
    let v1 = block_cid(cid::Version::V1, DAG_PB, &node);
    assert_ne!(v0, v1);
    writer.put_block(&v0, &node).unwrap();
    writer.put_block(&v1, &node).unwrap();
    assert_eq!(writer.finish().unwrap(), u64::from(n) + 2);
    assert_eq!(store.require(&raw(&huge)).unwrap(), huge);
    assert_eq!(store.require(&v1).unwrap(), node);
    for i in (0..n).step_by(97) {
        assert_eq!(store.require(&raw(&numbered(i))).unwrap(), numbered(i));
    }
    assert_eq!(store.iter().count(), n as usize + 2);
    assert!(temp_files(dir.path()).is_empty());
}

/// Dropped without `finish` (an import that failed elsewhere): the blocks handed over are
/// whole in the store, no temporary file stays; dropping a stopped writer does not panic.
#[test]
fn writer_dropped_without_finish_leaves_whole_blocks_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path()).unwrap();
    let mut writer = store.writer().unwrap();
    for i in 0..100 {
        let data = numbered(i);
        writer.put_block(&raw(&data), &data).unwrap();
    }
    drop(writer);
    for i in 0..100 {
        assert_eq!(store.require(&raw(&numbered(i))).unwrap(), numbered(i));
    }
    assert!(temp_files(dir.path()).is_empty());

    let mut writer = store.writer().unwrap();
    writer.put_block(&raw(b"a"), b"b").unwrap();
    drop(writer);
    assert!(!store.has(&raw(b"a")).unwrap());
    assert_eq!(store.iter().count(), 100);
}

/// Two writers and a thread of `put`s store the same blocks at once, in different orders:
/// all succeed, every block is whole, none is stored twice, no temporary file is left, and
/// a writer over blocks all already present counts none as new.
#[test]
fn concurrent_writers_and_puts_of_the_same_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path()).unwrap();
    let blocks: Arc<Vec<(Cid, Vec<u8>)>> = Arc::new(
        (0..300u32)
            .map(|i| {
                let data = vec![(i % 256) as u8; 1_000 + i as usize];
                (raw(&data), data)
            })
            .collect(),
    );
    let mut writers = Vec::new();
    for reverse in [false, true] {
        let store = store.clone();
        let blocks = Arc::clone(&blocks);
        writers.push(thread::spawn(move || {
            let mut writer = store.writer().unwrap();
            let order: Vec<_> = if reverse {
                blocks.iter().rev().collect()
            } else {
                blocks.iter().collect()
            };
            for (cid, data) in order {
                writer.put_block(cid, data).unwrap();
            }
            writer.finish().unwrap()
        }));
    }
    let putter = {
        let store = store.clone();
        let blocks = Arc::clone(&blocks);
        thread::spawn(move || {
            for (cid, data) in blocks.iter().skip(150).chain(blocks.iter().take(150)) {
                store.put(cid, data).unwrap();
            }
        })
    };
    let counts: Vec<u64> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    putter.join().unwrap();
    assert!(counts.iter().all(|&c| c <= 300), "{counts:?}");
    for (cid, data) in blocks.iter() {
        assert_eq!(&store.require(cid).unwrap(), data);
    }
    assert_eq!(store.iter().count(), 300);
    assert!(temp_files(dir.path()).is_empty());

    let mut writer = store.writer().unwrap();
    for (cid, data) in blocks.iter() {
        writer.put_block(cid, data).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), 0);
}

/// A block file already in the store that no longer matches its CID (bit rot, an earlier
/// tool's torn write, tampering): importing the same content again through the writer must
/// leave a block that reads back, not report success while the store keeps the corrupt one.
#[test]
fn writer_repairs_a_corrupt_block_it_is_given_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Blockstore::open(dir.path()).unwrap();
    let data = numbered(1);
    let cid = raw(&data);
    store.put(&cid, &data).unwrap();
    std::fs::write(store.path_of(&cid), b"rotten").unwrap();
    assert!(matches!(
        store.get(&cid),
        Err(BlockstoreError::Corrupt { .. })
    ));
    let mut writer = store.writer().unwrap();
    writer.put_block(&cid, &data).unwrap();
    let finished = writer.finish();
    let read = store.get(&cid);
    assert!(
        finished.is_err() || matches!(read, Ok(Some(ref d)) if *d == data),
        "writer finished {finished:?} but the store still reads {read:?}"
    );
}
