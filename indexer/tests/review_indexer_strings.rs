//! Review (second engineer) of 5b14be9 (chain strings stored through `rows::chain_text`):
//! a stranger registers a manufacturer and controls every string of its events. Byte
//! sequences the ABI decoder lets through (invalid UTF-8, an overlong NUL, an encoded
//! surrogate), strings of tens of KiB, and a leaves CID that the pin follower keys its
//! table by must neither stop nor corrupt the mirror on either database: after each,
//! `sync` succeeds, `verify` is clean and the API answers.

mod common;

use alloy::{
    primitives::{Address, B256, Bytes, keccak256},
    providers::Provider,
    rpc::types::TransactionRequest,
};
use axum::http::StatusCode;
use common::{Kind, TestDb, config, get_text as get};
use otaledger_core::{bindings::registry::UpdateRegistry, test_support::Chain};
use otaledger_indexer::{Indexer, backoff::Backoff, db, pins, rows};

/// Sends `data` to `to` from anvil's key 0 and waits for a successful receipt.
async fn send_raw(chain: &Chain, to: Address, data: Vec<u8>) {
    let tx = TransactionRequest::default()
        .to(to)
        .input(Bytes::from(data).into());
    let receipt = chain
        .provider
        .send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status(), "reverted");
}

/// `calldata` with the first occurrence of `marker` replaced by `bytes` (same length).
fn patched(mut calldata: Vec<u8>, marker: &[u8], bytes: &[u8]) -> Vec<u8> {
    assert_eq!(marker.len(), bytes.len());
    let at = calldata
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker in the calldata");
    calldata[at..at + marker.len()].copy_from_slice(bytes);
    calldata
}

/// The newest manufacturer id (ids count from 1).
async fn registered_ids(chain: &Chain) -> u32 {
    let registry = UpdateRegistry::new(chain.deployment.registry, &chain.provider);
    registry.counters().call().await.unwrap().manufacturers
}

/// `n` printable, hardly compressible ASCII characters (`!`..`~`), from keccak.
fn noise(n: usize, seed: &str) -> String {
    let mut out = String::with_capacity(n);
    let mut block = keccak256(seed.as_bytes());
    while out.len() < n {
        for b in block.iter() {
            if out.len() < n {
                out.push(char::from(b'!' + b % 94));
            }
        }
        block = keccak256(block.as_slice());
    }
    out
}

async fn synced_and_clean(indexer: &mut Indexer) {
    let progress = indexer.sync().await.unwrap();
    assert_eq!(progress.checkpoint.unwrap().number, progress.head);
    let report = indexer.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
}

/// Names, params CIDs, model names, leaves CIDs and revocation reasons are `string`s the
/// contract never validates, and the bindings decode them lossily: invalid UTF-8 (0xff),
/// an overlong NUL (0xc0 0x80, what "modified UTF-8" uses for NUL) and a UTF-8-encoded
/// surrogate (0xed 0xa0 0x80, invalid in UTF-8 and in PostgreSQL) all arrive as U+FFFD, on
/// both databases alike, and the API serves valid JSON.
async fn invalid_utf8_in_chain_strings_does_not_stop_the_indexer(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let d = &chain.deployment;
    let registry = UpdateRegistry::new(d.registry, &chain.provider);
    let signer = chain.anvil.addresses()[0];
    let odd: &[u8] = b"A\xffB\xc0\x80C\xed\xa0\x80D\x00E";
    let name_marker = b"NAMEMARKER_1234";
    let cid_marker = b"CIDMARKER_12345";
    assert_eq!(odd.len(), 12);
    let calldata = registry
        .registerManufacturer(
            String::from_utf8(name_marker[..12].to_vec()).unwrap(),
            Address::ZERO,
            Address::ZERO,
            vec![signer],
            1,
            String::from_utf8(cid_marker[..12].to_vec()).unwrap(),
        )
        .calldata()
        .to_vec();
    let calldata = patched(calldata, &name_marker[..12], odd);
    let calldata = patched(calldata, &cid_marker[..12], odd);
    send_raw(&chain, d.registry, calldata).await;
    let id = registered_ids(&chain).await;
    // A model and a batch with the same bytes in their strings.
    let calldata = registry
        .defineModel(
            id,
            String::from_utf8(name_marker[..12].to_vec()).unwrap(),
            0,
        )
        .calldata()
        .to_vec();
    send_raw(
        &chain,
        d.registry,
        patched(calldata, &name_marker[..12], odd),
    )
    .await;
    let calldata = registry
        .provisionDevices(
            id,
            B256::repeat_byte(7),
            1,
            String::from_utf8(cid_marker[..12].to_vec()).unwrap(),
        )
        .calldata()
        .to_vec();
    send_raw(
        &chain,
        d.registry,
        patched(calldata, &cid_marker[..12], odd),
    )
    .await;

    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    synced_and_clean(&mut indexer).await;
    let expected = "A\u{fffd}B\u{fffd}\u{fffd}C\u{fffd}\u{fffd}\u{fffd}D\u{fffd}E";
    let manufacturers = db::read_table(indexer.pool(), &rows::MANUFACTURERS)
        .await
        .unwrap();
    assert_eq!(
        manufacturers[0].values[7],
        rows::Value::Text(expected.into())
    );
    assert_eq!(
        manufacturers[0].values[8],
        rows::Value::Text(expected.into())
    );
    let state = indexer.api_state(2);
    for uri in ["/v1/manufacturers", "/v1/models"] {
        let (status, body) = get(&state, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(body.contains("\u{fffd}"), "{uri}: {json}");
    }
    drop(indexer);
    db.remove().await;
}

/// Strings far longer than any real name: a 64 KiB manufacturer name, a 16 KiB params
/// CID, a 16 KiB model name and a 12 KiB leaves CID of hardly compressible characters
/// (PostgreSQL refuses index entries above 2704 bytes, so any such column in an index
/// would fail the insert). The mirror stores them on both databases.
async fn long_chain_strings_do_not_stop_the_indexer(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let d = &chain.deployment;
    let registry = UpdateRegistry::new(d.registry, &chain.provider);
    let signer = chain.anvil.addresses()[0];
    let name = noise(64 * 1024, "name");
    registry
        .registerManufacturer(
            name.clone(),
            Address::ZERO,
            Address::ZERO,
            vec![signer],
            1,
            noise(16 * 1024, "params"),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let id = registered_ids(&chain).await;
    let model = registry.defineModel(id, noise(16 * 1024, "model"), u64::MAX);
    let receipt = model.send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    let params = registry.setParamsCid(id, noise(16 * 1024, "params2"));
    let receipt = params.send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    let receipt = registry
        .provisionDevices(
            id,
            B256::repeat_byte(1),
            u32::MAX,
            noise(12 * 1024, "leaves"),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());

    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    synced_and_clean(&mut indexer).await;
    let state = indexer.api_state(2);
    let (status, body) = get(&state, "/v1/manufacturers").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(&name[..100]));
    let (status, body) = get(&state, "/v1/models").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("18446744073709551615"), "{body}");
    let (status, body) = get(&state, "/metrics").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(indexer);
    db.remove().await;
}

/// The pin follower keys `pins` by the CID as the chain has it (`cid TEXT PRIMARY KEY`).
/// A stranger's batch whose leaves "CID" is 12 KiB of noise is `invalid`, and recording it
/// must not fail the round: a later, ordinary batch's leaves CID must still be recorded.
async fn a_long_leaves_cid_does_not_stop_the_pin_follower(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let d = &chain.deployment;
    let registry = UpdateRegistry::new(d.registry, &chain.provider);
    let signer = chain.anvil.addresses()[0];
    registry
        .registerManufacturer(
            "Mallory".into(),
            Address::ZERO,
            Address::ZERO,
            vec![signer],
            1,
            String::new(),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let id = registered_ids(&chain).await;
    let long = noise(12 * 1024, "pin");
    for cid in [long.clone(), "bafy-ordinary-leaves".to_owned()] {
        let receipt = registry
            .provisionDevices(id, B256::repeat_byte(3), 1, cid)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status());
    }
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    synced_and_clean(&mut indexer).await;
    let store = tempfile::tempdir().unwrap();
    let target = pins::PinTarget::Store {
        dir: store.path().to_owned(),
        gateways: Vec::new(),
    };
    // Two rounds: the second must not fail on the first's leftovers either.
    for round in 0..2 {
        let recorded = pins::pin_pending(indexer.pool(), &target, &Backoff::default()).await;
        assert!(recorded.is_ok(), "round {round}: {}", recorded.unwrap_err());
    }
    let ordinary = pins::status(indexer.pool(), "bafy-ordinary-leaves")
        .await
        .unwrap();
    assert_eq!(ordinary.map(|s| s.status), Some("invalid"));
    let long_status = pins::status(indexer.pool(), &long).await.unwrap();
    assert_eq!(long_status.map(|s| s.status), Some("invalid"));
    // And the API's health is unaffected.
    let state = indexer.api_state(2);
    assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
    drop(indexer);
    db.remove().await;
}

both_databases! {
    invalid_utf8_in_chain_strings_does_not_stop_the_indexer,
    long_chain_strings_do_not_stop_the_indexer,
    a_long_leaves_cid_does_not_stop_the_pin_follower,
}
