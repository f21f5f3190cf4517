//! Why not `rabe`: it hashes attributes as `g·SHA3(attr)`, so every hash
//! point's discrete logarithm is public. With that, *any* AC17 key (here one
//! for the unrelated attribute `guest`) unwraps *any* AC17 ciphertext. This
//! test runs the attack on rabe 0.4.2 (it recovers the wrapped key) and the
//! same arithmetic against this crate, where RFC 9380 hash-to-curve leaves no
//! known discrete logarithm: the attacker can only guess, and fails.
//!
//! The attack on FAME/AC17 (k = 2), additive notation, `u_{l,t}` the known
//! dlog of the key's `H(0,1,l,t)` points:
//! 1. One ciphertext row gives `ct_{0,l} = Σ_t c_{l,t} s_t·g` with public
//!    coefficients `c_{l,t}` (dlogs of its hashes); two of them solve for `s_1·g`, `s_2·g`.
//! 2. `Σ_t e(sk'_t, ct0_t) = Σ_t s_t (d_t a_t + d_3)·e(g,h) + Σ_{l,t} u_{l,t} s_t·e(g, br_l h)`
//!    (the key's σ' cancels); the second sum is `Σ_l e(Σ_t u_{l,t} s_t·g, sk0_l)`.
//! 3. Their difference is the blinding factor; no attribute component is used.

use otaledger_cpabe::hazmat::{attribute_point, blstrs, column_point, derive_key};
use otaledger_cpabe::{Policy, decapsulate, encapsulate, keygen, setup};
use rabe::schemes::ac17;
use rabe::utils::aes::decrypt_symmetric;
use rabe::utils::hash::sha3_hash_fr;
use rabe::utils::policy::msp::AbePolicy;
use rabe::utils::policy::pest::PolicyLanguage;
use rabe_bn::{Fr, G1, Gt, pairing};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const POLICY: &str = r#""model=X" and ("region=EU" and "fw>=7")"#;

fn fr(i: i8) -> Fr {
    let abs = Fr::from_str(&i.unsigned_abs().to_string()).unwrap();
    if i < 0 { -abs } else { abs }
}

/// rabe's attribute hash is `g·sha3_hash_fr(s)`: the dlog is `sha3_hash_fr(s)`.
fn dlog(s: &str) -> Fr {
    sha3_hash_fr(s).unwrap()
}

/// Recovers the plaintext of `ct` using only `key`'s `k_0` and `k_p`.
fn attack_ac17(key: &ac17::Ac17CpSecretKey, ct: &ac17::Ac17CpCiphertext) -> Vec<u8> {
    let msp = AbePolicy::from_language(&ct.policy.0, ct.policy.1).unwrap();
    let (attr, row) = (&ct.ct.c[0].0, &msp.m[0]);
    // c_{l,t} = dlog H(attr ‖ l ‖ t) + Σ_j M_0j · dlog H("0" ‖ j+1 ‖ l ‖ t), as rabe's cp_encrypt builds them.
    let c = |l: usize, t: usize| {
        let mut v = dlog(&format!("{attr}{l}{t}"));
        for (j, &m) in row.iter().enumerate() {
            if m != 0 {
                v = v + fr(m) * dlog(&format!("0{}{l}{t}", j + 1));
            }
        }
        v
    };
    let (x0, x1) = (ct.ct.c[0].1[0], ct.ct.c[0].1[1]);
    let det = c(0, 0) * c(1, 1) - c(0, 1) * c(1, 0);
    let inv = det.inverse().unwrap();
    let g_s0: G1 = (x0 * c(1, 1) - x1 * c(0, 1)) * inv;
    let g_s1: G1 = (x1 * c(0, 0) - x0 * c(1, 0)) * inv;
    let mut blind = Gt::one();
    for t in 0..3 {
        blind = blind * pairing(key.sk.k_p[t], ct.ct.c_0[t]);
    }
    for l in 0..3 {
        let u = |t: usize| dlog(&format!("01{l}{t}"));
        let q = g_s0 * u(0) + g_s1 * u(1);
        blind = blind * pairing(q, key.sk.k_0[l]).inverse();
    }
    let msg = ct.ct.c_p * blind.inverse();
    decrypt_symmetric(msg, &ct.ct.ct).unwrap()
}

#[test]
fn a_guest_key_unwraps_any_rabe_ac17_ciphertext() {
    for run in 0..2u8 {
        let (pk, msk) = ac17::setup();
        let wrapped = [run; 32].to_vec();
        let ct = ac17::cp_encrypt(&pk, POLICY, &wrapped, PolicyLanguage::HumanPolicy).unwrap();
        let guest = ac17::cp_keygen(&msk, &["guest"]).unwrap();
        assert!(
            ac17::cp_decrypt(&guest, &ct).is_err(),
            "rabe itself refuses the guest key"
        );
        assert_eq!(
            attack_ac17(&guest, &ct),
            wrapped,
            "the attack recovers the wrapped key"
        );
    }
}

/// The attacker's best stand-in for a discrete log it cannot compute: the
/// same "hash to a scalar" rabe uses, over our hash inputs.
fn guessed_dlog(label: &str) -> blstrs::Scalar {
    use ff::{Field, PrimeField};
    use sha2::Digest;
    let mut bytes: [u8; 32] = sha2::Sha256::digest(label.as_bytes()).into();
    bytes[0] &= 0x3f; // below the modulus
    blstrs::Scalar::from_repr_vartime(bytes).unwrap_or(blstrs::Scalar::ZERO)
}

/// The attack of the module comment against FAME, with the attacker's
/// guessed discrete logs: from the key's `sk0`, `sk'`, the capsule's `ct0` and
/// row 0 (attribute `model=X`, row vector `e_0 + e_1` of our AND chain for
/// `POLICY`), the blinding factor it would give.
fn fame_attack(
    k0: &[blstrs::G2Affine; 3],
    k_prime: &[blstrs::G1Affine; 3],
    c0: &[blstrs::G2Affine; 3],
    row0: &[blstrs::G1Affine; 3],
) -> blstrs::Gt {
    use blstrs::{G1Projective, Gt as Gt381, pairing};
    use ff::Field;
    use group::{Curve, Group};

    let cf = |l: u8, t: u8| {
        guessed_dlog(&format!("model=X-{l}-{t}"))
            + guessed_dlog(&format!("col0-{l}-{t}"))
            + guessed_dlog(&format!("col1-{l}-{t}"))
    };
    let (x0, x1) = (G1Projective::from(row0[0]), G1Projective::from(row0[1]));
    let inv = (cf(1, 1) * cf(2, 2) - cf(1, 2) * cf(2, 1))
        .invert()
        .unwrap();
    let g_s1 = (x0 * cf(2, 2) - x1 * cf(1, 2)) * inv;
    let g_s2 = (x1 * cf(1, 1) - x0 * cf(2, 1)) * inv;
    let mut z = Gt381::identity();
    for t in 0..3 {
        z += pairing(&k_prime[t], &c0[t]);
    }
    for l in 0..3u8 {
        let q = (g_s1 * guessed_dlog(&format!("col0-{}-1", l + 1))
            + g_s2 * guessed_dlog(&format!("col0-{}-2", l + 1)))
        .to_affine();
        z -= pairing(&q, &k0[usize::from(l)]);
    }
    z
}

/// Control: the attack code is right. With FAME's equations evaluated over
/// a hash whose discrete logs are known (`g·guessed_dlog`, rabe's mistake),
/// using this crate's master secret, [`fame_attack`] recovers the blinding
/// factor from a key for an unrelated attribute. Its failure on the real
/// capsule below is therefore due to hash-to-curve, not to a broken attack.
#[test]
fn the_attack_recovers_fame_blinding_factors_when_hash_logs_are_known() {
    use blstrs::{G1Projective, G2Projective, Scalar, pairing};
    use ff::Field;
    use group::{Curve, Group, prime::PrimeCurveAffine};

    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let (_, msk) = setup(&mut rng);
    let bytes = msk.to_bytes();
    let m: Vec<Scalar> = (0..7)
        .map(|i| {
            let b: [u8; 32] = bytes[4 + 32 * i..36 + 32 * i].try_into().unwrap();
            Scalar::from_bytes_be(&b).unwrap()
        })
        .collect();
    let (a, b, d) = ([m[0], m[1]], [m[2], m[3]], [m[4], m[5], m[6]]);
    let (g, h) = (G1Projective::generator(), G2Projective::generator());
    let known = |label: String| g * guessed_dlog(&label);

    // KeyGen's sk0 and sk' (no attribute component is used by the attack).
    let (r1, r2, sigma) = (
        Scalar::random(&mut rng),
        Scalar::random(&mut rng),
        Scalar::random(&mut rng),
    );
    let br = [b[0] * r1, b[1] * r2, r1 + r2];
    let k0 = br.map(|x| (h * x).to_affine());
    let mut k_prime = [blstrs::G1Affine::identity(); 3];
    for t in 0..2 {
        let inv = a[t].invert().unwrap();
        let mut p = g * d[t] + g * (sigma * inv);
        for (l, x) in br.iter().enumerate() {
            p += known(format!("col0-{}-{}", l + 1, t + 1)) * (x * inv);
        }
        k_prime[t] = p.to_affine();
    }
    k_prime[2] = (g * (d[2] - sigma)).to_affine();

    // Encrypt's ct0 and row 0 (attribute model=X, row vector e_0 + e_1), and Z.
    let s = [Scalar::random(&mut rng), Scalar::random(&mut rng)];
    let c0 = [h * (a[0] * s[0]), h * (a[1] * s[1]), h * (s[0] + s[1])].map(|p| p.to_affine());
    let row0 = [1u8, 2, 3].map(|l| {
        let mut p = G1Projective::identity();
        for t in 1..=2u8 {
            let sum = known(format!("model=X-{l}-{t}"))
                + known(format!("col0-{l}-{t}"))
                + known(format!("col1-{l}-{t}"));
            p += sum * s[usize::from(t - 1)];
        }
        p.to_affine()
    });
    let e_gh = pairing(
        &blstrs::G1Affine::generator(),
        &blstrs::G2Affine::generator(),
    );
    let z = e_gh * (s[0] * (d[0] * a[0] + d[2]) + s[1] * (d[1] * a[1] + d[2]));

    assert_eq!(fame_attack(&k0, &k_prime, &c0, &row0), z);
}

#[test]
fn the_same_attack_fails_against_fame_with_hash_to_curve() {
    use blstrs::G1Projective;
    use group::Group;

    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let (pk, msk) = setup(&mut rng);
    let policy = Policy::parse(POLICY).unwrap();
    let (capsule, key) = encapsulate(&pk, &policy, b"ctx", &mut rng).unwrap();
    let guest = keygen(&msk, &["guest"], &mut rng).unwrap();
    assert!(decapsulate(&guest, &capsule, b"ctx").is_err());
    let (k, c) = (guest.to_parts(), capsule.to_parts());

    // The attack needs dlog_g H(..): with hash-to-curve the guesses are wrong.
    let g = G1Projective::generator();
    for (l, t) in [(1u8, 1u8), (2, 2), (3, 1)] {
        assert_ne!(
            g * guessed_dlog(&format!("col0-{l}-{t}")),
            column_point(0, l, t)
        );
        assert_ne!(
            g * guessed_dlog(&format!("model=X-{l}-{t}")),
            attribute_point("model=X", l, t)
        );
    }
    let z = fame_attack(&k.k0, &k.k_prime, &c.c0, &c.rows[0]);
    let forged = derive_key(&z, &capsule, b"ctx").unwrap();
    assert_ne!(forged, key, "the attack must not recover our key");
}
