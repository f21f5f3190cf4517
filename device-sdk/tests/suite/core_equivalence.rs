//! The device's manifest, release id, EIP-712 digest and signer-set hash equal
//! `otaledger_core`'s: both come from `sol!` over the same artifact.

use alloy::{
    primitives::{Address, B256, Bytes, keccak256},
    signers::local::PrivateKeySigner,
    sol_types::{SolStruct, SolValue},
};
use otaledger_core::{bindings::registry::IUpdateRegistry, signing};
use otaledger_device_sdk::{Approval, Manifest, approval, contracts, layout};

fn core_manifest() -> IUpdateRegistry::Manifest {
    IUpdateRegistry::Manifest {
        modelId: 7,
        version: 42,
        bundleSha256: keccak256(b"bundle"),
        bundleSize: 123_456,
        bundleCid: Bytes::from_static(b"\x01\x55\x12\x20cid"),
        imageSha256: keccak256(b"image"),
        price: 10u128.pow(16),
        paymentToken: Address::repeat_byte(3),
        policyId: keccak256(b"policy"),
        expiry: 1_900_000_000,
        metadataHash: B256::repeat_byte(9),
    }
}

#[test]
fn release_id_and_digest_equal_the_cores() {
    let core = core_manifest();
    // Converted through its ABI encoding: no field is copied by hand.
    let device = Manifest::abi_decode(&core.abi_encode()).unwrap();
    assert_eq!(
        Manifest::eip712_encode_type(),
        IUpdateRegistry::Manifest::eip712_encode_type()
    );
    assert_eq!(contracts::release_id(&device), signing::release_id(&core));
    for (chain_id, registry) in [
        (31337, Address::repeat_byte(1)),
        (1, Address::repeat_byte(2)),
    ] {
        assert_eq!(
            contracts::signing_digest(&device, chain_id, registry),
            core.eip712_signing_hash(&signing::registry_domain(chain_id, registry))
        );
    }
}

#[test]
fn core_approvals_verify_on_the_device() {
    let keys: Vec<PrivateKeySigner> = (1..=3u8)
        .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).unwrap())
        .collect();
    let set = signing::SignerSet::new(keys.iter().map(|k| k.address()).collect(), 2).unwrap();
    let core = core_manifest();
    let domain = signing::registry_domain(31337, Address::repeat_byte(1));
    let core_approval = set
        .approve_typed(&core, &domain, &[&keys[2], &keys[0]])
        .unwrap();
    let device_approval = Approval::abi_decode(&core_approval.abi_encode()).unwrap();
    let device = Manifest::abi_decode(&core.abi_encode()).unwrap();
    let proven = layout::signers_hash(set.signers(), set.threshold());
    let digest = contracts::signing_digest(&device, 31337, Address::repeat_byte(1));
    let mut expected = vec![keys[0].address(), keys[2].address()];
    expected.sort();
    assert_eq!(
        approval::verify(&device_approval, proven, digest).unwrap(),
        expected
    );
}
