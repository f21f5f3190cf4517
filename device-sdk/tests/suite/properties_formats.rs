//! Properties on stable for what steps 5–9 decode from untrusted sources (the same the
//! `manifest` and `bundle_header` fuzz targets check): mutated publishing calldata (the release
//! source's manifest and approval), bundle headers, key deliveries and install reports never
//! panic, and a mutated key delivery is never accepted.

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolValue},
};
use otaledger_core::{
    bundle::{
        BundleSpec, Header, Parsed, ReleaseTarget, SealOptions, default_policy, limits,
        model_attribute, release_attribute, seal,
    },
    key_delivery::{KeyDelivery, Recipient, identity_public_key},
    report::{Outcome, Report, SignedReport},
};
use otaledger_cpabe::{keygen, rand_core::OsRng, setup};
use otaledger_device_sdk::{
    Approval, Manifest, contracts::registry::UpdateRegistry::publishReleaseCall,
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

/// Up to four byte edits: flip, truncate, insert, remove.
fn mutate(bytes: &[u8], edits: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(kind, at, byte) in edits {
        let len = out.len().max(1);
        let at = at % len;
        match kind % 4 {
            0 if !out.is_empty() => out[at] ^= byte.max(1),
            1 => out.truncate(at),
            2 => out.insert(at.min(out.len()), byte),
            3 if !out.is_empty() => {
                out.remove(at);
            }
            _ => {}
        }
    }
    out
}

fn edits() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn sample_manifest() -> Manifest {
    Manifest {
        modelId: 7,
        version: 3,
        bundleSha256: B256::repeat_byte(1),
        bundleSize: 123_456,
        bundleCid: vec![1, 0x55, 0x12, 0x20].into(),
        imageSha256: B256::repeat_byte(2),
        price: 1000,
        paymentToken: Address::ZERO,
        policyId: B256::repeat_byte(3),
        expiry: 2_000_000_000,
        metadataHash: B256::ZERO,
    }
}

#[test]
fn mutated_publishing_calldata_never_panics_and_decodes_consistently() {
    let call = publishReleaseCall {
        manifest: sample_manifest(),
        approval: Approval {
            signers: vec![Address::repeat_byte(4), Address::repeat_byte(5)],
            threshold: 2,
            signatures: vec![7u8; 128].into(),
        },
    };
    let encoded = call.abi_encode();
    runner(2048)
        .run(&edits(), |e| {
            let bytes = mutate(&encoded, &e);
            if let Ok(decoded) = publishReleaseCall::abi_decode(&bytes) {
                // Whatever decodes has one meaning: it re-encodes and decodes to itself.
                let again = publishReleaseCall::abi_decode(&decoded.abi_encode()).unwrap();
                prop_assert_eq!(&again.manifest, &decoded.manifest);
                prop_assert_eq!(&again.approval, &decoded.approval);
                let _ = otaledger_device_sdk::contracts::release_id(&decoded.manifest);
            }
            let _ = Manifest::abi_decode(&bytes);
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_bundle_headers_never_panic_and_decode_only_canonically() {
    let (params, _) = setup(&mut OsRng);
    let policy = default_policy(7, 3);
    let mut bundle = Vec::new();
    let sealed = seal(
        &params,
        &BundleSpec {
            target: ReleaseTarget {
                chain_id: 31337,
                registry: Address::repeat_byte(9),
                model_id: 7,
                version: 3,
            },
            policy: &policy,
            options: SealOptions::default(),
        },
        &[0u8; 1000][..],
        1000,
        &mut bundle,
        &mut OsRng,
    )
    .unwrap();
    let header = sealed.header.as_bytes().to_vec();
    assert!(Header::decode(&header).is_ok());
    runner(2048)
        .run(&edits(), |e| {
            let bytes = mutate(&header, &e);
            if let Ok(h) = Header::decode(&bytes) {
                prop_assert_eq!(
                    h.as_bytes(),
                    &bytes[..],
                    "only the canonical encoding decodes"
                );
            }
            match Header::parse_prefix(&bytes) {
                Ok(Parsed::Incomplete { needed }) => {
                    prop_assert!(needed <= limits::MAX_HEADER_LEN)
                }
                Ok(Parsed::Complete(_, used)) => prop_assert!(used <= bytes.len()),
                Err(_) => {}
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_mutated_key_delivery_is_never_accepted() {
    let (_, master) = setup(&mut OsRng);
    let key = keygen(
        &master,
        &[model_attribute(7), release_attribute(7, 3)],
        &mut OsRng,
    )
    .unwrap();
    let device = PrivateKeySigner::random();
    let service = PrivateKeySigner::random();
    let registry = Address::repeat_byte(9);
    let delivery = KeyDelivery::seal(
        31337,
        registry,
        B256::repeat_byte(1),
        &identity_public_key(&device),
        &key,
        &service,
    )
    .unwrap()
    .to_bytes()
    .unwrap();
    let recipient = Recipient {
        chain_id: 31337,
        registry,
        key_service: service.address(),
    };
    let identity = device.to_bytes().0;
    assert!(
        KeyDelivery::decode(&delivery)
            .unwrap()
            .open(&recipient, &identity)
            .is_ok()
    );
    runner(256)
        .run(&edits(), |e| {
            let bytes = mutate(&delivery, &e);
            if bytes != delivery
                && let Ok(d) = KeyDelivery::decode(&bytes)
            {
                prop_assert!(d.open(&recipient, &identity).is_err());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_install_reports_never_panic_and_keep_their_signer_honest() {
    let device = PrivateKeySigner::random();
    let signed = Report {
        chain_id: 31337,
        registry: Address::repeat_byte(9),
        device_index: 12,
        release_id: B256::repeat_byte(1),
        version: 3,
        outcome: Outcome::Refused,
        detail: "image-hash".into(),
        block_number: 100,
        timestamp: 1_700_000_000,
        nonce: 7,
    }
    .sign(&device)
    .unwrap();
    let json = signed.to_json().into_bytes();
    runner(2048)
        .run(&edits(), |e| {
            let bytes = mutate(&json, &e);
            if let Ok(r) = SignedReport::from_json(&bytes)
                && r != signed
            {
                // A changed report never verifies as the device's.
                prop_assert_ne!(r.signer().ok(), Some(device.address()));
            }
            Ok(())
        })
        .unwrap();
}
