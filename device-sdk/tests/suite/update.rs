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

#[tokio::test]
async fn a_minority_of_endpoints_down_is_tolerated_a_majority_is_not() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    // A port that was just free: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = || -> Box<dyn Rpc> {
        let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        Box::new(otaledger_device_sdk::client::HttpRpc::new(url).unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let rpcs: Vec<Box<dyn Rpc>> = vec![down(), Box::new(w.honest()), Box::new(w.honest())];
    w.client(&dir, rpcs).check(&m, &a).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let rpcs: Vec<Box<dyn Rpc>> = vec![down(), down(), Box::new(w.honest())];
    let client = w.client(&dir, rpcs);
    assert!(matches!(
        crate::common::refused(&client, &m, &a).await,
        otaledger_device_sdk::Error::NotEnoughLatest {
            reported: 1,
            needed: 2
        }
    ));
}
