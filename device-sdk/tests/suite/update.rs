//! The honest path: a published, bought release is approved over several endpoints, and only
//! then is the head's block stored.

use otaledger_device_sdk::{DeviceState, client::Rpc};

use crate::common::{World, stored};

#[tokio::test]
async fn a_bought_release_is_approved_and_the_head_stored() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let rpcs: Vec<Box<dyn Rpc>> = (0..3).map(|_| Box::new(w.honest()) as _).collect();
    let client = w.client(&dir, rpcs);
    assert_eq!(stored(&client), DeviceState::default());

    let update = client.check(&m, &a).await.unwrap();
    assert_eq!(update.manifest, m);
    assert_eq!(
        update.release_id,
        otaledger_device_sdk::contracts::release_id(&m)
    );
    let mut signers = vec![w.keys[0].address(), w.keys[2].address()];
    signers.sort();
    assert_eq!(update.signers, signers);
    let state = stored(&client);
    assert_eq!(state.highest_block, update.head.number);
    assert_eq!(state.installed_version, 0, "checking is not installing");

    client.record_installed(&update).unwrap();
    assert_eq!(stored(&client).installed_version, 1);
}
