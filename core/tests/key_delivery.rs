//! Key delivery (`otaledger-key` v1): only the addressed device opens it, only
//! a delivery signed by its key service is accepted, and raw mutated input is
//! refused with a named error, never a panic.

use std::sync::OnceLock;

use alloy::{
    primitives::{Address, B256, keccak256},
    signers::local::PrivateKeySigner,
};
use otaledger_core::{
    Error,
    key_delivery::{KeyDelivery, Recipient, identity_public_key, public_key_address},
};
use otaledger_cpabe::{SecretKey, keygen, rand_core::OsRng, setup};
use proptest::prelude::*;

struct Fixture {
    identity: PrivateKeySigner,
    key_service: PrivateKeySigner,
    key: SecretKey,
    bytes: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (_, master) = setup(&mut OsRng);
        let key = keygen(&master, &["model:7", "release:7/42"], &mut OsRng).unwrap();
        let identity = PrivateKeySigner::random();
        let key_service = PrivateKeySigner::random();
        let delivery = KeyDelivery::seal(
            31337,
            Address::repeat_byte(9),
            keccak256(b"r"),
            &identity_public_key(&identity),
            &key,
            &key_service,
        )
        .unwrap();
        let bytes = delivery.to_bytes().unwrap();
        Fixture {
            identity,
            key_service,
            key,
            bytes,
        }
    })
}

fn recipient(f: &Fixture) -> Recipient {
    Recipient {
        chain_id: 31337,
        registry: Address::repeat_byte(9),
        key_service: f.key_service.address(),
    }
}

fn secret(k: &PrivateKeySigner) -> [u8; 32] {
    k.to_bytes().0
}

#[test]
fn the_addressed_device_opens_its_key() {
    let f = fixture();
    let d = KeyDelivery::decode(&f.bytes).unwrap();
    assert_eq!(d.device, f.identity.address());
    assert_eq!(
        public_key_address(&identity_public_key(&f.identity)).unwrap(),
        f.identity.address()
    );
    let key = d.open(&recipient(f), &secret(&f.identity)).unwrap();
    assert_eq!(key.to_bytes(), f.key.to_bytes());
    // Compressed public keys work too.
    let compressed = f
        .identity
        .credential()
        .verifying_key()
        .to_encoded_point(true);
    let d2 = KeyDelivery::seal(
        31337,
        Address::repeat_byte(9),
        B256::ZERO,
        compressed.as_bytes(),
        &f.key,
        &f.key_service,
    )
    .unwrap();
    assert_eq!(d2.device, f.identity.address());
}

#[test]
fn other_devices_services_chains_and_altered_bytes_are_refused() {
    let f = fixture();
    let d = KeyDelivery::decode(&f.bytes).unwrap();
    let other = PrivateKeySigner::random();
    assert!(matches!(
        d.open(&recipient(f), &secret(&other)),
        Err(Error::KeyDeliveryMismatch {
            field: "device",
            ..
        })
    ));
    let mut r = recipient(f);
    r.key_service = other.address();
    assert!(matches!(
        d.open(&r, &secret(&f.identity)),
        Err(Error::KeyDeliverySigner { .. })
    ));
    let mut r = recipient(f);
    r.chain_id = 1;
    assert!(matches!(
        d.open(&r, &secret(&f.identity)),
        Err(Error::KeyDeliveryMismatch {
            field: "chain id",
            ..
        })
    ));
    // Re-addressed to another device by an attacker: the signature no longer matches.
    let mut moved = d.clone();
    moved.device = other.address();
    assert!(matches!(
        moved.open(&recipient(f), &secret(&other)),
        Err(Error::KeyDeliverySigner { .. })
    ));
    // A delivery honestly signed by the service but with an altered ciphertext
    // (a compromised transport cannot do this; the ECIES tag is the second line).
    let mut altered = d.clone();
    let n = altered.ciphertext.len();
    altered.ciphertext[n - 1] ^= 1;
    let digest = keccak256(&altered.to_bytes().unwrap()[..94 + n]);
    altered.signature = otaledger_core::signing::sign_compact(&f.key_service, digest).unwrap();
    assert!(matches!(
        altered.open(&recipient(f), &secret(&f.identity)),
        Err(Error::KeyDeliveryDecrypt)
    ));
    // Every single flipped byte is refused.
    for at in 0..f.bytes.len() {
        let mut bad = f.bytes.clone();
        bad[at] ^= 0x10;
        let opened =
            KeyDelivery::decode(&bad).and_then(|d| d.open(&recipient(f), &secret(&f.identity)));
        assert!(opened.is_err(), "flip at {at} accepted");
    }
}

#[test]
fn framing_errors_are_named() {
    let f = fixture();
    let b = &f.bytes;
    assert!(matches!(
        KeyDelivery::decode(&b[..50]),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(
        KeyDelivery::decode(&b[..b.len() - 1]),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(
        KeyDelivery::decode(&[b.as_slice(), &[0]].concat()),
        Err(Error::TrailingBytes { extra: 1, .. })
    ));
    let mut bad = b.clone();
    bad[0] = b'X';
    assert!(matches!(
        KeyDelivery::decode(&bad),
        Err(Error::BadMagic { .. })
    ));
    let mut bad = b.clone();
    bad[9] = 2;
    assert!(matches!(
        KeyDelivery::decode(&bad),
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
    let mut bad = b.clone();
    bad[90..94].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        KeyDelivery::decode(&bad),
        Err(Error::FieldOutOfRange {
            field: "ciphertext length",
            ..
        })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Raw mutations (overwrites, inserts, deletes, truncation) never panic, and
    /// whatever decodes re-encodes to the same bytes.
    #[test]
    fn mutated_deliveries_decode_strictly(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..5),
        cut in any::<usize>(),
    ) {
        let mut bytes = fixture().bytes.clone();
        for (at, value, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = value,
                1 => bytes.insert(at, value),
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => {}
            }
        }
        let cut = cut % (bytes.len() + 1);
        for input in [&bytes[..], &bytes[..cut]] {
            if let Ok(d) = KeyDelivery::decode(input) {
                prop_assert_eq!(d.to_bytes().unwrap(), input.to_vec());
            }
        }
    }
}
