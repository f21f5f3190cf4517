//! Attack: rollback. An older, genuinely signed and bought release is offered to a device that
//! runs a newer one, or a release below the model's floor. Refused in step 3.

use otaledger_core::signing::RaiseFloor;
use otaledger_device_sdk::Error;

use crate::{
    common::{World, refused},
    mined,
};

#[tokio::test]
async fn an_older_version_than_installed_is_refused() {
    let w = World::new().await;
    let (m1, a1) = w.release(1).await;
    let (m2, a2) = w.release(2).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    let update = client.check(&m2, &a2).await.unwrap();
    client.record_installed(&update).unwrap();

    assert!(matches!(
        refused(&client, &m1, &a1).await,
        Error::Rollback {
            version: 1,
            installed: 2
        }
    ));
    // Re-offering the installed version is a rollback too (no re-install).
    assert!(matches!(
        refused(&client, &m2, &a2).await,
        Error::Rollback {
            version: 2,
            installed: 2
        }
    ));
}

#[tokio::test]
async fn a_release_below_the_floor_or_not_the_latest_is_refused() {
    let w = World::new().await;
    let (m1, a1) = w.release(1).await;
    w.publish(w.model, 2).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    // v2 exists: v1 is not the latest.
    assert!(matches!(
        refused(&client, &m1, &a1).await,
        Error::NotLatest {
            version: 1,
            latest: 2
        }
    ));

    // The signers raise the floor to 2: v1 is below it.
    let floor = RaiseFloor {
        modelId: w.model,
        minVersion: 2,
    };
    let approval = w
        .set
        .approve_typed(&floor, &w.domain(), &[&w.keys[1], &w.keys[2]])
        .unwrap();
    mined!(w.registry.raiseFloor(w.model, 2, approval));
    w.settle().await;
    assert!(matches!(
        refused(&client, &m1, &a1).await,
        Error::BelowFloor {
            version: 1,
            floor: 2
        }
    ));
}
