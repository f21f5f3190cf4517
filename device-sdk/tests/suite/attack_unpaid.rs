//! Attack: an unpaid device installs a release someone else bought. Refused in step 3.

use otaledger_device_sdk::Error;

use crate::common::{World, refused, to_device, to_device_approval};

#[tokio::test]
async fn a_device_without_its_entitlement_bit_is_refused() {
    let w = World::new().await;
    let (m, a) = w.publish(w.model, 1).await;
    // Bought for device 1 only; the client below is device 0.
    w.purchase(&m, &[w.devices[1]]).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    let (m, a) = (to_device(&m), to_device_approval(&a));
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::NotEntitled { device_index, .. } if device_index == w.devices[0]
    ));
    // Device 1 paid: the same manifest passes for it.
    let dir = tempfile::tempdir().unwrap();
    let paid = w.client_with(
        &dir,
        vec![Box::new(w.honest())],
        Box::new(otaledger_device_sdk::client::SystemClock),
        w.devices[1],
    );
    paid.check(&m, &a).await.unwrap();
}
