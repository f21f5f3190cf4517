//! Attack: a bundle whose ciphertext was altered after sealing (an insider or a broken build
//! step) and approved as is, so the download's hash checks pass. Step 7 refuses: the segment
//! does not authenticate. Nothing reaches the inactive slot.

use otaledger_device_sdk::Error;

use crate::fleet::{Fleet, image, nothing_installed};

#[tokio::test]
async fn a_tampered_ciphertext_segment_is_refused() {
    let f = Fleet::new().await;
    // 300,000 bytes: five 64 KiB segments; flip a byte inside the third one.
    let release = f
        .publish_with(1, image(1, 300_000), |bundle, _| {
            let at = bundle.len() - 150_000;
            bundle[at] ^= 0x40;
        })
        .await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut updater = f.updater(dir.path());
    let err = updater.run_once().await.unwrap_err();
    assert!(
        matches!(&err, Error::Decrypt { source }
            if matches!(**source, otaledger_core::Error::SegmentTampered { .. })),
        "{err}"
    );
    assert_eq!(err.step(), Some(7));
    nothing_installed(dir.path(), &updater, 0);
    let queued = updater.parts().reports.queued().unwrap();
    assert_eq!(queued[0].report.detail, "decrypt");
}
