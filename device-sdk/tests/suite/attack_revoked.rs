//! Attack: installing a revoked release (genuinely signed and bought before the revocation).
//! Refused in step 3.

use otaledger_device_sdk::{Error, contracts::release_id};

use crate::{
    common::{World, refused},
    mined,
};

#[tokio::test]
async fn a_revoked_release_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    client.check(&m, &a).await.unwrap();

    let id = release_id(&m);
    mined!(w.registry.emergencyRevoke(id, "bricks devices".into()));
    w.settle().await;
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::ReleaseRevoked { release_id, revoked_at } if release_id == id && revoked_at > 0
    ));
}
