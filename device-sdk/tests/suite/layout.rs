//! Every slot formula and word decoder of `otaledger_device_sdk::layout` against a real
//! deployment: `eth_getStorageAt` at the computed slot, decoded, equals the contracts' views.

use alloy::{primitives::U256, providers::Provider};
use otaledger_device_sdk::layout::{self, DeviceStatus, DeviceWord, ModelWord, ReleaseWord};

use crate::common::World;

#[tokio::test]
async fn slots_and_words_match_the_contracts_views() {
    let w = World::new().await;
    let (m, _) = w.publish(w.model, 3).await;
    w.purchase(&m, &[w.devices[1]]).await;
    let id = otaledger_core::signing::release_id(&m);
    let registry = *w.registry.address();
    let market = *w.market.address();
    let at = |address, slot: alloy::primitives::B256| {
        let p = w.provider.clone();
        async move {
            p.get_storage_at(address, U256::from_be_bytes(slot.0))
                .await
                .unwrap()
        }
    };

    let mfr = w
        .registry
        .manufacturer(w.manufacturer)
        .call()
        .await
        .unwrap();
    let word = at(registry, layout::manufacturer_signers_hash(w.manufacturer)).await;
    assert_eq!(word, U256::from_be_bytes(mfr.signersHash.0));
    assert_eq!(
        layout::signers_hash(w.set.signers(), w.set.threshold()),
        mfr.signersHash
    );

    let model = w.registry.model(w.model).call().await.unwrap();
    assert_eq!(
        ModelWord::decode(at(registry, layout::model(w.model)).await),
        ModelWord {
            manufacturer_id: model.manufacturerId,
            latest_version: model.latestVersion,
            min_version: model.minVersion,
        }
    );
    assert_eq!(model.latestVersion, 3);

    for index in [w.devices[0], w.devices[1], w.other_device] {
        let device = w.registry.device(index).call().await.unwrap();
        let word = DeviceWord::decode(at(registry, layout::device(index)).await);
        assert_eq!(
            (word.owner, word.model_id, word.status),
            (device.owner, device.modelId, DeviceStatus::Active)
        );
    }

    let release = w.registry.release(id).call().await.unwrap();
    let word = ReleaseWord::decode(at(registry, layout::release(id)).await);
    assert_eq!(
        (
            word.version,
            word.model_id,
            word.published_at,
            word.revoked_at,
            word.rollout_bps
        ),
        (
            release.version,
            release.modelId,
            release.publishedAt.to::<u64>(),
            release.revokedAt.to::<u64>(),
            release.rolloutBps
        )
    );
    assert_ne!(word.published_at, 0);

    for index in [w.devices[0], w.devices[1]] {
        let entitled = w.market.isEntitled(id, index).call().await.unwrap();
        let view = w
            .market
            .entitlementWord(id, U256::from(index >> 8))
            .call()
            .await
            .unwrap();
        let word = at(market, layout::entitlement_word(id, index)).await;
        assert_eq!(word, view);
        assert_eq!(layout::is_entitled(word, index), entitled);
        assert_eq!(entitled, index == w.devices[1]);
    }
}
