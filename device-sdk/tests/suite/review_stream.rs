//! Review of steps 6 and 7 as one stream (`client::stream_into_slot`, second engineer): attacks
//! on the threads and channels between the verified fetch and the slot writer (a gateway that
//! stalls mid-stream while the update is dropped, a runtime with one blocking thread, an
//! installer that retries or panics or refuses at once), and on what a power cut mid-stream
//! leaves on disk. Each test is bounded (a hang fails the test instead of the suite).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::primitives::B256;
use axum::{
    Router,
    extract::{Path as UrlPath, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use otaledger_device_sdk::{
    Error, Result,
    client::{
        BootState, FileInstaller, HealthCheck, Installer, Outcome, Recovery, Updater, UpdaterParts,
    },
};
use otaledger_ipfs::fetch::FetchProgress;

use crate::fleet::{Fleet, dead_url, nothing_installed, serve};

/// 2 MiB: 8 blocks of 256 KiB and a partial one.
const LEN: usize = 2 << 20;

// ---- A gateway that stalls mid-stream ----

struct Stall {
    upstream: url::Url,
    /// Bytes of every response sent before the stall.
    prefix: usize,
}

/// Forwards to the real gateway, sends the first `prefix` bytes of its answer, then holds the
/// connection open without sending anything more (a gateway hanging mid-stream).
async fn stall(
    State(s): State<Arc<Stall>>,
    UrlPath(cid): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let url = format!("{}ipfs/{cid}?{}", s.upstream, query.unwrap_or_default());
    let mut request = reqwest::Client::new().get(url);
    if let Some(accept) = headers.get(header::ACCEPT) {
        request = request.header(header::ACCEPT, accept.to_str().unwrap());
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut body = response.bytes().await.unwrap().to_vec();
    body.truncate(s.prefix);
    use futures_util::StreamExt;
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(body)])
        .chain(futures_util::stream::pending());
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

async fn stalling_mirror(upstream: &url::Url, prefix: usize) -> url::Url {
    serve(
        Router::new()
            .route("/ipfs/{cid}", get(stall))
            .with_state(Arc::new(Stall {
                upstream: upstream.clone(),
                prefix,
            })),
    )
    .await
}

/// Runs `body` on its own thread with its own runtime (built by `runtime`), and waits at most
/// `limit` for its answer: `None` if it did not answer in time (a hang; the thread is left
/// behind).
fn on_own_runtime<T: Send + 'static>(
    runtime: impl FnOnce() -> tokio::runtime::Runtime + Send + 'static,
    limit: Duration,
    body: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = runtime();
        let out = rt.block_on(body());
        let _ = tx.send(out);
    });
    rx.recv_timeout(limit).ok()
}

/// The inactive slot's bytes (slot B: nothing was installed before).
fn slot_image(dir: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(dir.join("slots/slot-b.img")).ok()
}

// FOUND (in 935ff28/10716fc; fixed by a582fc7, kept as a regression test): an update dropped mid-stream (a timeout around `run_once`, as a device's retry loop
// does) while the gateway stalls, then the same updater run again at once, on a current-thread
// runtime (`#[tokio::main(flavor = "current_thread")]`, the power-cut child's runtime, every
// `#[tokio::test]`): the second run's step 0 calls `installer.state()` on the `Lent` stand-in,
// which takes a `std::sync::Mutex` the old writer thread holds for its whole write; that writer
// waits for pieces from the old fetch job, which waits in `BodyReader` for a body pump task that
// only the runtime's one thread can run, and that thread is blocked on the mutex. Nothing ever
// moves again: the rate guard's deadline is a timer on the same blocked runtime, and the
// device's own timeout cannot fire either. (On a multi-thread runtime the same call blocks a
// worker thread for up to `rate_grace`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_an_update_dropped_while_the_gateway_stalls_then_run_again_does_not_hang() {
    let f = Fleet::new().await;
    let release = f.publish(1, LEN).await;
    f.issue(release.release_id, release.release_id);
    // The CAR's first two 256 KiB leaves and part of the third, then silence.
    let stalled = stalling_mirror(&f.gateway, 600_000).await;
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.gateways = vec![stalled, f.gateway.clone()];
    // A short rate window, so a stalled gateway is given up on quickly when the runtime runs
    // (the silent window after the first: 10 s).
    parts.fetch.rate_grace = Duration::from_secs(5);
    let reached = Arc::new(tokio::sync::Notify::new());
    let signal = reached.clone();
    parts.fetch.progress = Some(Arc::new(move |p: FetchProgress| {
        // The first leaf verified (the body pump handed over at least 512 KiB of the 600,000
        // bytes sent; the rest it holds until its rate window ends).
        if p.position >= 262_144 {
            signal.notify_one();
        }
    }));
    let image = release.image.clone();
    let path = dir.path().to_path_buf();
    let answer = on_own_runtime(
        || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        },
        Duration::from_secs(90),
        move || {
            Box::pin(async move {
                let mut updater = Updater::new(parts);
                tokio::select! {
                    r = updater.run_once() => return format!("ended before the drop: {r:?}"),
                    // A moment for the fetch to take every block it was handed: it then waits
                    // for the stalled gateway's next bytes.
                    () = async {
                        reached.notified().await;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    } => {}
                }
                // Dropped mid-stream; the device's loop tries again at once.
                let r = updater.run_once().await;
                let ok = matches!(r, Ok(Outcome::Updated { version: 1, .. }))
                    && slot_image(&path).as_deref() == Some(image.as_slice());
                format!("second run: {r:?}, slot is the image: {ok}")
            })
        },
    );
    let answer = answer.expect(
        "the second run_once hung: the Lent installer's mutex, held by the old writer waiting on \
         a fetch whose body pump needs the blocked runtime thread",
    );
    assert!(answer.ends_with("slot is the image: true"), "{answer}");
}

// FOUND (in 935ff28/10716fc; fixed by a582fc7, kept as a regression test): the stream needs two blocking-pool threads at once (the slot writer, spawned first,
// blocks on the pieces channel; the fetch job is a second `spawn_blocking`). A device runtime
// with a bounded blocking pool (`Builder::max_blocking_threads(1)`, a small embedded
// configuration under which the file-based steps 6 and 7 worked, one after the other) queues
// the fetch job behind the writer for ever: the update hangs, and dropping it does not help (the
// queued job, which owns the pieces' sender, is never run nor dropped, so the writer — holding
// the installer's mutex — never ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_a_runtime_with_one_blocking_thread_does_not_deadlock_the_stream() {
    let f = Fleet::new().await;
    let release = f.publish(1, 600_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let parts = f.parts(dir.path());
    let image = release.image.clone();
    let path = dir.path().to_path_buf();
    let answer = on_own_runtime(
        || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(1)
                .enable_all()
                .build()
                .unwrap()
        },
        Duration::from_secs(90),
        move || {
            Box::pin(async move {
                let mut updater = Updater::new(parts);
                let r = updater.run_once().await;
                let ok = matches!(r, Ok(Outcome::Updated { version: 1, .. }))
                    && slot_image(&path).as_deref() == Some(image.as_slice());
                format!("{r:?}, slot is the image: {ok}")
            })
        },
    );
    let answer = answer.expect(
        "run_once hung with one blocking thread: the slot writer waits for the fetch job queued \
         behind it",
    );
    assert!(answer.ends_with("slot is the image: true"), "{answer}");
}

// ---- Installers that retry, panic or refuse ----

/// A `FileInstaller` whose flash fails once, transiently, right after the image was written
/// (the sync), and which retries the write once on an I/O error, calling `write` again — as the
/// `FnMut` in `Installer::write_inactive` allows, and as worked with the file-based step 7 (the
/// bundle file was decrypted again from its start).
struct RetryingInstaller {
    inner: FileInstaller,
    failed_once: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
}

impl Installer for RetryingInstaller {
    fn state(&self) -> Result<BootState> {
        self.inner.state()
    }

    fn recover(&mut self) -> Result<Recovery> {
        self.inner.recover()
    }

    fn write_inactive(
        &mut self,
        version: u64,
        release_id: B256,
        image_sha256: B256,
        write: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<u64>,
    ) -> Result<()> {
        let failed_once = self.failed_once.clone();
        let calls = self.calls.clone();
        let mut attempt = |installer: &mut FileInstaller| {
            installer.write_inactive(version, release_id, image_sha256, &mut |out| {
                calls.fetch_add(1, Ordering::SeqCst);
                let n = write(out)?;
                if !failed_once.swap(true, Ordering::SeqCst) {
                    return Err(Error::InstallIo {
                        path: "/dev/mtd1".into(),
                        source: std::io::Error::other("transient sync failure"),
                    });
                }
                Ok(n)
            })
        };
        match attempt(&mut self.inner) {
            Err(Error::InstallIo { .. }) => attempt(&mut self.inner),
            r => r,
        }
    }

    fn mark_pending(&mut self) -> Result<()> {
        self.inner.mark_pending()
    }

    fn switch(&mut self) -> Result<()> {
        self.inner.switch()
    }

    fn confirm(&mut self, health: &dyn HealthCheck) -> Result<()> {
        self.inner.confirm(health)
    }
}

// FOUND (in 935ff28/10716fc; fixed by a582fc7, kept as a regression test): the write closure `stream_into_slot` hands the installer is an `FnMut` that can run
// only once: a second call (an installer retrying a transient I/O error, which the trait's
// `FnMut` allows and which worked with the file-based step 7) finds the pieces channel closed
// and waits in `verdict.recv()` for a verdict already taken, while `stream_into_slot` keeps the
// verdict's sender alive until the writer ends: the update hangs for ever (only a timeout
// around it, dropping the sender, ends it).
#[tokio::test]
async fn review_an_installer_retrying_the_write_does_not_hang_the_update() {
    let f = Fleet::new().await;
    let release = f.publish(1, 600_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    let calls = Arc::new(AtomicU64::new(0));
    parts.installer = Box::new(RetryingInstaller {
        inner: FileInstaller::new(dir.path().join("slots")).unwrap(),
        failed_once: Arc::new(AtomicBool::new(false)),
        calls: calls.clone(),
    });
    let mut updater = Updater::new(parts);
    let r = tokio::time::timeout(Duration::from_secs(60), updater.run_once()).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the installer did not retry"
    );
    let r = r.expect("the update hung: the retried write waits for a verdict already taken");
    // Either installed exactly, or refused cleanly (a stream cannot be replayed).
    match r {
        Ok(Outcome::Updated { version: 1, .. }) => {
            assert!(slot_image(dir.path()).unwrap() == release.image);
        }
        Ok(other) => panic!("{other:?}"),
        Err(_) => nothing_installed(dir.path(), &updater, 0),
    }
}

/// An installer whose slot writes panic once, after part of the image (a driver bug): the panic
/// on the writer thread drops the pieces' receiver, so the fetch stops; the update fails (no
/// hang, nothing installed) and the next run, with the installer given back, installs.
struct PanickingInstaller {
    inner: FileInstaller,
    panicked: Arc<AtomicBool>,
}

struct PanicAfter<'a> {
    out: &'a mut dyn std::io::Write,
    left: usize,
}

impl std::io::Write for PanicAfter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            panic!("flash driver bug");
        }
        self.left -= buf.len();
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Installer for PanickingInstaller {
    fn state(&self) -> Result<BootState> {
        self.inner.state()
    }

    fn recover(&mut self) -> Result<Recovery> {
        self.inner.recover()
    }

    fn write_inactive(
        &mut self,
        version: u64,
        release_id: B256,
        image_sha256: B256,
        write: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<u64>,
    ) -> Result<()> {
        let panicked = self.panicked.clone();
        self.inner
            .write_inactive(version, release_id, image_sha256, &mut |out| {
                if panicked.swap(true, Ordering::SeqCst) {
                    return write(out);
                }
                write(&mut PanicAfter { out, left: 300_000 })
            })
    }

    fn mark_pending(&mut self) -> Result<()> {
        self.inner.mark_pending()
    }

    fn switch(&mut self) -> Result<()> {
        self.inner.switch()
    }

    fn confirm(&mut self, health: &dyn HealthCheck) -> Result<()> {
        self.inner.confirm(health)
    }
}

#[tokio::test]
async fn review_a_panic_on_the_writer_thread_stops_the_fetch_and_the_next_run_installs() {
    let f = Fleet::new().await;
    let release = f.publish(1, 8 << 20).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.installer = Box::new(PanickingInstaller {
        inner: FileInstaller::new(dir.path().join("slots")).unwrap(),
        panicked: Arc::new(AtomicBool::new(false)),
    });
    let furthest = Arc::new(AtomicU64::new(0));
    let seen = furthest.clone();
    parts.fetch.progress = Some(Arc::new(move |p: FetchProgress| {
        seen.fetch_max(p.position, Ordering::SeqCst);
    }));
    let mut updater = Updater::new(parts);
    let r = tokio::time::timeout(Duration::from_secs(60), updater.run_once())
        .await
        .expect("the update hung after the writer thread panicked");
    let err = r.unwrap_err();
    assert!(
        matches!(err, Error::InstallState { .. }),
        "{err}: a panic is not a verdict on the release"
    );
    let furthest = furthest.load(Ordering::SeqCst);
    let ahead = (otaledger_device_sdk::client::PIECES_IN_FLIGHT as u64 + 4) * 262_144;
    assert!(
        furthest <= 300_000 + ahead + 262_144,
        "the download ran on to byte {furthest} after the writer died"
    );
    let boot = updater.parts().installer.state().unwrap();
    assert_eq!(boot.pending, None);
    assert_eq!(boot.active_version, 0);
    assert!(
        !dir.path().join("slots/slot-b.img").exists(),
        "a slot was committed"
    );
    // The installer came back from the writer thread: the next run installs.
    let r = tokio::time::timeout(Duration::from_secs(60), updater.run_once())
        .await
        .expect("the second run hung");
    assert!(
        matches!(r, Ok(Outcome::Updated { version: 1, .. })),
        "{r:?}"
    );
    assert!(slot_image(dir.path()).unwrap() == release.image);
}

/// An installer refusing the write at once (a slot locked by the bootloader): the writer ends
/// before the first piece, which stops the fetch at its first block; the installer's error is
/// the update's, nothing is installed.
struct RefusingInstaller(FileInstaller);

impl Installer for RefusingInstaller {
    fn state(&self) -> Result<BootState> {
        self.0.state()
    }

    fn recover(&mut self) -> Result<Recovery> {
        self.0.recover()
    }

    fn write_inactive(
        &mut self,
        _: u64,
        _: B256,
        _: B256,
        _: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<u64>,
    ) -> Result<()> {
        Err(Error::InstallState {
            reason: "slot locked".into(),
        })
    }

    fn mark_pending(&mut self) -> Result<()> {
        self.0.mark_pending()
    }

    fn switch(&mut self) -> Result<()> {
        self.0.switch()
    }

    fn confirm(&mut self, health: &dyn HealthCheck) -> Result<()> {
        self.0.confirm(health)
    }
}

#[tokio::test]
async fn review_an_installer_refusing_at_once_stops_the_fetch_at_its_first_blocks() {
    let f = Fleet::new().await;
    let release = f.publish(1, 8 << 20).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.installer = Box::new(RefusingInstaller(
        FileInstaller::new(dir.path().join("slots")).unwrap(),
    ));
    let furthest = Arc::new(AtomicU64::new(0));
    let seen = furthest.clone();
    parts.fetch.progress = Some(Arc::new(move |p: FetchProgress| {
        seen.fetch_max(p.position, Ordering::SeqCst);
    }));
    let mut updater = Updater::new(parts);
    let err = tokio::time::timeout(Duration::from_secs(60), updater.run_once())
        .await
        .expect("hung")
        .unwrap_err();
    assert!(
        matches!(&err, Error::InstallState { reason } if reason.contains("slot locked")),
        "{err}"
    );
    let furthest = furthest.load(Ordering::SeqCst);
    assert!(
        furthest <= (otaledger_device_sdk::client::PIECES_IN_FLIGHT as u64 + 2) * 262_144,
        "the download ran on to byte {furthest} with nobody to take it"
    );
    assert!(!dir.path().join("slots/slot-b.img").exists());
}

// ---- A power cut mid-stream ----

const CHILD_TEST: &str = "attack_power_cut_process::child_runs_one_update";
const SPEC_VAR: &str = "OTALEDGER_POWER_CUT_CHILD_SPEC";

// FOUND (in 935ff28/10716fc; fixed by a582fc7, kept as a regression test): a power cut mid-stream leaves `slots/slot-b.img.partial` holding the decrypted prefix
// of a bundle whose SHA-256 was never checked and whose image hash was never checked (only its
// segments' tags), and nothing removes it at the next start: `Updater::recover` clears the
// download directory only, `FileInstaller::recover` does not look at `.partial` files; it stays
// until an update reaches step 8.1 again (never, if the next runs stop at the key, a revocation,
// an expired release, a model with no newer version). With the stream this window is the whole
// download (it was the local decryption of an already hash-checked file before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_plaintext_a_power_cut_left_mid_stream_does_not_survive_the_next_start() {
    let f = Fleet::new().await;
    let release = f.publish(1, LEN).await;
    f.issue(release.release_id, release.release_id);
    // 1.5 MiB of the CAR, then the gateway hangs: the child is mid-stream for 20 s.
    let stalled = stalling_mirror(&f.gateway, 1_500_000).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("device");
    let mut spec = f.child_spec(&dir);
    spec.gateway = stalled.to_string();
    std::fs::create_dir_all(&dir).unwrap();
    let spec_path = dir.with_extension("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .env(SPEC_VAR, &spec_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = dir.join("slots/slot-b.img.partial");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) < 256 * 1024 {
        assert!(
            std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the child never got mid-stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The power cut.
    child.kill().unwrap();
    child.wait().unwrap();
    let left = std::fs::read(&partial).unwrap();
    assert!(
        !left.is_empty() && left[..] == release.image[..left.len()],
        "the .partial is not the image's plaintext prefix"
    );
    // The next start: the device runs again, its key service unreachable this time (the update
    // stops at step 5, before the slot is written again).
    let mut parts: UpdaterParts = f.parts(&dir);
    parts.key_services = vec![Box::new(
        otaledger_device_sdk::client::HttpKeyService::new(dead_url()).unwrap(),
    )];
    let mut updater = Updater::new(parts);
    let r = updater.run_once().await;
    assert!(
        !matches!(r, Ok(Outcome::Updated { .. })),
        "installed without a key: {r:?}"
    );
    assert!(
        !partial.exists(),
        "{} bytes of decrypted, never hash-checked plaintext survived the power cut and the \
         next start ({r:?})",
        std::fs::metadata(&partial).map_or(0, |m| m.len())
    );
}

// ---- The header split over many tiny pieces ----
//
// The bundle's author (the publisher, not a signer: the signers approve `manifest.json`, not the
// DAG's layout) chooses how the bundle is chunked. A DAG whose first leaves are 1 to 7 bytes
// long hands the stream's writer the header in hundreds of pieces, some a single byte, several
// repeated (the fetch asks for a repeated leaf again by raw request). The header is gathered
// across them, checked once whole, and the target checks still hold.

/// The DAG of `bundle`: leaves of 1..=7 bytes over its first `tiny` bytes, 256 KiB after; nodes
/// of at most 64 links. Every block goes into `store`; returns the root.
fn tiny_leaves_dag(
    store: &otaledger_ipfs::Blockstore,
    bundle: &[u8],
    tiny: usize,
) -> otaledger_ipfs::Cid {
    use otaledger_ipfs::{
        DAG_PB, PbLink, RAW, block_cid, cid::Version, encode_dag_pb, encode_unixfs_file,
    };
    // (cid, file size, tsize)
    let mut level: Vec<(otaledger_ipfs::Cid, u64, u64)> = Vec::new();
    let mut at = 0;
    let mut n = 0usize;
    while at < bundle.len() {
        let len = if at < tiny { n % 7 + 1 } else { 262_144 };
        let end = (at + len).min(bundle.len());
        let data = &bundle[at..end];
        let cid = block_cid(Version::V1, RAW, data);
        store.put(&cid, data).unwrap();
        level.push((cid, data.len() as u64, data.len() as u64));
        at = end;
        n += 1;
    }
    while level.len() > 1 {
        level = level
            .chunks(64)
            .map(|kids| {
                let sizes: Vec<u64> = kids.iter().map(|k| k.1).collect();
                let size = sizes.iter().sum();
                let data = encode_unixfs_file(&[], size, &sizes);
                let links: Vec<PbLink<'static>> = kids
                    .iter()
                    .map(|k| PbLink {
                        hash: k.0,
                        name: Some(""),
                        tsize: Some(k.2),
                    })
                    .collect();
                let block = encode_dag_pb(&links, Some(&data));
                let cid = block_cid(Version::V1, DAG_PB, &block);
                store.put(&cid, &block).unwrap();
                let tsize = block.len() as u64 + kids.iter().map(|k| k.2).sum::<u64>();
                (cid, size, tsize)
            })
            .collect();
    }
    level[0].0
}

/// A release of `image` for `version`, its bundle sealed for `sealed_version` (the header's
/// target) under `version`'s policy, stored as [`tiny_leaves_dag`], published, bought and
/// settled; with a key service of the test's own delivering devices[0] its key. Returns the
/// parts to update devices[0] in `dir` with it.
async fn publish_tiny(
    f: &Fleet,
    dir: &std::path::Path,
    version: u64,
    sealed_version: u64,
    image: &[u8],
) -> UpdaterParts {
    use alloy::primitives::U256;
    use otaledger_core::{
        bundle::{BundleSpec, ReleaseTarget, SealOptions, default_policy, seal},
        key_delivery::{KeyDelivery, identity_public_key},
        manifest::ManifestBuilder,
    };
    use otaledger_cpabe::rand_core::OsRng;

    use crate::{common::PRICE, common::to_device, mined};
    let w = &f.w;
    let mut bundle = Vec::new();
    let sealed = seal(
        &f.params,
        &BundleSpec {
            target: ReleaseTarget {
                chain_id: w.chain_id,
                registry: *w.registry.address(),
                model_id: w.model,
                version: sealed_version,
            },
            policy: &default_policy(w.model, version),
            options: SealOptions::default(),
        },
        image,
        image.len() as u64,
        &mut bundle,
        &mut OsRng,
    )
    .unwrap();
    let root = tiny_leaves_dag(&f.store, &bundle, 8192);
    let mut m = ManifestBuilder::new(&sealed, root.to_bytes())
        .expiry(w.timestamp().await + 365 * 24 * 3600)
        .build();
    m.version = version;
    m.price = PRICE;
    let approval = w.approve(&m);
    mined!(w.registry.publishRelease(m.clone(), approval));
    mined!(
        w.market
            .purchase(m.clone().into(), vec![w.devices[0]])
            .value(U256::from(PRICE))
    );
    w.settle().await;
    let release_id = otaledger_device_sdk::contracts::release_id(&to_device(&m));
    let signer = alloy::signers::local::PrivateKeySigner::random();
    let delivery = KeyDelivery::seal(
        w.chain_id,
        *w.registry.address(),
        release_id,
        &identity_public_key(&f.device_key),
        &f.secret_key(version),
        &signer,
    )
    .unwrap()
    .to_bytes()
    .unwrap();
    let keys = serve(Router::new().route(
        "/v1/keys/{release}/{device}",
        get(move || {
            let delivery = delivery.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    delivery,
                )
            }
        }),
    ))
    .await;
    let mut parts = f.parts(dir);
    parts.key_services = vec![Box::new(
        otaledger_device_sdk::client::HttpKeyService::new(keys).unwrap(),
    )];
    parts.key_service = signer.address();
    parts
}

/// The honest bundle in tiny pieces: installed exactly.
#[tokio::test]
async fn review_a_header_split_into_pieces_of_a_few_bytes_is_gathered_and_the_image_installed() {
    let f = Fleet::new().await;
    let image = crate::fleet::image(1, 600_000);
    let dir = tempfile::tempdir().unwrap();
    let parts = publish_tiny(&f, dir.path(), 1, 1, &image).await;
    let mut updater = Updater::new(parts);
    let r = tokio::time::timeout(Duration::from_secs(120), updater.run_once())
        .await
        .expect("hung");
    assert!(
        matches!(r, Ok(Outcome::Updated { version: 1, .. })),
        "{r:?}"
    );
    assert!(slot_image(dir.path()).unwrap() == image);
}

/// A bundle sealed for another version (its header's target) in tiny pieces: refused as
/// `BundleTarget` once the header is whole, nothing installed.
#[tokio::test]
async fn review_a_header_for_another_version_split_into_tiny_pieces_is_refused() {
    let f = Fleet::new().await;
    let image = crate::fleet::image(1, 600_000);
    let dir = tempfile::tempdir().unwrap();
    let parts = publish_tiny(&f, dir.path(), 1, 2, &image).await;
    let mut updater = Updater::new(parts);
    let err = tokio::time::timeout(Duration::from_secs(120), updater.run_once())
        .await
        .expect("hung")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BundleTarget {
                field: "version",
                ..
            }
        ),
        "{err}"
    );
    nothing_installed(dir.path(), &updater, 0);
}

// ---- A local write failure is not a verdict on the release ----

/// A `FileInstaller` whose flash fails once, after `fail_after` bytes of the image (a transient
/// write error it sees on its own writer), and which then, if `retry`, writes the slot again.
struct FlakyFlash {
    inner: FileInstaller,
    fail_after: usize,
    retry: bool,
    failed: Arc<AtomicBool>,
}

struct FailOnce<'a> {
    out: &'a mut dyn std::io::Write,
    left: usize,
    failed: Arc<AtomicBool>,
}

impl std::io::Write for FailOnce<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.failed.load(Ordering::SeqCst) && buf.len() > self.left {
            self.failed.store(true, Ordering::SeqCst);
            return Err(std::io::Error::other("flash write error (transient)"));
        }
        self.left = self.left.saturating_sub(buf.len());
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Installer for FlakyFlash {
    fn state(&self) -> Result<BootState> {
        self.inner.state()
    }

    fn recover(&mut self) -> Result<Recovery> {
        self.inner.recover()
    }

    fn write_inactive(
        &mut self,
        version: u64,
        release_id: B256,
        image_sha256: B256,
        write: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<u64>,
    ) -> Result<()> {
        let failed = self.failed.clone();
        let fail_after = self.fail_after;
        let mut attempt = |installer: &mut FileInstaller| {
            installer.write_inactive(version, release_id, image_sha256, &mut |out| {
                write(&mut FailOnce {
                    out,
                    left: fail_after,
                    failed: failed.clone(),
                })
            })
        };
        let first = attempt(&mut self.inner);
        if first.is_err() && self.retry && self.failed.load(Ordering::SeqCst) {
            // Our own flash failed: write the slot again.
            return attempt(&mut self.inner);
        }
        first
    }

    fn mark_pending(&mut self) -> Result<()> {
        self.inner.mark_pending()
    }

    fn switch(&mut self) -> Result<()> {
        self.inner.switch()
    }

    fn confirm(&mut self, health: &dyn HealthCheck) -> Result<()> {
        self.inner.confirm(health)
    }
}

/// The last report queued: its outcome and detail.
fn last_queued(updater: &Updater) -> (otaledger_core::report::Outcome, String) {
    let queued = updater.parts().reports.queued().unwrap();
    let last = &queued.last().expect("no report queued").report;
    (last.outcome, last.detail.clone())
}

async fn flaky_flash_run(
    retry: bool,
) -> (
    Result<Outcome>,
    Option<(otaledger_core::report::Outcome, String)>,
) {
    let f = Fleet::new().await;
    let release = f.publish(1, LEN).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.installer = Box::new(FlakyFlash {
        inner: FileInstaller::new(dir.path().join("slots")).unwrap(),
        fail_after: 300_000,
        retry,
        failed: Arc::new(AtomicBool::new(false)),
    });
    let mut updater = Updater::new(parts);
    let r = tokio::time::timeout(Duration::from_secs(60), updater.run_once())
        .await
        .expect("hung");
    match &r {
        Ok(Outcome::Updated { version: 1, .. }) => {
            assert!(slot_image(dir.path()).unwrap() == release.image);
        }
        Ok(other) => panic!("{other:?}"),
        Err(_) => nothing_installed(dir.path(), &updater, 0),
    }
    let report =
        (!updater.parts().reports.queued().unwrap().is_empty()).then(|| last_queued(&updater));
    (r, report)
}

// FOUND: a transient write error on the device's own flash, mid-stream, with an installer that
// writes the slot again (as the trait's `FnMut` allows, and as the file-based step 7 supported
// by decrypting the bundle file again from its start): the second call of the write closure
// does not start the bundle again, it goes on from the middle of the stream with a new
// `BundleOpener`, which parses ciphertext as a header and refuses it. The update ends as a
// step-7 refusal (`BundleTarget` / `Decrypt`) and the device queues a signed `refused` report
// against a release that is perfectly valid: a local fault becomes signed evidence that the
// publisher's bundle was bad. The retried write must fail as what it is (a stream cannot be
// replayed: an install-state/I-O error, report `failed`), or the stream must be restartable.
#[tokio::test]
async fn review_a_retried_slot_write_after_a_flash_error_mid_stream_is_not_a_refusal_of_the_release()
 {
    let (r, report) = flaky_flash_run(true).await;
    if let Err(e) = &r {
        assert!(
            !matches!(e, Error::BundleTarget { .. } | Error::Decrypt { .. }),
            "a flash error, retried, was turned into a refusal of the release: {e}"
        );
    }
    if let Some((outcome, detail)) = report {
        assert!(
            outcome != otaledger_core::report::Outcome::Refused,
            "signed report {outcome:?} {detail} for a valid release after a local write error"
        );
    }
}

// FOUND (not new with the stream: `decrypt_into` mapped it the same way): the device's own
// flash failing mid-write (disk full, a worn block) surfaces as the core's
// `Stream { during: "writing the image" }` wrapped in `Error::Decrypt`, a step-7 error: the
// updater queues a signed `refused` / `decrypt` report for a valid release, as if its bundle
// had failed authentication. Suggested: map a failed write to the installer's output to
// `InstallIo` (no step, report `failed`), keeping `Decrypt` for the bundle's own faults.
#[tokio::test]
async fn review_a_flash_error_mid_stream_is_not_reported_as_a_refused_bundle() {
    let (r, report) = flaky_flash_run(false).await;
    let e = r.expect_err("the write failed");
    assert!(
        !matches!(e, Error::Decrypt { .. }),
        "a flash write error was classed as a decryption refusal: {e}"
    );
    if let Some((outcome, detail)) = report {
        assert!(
            outcome != otaledger_core::report::Outcome::Refused,
            "signed report {outcome:?} {detail} for a valid release after a local write error"
        );
    }
}

// ---- Gateway switches mid-stream ----

/// A gateway dying mid-stream, then one serving another file's CAR (a different CID: none of its
/// blocks is the one the resumed walk needs), then the honest one: the wrong gateway's blocks
/// never reach the decryption, the honest one resumes from the verified offset and the slot is
/// exactly the image; without the honest one, refused and nothing left.
#[tokio::test]
async fn review_a_dying_gateway_then_another_cids_blocks_then_the_honest_one_installs_exactly() {
    use crate::attack_malicious_mirror::{Mirror, mirror};
    let f = Fleet::new().await;
    let release = f.publish(1, LEN).await;
    f.issue(release.release_id, release.release_id);
    let other = f.add(&crate::fleet::image(99, LEN));
    let dying = mirror(&f.gateway, Mirror::DieHalfway).await;
    let wrong = mirror(&f.gateway, Mirror::WrongBlock(other)).await;

    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.gateways = vec![dying.clone(), wrong.clone()];
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    let Error::Download { source } = &err else {
        panic!("{err}")
    };
    let otaledger_ipfs::FetchError::AllGatewaysFailed {
        failures, position, ..
    } = &**source
    else {
        panic!("{source}")
    };
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(*position > 0 && *position < release.bundle.len() as u64);
    assert_eq!(
        failures[1].from, *position,
        "the wrong gateway moved the offset"
    );
    nothing_installed(dir.path(), &updater, 0);

    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.gateways = vec![dying, wrong, f.gateway.clone()];
    let mut updater = Updater::new(parts);
    let r = updater.run_once().await;
    assert!(
        matches!(r, Ok(Outcome::Updated { version: 1, .. })),
        "{r:?}"
    );
    assert!(slot_image(dir.path()).unwrap() == release.image);
}
