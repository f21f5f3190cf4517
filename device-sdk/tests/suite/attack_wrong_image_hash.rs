//! Attack: a manifest whose `imageSha256` is not the bundle's image (a bundle swapped for
//! another validly encrypted one before signing, or a manifest edited). Every segment
//! authenticates, but step 7 compares the image's SHA-256 with the approved one and refuses;
//! nothing reaches the inactive slot.

use alloy::primitives::keccak256;
use otaledger_device_sdk::Error;

use crate::fleet::{Fleet, image, nothing_installed};

#[tokio::test]
async fn an_image_other_than_the_approved_one_is_refused() {
    let f = Fleet::new().await;
    let wrong = keccak256("another image");
    let release = f
        .publish_with(1, image(1, 100_000), |_, m| m.imageSha256 = wrong)
        .await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut updater = f.updater(dir.path());
    let err = updater.run_once().await.unwrap_err();
    assert!(
        matches!(err, Error::ImageHash { expected, .. } if expected == wrong),
        "{err}"
    );
    assert_eq!(err.step(), Some(7));
    nothing_installed(dir.path(), &updater, 0);
}
