//! Attack: cross-chain and cross-registry replay. A manifest approved for another chain id, or
//! published only in another registry. Refused in steps 3 and 4.

use alloy::primitives::B256;
use otaledger_core::{
    bindings::registry::UpdateRegistry,
    deploy::{self, DEFAULT_REFUND_WINDOW},
    signing::registry_domain,
};
use otaledger_device_sdk::Error;

use crate::{
    common::{World, refused, to_device, to_device_approval},
    mined,
};

#[tokio::test]
async fn an_approval_for_another_chain_is_refused() {
    let w = World::new().await;
    let (m, _) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    // The same signers approved the same manifest for chain 1 (e.g. a mainnet release).
    let other_chain = registry_domain(1, *w.registry.address());
    let core_m = crate::common::to_core(&m);
    let approval = w
        .set
        .approve_typed(&core_m, &other_chain, &[&w.keys[0], &w.keys[2]])
        .unwrap();
    assert!(matches!(
        refused(&client, &m, &to_device_approval(&approval)).await,
        Error::InvalidSignature { index: 0, .. }
    ));
}

#[tokio::test]
async fn a_release_of_another_registry_is_refused() {
    let w = World::new().await;
    // A second registry on the same chain, with the same manufacturer keys and model numbering.
    let other = deploy::deploy(
        &w.provider,
        B256::repeat_byte(7),
        DEFAULT_REFUND_WINDOW,
        "test",
    )
    .await
    .unwrap()
    .deployment;
    let registry2 = UpdateRegistry::new(other.registry, w.provider.clone());
    mined!(registry2.registerManufacturer(
        "Acme".into(),
        alloy::primitives::Address::ZERO,
        alloy::primitives::Address::ZERO,
        w.set.signers().to_vec(),
        2,
        String::new(),
    ));
    mined!(registry2.defineModel(w.manufacturer, "thermo-x".into(), 0));
    let m = w.manifest(w.model, 1).await;
    let approval2 = w
        .set
        .approve_typed(
            &m,
            &registry_domain(w.chain_id, other.registry),
            &[&w.keys[0], &w.keys[2]],
        )
        .unwrap();
    mined!(registry2.publishRelease(m.clone(), approval2.clone()));
    w.settle().await;

    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    assert!(matches!(
        refused(&client, &to_device(&m), &to_device_approval(&approval2)).await,
        Error::ReleaseNotPublished { .. }
    ));
}

#[tokio::test]
async fn endpoints_of_a_chain_without_the_registry_are_refused() {
    use otaledger_device_sdk::{
        Limits, Quorum,
        client::{Client, FileStorage, SystemClock},
    };

    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    // The device's registry does not exist where its endpoints point (another chain).
    let mut config = w.config(w.devices[0]);
    config.registry = alloy::primitives::Address::repeat_byte(0x77);
    let mut limits = Limits::new(Quorum::new(1, 1).unwrap());
    limits.confirmations = crate::common::CONFIRMATIONS;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(
        config,
        limits,
        vec![Box::new(w.honest())],
        Box::new(SystemClock),
        Box::new(FileStorage::new(dir.path().join("state.json"))),
    )
    .unwrap();
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::AccountMissing { address, .. } if address == alloy::primitives::Address::repeat_byte(0x77)
    ));
}
