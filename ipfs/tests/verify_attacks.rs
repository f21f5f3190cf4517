//! The verifier against hostile input: one test per attack, asserting the error variant.

use otaledger_ipfs::{
    Blockstore, Cid, DAG_PB, DecodeError, ImportOptions, Limits, PbLink, Profile, Pushed, RAW,
    Verifier, VerifyError, block_cid, cid, encode_dag_pb, encode_unixfs_file, import, multihash,
    traverse::{DagScope, blocks_for},
};

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Imports `bytes` with small chunks and returns the root and its blocks in DFS order.
fn dag(bytes: &[u8], profile: Profile) -> (Cid, Vec<(Cid, Vec<u8>)>) {
    // Hundreds of fsynced block files: use a RAM-backed directory where there is one.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let store = Blockstore::open(dir.path()).unwrap();
    let opts = ImportOptions {
        chunk_size: Some(1024),
        ..ImportOptions::profile(profile)
    };
    let root = import(bytes, &opts, &mut &store, &mut |_| {}).unwrap().root;
    let blocks = blocks_for(&store, &root, DagScope::Entity, None)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (root, blocks)
}

fn node(children: &[(Cid, u64, u64)], filesize: u64) -> (Cid, Vec<u8>) {
    let sizes: Vec<u64> = children.iter().map(|c| c.1).collect();
    let links: Vec<PbLink<'_>> = children
        .iter()
        .map(|c| PbLink {
            hash: c.0,
            name: Some(""),
            tsize: Some(c.2),
        })
        .collect();
    let block = encode_dag_pb(&links, Some(&encode_unixfs_file(b"", filesize, &sizes)));
    (block_cid(cid::Version::V1, DAG_PB, &block), block)
}

fn raw(bytes: &[u8]) -> (Cid, Vec<u8>) {
    (block_cid(cid::Version::V1, RAW, bytes), bytes.to_vec())
}

#[test]
fn honest_dag_verifies_for_every_profile() {
    let bytes = data(400 * 1024 + 17, 7);
    for profile in [Profile::Kubo, Profile::KuboV1, Profile::UnixfsV1_2025] {
        let (root, blocks) = dag(&bytes, profile);
        let mut v = Verifier::new(root, Limits::for_size(bytes.len() as u64)).unwrap();
        let mut out = Vec::new();
        for (cid, block) in &blocks {
            if let Pushed::Data(d) = v.push(cid, block).unwrap() {
                out.extend_from_slice(d);
            }
        }
        assert!(v.is_done());
        assert_eq!(v.expected_size(), Some(bytes.len() as u64));
        assert_eq!(out, bytes);
    }
}

#[test]
fn tampered_block() {
    let (root, mut blocks) = dag(&data(10_000, 1), Profile::KuboV1);
    let mut v = Verifier::new(root, Limits::default()).unwrap();
    v.push(&blocks[0].0, &blocks[0].1).unwrap();
    blocks[1].1[0] ^= 1;
    assert_eq!(
        v.push(&blocks[1].0, &blocks[1].1),
        Err(VerifyError::HashMismatch { cid: blocks[1].0 })
    );
}

#[test]
fn block_of_another_cid() {
    let (root, blocks) = dag(&data(10_000, 2), Profile::KuboV1);
    let mut v = Verifier::new(root, Limits::default()).unwrap();
    v.push(&blocks[0].0, &blocks[0].1).unwrap();
    assert_eq!(
        v.push(&blocks[2].0, &blocks[2].1),
        Err(VerifyError::UnexpectedBlock {
            expected: blocks[1].0,
            got: blocks[2].0
        })
    );
    // A block with the right claimed CID but another block's bytes.
    assert_eq!(
        v.push(&blocks[1].0, &blocks[2].1),
        Err(VerifyError::HashMismatch { cid: blocks[1].0 })
    );
}

#[test]
fn truncated_stream_is_not_done_and_extra_block_is_refused() {
    let (root, blocks) = dag(&data(10_000, 3), Profile::Kubo);
    let mut v = Verifier::new(root, Limits::default()).unwrap();
    let (last, rest) = blocks.split_last().unwrap();
    for (cid, block) in rest {
        v.push(cid, block).unwrap();
    }
    assert!(!v.is_done());
    assert_eq!(v.next_needed(), Some(&last.0));
    v.push(&last.0, &last.1).unwrap();
    assert!(v.is_done());
    let (extra, extra_block) = raw(b"past the end");
    assert_eq!(
        v.push(&extra, &extra_block),
        Err(VerifyError::Finished { cid: extra })
    );
}

#[test]
fn duplicate_block_is_reported_distinctly() {
    let (root, blocks) = dag(&data(10_000, 4), Profile::KuboV1);
    let mut v = Verifier::new(root, Limits::default()).unwrap();
    v.push(&blocks[0].0, &blocks[0].1).unwrap();
    v.push(&blocks[1].0, &blocks[1].1).unwrap();
    assert_eq!(
        v.push(&blocks[1].0, &blocks[1].1),
        Err(VerifyError::DuplicateBlock { cid: blocks[1].0 })
    );
}

#[test]
fn unixfs_sizes_that_lie() {
    let (a, ab) = raw(b"abc");
    // filesize disagrees with the blocksizes
    let (root, rb) = node(&[(a, 3, 3)], 4);
    let mut v = Verifier::new(root, Limits::default()).unwrap();
    assert!(matches!(
        v.push(&root, &rb),
        Err(VerifyError::SizeMismatch {
            what: "filesize",
            ..
        })
    ));
    // consistent node, but the child is shorter than its blocksize says
    let (root, rb) = node(&[(a, 4, 3)], 4);
    let mut v = Verifier::new(root, Limits::default()).unwrap();
    v.push(&root, &rb).unwrap();
    assert!(matches!(
        v.push(&a, &ab),
        Err(VerifyError::SizeMismatch {
            expected: 4,
            actual: 3,
            ..
        })
    ));
}

#[test]
fn dag_deeper_than_the_limit() {
    let (mut cid, mut block) = raw(b"x");
    let mut blocks = vec![(cid, block.clone())];
    for _ in 0..5 {
        let tsize = blocks.iter().map(|b| b.1.len() as u64).sum();
        (cid, block) = node(&[(cid, 1, tsize)], 1);
        blocks.push((cid, block.clone()));
    }
    blocks.reverse();
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let mut v = Verifier::new(blocks[0].0, limits).unwrap();
    let mut result = Ok(Pushed::Node);
    for (cid, block) in &blocks {
        result = v.push(cid, block);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(
        result,
        Err(VerifyError::TooDeep {
            depth: 4,
            max: 3,
            ..
        })
    ));
    // The default limit accepts it.
    let mut v = Verifier::new(blocks[0].0, Limits::default()).unwrap();
    for (cid, block) in &blocks {
        v.push(cid, block).unwrap();
    }
    assert!(v.is_done());
}

#[test]
fn file_larger_than_the_chain_says() {
    let bytes = data(10_000, 5);
    let (root, blocks) = dag(&bytes, Profile::KuboV1);
    let mut v = Verifier::new(root, Limits::for_size(9_999)).unwrap();
    assert_eq!(
        v.push(&blocks[0].0, &blocks[0].1),
        Err(VerifyError::TotalSizeExceeded {
            size: 10_000,
            max: 9_999
        })
    );
}

#[test]
fn oversized_block_and_link_bomb() {
    let big = vec![0u8; 2 * 1024 * 1024 + 1];
    let (cid, block) = raw(&big);
    let mut v = Verifier::new(cid, Limits::default()).unwrap();
    assert!(matches!(
        v.push(&cid, &block),
        Err(VerifyError::BlockTooLarge { .. })
    ));
    let (a, _) = raw(b"a");
    let children = vec![(a, 1, 1); 1025];
    let (root, rb) = node(&children, 1025);
    let mut v = Verifier::new(root, Limits::default()).unwrap();
    assert!(matches!(
        v.push(&root, &rb),
        Err(VerifyError::TooManyLinks { max: 1024, .. })
    ));
}

#[test]
fn non_canonical_node() {
    // Data before links.
    let (a, _) = raw(b"a");
    let (_, canonical) = node(&[(a, 1, 1)], 1);
    let links_only = encode_dag_pb(
        &[PbLink {
            hash: a,
            name: Some(""),
            tsize: Some(1),
        }],
        None,
    );
    assert_eq!(canonical[..links_only.len()], links_only[..]);
    let split = links_only.len();
    let mut swapped = canonical[split..].to_vec();
    swapped.extend_from_slice(&canonical[..split]);
    let cid = block_cid(cid::Version::V1, DAG_PB, &swapped);
    let mut v = Verifier::new(cid, Limits::default()).unwrap();
    assert!(matches!(
        v.push(&cid, &swapped),
        Err(VerifyError::Decode {
            source: DecodeError::FieldOrder { .. },
            ..
        })
    ));
}

#[test]
fn unsupported_codec_and_hash() {
    let (a, _) = raw(b"a");
    let cbor = Cid::new_v1(0x71, *a.hash());
    assert!(matches!(
        Verifier::new(cbor, Limits::default()),
        Err(VerifyError::UnsupportedCodec { codec: 0x71, .. })
    ));
    let identity = Cid::new_v1(RAW, multihash::Multihash::wrap(0, b"a").unwrap());
    assert!(matches!(
        Verifier::new(identity, Limits::default()),
        Err(VerifyError::UnsupportedHash { code: 0, .. })
    ));
}
