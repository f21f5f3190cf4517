//! Attack: arbitrary software. An attacker offers a manifest that the manufacturer's threshold
//! did not sign: unsigned, under the threshold, signed by a non-member, or signed by keys the
//! manufacturer rotated out. Refused in step 4.

use alloy::{primitives::Bytes, signers::local::PrivateKeySigner, sol_types::SolStruct};
use otaledger_core::signing::{RotateSigners, SignerSet};
use otaledger_device_sdk::Error;

use crate::{
    common::{World, refused, to_core, to_device_approval},
    mined,
};

#[tokio::test]
async fn unsigned_under_threshold_and_foreign_signatures_are_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);

    let mut unsigned = a.clone();
    unsigned.signatures = Bytes::new();
    assert!(matches!(
        refused(&client, &m, &unsigned).await,
        Error::NotEnoughSignatures {
            given: 0,
            threshold: 2,
            ..
        }
    ));

    let mut one = a.clone();
    one.signatures = a.signatures.slice(..64);
    assert!(matches!(
        refused(&client, &m, &one).await,
        Error::NotEnoughSignatures {
            given: 1,
            threshold: 2,
            ..
        }
    ));

    // Two signatures, the second by a key outside the set.
    let outsider = PrivateKeySigner::random();
    let digest =
        otaledger_device_sdk::contracts::signing_digest(&m, w.chain_id, *w.registry.address());
    let mut forged = a.signatures.slice(..64).to_vec();
    forged.extend_from_slice(&otaledger_core::signing::sign_compact(&outsider, digest).unwrap());
    let mut foreign = a.clone();
    foreign.signatures = forged.into();
    assert!(matches!(
        refused(&client, &m, &foreign).await,
        Error::InvalidSignature { index: 1, recovered: Some(r) } if r == outsider.address()
    ));

    // The same signature twice does not count twice.
    let mut twice = a.clone();
    twice.signatures = [a.signatures.slice(..64), a.signatures.slice(..64)]
        .concat()
        .into();
    assert!(matches!(
        refused(&client, &m, &twice).await,
        Error::InvalidSignature { index: 1, .. }
    ));

    // A signer set of the attacker's own keys does not hash to the proven one.
    let attacker: Vec<PrivateKeySigner> = (0..2).map(|_| PrivateKeySigner::random()).collect();
    let own = SignerSet::new(attacker.iter().map(|k| k.address()).collect(), 1).unwrap();
    let core_m = to_core(&m);
    let self_signed = own
        .approve_typed(&core_m, &w.domain(), &[&attacker[0]])
        .unwrap();
    assert!(matches!(
        refused(&client, &m, &to_device_approval(&self_signed)).await,
        Error::SignerSetMismatch { .. }
    ));

    // The genuine approval passes.
    client.check(&m, &a).await.unwrap();
}

#[tokio::test]
async fn keys_rotated_out_no_longer_approve() {
    let w = World::new().await;
    // The manufacturer rotates to a new 2-of-3 set (approved by the current signers).
    let new_keys: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    let new_set = SignerSet::new(new_keys.iter().map(|k| k.address()).collect(), 2).unwrap();
    let nonce = w
        .registry
        .manufacturer(w.manufacturer)
        .call()
        .await
        .unwrap()
        .nonce;
    let rotate = RotateSigners {
        manufacturerId: w.manufacturer,
        nonce,
        signers: new_set.signers().to_vec(),
        threshold: 2,
    };
    let approval = w
        .set
        .approve(
            rotate.eip712_signing_hash(&w.domain()),
            &[&w.keys[0], &w.keys[1]],
        )
        .unwrap();
    mined!(
        w.registry
            .rotateSigners(w.manufacturer, new_set.signers().to_vec(), 2, approval)
    );

    // A release published by the new set, bought for the device.
    let m = w.manifest(w.model, 1).await;
    let genuine = new_set
        .approve_typed(&m, &w.domain(), &[&new_keys[0], &new_keys[1]])
        .unwrap();
    mined!(w.registry.publishRelease(m.clone(), genuine.clone()));
    w.purchase(&m, &[w.devices[0]]).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    let device_m = crate::common::to_device(&m);

    // The old keys (all three, stolen after rotation) sign the same manifest: refused.
    let old = w
        .set
        .approve_typed(&m, &w.domain(), &[&w.keys[0], &w.keys[1], &w.keys[2]])
        .unwrap();
    assert!(matches!(
        refused(&client, &device_m, &to_device_approval(&old)).await,
        Error::SignerSetMismatch { .. }
    ));
    // Old keys presented under the new set's name do not recover to its members.
    let mut disguised = genuine.clone();
    disguised.signatures = old.signatures.clone();
    assert!(matches!(
        refused(&client, &device_m, &to_device_approval(&disguised)).await,
        Error::InvalidSignature { index: 0, .. }
    ));
    client
        .check(&device_m, &to_device_approval(&genuine))
        .await
        .unwrap();
}
