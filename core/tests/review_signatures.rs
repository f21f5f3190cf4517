//! Adversarial review (issue 13): signature malleability of install reports.
//! The high-s twin of a valid 65-byte signature (s' = n - s, parity flipped)
//! recovers to the same signer under `alloy`'s normalising recovery, so the
//! decoder must refuse it itself. (A key delivery's EIP-2098 signature cannot
//! carry the twin of an honest low-s signature except with probability about
//! 2^-128, because the twin's s is then at least 2^255.)

use alloy::{
    primitives::{Address, B256, Signature, U256},
    signers::local::PrivateKeySigner,
};
use otaledger_core::report::{Outcome, Report, SignedReport};

/// secp256k1 group order.
fn n() -> U256 {
    U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap()
}

#[test]
fn report_high_s_twin_is_refused() {
    let device = PrivateKeySigner::random();
    let report = Report {
        chain_id: 31337,
        registry: Address::repeat_byte(0x11),
        device_index: 12,
        release_id: B256::repeat_byte(0x22),
        version: 2,
        outcome: Outcome::Installed,
        detail: String::new(),
        block_number: 120,
        timestamp: 1_764_950_400,
        nonce: 7,
    };
    let signed = report.sign(&device).unwrap();
    assert_eq!(signed.signer().unwrap(), device.address());
    let sig = signed.signature;
    let twin_sig = Signature::new(sig.r(), n() - sig.s(), !sig.v());
    assert_ne!(twin_sig, signed.signature);
    let mut json: serde_json::Value = serde_json::from_str(&signed.to_json()).unwrap();
    json["signature"] =
        serde_json::Value::String(format!("0x{}", hex::encode(twin_sig.as_bytes())));
    let text = serde_json::to_vec(&json).unwrap();
    let refused = match SignedReport::from_json(&text) {
        Err(_) => true,
        Ok(r) => r.signer().is_err(),
    };
    assert!(
        refused,
        "the high-s twin of a device's report signature was accepted"
    );
}

#[test]
fn report_replayed_to_another_chain_or_registry_does_not_recover_the_device() {
    let device = PrivateKeySigner::random();
    let report = Report {
        chain_id: 31337,
        registry: Address::repeat_byte(0x11),
        device_index: 12,
        release_id: B256::repeat_byte(0x22),
        version: 2,
        outcome: Outcome::Refused,
        detail: "image-hash".into(),
        block_number: 120,
        timestamp: 1_764_950_400,
        nonce: 7,
    };
    let signed = report.sign(&device).unwrap();
    for (field, value) in [
        ("chainId", serde_json::json!(1)),
        (
            "registry",
            serde_json::json!(format!("{}", Address::repeat_byte(0x12))),
        ),
    ] {
        let mut json: serde_json::Value = serde_json::from_str(&signed.to_json()).unwrap();
        assert!(json.get(field).is_some(), "no field {field}");
        json[field] = value;
        let moved = SignedReport::from_json(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_ne!(moved.signer().ok(), Some(device.address()), "{field}");
    }
}
