//! Review of the stream's pieces (commit 8a272f5, second engineer): DAGs of the publisher's
//! making with blocks just under, at and over `PIECE_SIZE` and up to the verifier's largest,
//! blocks of one byte (a piece per byte: the queue's count against its bytes), blocks that cut
//! across the bundle's AEAD segments at every offset; and the slot writer panicking mid-slot
//! behind a real stream. Each must install the approved image exactly (or, for the panic,
//! leave nothing) with every piece and the queue within the documented bound.

use std::io::Write;

use alloy_primitives::B256;
use otaledger_device_sdk::client::{
    BootState, FileInstaller, HealthCheck, Installer, PIECE_SIZE, PIECES_IN_FLIGHT, Recovery, Slot,
    SlotRelease, Streamed, stream_into_slot,
};
use otaledger_ipfs::{
    Blockstore, Cid, DAG_PB, FetchOptions, MAX_BLOCK_SIZE, PbLink, RAW, block_cid, cid::Version,
    encode_dag_pb, encode_unixfs_file,
};
use sha2::Digest;

use crate::fleet::{Fleet, Published, image};

/// Links per interior node (Kubo's).
const FANOUT: usize = 174;

/// `bytes` as raw leaves whose lengths cycle through `sizes` (the last one cut short), under a
/// balanced tree of dag-pb UnixFS nodes of at most [`FANOUT`] links; returns the root and the
/// leaves' lengths in order.
fn add_tree(store: &Blockstore, bytes: &[u8], sizes: &[usize]) -> (Cid, Vec<usize>) {
    let mut level: Vec<(Cid, u64, u64)> = Vec::new();
    let mut lens = Vec::new();
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        if at == bytes.len() {
            break;
        }
        let data = &bytes[at..(at + size).min(bytes.len())];
        at += data.len();
        let cid = block_cid(Version::V1, RAW, data);
        store.put(&cid, data).unwrap();
        lens.push(data.len());
        level.push((cid, data.len() as u64, data.len() as u64));
    }
    loop {
        let mut up = Vec::new();
        for children in level.chunks(FANOUT) {
            let file_size: u64 = children.iter().map(|c| c.1).sum();
            let sizes: Vec<u64> = children.iter().map(|c| c.1).collect();
            let data = encode_unixfs_file(&[], file_size, &sizes);
            let links: Vec<PbLink<'static>> = children
                .iter()
                .map(|c| PbLink {
                    hash: c.0,
                    name: Some(""),
                    tsize: Some(c.2),
                })
                .collect();
            let node = encode_dag_pb(&links, Some(&data));
            let cid = block_cid(Version::V1, DAG_PB, &node);
            store.put(&cid, &node).unwrap();
            let tsize = node.len() as u64 + children.iter().map(|c| c.2).sum::<u64>();
            up.push((cid, file_size, tsize));
        }
        level = up;
        if level.len() == 1 {
            return (level[0].0, lens);
        }
    }
}

/// The stream alone into a fresh slot directory; the slot's bytes.
async fn stream(f: &Fleet, release: &Published, installer: Box<dyn Installer>) -> Streamed {
    let mut installer = installer;
    stream_into_slot(
        slot_release(f, release),
        std::slice::from_ref(&f.gateway),
        &FetchOptions::default(),
        &mut installer,
    )
    .await
    .unwrap()
}

fn slot_release(f: &Fleet, release: &Published) -> SlotRelease {
    SlotRelease {
        manifest: release.manifest.clone(),
        release_id: release.release_id,
        chain_id: f.w.chain_id,
        registry: *f.w.registry.address(),
        key: f.secret_key(release.manifest.version),
    }
}

/// Publishes `len` bytes of image as a DAG of leaves cycling through `sizes`, streams it, and
/// checks the slot and the queue: the image exactly, every piece at most `PIECE_SIZE`, exactly
/// one piece per `PIECE_SIZE` (or part) of every leaf, the bytes held within the bound.
async fn publish_and_stream(f: &Fleet, version: u64, len: usize, sizes: &[usize]) -> Streamed {
    let mut leaves = Vec::new();
    let release = f
        .publish_stored(
            version,
            image(version, len),
            |_, _| {},
            |f, bundle| {
                let (root, lens) = add_tree(&f.store, bundle, sizes);
                leaves = lens;
                root
            },
        )
        .await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let slots = dir.path().join("slots");
    let streamed = stream(f, &release, Box::new(FileInstaller::new(&slots).unwrap())).await;
    let q = streamed.queue;
    let expected: u64 = leaves.iter().map(|l| l.div_ceil(PIECE_SIZE) as u64).sum();
    assert_eq!(q.pieces, expected, "pieces for leaves {sizes:?}");
    assert!(q.largest_piece <= PIECE_SIZE, "{q:?}");
    assert!(
        q.peak_queued <= (PIECES_IN_FLIGHT + 2) * PIECE_SIZE,
        "{q:?}"
    );
    assert!(streamed.failures.is_empty(), "{:?}", streamed.failures);
    assert_eq!(streamed.bundle_len, release.bundle.len() as u64);
    let slot = std::fs::read(slots.join("slot-b.img")).unwrap();
    assert!(slot == release.image, "the slot is not the image");
    assert_eq!(
        B256::from(<[u8; 32]>::from(sha2::Sha256::digest(&slot))),
        release.manifest.imageSha256
    );
    streamed
}

/// Leaves just under, at and just over one and two pieces, the verifier's largest block and one
/// byte under it, and odd sizes (a segment and its tag, a prime) so that leaf and piece
/// boundaries fall at every kind of offset in the AEAD segments (64 KiB plaintext + 16 tag).
#[tokio::test]
async fn review_leaves_at_the_split_points_install_with_exact_pieces() {
    let f = Fleet::new().await;
    let sizes = [
        PIECE_SIZE - 1,
        PIECE_SIZE,
        PIECE_SIZE + 1,
        1,
        2 * PIECE_SIZE,
        2 * PIECE_SIZE + 1,
        MAX_BLOCK_SIZE,
        MAX_BLOCK_SIZE - 1,
        65_536 + 16,
        65_537,
        7,
    ];
    let total: usize = sizes.iter().sum();
    publish_and_stream(&f, 1, total + 100_000, &sizes).await;
}

/// Leaves of one byte (about 9,000 of them, two levels of nodes): one piece per byte, each a
/// full `PIECE_SIZE` allocation reused through the spares; the queue's bytes stay tiny while
/// its count is the channel's, and the update installs. A segment's tag and every header byte
/// arrive a byte at a time.
#[tokio::test]
async fn review_leaves_of_one_byte_install_one_piece_each() {
    let f = Fleet::new().await;
    let streamed = publish_and_stream(&f, 1, 5000, &[1]).await;
    assert_eq!(streamed.queue.pieces, streamed.bundle_len);
    assert!(streamed.queue.peak_queued <= PIECES_IN_FLIGHT + 2);
}

/// A slot writer that panics after `after` bytes of the slot, around a real [`FileInstaller`].
struct PanicAfter {
    inner: FileInstaller,
    after: usize,
}

struct Tripwire<'a> {
    out: &'a mut dyn Write,
    left: usize,
}

impl Write for Tripwire<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() >= self.left {
            panic!("the slot writer died mid-slot");
        }
        self.left -= buf.len();
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Installer for PanicAfter {
    fn state(&self) -> otaledger_device_sdk::Result<BootState> {
        self.inner.state()
    }

    fn recover(&mut self) -> otaledger_device_sdk::Result<Recovery> {
        self.inner.recover()
    }

    fn write_inactive(
        &mut self,
        version: u64,
        release_id: B256,
        image_sha256: B256,
        write: &mut dyn FnMut(&mut dyn Write) -> otaledger_device_sdk::Result<u64>,
    ) -> otaledger_device_sdk::Result<()> {
        let after = self.after;
        self.inner
            .write_inactive(version, release_id, image_sha256, &mut |out| {
                write(&mut Tripwire { out, left: after })
            })
    }

    fn mark_pending(&mut self) -> otaledger_device_sdk::Result<()> {
        self.inner.mark_pending()
    }

    fn switch(&mut self) -> otaledger_device_sdk::Result<()> {
        self.inner.switch()
    }

    fn confirm(&mut self, health: &dyn HealthCheck) -> otaledger_device_sdk::Result<()> {
        self.inner.confirm(health)
    }
}

/// The slot writer thread panics mid-slot (after 300,000 bytes of plaintext were written to
/// `<slot>.partial`) behind a real stream from the real gateway: the update fails with an
/// install error (the fetch stopped, nothing hung), `<slot>.partial` is gone, the slot was never
/// written, the boot state is unchanged and the installer was given back; the same stream then
/// installs through a plain installer on the same directory.
#[tokio::test]
async fn review_a_writer_panicking_mid_slot_leaves_no_partial() {
    let f = Fleet::new().await;
    let release = f.publish(1, 2 << 20).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let slots = dir.path().join("slots");
    let mut installer: Box<dyn Installer> = Box::new(PanicAfter {
        inner: FileInstaller::new(&slots).unwrap(),
        after: 300_000,
    });
    let err = stream_into_slot(
        slot_release(&f, &release),
        std::slice::from_ref(&f.gateway),
        &FetchOptions::default(),
        &mut installer,
    )
    .await
    .expect_err("the writer panicked");
    assert!(
        matches!(err, otaledger_device_sdk::Error::InstallState { .. }),
        "{err:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&slots)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().ends_with(".partial")),
        "left: {left:?}"
    );
    assert!(!slots.join("slot-b.img").exists());
    assert_eq!(installer.state().unwrap(), BootState::default());
    assert_eq!(installer.state().unwrap().active, Slot::A);

    let streamed = stream(&f, &release, Box::new(FileInstaller::new(&slots).unwrap())).await;
    assert_eq!(streamed.image_len, release.image.len() as u64);
    assert!(std::fs::read(slots.join("slot-b.img")).unwrap() == release.image);
}
