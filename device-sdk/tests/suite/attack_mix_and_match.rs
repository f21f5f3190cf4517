//! Attack: mix-and-match and wrong software. A genuine manifest of another model, another
//! release's approval, or a manifest with one field swapped from another release. Refused in
//! steps 3 and 4.

use otaledger_device_sdk::Error;

use crate::common::{World, refused, to_device, to_device_approval};

#[tokio::test]
async fn another_models_release_is_refused() {
    let w = World::new().await;
    // A genuine release of the other model, bought for the other model's device.
    let (other, other_a) = w.publish(w.other_model, 1).await;
    w.purchase(&other, &[w.other_device]).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    assert!(matches!(
        refused(&client, &to_device(&other), &to_device_approval(&other_a)).await,
        Error::WrongModel { manifest_model, device_model, .. }
            if manifest_model == w.other_model && device_model == w.model
    ));
}

#[tokio::test]
async fn swapped_fields_and_swapped_approvals_are_refused() {
    let w = World::new().await;
    let (m1, a1) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);

    // The bundle of another release under this release's approval: a different release id.
    let mut mixed = m1.clone();
    mixed.bundleCid = alloy::primitives::Bytes::from_static(b"cid of something else");
    assert!(matches!(
        refused(&client, &mixed, &a1).await,
        Error::ReleaseNotPublished { release_id } if release_id == otaledger_device_sdk::contracts::release_id(&mixed)
    ));

    // v2 published, bought; offered with v1's approval: signatures are over another digest.
    let (m2, _) = w.release(2).await;
    w.settle().await;
    assert!(matches!(
        refused(&client, &m2, &a1).await,
        Error::InvalidSignature { index: 0, .. }
    ));
}
