//! Review (second engineer) of 0712164's device update answer (`GET
//! /v1/devices/{index}/update`, one statement for model, manufacturer and floor; only the
//! newest signer set): a manufacturer of our own drives the edges (a model's first floor
//! near `u64::MAX`, floors raised several times across digit counts, versions above 10^19
//! up to `u64::MAX`, purchases, a revocation and refund, an emergency revocation, a
//! transfer, three signer rotations in one block), and the answer for every device is
//! compared with what the chain says the device may install and with a re-implementation
//! of the older handler's logic (e9e324e) over the mirrored rows.

mod common;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::Provider,
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use axum::http::StatusCode;
use common::{Kind, TestDb, config, get_json as get};
use otaledger_core::{
    bindings::{
        market::UpdateMarket,
        registry::{IUpdateRegistry::Manifest, UpdateRegistry},
    },
    merkle::{DeviceLeaf, DeviceTree},
    signing::{
        Claim, RaiseFloor, RevokeRelease, RotateSigners, SignerSet, registry_domain, release_id,
        sign_compact,
    },
    test_support::Chain,
};
use otaledger_indexer::{
    Indexer, db,
    rows::{self, Row, Value},
};
use serde_json::{Value as Json, json};

macro_rules! mined {
    ($call:expr) => {{
        let receipt = $call.send().await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status(), "reverted");
        receipt
    }};
}

/// Sorted signer keys and their set.
fn signer_set(n: usize, threshold: u8) -> (Vec<PrivateKeySigner>, SignerSet) {
    let mut keys: Vec<PrivateKeySigner> = (0..n).map(|_| PrivateKeySigner::random()).collect();
    keys.sort_by_key(|k| k.address());
    let set = SignerSet::new(keys.iter().map(|k| k.address()).collect(), threshold).unwrap();
    (keys, set)
}

fn manifest(model_id: u32, version: u64, expiry: u64) -> Manifest {
    Manifest {
        modelId: model_id,
        version,
        bundleSha256: keccak256(format!("bundle {model_id}/{version}")),
        bundleSize: u64::MAX,
        bundleCid: Bytes::from(format!("cid-{model_id}-{version}").into_bytes()),
        imageSha256: keccak256(format!("image {model_id}/{version}")),
        price: 1,
        paymentToken: Address::ZERO,
        policyId: B256::ZERO,
        expiry,
        metadataHash: B256::ZERO,
    }
}

fn text(row: &Row, column: &str) -> Option<String> {
    let i = row.table.column_names().position(|c| c == column)?;
    match &row.values[i] {
        Value::Text(t) => Some(t.clone()),
        _ => None,
    }
}

fn int(row: &Row, column: &str) -> Option<i64> {
    let i = row.table.column_names().position(|c| c == column)?;
    match &row.values[i] {
        Value::Int(v) => Some(*v),
        _ => None,
    }
}

/// The older handler's (e9e324e) choice, over whole tables in chain order: the release id
/// and the signer set (manufacturer, threshold, signers, block); `None` for a 404.
async fn reference(pool: &sqlx::AnyPool, index: i64) -> Option<(String, Json)> {
    let all = |t| db::read_table(pool, t);
    let claims = all(&rows::CLAIMS).await.unwrap();
    let model = claims
        .iter()
        .find(|c| int(c, "device_index") == Some(index))
        .and_then(|c| int(c, "model_id"))?;
    let models = all(&rows::MODELS).await.unwrap();
    let defined: Vec<&Row> = models
        .iter()
        .filter(|m| int(m, "model_id") == Some(model))
        .take(1)
        .collect();
    let floors = all(&rows::FLOORS).await.unwrap();
    let floor = defined
        .iter()
        .copied()
        .chain(floors.iter().filter(|f| int(f, "model_id") == Some(model)))
        .filter_map(|r| text(r, "min_version"))
        .max()
        .unwrap_or_default();
    let manufacturer = defined.first().and_then(|m| int(m, "manufacturer_id"));
    let revoked: Vec<String> = all(&rows::REVOCATIONS)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| text(r, "release_id"))
        .collect();
    let count = |rows: &[Row], id: &str| {
        rows.iter()
            .filter(|r| {
                text(r, "release_id").as_deref() == Some(id)
                    && int(r, "device_index") == Some(index)
            })
            .count()
    };
    let bought = all(&rows::PURCHASE_DEVICES).await.unwrap();
    let refunded = all(&rows::REFUND_DEVICES).await.unwrap();
    let mut best: Option<(String, String)> = None; // (version, id), first published wins ties
    for r in all(&rows::RELEASES).await.unwrap() {
        let (id, version) = (text(&r, "release_id")?, text(&r, "version")?);
        if int(&r, "model_id") != Some(model)
            || version < floor
            || revoked.contains(&id)
            || count(&bought, &id) <= count(&refunded, &id)
        {
            continue;
        }
        if best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, id));
        }
    }
    let (_, id) = best?;
    let mut set = Json::Null;
    if let Some(m) = manufacturer {
        let sets = all(&rows::SIGNER_SETS).await.unwrap();
        if let Some(current) = sets.iter().rfind(|s| int(s, "manufacturer_id") == Some(m)) {
            let members: Vec<String> = all(&rows::SIGNER_SET_MEMBERS)
                .await
                .unwrap()
                .iter()
                .filter(|r| r.values[0] == current.values[0] && r.values[3] == current.values[3])
                .filter_map(|r| text(r, "signer"))
                .collect();
            set = json!({
                "manufacturer_id": m,
                "threshold": int(current, "threshold"),
                "signers": members,
                "block_number": int(current, "block_number"),
            });
        }
    }
    Some((id, set))
}

async fn the_update_answer_matches_the_chain_at_its_edges(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let d = &chain.deployment;
    let registry = UpdateRegistry::new(d.registry, &chain.provider);
    let owner_registry = UpdateRegistry::new(d.registry, &chain.owner);
    let market = UpdateMarket::new(d.market, &chain.owner);
    let owner = chain.anvil.addresses()[1];
    let domain = registry_domain(d.chain_id, d.registry);
    let (mut keys, mut set) = signer_set(3, 2);
    let receipt = mined!(registry.registerManufacturer(
        "Edges".into(),
        Address::ZERO,
        Address::ZERO,
        set.signers().to_vec(),
        2,
        String::new(),
    ));
    let m = receipt
        .decoded_log::<UpdateRegistry::ManufacturerRegistered>()
        .unwrap()
        .manufacturerId;
    // Model A from floor 5; model B from a first floor 10 below u64::MAX; model C never
    // gets a release.
    let mut models = Vec::new();
    for (name, floor) in [("A", 5), ("B", u64::MAX - 10), ("C", 0)] {
        let receipt = mined!(registry.defineModel(m, name.into(), floor));
        models.push(
            receipt
                .decoded_log::<UpdateRegistry::ModelDefined>()
                .unwrap()
                .modelId,
        );
    }
    let (a, b, c) = (models[0], models[1], models[2]);
    // Devices 0..=3 of model A, 4 of B, 5 of C, in one batch.
    let device_models = [a, a, a, a, b, c];
    let device_keys: Vec<PrivateKeySigner> = device_models
        .iter()
        .map(|_| PrivateKeySigner::random())
        .collect();
    let leaves: Vec<DeviceLeaf> = device_models
        .iter()
        .zip(&device_keys)
        .enumerate()
        .map(|(i, (model, k))| DeviceLeaf {
            position: i as u64,
            device: k.address(),
            model_id: *model,
        })
        .collect();
    let tree = DeviceTree::new(&leaves).unwrap();
    let receipt =
        mined!(registry.provisionDevices(m, tree.root(), leaves.len() as u32, "bafyleaves".into()));
    let batch = receipt
        .decoded_log::<UpdateRegistry::DevicesProvisioned>()
        .unwrap();
    let index = |i: usize| batch.firstIndex + i as u64;
    for (i, leaf) in leaves.iter().enumerate() {
        let claim = Claim {
            owner,
            deviceIndex: index(i),
        };
        let signature = sign_compact(&device_keys[i], claim.eip712_signing_hash(&domain)).unwrap();
        mined!(owner_registry.claimDevice(
            batch.batchId,
            index(i),
            leaf.device,
            leaf.model_id,
            owner,
            tree.proof(i).unwrap(),
            signature.to_vec().into(),
        ));
    }
    let now = chain
        .provider
        .get_block_by_number(Default::default())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let expiry = now + 10 * 365 * 24 * 3600;
    let publish = async |manifest: &Manifest, keys: &[PrivateKeySigner], set: &SignerSet| {
        let approval = set
            .approve_typed(manifest, &domain, &[&keys[0], &keys[1]])
            .unwrap();
        mined!(registry.publishRelease(manifest.clone(), approval));
        release_id(manifest)
    };
    let buy = async |manifest: &Manifest, devices: Vec<u64>| {
        let n = devices.len();
        mined!(
            market
                .purchase(manifest.clone().into(), devices)
                .value(U256::from(n))
        );
    };
    let raise = async |model: u32, floor: u64, keys: &[PrivateKeySigner], set: &SignerSet| {
        let approval = set
            .approve_typed(
                &RaiseFloor {
                    modelId: model,
                    minVersion: floor,
                },
                &domain,
                &[&keys[1], &keys[2]],
            )
            .unwrap();
        mined!(registry.raiseFloor(model, floor, approval));
    };
    // A1 = 5: bought for devices 0 and 1, then the floor rises past it three times.
    let a1 = manifest(a, 5, expiry);
    publish(&a1, &keys, &set).await;
    buy(&a1, vec![index(0), index(1)]).await;
    for floor in [6, 9, 10] {
        raise(a, floor, &keys, &set).await;
    }
    // A2 = 10^19 + 7 (20 digits): bought for devices 0 and 2; device 2 is then transferred.
    let a2 = manifest(a, 10_000_000_000_000_000_007, expiry);
    let a2_id = publish(&a2, &keys, &set).await;
    buy(&a2, vec![index(0), index(2)]).await;
    mined!(owner_registry.transferDevice(index(2), Address::repeat_byte(9)));
    // The floor rises to exactly A2's version (from 2 digits to 20).
    raise(a, 10_000_000_000_000_000_007, &keys, &set).await;
    // A3 = u64::MAX - 1: bought for device 0, revoked with signatures, refunded.
    let a3 = manifest(a, u64::MAX - 1, expiry);
    let a3_id = publish(&a3, &keys, &set).await;
    buy(&a3, vec![index(0)]).await;
    let revoke = RevokeRelease {
        releaseId: a3_id,
        reason: "bad".into(),
    };
    let approval = set
        .approve_typed(&revoke, &domain, &[&keys[0], &keys[2]])
        .unwrap();
    mined!(registry.revokeRelease(a3_id, "bad".into(), approval));
    mined!(market.claimRefund(a3.clone().into(), vec![index(0)]));
    // A4 = u64::MAX: bought for devices 1 and 3, revoked in an emergency (not refunded).
    let a4 = manifest(a, u64::MAX, expiry);
    let a4_id = publish(&a4, &keys, &set).await;
    buy(&a4, vec![index(1), index(3)]).await;
    mined!(registry.emergencyRevoke(a4_id, String::new()));
    // B1 = u64::MAX - 3 (above B's first floor): bought for device 4.
    let b1 = manifest(b, u64::MAX - 3, expiry);
    let b1_id = publish(&b1, &keys, &set).await;
    buy(&b1, vec![index(4)]).await;

    // Three signer rotations in one block (nonces 0, 1, 2, each approved by the set
    // before it); gas given by hand since each estimate would see the older set.
    chain
        .raw("evm_setAutomine", serde_json::json!([false]))
        .await
        .unwrap();
    let mut pending = Vec::new();
    for nonce in 0..3u64 {
        let (new_keys, new_set) = signer_set(3 + nonce as usize, 2 + nonce as u8);
        let rotate = RotateSigners {
            manufacturerId: m,
            nonce,
            signers: new_set.signers().to_vec(),
            threshold: new_set.threshold(),
        };
        let approvers: Vec<&PrivateKeySigner> =
            keys.iter().take(usize::from(set.threshold())).collect();
        let approval = set.approve_typed(&rotate, &domain, &approvers).unwrap();
        let tx = registry
            .rotateSigners(m, new_set.signers().to_vec(), new_set.threshold(), approval)
            .gas(1_000_000)
            .send()
            .await
            .unwrap();
        pending.push(tx);
        (keys, set) = (new_keys, new_set);
    }
    chain.raw("evm_mine", serde_json::json!([])).await.unwrap();
    chain
        .raw("evm_setAutomine", serde_json::json!([true]))
        .await
        .unwrap();
    let mut blocks = Vec::new();
    for tx in pending {
        let receipt = tx.get_receipt().await.unwrap();
        assert!(receipt.status(), "a rotation reverted");
        blocks.push(receipt.block_number.unwrap());
    }
    assert!(blocks.iter().all(|b| *b == blocks[0]), "{blocks:?}");
    let chain_hash = registry.manufacturer(m).call().await.unwrap().signersHash;
    assert_eq!(
        registry
            .signersHash(set.signers().to_vec(), set.threshold())
            .call()
            .await
            .unwrap(),
        chain_hash
    );

    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    indexer.sync().await.unwrap();
    let report = indexer.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
    let state = indexer.api_state(2);

    // What the chain says each device may install (by construction above, checked against
    // the contract's views below).
    let hex = |id: B256| format!("{id:#x}");
    let expected: Vec<Option<String>> = vec![
        Some(hex(a2_id)), // 0: A3 revoked and refunded, A1 below the floor
        None,             // 1: A1 below the floor, A4 revoked
        Some(hex(a2_id)), // 2: transferred, still bought
        None,             // 3: only A4, revoked
        Some(hex(b1_id)), // 4: model B
        None,             // 5: model C, no release
    ];
    for id in [a3_id, a4_id] {
        assert_ne!(registry.release(id).call().await.unwrap().revokedAt, 0);
    }
    assert_eq!(
        registry.model(a).call().await.unwrap().minVersion,
        10_000_000_000_000_000_007
    );
    for (i, want) in expected.iter().enumerate() {
        let at = index(i) as i64;
        let (status, body) = get(&state, &format!("/v1/devices/{at}/update")).await;
        let old = reference(indexer.pool(), at).await;
        match want {
            None => {
                assert_eq!(status, StatusCode::NOT_FOUND, "device {i}: {body}");
                assert!(old.is_none(), "device {i}: the older logic: {old:?}");
            }
            Some(id) => {
                assert_eq!(status, StatusCode::OK, "device {i}: {body}");
                assert_eq!(body["release"]["release_id"], json!(id), "device {i}");
                let (old_id, old_set) = old.expect("the older logic answers");
                assert_eq!(&old_id, id, "device {i}");
                assert_eq!(body["signer_set"], old_set, "device {i}");
                // The served set is the chain's current one (the last rotation).
                let served: Vec<Address> = body["signer_set"]["signers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().parse().unwrap())
                    .collect();
                let threshold = body["signer_set"]["threshold"].as_u64().unwrap() as u8;
                assert_eq!(served, set.signers(), "device {i}");
                assert_eq!(
                    registry
                        .signersHash(served, threshold)
                        .call()
                        .await
                        .unwrap(),
                    chain_hash,
                    "device {i}"
                );
                assert_eq!(body["signer_set"]["block_number"], json!(blocks[0]));
            }
        }
    }
    // Unclaimed and out-of-range indexes.
    let unclaimed = index(leaves.len()) as i64;
    assert_eq!(
        get(&state, &format!("/v1/devices/{unclaimed}/update"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    for bad in ["18446744073709551615", "-1", "9223372036854775808"] {
        let (status, body) = get(&state, &format!("/v1/devices/{bad}/update")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, body) = get(&state, &format!("/v1/devices/{}/update", i64::MAX)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    drop(indexer);
    db.remove().await;
}

both_databases! {
    the_update_answer_matches_the_chain_at_its_edges,
}
