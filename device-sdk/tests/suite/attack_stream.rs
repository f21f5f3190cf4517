//! Steps 6 and 7 as one stream (`client::stream_into_slot`): the verified fetch's bytes go
//! straight to the decryption and the inactive slot, with no bundle file. Attacks on the stream
//! itself, each with a bundle of several blocks so that it strikes mid-stream, after verified
//! bytes already reached the decryption and the slot's temporary file: a tampered block, a
//! gateway dying, a truncated stream, a manifest announcing another size than the DAG's, a
//! bundle whose SHA-256 (known only at the end) is not the manifest's, a refusal by the
//! decryption, the update abandoned halfway. Each asserts the error variant, that nothing was
//! installed and that no file was left (no download, no slot written halfway); where an honest
//! gateway follows, that the image is installed exactly (every byte once: a byte handed twice or
//! skipped would fail a segment's authentication, the bundle hash and the image hash).

use std::sync::{Arc, Mutex, atomic::AtomicU64, atomic::Ordering};

use alloy::primitives::B256;
use otaledger_device_sdk::{
    Error,
    client::{Outcome, Updater},
};
use otaledger_ipfs::{FetchError, VerifyError, fetch::AttemptError, fetch::FetchProgress};
use sha2::Digest;

use crate::attack_malicious_mirror::{Mirror, mirror};
use crate::fleet::{Fleet, image, nothing_installed};

/// 2 MiB: 8 blocks of 256 KiB and a partial one, 33 segments of 64 KiB.
const LEN: usize = 2 << 20;

/// The detail of the last report queued.
fn last_report(updater: &Updater) -> String {
    let queued = updater.parts().reports.queued().unwrap();
    queued.last().unwrap().report.detail.clone()
}

/// The fetch's error and the verified bytes it had streamed when it gave up.
fn download_failure(err: &Error) -> (&AttemptError, u64) {
    let Error::Download { source } = err else {
        panic!("expected a download refusal, got {err}");
    };
    let FetchError::AllGatewaysFailed {
        failures, position, ..
    } = &**source
    else {
        panic!("{source}");
    };
    (&failures.last().unwrap().error, *position)
}

/// A release of [`LEN`] bytes from a mirror that misbehaves as `mode`. Alone: refused
/// mid-stream (verified bytes had been streamed), nothing installed, no file left. Then the
/// honest gateway: installed, the slot holding exactly the image.
async fn mid_stream_then_resumed(mode: Mirror, expected: fn(&AttemptError) -> bool) {
    let f = Fleet::new().await;
    let release = f.publish(1, LEN).await;
    f.issue(release.release_id, release.release_id);
    let bad = mirror(&f.gateway, mode).await;
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.gateways = vec![bad.clone()];
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    let (attempt, position) = download_failure(&err);
    assert!(expected(attempt), "{attempt}");
    assert!(
        position > 0 && position < release.bundle.len() as u64,
        "not mid-stream: {position} of {}",
        release.bundle.len()
    );
    assert_eq!(err.step(), Some(6));
    nothing_installed(dir.path(), &updater, 0);
    assert_eq!(last_report(&updater), "download");

    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.gateways = vec![bad.clone(), f.gateway.clone()];
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let mut updater = Updater::new(parts).with_observer(move |e| {
        seen.lock()
            .unwrap()
            .push(format!("{}: {}", e.step, e.message));
    });
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::Updated { version: 1, .. }
    ));
    assert!(
        std::fs::read(dir.path().join("slots/slot-b.img")).unwrap() == release.image,
        "the slot is not the image"
    );
    let events = events.lock().unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.starts_with("download: gateway attempt failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert!(failed[0].contains(bad.as_str()), "{failed:?}");
}

#[tokio::test]
async fn a_tampered_block_mid_stream_is_refused_and_the_next_gateway_completes() {
    mid_stream_then_resumed(Mirror::TamperBlock, |a| {
        matches!(a, AttemptError::Verify(_) | AttemptError::Car(_))
    })
    .await;
}

#[tokio::test]
async fn a_gateway_dying_mid_stream_hands_over_to_the_next_with_every_byte_once() {
    mid_stream_then_resumed(Mirror::DieHalfway, |a| {
        matches!(a, AttemptError::Transport(_) | AttemptError::Car(_))
    })
    .await;
}

#[tokio::test]
async fn a_truncated_stream_is_refused_and_the_next_gateway_completes() {
    mid_stream_then_resumed(Mirror::Truncate, |a| {
        matches!(a, AttemptError::Truncated { .. } | AttemptError::Car(_))
    })
    .await;
}

/// Every block verifies against the approved CID, every segment authenticates and the image is
/// the approved one, but the manifest's `bundleSha256` is another: known only once the last
/// byte was streamed, after the whole image went to the slot's temporary file. Refused as
/// `BundleHash` (step 6), nothing installed, no file left.
#[tokio::test]
async fn a_bundle_whose_sha256_is_not_the_manifests_is_refused_after_the_last_byte() {
    let f = Fleet::new().await;
    let claimed = B256::repeat_byte(0x55);
    let release = f
        .publish_with(1, image(1, LEN), |_, m| m.bundleSha256 = claimed)
        .await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut updater = f.updater(dir.path());
    let err = updater.run_once().await.unwrap_err();
    let actual = B256::from(<[u8; 32]>::from(sha2::Sha256::digest(&release.bundle)));
    assert!(
        matches!(err, Error::BundleHash { expected, actual: a } if expected == claimed && a == actual),
        "{err}"
    );
    assert_eq!(err.step(), Some(6));
    nothing_installed(dir.path(), &updater, 0);
    assert_eq!(last_report(&updater), "bundle-hash");
}

/// A manifest announcing fewer bytes than the DAG holds (the extra bytes would be endless
/// data), or more: the root's declared size is refused before any byte reaches the decryption.
#[tokio::test]
async fn a_manifest_announcing_another_size_than_the_bundles_is_refused_before_any_byte() {
    let f = Fleet::new().await;
    for (version, delta) in [(1u64, -1000i64), (2, 1)] {
        let release = f
            .publish_with(version, image(version, LEN), |bundle, m| {
                m.bundleSize = (bundle.len() as i64 + delta) as u64;
            })
            .await;
        f.issue(release.release_id, release.release_id);
        let dir = tempfile::tempdir().unwrap();
        let mut updater = f.updater(dir.path());
        let err = updater.run_once().await.unwrap_err();
        let (attempt, position) = download_failure(&err);
        assert_eq!(position, 0, "{delta}: bytes streamed");
        assert!(
            match delta {
                d if d < 0 => matches!(
                    attempt,
                    AttemptError::Verify(VerifyError::TotalSizeExceeded { .. })
                ),
                _ => matches!(attempt, AttemptError::SizeMismatch { .. }),
            },
            "{delta}: {attempt}"
        );
        nothing_installed(dir.path(), &updater, 0);
    }
}

/// A segment tampered near the start of an 8 MiB bundle (approved as is, so every block
/// verifies): the decryption refuses it and the stream stops there; the download does not run
/// on to the end of a bundle already refused (the fetch can be at most the channel's pieces
/// ahead of the decryption).
#[tokio::test]
async fn a_refusal_by_the_decryption_stops_the_download() {
    let f = Fleet::new().await;
    let release = f
        .publish_with(1, image(1, 8 << 20), |bundle, _| bundle[100_000] ^= 0x40)
        .await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    let furthest = Arc::new(AtomicU64::new(0));
    let seen = furthest.clone();
    parts.fetch.progress = Some(Arc::new(move |p: FetchProgress| {
        seen.fetch_max(p.position, Ordering::SeqCst);
    }));
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    assert!(
        matches!(&err, Error::Decrypt { source }
            if matches!(**source, otaledger_core::Error::SegmentTampered { .. })),
        "{err}"
    );
    nothing_installed(dir.path(), &updater, 0);
    let ahead = (otaledger_device_sdk::client::PIECES_IN_FLIGHT as u64 + 4) * 262_144;
    let furthest = furthest.load(Ordering::SeqCst);
    assert!(
        furthest <= 100_000 + ahead && furthest < release.bundle.len() as u64,
        "the download ran on to byte {furthest} of {}",
        release.bundle.len()
    );
}

/// The update's future dropped mid-stream (a timeout around `run_once`, a shutdown), held
/// deterministically at the first verified block by the progress callback: the fetch stops, the
/// slot writer gives up and removes its temporary file, and the same updater (whose installer
/// was lent to the writer) then installs the release.
#[tokio::test]
async fn an_update_dropped_mid_stream_leaves_nothing_and_the_updater_goes_on() {
    let f = Fleet::new().await;
    let release = f.publish(1, LEN).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    let reached = Arc::new(tokio::sync::Notify::new());
    let (resume, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(Some(held));
    let signal = reached.clone();
    parts.fetch.progress = Some(Arc::new(move |p: FetchProgress| {
        if p.position > 0
            && let Some(held) = held.lock().unwrap().take()
        {
            signal.notify_one();
            // Held until the test dropped the update (bounded, so a bug cannot hang the suite).
            let _ = held.recv_timeout(std::time::Duration::from_secs(60));
        }
    }));
    let mut updater = Updater::new(parts);
    tokio::select! {
        r = updater.run_once() => panic!("the update ended before it was dropped: {r:?}"),
        () = reached.notified() => {}
    }
    resume.send(()).unwrap();
    // The same updater: its installer comes back from the writer, which gave up.
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::Updated { version: 1, .. }
    ));
    assert!(std::fs::read(dir.path().join("slots/slot-b.img")).unwrap() == release.image);
    let slots: Vec<_> = std::fs::read_dir(dir.path().join("slots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(slots.iter().all(|n| !n.ends_with(".partial")), "{slots:?}");
}
