//! Steps 6 and 7 as one stream, into the inactive slot ([`stream_into_slot`]): the verified
//! fetch's bytes (each handed on only after its block matched its CID,
//! [`otaledger_ipfs::fetch_into`]) go straight to the decryption and from it to the installer's
//! slot writer; no bundle file is written or read back.
//!
//! Two threads besides the runtime, with a bounded channel of [`PIECES_IN_FLIGHT`] pieces of at
//! most [`PIECE_SIZE`] bytes between them (a verified block larger than a piece, up to the
//! verifier's 2 MiB, is split, never a larger piece), so memory stays constant whatever the
//! bundle's size and however its publisher chunked it:
//! - the fetch's blocking thread: the CAR, every block's hash, and the bundle's SHA-256 as the
//!   verified bytes pass;
//! - the writer's own thread (`slot-writer`, not the runtime's blocking pool, so one blocking
//!   thread is enough), inside [`Installer::write_inactive`]: the header, its target checks, the
//!   CP-ABE unlock, the segment-by-segment AEAD and the slot write (the image's SHA-256 on a
//!   third, `StreamDecryptor::hash_on_thread`).
//!
//! If the update's future is dropped, the writer is told at once (a flag and a sentinel on the
//! channel) and gives up without waiting for the fetch, which may need the runtime's thread to
//! go on. The stream cannot be replayed: a second call of the write closure by the installer
//! fails (no verdict is left for it).
//!
//! Nothing is committed unless every check passed: the slot writer's output is kept only if the
//! writer returns `Ok`, and it returns `Ok` only after the fetch completed (the whole bundle,
//! exactly `bundleSize` bytes, every block verified), the bundle's SHA-256 equalled the
//! manifest's (known only at the end), every segment authenticated and the image's SHA-256
//! equalled the manifest's. Any failure — a refusal by the decryption (which stops the fetch), a
//! gateway failing with no other to resume, the bundle hash, a dropped future — makes the writer
//! return an error, so the installer removes its temporary file and the slot is untouched.
//!
//! Errors keep their step: [`Error::BundleTooLarge`], [`Error::BundleCid`], [`Error::Download`],
//! [`Error::BundleHash`] (step 6); [`Error::BundleTarget`], [`Error::Decrypt`],
//! [`Error::ImageHash`] (step 7). The first to be known wins: a refusal by the decryption ends
//! the stream there (the rest of a bundle already refused is not downloaded), so a bundle that
//! is both another than the approved one and undecryptable is refused by the decryption.

use std::{
    io::Write,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
};

use alloy_primitives::{Address, B256};
use otaledger_cpabe::SecretKey;
use otaledger_ipfs::{FetchError, FetchOptions, fetch::GatewayFailure};
use sha2::{Digest, Sha256};

use super::{
    Installer,
    decrypt::BundleOpener,
    download::{bundle_cid, check_bundle_hash},
    install::{BootState, HealthCheck, Recovery},
};
use crate::{Error, Manifest, Result};

/// Pieces queued between the fetch and the decryption; as many again are kept for reuse.
pub const PIECES_IN_FLIGHT: usize = 4;

/// Largest piece, in bytes: one block of Kubo's default chunker. A verified block is handed on
/// in pieces of at most this size whatever the DAG's block size (up to
/// [`otaledger_ipfs::MAX_BLOCK_SIZE`]), so the pieces between the fetch and the decryption hold
/// at most ([`PIECES_IN_FLIGHT`] + 2) × `PIECE_SIZE` bytes (those queued, the one being queued,
/// the one being decrypted) and the spares kept for reuse [`PIECES_IN_FLIGHT`] more: 2.5 MiB in
/// all, a constant.
pub const PIECE_SIZE: usize = 256 * 1024;

/// How the queue between the fetch and the decryption was used by one stream: the memory it
/// took, which [`PIECE_SIZE`] and [`PIECES_IN_FLIGHT`] bound whatever the bundle's blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueUse {
    /// Pieces queued.
    pub pieces: u64,
    /// The largest piece's allocation (its capacity, so spares kept for reuse are covered):
    /// at most [`PIECE_SIZE`].
    pub largest_piece: usize,
    /// The most bytes held in pieces at once between the fetch and the decryption (queued, the
    /// one being queued and the one being decrypted): at most ([`PIECES_IN_FLIGHT`] + 2) ×
    /// [`PIECE_SIZE`].
    pub peak_queued: usize,
}

/// The approved release a stream installs, and what opens it.
#[derive(Clone)]
pub struct SlotRelease {
    /// The approved manifest (steps 1–4).
    pub manifest: Manifest,
    /// The release id.
    pub release_id: B256,
    /// The chain id the release was approved on.
    pub chain_id: u64,
    /// The registry it was approved in.
    pub registry: Address,
    /// The device's CP-ABE key for it (step 5).
    pub key: SecretKey,
}

impl std::fmt::Debug for SlotRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotRelease")
            .field("release_id", &self.release_id)
            .field("version", &self.manifest.version)
            .finish_non_exhaustive()
    }
}

/// What a stream that installed its release did.
#[derive(Debug)]
pub struct Streamed {
    /// The bundle's length (the manifest's `bundleSize`).
    pub bundle_len: u64,
    /// The image's length.
    pub image_len: u64,
    /// The gateway that delivered the last byte.
    pub completed_by: url::Url,
    /// Gateway attempts that failed before (the next resumed after their verified bytes).
    pub failures: Vec<GatewayFailure>,
    /// How the queue between the fetch and the decryption was used.
    pub queue: QueueUse,
}

/// Steps 6, 7 and 8.1 as one stream (see the module documentation): fetches `release`'s bundle
/// from `gateways`, decrypts it as it arrives and writes the image into `installer`'s inactive
/// slot, committed only if every check passed.
///
/// While the stream runs, the installer is lent to the writing thread and `installer` holds a
/// stand-in that forwards to it (waiting for the write to end); it is given back before this
/// returns, or, if this future is dropped, the stand-in keeps forwarding to it.
pub async fn stream_into_slot(
    release: SlotRelease,
    gateways: &[url::Url],
    opts: &FetchOptions,
    installer: &mut Box<dyn Installer>,
) -> Result<Streamed> {
    let cid = bundle_cid(&release.manifest)?;
    let size = release.manifest.bundleSize;
    let (pieces_tx, pieces_rx) = sync_channel::<Piece>(PIECES_IN_FLIGHT);
    let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(PIECES_IN_FLIGHT);
    let (verdict_tx, verdict_rx) = sync_channel::<Result<B256>>(1);
    // Wakes the writer if this future is dropped: it must not wait for a fetch that may need
    // the runtime (the thread a current-thread runtime runs on) to make progress.
    let abandoned = Arc::new(AtomicBool::new(false));
    let abandon = Abandon(Some(pieces_tx.clone()), abandoned.clone());
    let queued = Arc::new(AtomicUsize::new(0));
    let sink = Pieces {
        pieces: pieces_tx,
        spare: spare_rx,
        hash: Sha256::new(),
        queued: queued.clone(),
        used: QueueUse::default(),
    };
    let lent = Lent::lend(installer);
    let (written_tx, written_rx) = tokio::sync::oneshot::channel();
    let writer_lent = lent.clone();
    // Its own thread, not the runtime's blocking pool: the fetch takes one of those, and a
    // device runtime may have only one (`max_blocking_threads(1)`).
    let writer = std::thread::Builder::new()
        .name("slot-writer".into())
        .spawn(move || {
            let stream = Stream {
                pieces: pieces_rx,
                spare: spare_tx,
                verdict: verdict_rx,
                abandoned,
                queued,
            };
            let mut image_len = 0;
            let mut calls = 0u32;
            let written = writer_lent.with(|installer| {
                let m = &release.manifest;
                installer.write_inactive(m.version, release.release_id, m.imageSha256, &mut |out| {
                    // A stream cannot be replayed: an installer writing the slot again (a retry
                    // after its own I/O error) gets an install error, not the rest of the stream
                    // (which a new opener would refuse as a bad bundle).
                    calls += 1;
                    if calls > 1 {
                        return Err(Error::InstallState {
                            reason: "the slot write was asked for again: a streamed bundle \
                                     cannot be replayed (the next update downloads it again)"
                                .into(),
                        });
                    }
                    let mut opener =
                        BundleOpener::new(&release.key, m, release.chain_id, release.registry);
                    stream.decrypt(&mut opener, m, out)?;
                    image_len = opener.finish()?;
                    Ok(image_len)
                })
            });
            let _ = written_tx.send(written.map(|()| image_len));
        });
    if let Err(e) = writer {
        lent.give_back(installer);
        return Err(Error::InstallState {
            reason: format!("cannot start the slot writer: {e}"),
        });
    }
    let fetched = otaledger_ipfs::fetch_into(cid, size, gateways, sink, opts).await;
    // The fetch ended (its sink is dropped below or was by the fetch): so may the channel.
    abandon.disarm();
    let (verdict, report) = match fetched {
        Ok(report) => {
            let Pieces {
                pieces, hash, used, ..
            } = report.sink;
            // The end of the stream for the writer, then the verdict it waits for.
            drop(pieces);
            let sha256 = B256::from(<[u8; 32]>::from(hash.finalize()));
            (
                Ok(sha256),
                Some((report.completed_by.0, report.failures, used)),
            )
        }
        Err(e) => (
            Err(Error::Download {
                source: Box::new(e),
            }),
            None,
        ),
    };
    // Never blocks: one slot, one message. The writer may be gone (it refused the bundle).
    // Dropped at once, so a writer asking again (an installer calling its write a second time)
    // finds no verdict rather than waiting for one.
    let _ = verdict_tx.send(verdict);
    drop(verdict_tx);
    let written = written_rx.await;
    lent.give_back(installer);
    let image_len = written.unwrap_or_else(|_| {
        Err(Error::InstallState {
            reason: "the slot writer stopped without an answer (it panicked)".into(),
        })
    })?;
    // The writer returns `Ok` only after a successful fetch's verdict.
    let Some((completed_by, failures, queue)) = report else {
        return Err(Error::InstallState {
            reason: "the slot was written without a completed download".into(),
        });
    };
    for failure in &failures {
        tracing::warn!(%failure, "step 6: gateway attempt failed, resumed at the next one");
    }
    tracing::info!(
        size,
        gateway = %completed_by,
        "steps 6-7: bundle streamed, every block, the bundle sha256, every segment and the image sha256 verified"
    );
    Ok(Streamed {
        bundle_len: size,
        image_len,
        completed_by,
        failures,
        queue,
    })
}

/// What the writer receives.
enum Piece {
    /// The next verified bytes.
    Bytes(Vec<u8>),
    /// The update was dropped: stop.
    Abandoned,
}

/// Dropped with [`stream_into_slot`]'s future while the fetch runs: sets the flag, then wakes
/// the writer with [`Piece::Abandoned`]. When the channel is full the sentinel cannot be queued,
/// but then the writer is not waiting: it takes a queued piece and sees the flag first.
/// Disarmed (its sender dropped, nothing sent) once the fetch ended.
struct Abandon(Option<SyncSender<Piece>>, Arc<AtomicBool>);

impl Abandon {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(pieces) = self.0.take() {
            self.1.store(true, Ordering::SeqCst);
            let _ = pieces.try_send(Piece::Abandoned);
        }
    }
}

/// The fetch's sink: hashes the verified bytes and queues them for the writer, one piece of at
/// most [`PIECE_SIZE`] per call (the fetch hands on one block's bytes at a time, and `write_all`
/// calls again for the rest of a larger block), reusing the pieces the writer is done with.
struct Pieces {
    pieces: SyncSender<Piece>,
    spare: Receiver<Vec<u8>>,
    hash: Sha256,
    /// Bytes in pieces the writer is not done with (shared with [`Stream`]).
    queued: Arc<AtomicUsize>,
    used: QueueUse,
}

impl Write for Pieces {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Split, never grow: a piece holds at most `PIECE_SIZE` bytes whatever the block size.
        let buf = &buf[..buf.len().min(PIECE_SIZE)];
        self.hash.update(buf);
        let mut piece = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(PIECE_SIZE));
        piece.clear();
        piece.extend_from_slice(buf);
        self.used.pieces += 1;
        self.used.largest_piece = self.used.largest_piece.max(piece.capacity());
        let queued = self.queued.fetch_add(buf.len(), Ordering::SeqCst) + buf.len();
        self.used.peak_queued = self.used.peak_queued.max(queued);
        self.pieces.send(Piece::Bytes(piece)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the decryption stopped taking the bundle",
            )
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The writer's end of the stream.
struct Stream {
    pieces: Receiver<Piece>,
    spare: SyncSender<Vec<u8>>,
    /// How the fetch ended: the bundle's SHA-256, or why it failed.
    verdict: Receiver<Result<B256>>,
    /// Set when the update was dropped.
    abandoned: Arc<AtomicBool>,
    /// Bytes in pieces not done with yet (shared with [`Pieces`]).
    queued: Arc<AtomicUsize>,
}

impl Stream {
    /// Feeds every verified piece to `opener` until the fetch ends, then takes the fetch's
    /// verdict and checks the bundle's SHA-256. A refusal by the opener returns at once (the
    /// stream's end is dropped, which stops the fetch).
    fn decrypt(
        &self,
        opener: &mut BundleOpener<'_>,
        manifest: &Manifest,
        out: &mut dyn Write,
    ) -> Result<()> {
        // Until the fetch ends (every sender dropped) or the update is dropped.
        for piece in &self.pieces {
            match piece {
                _ if self.abandoned.load(Ordering::SeqCst) => return Err(abandoned()),
                Piece::Abandoned => return Err(abandoned()),
                Piece::Bytes(bytes) => {
                    opener.update(&bytes, out)?;
                    self.queued.fetch_sub(bytes.len(), Ordering::SeqCst);
                    // Kept for reuse if the fetch is short of spares, freed otherwise.
                    let _ = self.spare.try_send(bytes);
                }
            }
        }
        // No verdict: the update was dropped, or the write is asked for again after the
        // verdict was taken (an installer retrying: a stream cannot be replayed).
        let sha256 = self.verdict.recv().unwrap_or_else(|_| Err(abandoned()))?;
        check_bundle_hash(manifest, sha256)
    }
}

/// The stream ended without the whole verified bundle: the update was dropped, or the write was
/// asked for again once the stream was used up.
fn abandoned() -> Error {
    Error::Download {
        source: Box::new(FetchError::Task(
            "the stream ended without a verified bundle: the update was dropped, or the slot \
             write was asked for again (a stream cannot be replayed)"
                .into(),
        )),
    }
}

/// The installer while the writing thread holds it: shared with the [`Lent`] stand-in left in
/// the updater's parts.
type Shared = Arc<Mutex<Option<Box<dyn Installer>>>>;

/// A stand-in for an installer lent to the writing thread: forwards every call to it, waiting
/// for the write to end.
#[derive(Clone)]
struct Lent(Shared);

impl Lent {
    /// Takes the installer out of `slot`, leaving a stand-in forwarding to it.
    fn lend(slot: &mut Box<dyn Installer>) -> Self {
        let lent = Self(Arc::new(Mutex::new(None)));
        let installer = std::mem::replace(slot, Box::new(lent.clone()));
        *lent.lock() = Some(installer);
        lent
    }

    /// Puts the installer back in `slot` (if `slot` still holds this stand-in's installer).
    fn give_back(&self, slot: &mut Box<dyn Installer>) {
        if let Some(installer) = self.lock().take() {
            *slot = installer;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Box<dyn Installer>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<T>(&self, f: impl FnOnce(&mut dyn Installer) -> Result<T>) -> Result<T> {
        match self.lock().as_mut() {
            Some(installer) => f(installer.as_mut()),
            None => Err(Error::InstallState {
                reason: "the installer was given back".into(),
            }),
        }
    }
}

impl Installer for Lent {
    fn state(&self) -> Result<BootState> {
        self.with(|i| i.state())
    }

    fn recover(&mut self) -> Result<Recovery> {
        self.with(|i| i.recover())
    }

    fn write_inactive(
        &mut self,
        version: u64,
        release_id: B256,
        image_sha256: B256,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<u64>,
    ) -> Result<()> {
        self.with(|i| i.write_inactive(version, release_id, image_sha256, write))
    }

    fn mark_pending(&mut self) -> Result<()> {
        self.with(|i| i.mark_pending())
    }

    fn switch(&mut self) -> Result<()> {
        self.with(|i| i.switch())
    }

    fn confirm(&mut self, health: &dyn HealthCheck) -> Result<()> {
        self.with(|i| i.confirm(health))
    }
}
