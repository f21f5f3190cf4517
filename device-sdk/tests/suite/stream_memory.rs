//! Steps 6 and 7 as one stream, with a bundle whose DAG has the largest blocks the verifier
//! accepts (`otaledger_ipfs::MAX_BLOCK_SIZE`, 2 MiB; the importer stops at Kubo's 1 MiB chunks,
//! so the DAG is built here): the stream's memory must not depend on the publisher's chunker.
//! Every verified block is split into pieces of at most `client::PIECE_SIZE` (256 KiB) before it
//! is queued for the slot writer, so the pieces in flight are at most (`PIECES_IN_FLIGHT` + 2) of
//! that size, and the update still installs the approved image.

use otaledger_device_sdk::client::{
    FileInstaller, Installer, Outcome, PIECE_SIZE, PIECES_IN_FLIGHT, SlotRelease, stream_into_slot,
};
use otaledger_ipfs::{
    Blockstore, Cid, DAG_PB, FetchOptions, MAX_BLOCK_SIZE, PbLink, RAW, block_cid, cid::Version,
    encode_dag_pb, encode_unixfs_file,
};
use sha2::Digest;

use crate::fleet::{Fleet, image};

/// `bytes` as raw leaves of `leaf` bytes (the last one shorter) under one dag-pb UnixFS root,
/// every block put into `store`; returns the root.
fn add_in_leaves(store: &Blockstore, bytes: &[u8], leaf: usize) -> Cid {
    let leaves: Vec<(Cid, u64)> = bytes
        .chunks(leaf)
        .map(|data| {
            let cid = block_cid(Version::V1, RAW, data);
            store.put(&cid, data).unwrap();
            (cid, data.len() as u64)
        })
        .collect();
    assert!(leaves.len() <= 174, "one root node");
    let sizes: Vec<u64> = leaves.iter().map(|l| l.1).collect();
    let data = encode_unixfs_file(&[], bytes.len() as u64, &sizes);
    let links: Vec<PbLink<'static>> = leaves
        .iter()
        .map(|(cid, size)| PbLink {
            hash: *cid,
            name: Some(""),
            tsize: Some(*size),
        })
        .collect();
    let root = encode_dag_pb(&links, Some(&data));
    let cid = block_cid(Version::V1, DAG_PB, &root);
    store.put(&cid, &root).unwrap();
    cid
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

#[tokio::test]
async fn blocks_of_the_largest_size_are_queued_in_pieces_of_at_most_256_kib() {
    let f = Fleet::new().await;
    // 5 MiB: leaves of 2 MiB, 2 MiB and about 1 MiB.
    let release = f
        .publish_stored(
            1,
            image(1, 5 << 20),
            |_, _| {},
            |f, bundle| add_in_leaves(&f.store, bundle, MAX_BLOCK_SIZE),
        )
        .await;
    assert!(release.bundle.len() > 2 * MAX_BLOCK_SIZE);
    f.issue(release.release_id, release.release_id);

    // The stream alone, for how its queue was used.
    let dir = tempfile::tempdir().unwrap();
    let slots = dir.path().join("slots");
    let mut installer: Box<dyn Installer> = Box::new(FileInstaller::new(&slots).unwrap());
    let streamed = stream_into_slot(
        SlotRelease {
            manifest: release.manifest.clone(),
            release_id: release.release_id,
            chain_id: f.w.chain_id,
            registry: *f.w.registry.address(),
            key: f.secret_key(1),
        },
        std::slice::from_ref(&f.gateway),
        &FetchOptions::default(),
        &mut installer,
    )
    .await
    .unwrap();
    let q = streamed.queue;
    assert!(
        q.largest_piece <= PIECE_SIZE,
        "a piece of {} bytes (blocks of {MAX_BLOCK_SIZE})",
        q.largest_piece
    );
    assert!(
        q.peak_queued <= (PIECES_IN_FLIGHT + 2) * PIECE_SIZE,
        "{} bytes queued at once",
        q.peak_queued
    );
    assert!(
        q.pieces >= release.bundle.len().div_ceil(PIECE_SIZE) as u64,
        "the blocks were not split: {} pieces",
        q.pieces
    );
    assert!(streamed.failures.is_empty());
    assert_eq!(streamed.bundle_len, release.bundle.len() as u64);
    let slot = std::fs::read(slots.join("slot-b.img")).unwrap();
    assert!(slot == release.image, "the slot is not the image");
    assert_eq!(sha256(&slot), release.manifest.imageSha256.0);

    // The whole update (steps 0–9) from the same DAG: installed, the health check passed.
    let dir = tempfile::tempdir().unwrap();
    let mut updater = f.updater(dir.path());
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::Updated { version: 1, .. }
    ));
    let slot = std::fs::read(dir.path().join("slots/slot-b.img")).unwrap();
    assert!(slot == release.image, "the installed slot is not the image");
    assert_eq!(sha256(&slot), release.manifest.imageSha256.0);
}
