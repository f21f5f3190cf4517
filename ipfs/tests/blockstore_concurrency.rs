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
