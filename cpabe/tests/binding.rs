//! What the derived key is bound to (the property `decapsulate` documents):
//! the blinding factor `Z`, the capsule's whole encoding and the context.
//! The pairing equations bind `Z` only to `ct0` and the rows a key uses; the
//! rows it skips are bound by the KDF input alone, and these tests show both.

use group::Group;
use otaledger_cpabe::hazmat::{CapsuleParts, blinding_factor, blstrs::G1Projective};
use otaledger_cpabe::{Capsule, Policy, SharedKey, decapsulate, encapsulate, keygen, setup};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Adds the generator to component `l` of row `row`: a valid, non-identity
/// subgroup point different from the original.
fn shift_row(capsule: &Capsule, row: usize, l: usize) -> Capsule {
    let CapsuleParts {
        policy,
        c0,
        mut rows,
    } = capsule.to_parts();
    rows[row][l] = (G1Projective::from(rows[row][l]) + G1Projective::generator()).into();
    Capsule::from_parts(CapsuleParts { policy, c0, rows }).unwrap()
}

#[test]
fn tampering_an_unused_row_changes_the_key() {
    let mut rng = ChaCha20Rng::from_seed([21; 32]);
    let (pk, msk) = setup(&mut rng);
    // Rows in leaf order: 0 = "a", 1 = "b". A key for {a} uses row 0 only.
    let policy = Policy::parse(r#""a" or "b""#).unwrap();
    let (capsule, key) = encapsulate(&pk, &policy, b"ctx", &mut rng).unwrap();
    let sk = keygen(&msk, &["a"], &mut rng).unwrap();
    assert_eq!(decapsulate(&sk, &capsule, b"ctx").unwrap(), key);
    let z = blinding_factor(&sk, &capsule).unwrap();

    for l in 0..3 {
        // Unused row: the pairing result is unchanged, so only the KDF's
        // binding of the encoding tells the two capsules apart.
        let unused = shift_row(&capsule, 1, l);
        assert_eq!(blinding_factor(&sk, &unused).unwrap(), z);
        let got = decapsulate(&sk, &unused, b"ctx").unwrap();
        assert_ne!(got, key, "unused row {l} is not bound");

        // Used row: already Z differs.
        let used = shift_row(&capsule, 0, l);
        assert_ne!(blinding_factor(&sk, &used).unwrap(), z);
        assert_ne!(decapsulate(&sk, &used, b"ctx").unwrap(), key);
    }
}

#[test]
fn every_bit_flip_that_still_decodes_changes_the_key() {
    let mut rng = ChaCha20Rng::from_seed([22; 32]);
    let (pk, msk) = setup(&mut rng);
    let policy = Policy::parse(r#""a" or "b""#).unwrap();
    let (capsule, key) = encapsulate(&pk, &policy, b"ctx", &mut rng).unwrap();
    let sk = keygen(&msk, &["a"], &mut rng).unwrap();
    let bytes = capsule.to_bytes();
    let (mut decoded, mut differed) = (0, 0);
    for i in 0..bytes.len() {
        // Bit 5 of a compressed point's first byte is the sign of y: flipping
        // it gives the negated point, which decodes; other bits mostly do not.
        for bit in [0x01u8, 0x20] {
            let mut b = bytes.clone();
            b[i] ^= bit;
            let Ok(c) = Capsule::from_bytes(&b) else {
                continue;
            };
            decoded += 1;
            if let Ok(k) = decapsulate(&sk, &c, b"ctx") {
                assert_ne!(k, key, "flip {bit:#04x} at byte {i} kept the key");
                differed += 1;
            }
        }
    }
    // Negating each of the 3 ct0 and 6 row points decodes; policy-text flips
    // that stay valid add more. The property was exercised, not vacuous.
    assert!(
        decoded >= 9 && differed >= 9,
        "{decoded} decoded, {differed} keys"
    );
}

#[test]
fn the_key_is_bound_to_the_context() {
    let mut rng = ChaCha20Rng::from_seed([23; 32]);
    let (pk, msk) = setup(&mut rng);
    let policy = Policy::parse(r#""a" and "b""#).unwrap();
    let (capsule, key) = encapsulate(&pk, &policy, b"manifest 1", &mut rng).unwrap();
    let sk = keygen(&msk, &["a", "b"], &mut rng).unwrap();
    let same: SharedKey = decapsulate(&sk, &capsule, b"manifest 1").unwrap();
    assert_eq!(same.as_bytes(), key.as_bytes());
    assert_ne!(decapsulate(&sk, &capsule, b"manifest 2").unwrap(), key);
}
