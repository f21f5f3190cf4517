//! Attack: a device the operator deactivated (reported stolen, retired) keeps updating with a
//! release it was entitled to. Refused in step 3.

use otaledger_device_sdk::{Error, layout::DeviceStatus};

use crate::{
    common::{World, refused},
    mined,
};

#[tokio::test]
async fn a_deactivated_device_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    client.check(&m, &a).await.unwrap();

    mined!(w.registry.setDeviceActive(w.batch, w.devices[0], false));
    w.settle().await;
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::DeviceNotActive { status: DeviceStatus::Deactivated, device_index, .. }
            if device_index == w.devices[0]
    ));
}
