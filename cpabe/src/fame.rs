//! FAME (Agrawal–Chase, CCS 2017, ePrint 2017/807), the CP-ABE scheme of its
//! Section 3 with assumption size k = 2 (DLIN), as a KEM.
//!
//! Notation (additive, `g`/`h` the G1/G2 generators, `br = (b1 r1, b2 r2, r1 + r2)`):
//! - Setup: `H_t = a_t·h`, `T_t = (d_t a_t + d_3)·e(g, h)`.
//! - KeyGen(S): `sk0_l = br_l·h`; for `y ∈ S`, `t ∈ {1,2}`:
//!   `sk_{y,t} = Σ_l (br_l / a_t)·H(y,l,t) + (σ_y / a_t)·g`, `sk_{y,3} = -σ_y·g`;
//!   `sk'_t = d_t·g + Σ_l (br_l / a_t)·H(0,0,l,t) + (σ' / a_t)·g`, `sk'_3 = (d_3 - σ')·g`.
//! - Encaps(M, π): `ct0 = (s1·H_1, s2·H_2, (s1 + s2)·h)`;
//!   `ct_{i,l} = Σ_t s_t·(H(π(i),l,t) + Σ_j M_ij·H(0,j,l,t))`;
//!   the blinding factor `Z = s1·T_1 + s2·T_2` keys HKDF (no message slot).
//! - Decaps: with `Σ γ_i M_i = e_0`,
//!   `Z = Σ_l e(sk'_l + Σ γ_i sk_{π(i),l}, ct0_l) - Σ_l e(Σ γ_i ct_{i,l}, sk0_l)`,
//!   six Miller loops and one final exponentiation.

use std::collections::BTreeSet;

use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, G2Prepared, G2Projective, Gt, Scalar};
use ff::Field;
use group::{Curve, Group, prime::PrimeCurveAffine};
use hkdf::Hkdf;
use pairing::{MillerLoopResult, MultiMillerLoop};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::codec::gt_bytes;
use crate::error::{Error, Result};
use crate::hash::{attribute_point, column_point};
use crate::keys::{Capsule, MasterKey, PublicKey, SecretKey};
use crate::limits::MAX_KEY_ATTRIBUTES;
use crate::lsss;
use crate::policy::{Policy, PolicyNode, check_attribute};
use crate::secret::{Secret, SharedKey};

/// HKDF salt of the KEM. Version 2 binds the whole capsule encoding;
/// version 1 bound only its policy (the encodings did not change).
const KDF_SALT: &[u8] = b"OTALEDGER-CPABE-V2 KEM salt";
/// Prefix of the HKDF info; the capsule encoding and the context follow, length-prefixed.
const KDF_INFO: &[u8] = b"OTALEDGER-CPABE-V2 key";

fn nonzero_scalar(rng: &mut (impl CryptoRng + RngCore)) -> Scalar {
    loop {
        let s = Scalar::random(&mut *rng);
        if !bool::from(s.is_zero()) {
            return s;
        }
    }
}

/// `s·x` in GT for a secret `s`. blstrs' `Gt * Scalar` is a variable-time
/// double-and-add (it adds on every set bit), so `s` is split into two fresh
/// random additive shares: the number of additions, hence the running time,
/// then follows `HW(s - u) + HW(u)`, which carries almost no information
/// about `s`. (This blinds timing, not a local observer of branches; see
/// docs/cpabe.md.) Used only for encapsulation's ephemeral `s_t`, the one
/// place FAME needs GT exponentiation by a secret with no G1 or G2 way round.
/// The shares and the two partial products are wiped; the caller wraps the result.
fn gt_mul_secret(x: &Gt, s: &Scalar, rng: &mut (impl CryptoRng + RngCore)) -> Gt {
    let mut shares = Secret::new([Scalar::random(&mut *rng), Scalar::ZERO]);
    shares[1] = *s - shares[0];
    let parts = Secret::new([x * shares[1], x * shares[0]]);
    parts[0] + parts[1]
}

/// Creates a new authority: public parameters and master secret.
pub fn setup(rng: &mut (impl CryptoRng + RngCore)) -> (PublicKey, MasterKey) {
    let msk = MasterKey {
        a: [nonzero_scalar(rng), nonzero_scalar(rng)],
        b: [nonzero_scalar(rng), nonzero_scalar(rng)],
        d: [
            nonzero_scalar(rng),
            nonzero_scalar(rng),
            nonzero_scalar(rng),
        ],
    };
    let h = G2Projective::generator();
    let h_a = [(h * msk.a[0]).to_affine(), (h * msk.a[1]).to_affine()];
    // T_t = e(x_t·g, h) with x_t = d_t a_t + d_3: a constant-time scalar
    // multiplication and a pairing, instead of GT exponentiation by the
    // master secret (blstrs' is variable-time).
    let x = Secret::new([
        msk.d[0] * msk.a[0] + msk.d[2],
        msk.d[1] * msk.a[1] + msk.d[2],
    ]);
    let xg = Secret::new([0, 1].map(|i| (G1Projective::generator() * x[i]).to_affine()));
    let t = [0, 1].map(|i| blstrs::pairing(&xg[i], &G2Affine::generator()));
    (PublicKey { h_a, t }, msk)
}

/// Issues a key for `attributes` (any order, no duplicates, at most
/// [`MAX_KEY_ATTRIBUTES`]).
///
/// Every secret intermediate (`r`, `b·r`, `1/a`, each `σ`, the component
/// sums) is wiped on every way out, and the key under construction is a
/// [`SecretKey`] from the start, so it is wiped too if this unwinds.
pub fn keygen<S: AsRef<str>>(
    msk: &MasterKey,
    attributes: &[S],
    rng: &mut (impl CryptoRng + RngCore),
) -> Result<SecretKey> {
    if attributes.is_empty() {
        return Err(Error::NoAttributes);
    }
    if attributes.len() > MAX_KEY_ATTRIBUTES {
        return Err(Error::LimitExceeded {
            what: "key attributes",
            actual: attributes.len(),
            max: MAX_KEY_ATTRIBUTES,
        });
    }
    let mut sorted: Vec<String> = attributes.iter().map(|a| a.as_ref().to_owned()).collect();
    sorted.sort_unstable_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    for pair in sorted.windows(2) {
        if pair[0] == pair[1] {
            return Err(Error::DuplicateAttribute {
                attribute: pair[0].clone(),
            });
        }
    }
    sorted.iter().try_for_each(|a| check_attribute(a))?;

    let r = Secret::new([nonzero_scalar(rng), nonzero_scalar(rng)]);
    let br = Secret::new([msk.b[0] * r[0], msk.b[1] * r[1], r[0] + r[1]]);
    // a_t are non-zero by construction and by decoding. Filled in place: in
    // an array literal, a first inverse would escape the wipe if the second failed.
    let mut a_inv = Secret::new([Scalar::ZERO; 2]);
    for (inv, a) in a_inv.iter_mut().zip(&msk.a) {
        *inv = invert(a)?;
    }
    let h = G2Projective::generator();
    let g = G1Projective::generator();
    let n = sorted.len();
    let mut key = SecretKey {
        attributes: sorted,
        k0: [
            (h * br[0]).to_affine(),
            (h * br[1]).to_affine(),
            (h * br[2]).to_affine(),
        ],
        k_prime: [G1Affine::identity(); 3],
        // Exact capacity: pushing never reallocates (which would leave an unwiped copy).
        k_attr: Vec::with_capacity(n),
    };

    // One component triple for hash points `hash(l, t)` and blinding σ:
    // t ∈ {1,2}: Σ_l (br_l / a_t)·hash(l, t) + (σ / a_t)·g + extra_t·g; third: (extra_3 - σ)·g.
    let mut component =
        |hash: &dyn Fn(u8, u8) -> G1Projective, extra: &[Scalar; 3]| -> [G1Affine; 3] {
            let sigma = Secret::new(Scalar::random(&mut *rng));
            let mut out = Secret::new([G1Projective::identity(); 3]);
            for t in 0..2 {
                let points = [
                    hash(1, t as u8 + 1),
                    hash(2, t as u8 + 1),
                    hash(3, t as u8 + 1),
                    g,
                ];
                let scalars = Secret::new([
                    br[0] * a_inv[t],
                    br[1] * a_inv[t],
                    br[2] * a_inv[t],
                    *sigma * a_inv[t] + extra[t],
                ]);
                // One constant-time scalar multiplication per point: blst's
                // multi-exponentiation (Pippenger) is not constant-time.
                out[t] = points.iter().zip(scalars.iter()).map(|(p, s)| p * s).sum();
            }
            out[2] = g * (extra[2] - *sigma);
            let mut affine = [G1Affine::identity(); 3];
            G1Projective::batch_normalize(&out[..], &mut affine);
            affine
        };
    key.k_prime = component(&|l, t| column_point(0, l, t), &msk.d);
    for y in &key.attributes {
        key.k_attr.push(component(
            &|l, t| attribute_point(y, l, t),
            &[Scalar::ZERO; 3],
        ));
    }
    Ok(key)
}

fn invert(s: &Scalar) -> Result<Scalar> {
    Option::from(s.invert()).ok_or(Error::InvalidScalar { offset: 0 })
}

/// Encapsulates a fresh key under `policy`, bound to `context` (the bundle
/// format passes the manifest hash) and to the capsule it returns.
///
/// The ephemerals `s_t`, the per-column points `Σ_t s_t·H(0,j,l,t)` and the
/// per-attribute points `Σ_t s_t·H(y,l,t)` (with any key's `sk0` and `sk'`,
/// column 0's points give the blinding factor `Z`), and `Z` itself, are held
/// in containers that wipe them on every way out, errors included.
pub fn encapsulate(
    pk: &PublicKey,
    policy: &Policy,
    context: &[u8],
    rng: &mut (impl CryptoRng + RngCore),
) -> Result<(Capsule, SharedKey)> {
    let m = lsss::compile(policy);
    let s = Secret::new([nonzero_scalar(rng), nonzero_scalar(rng)]);
    let h = G2Projective::generator();
    let c0p = [
        G2Projective::from(pk.h_a[0]) * s[0],
        G2Projective::from(pk.h_a[1]) * s[1],
        h * (s[0] + s[1]),
    ];
    let mut c0 = [G2Affine::identity(); 3];
    G2Projective::batch_normalize(&c0p, &mut c0);

    // P_{j,l} = Σ_t s_t·H(0,j,l,t) for every column.
    let mix = |f: &dyn Fn(u8) -> G1Projective| -> G1Projective { f(1) * s[0] + f(2) * s[1] };
    let mut columns = Secret::new(Vec::with_capacity(m.columns));
    columns.extend((0..m.columns).map(|j| [1u8, 2, 3].map(|l| mix(&|t| column_point(j, l, t)))));
    let one = Scalar::ONE;
    let minus_one = -Scalar::ONE;
    let mut attribute = Secret::new([G1Projective::identity(); 3]);
    let mut term = Secret::new(G1Projective::identity());
    let mut rows_p: Vec<G1Projective> = Vec::with_capacity(3 * m.rows.len());
    for row in &m.rows {
        // A_{y,l} = Σ_t s_t·H(y,l,t); a policy names each attribute once.
        *attribute = [1u8, 2, 3].map(|l| mix(&|t| attribute_point(row.attribute, l, t)));
        for l in 0..3 {
            // Ends as the public row value `ct_{i,l}`.
            let mut acc = attribute[l];
            for &(j, v) in &row.entries {
                *term = columns.get(j).map_or(G1Projective::identity(), |c| c[l]);
                if v == minus_one {
                    *term = -*term;
                } else if v != one {
                    *term *= v;
                }
                acc += *term;
            }
            rows_p.push(acc);
        }
    }
    let mut rows_a = vec![G1Affine::identity(); rows_p.len()];
    G1Projective::batch_normalize(&rows_p, &mut rows_a);
    let capsule = Capsule {
        policy: policy.clone(),
        c0,
        rows: rows_a.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
    };

    let z = Secret::new(gt_mul_secret(&pk.t[0], &s[0], rng) + gt_mul_secret(&pk.t[1], &s[1], rng));
    let key = derive_key(&z, &capsule.to_bytes(), context)?;
    Ok((capsule, key))
}

/// Recovers the key of `capsule` with `sk`, if its attributes satisfy the policy.
///
/// What the key is bound to: the key is HKDF over the blinding factor `Z`,
/// the capsule's whole canonical encoding (policy, `ct0` and every row,
/// including rows this key does not use) and `context`. A capsule not made
/// for this `context`, or changed in any way that still decodes, yields a
/// different key (the AEAD that uses it then fails) or an error; it is not
/// detected here. The pairing equations alone bind less: `Z` depends only on
/// `ct0` and the rows the reconstruction uses, so the rows it skips are bound
/// by the KDF input and nothing else (test `tampering_an_unused_row_changes_the_key`).
///
/// The sums of key components, the Miller-loop result and `Z` are wiped on
/// every way out. blstrs' `G2Prepared` form of `sk0` has private fields and
/// cannot be wiped (see docs/cpabe.md).
pub fn decapsulate(sk: &SecretKey, capsule: &Capsule, context: &[u8]) -> Result<SharedKey> {
    let z = blinding_factor(sk, capsule)?;
    derive_key(&z, &capsule.to_bytes(), context)
}

/// `Z` as decapsulation computes it (before the KDF).
pub(crate) fn blinding_factor(sk: &SecretKey, capsule: &Capsule) -> Result<Secret<Gt>> {
    let have: BTreeSet<&str> = sk.attributes.iter().map(String::as_str).collect();
    let coefficients = lsss::reconstruction(&capsule.policy, &have)?;
    let leaves = leaf_attributes(&capsule.policy);
    // `a` combines public capsule rows with public coefficients; `b` combines key components.
    let mut a = [G1Projective::identity(); 3];
    let mut b = Secret::new([G1Projective::identity(); 3]);
    for l in 0..3 {
        b[l] = G1Projective::from(sk.k_prime[l]);
    }
    for (row, gamma) in coefficients {
        let (Some(ct), Some(attr)) = (capsule.rows.get(row), leaves.get(row)) else {
            return Err(Error::RowCountMismatch {
                expected: leaves.len(),
                found: capsule.rows.len(),
            });
        };
        let idx = sk
            .attributes
            .binary_search_by(|x| x.as_bytes().cmp(attr.as_bytes()))
            .map_err(|_| Error::PolicyNotSatisfied)?;
        let k = sk.k_attr.get(idx).ok_or(Error::PolicyNotSatisfied)?;
        for l in 0..3 {
            if gamma == Scalar::ONE {
                a[l] += ct[l];
                b[l] += k[l];
            } else {
                a[l] += ct[l] * gamma;
                b[l] += k[l] * gamma;
            }
        }
    }
    let points = Secret::new([b[0], b[1], b[2], -a[0], -a[1], -a[2]]);
    let mut g1 = Secret::new([G1Affine::identity(); 6]);
    G1Projective::batch_normalize(&points[..], &mut g1[..]);
    let g2: [G2Prepared; 6] = [
        capsule.c0[0],
        capsule.c0[1],
        capsule.c0[2],
        sk.k0[0],
        sk.k0[1],
        sk.k0[2],
    ]
    .map(G2Prepared::from);
    let terms: Vec<(&G1Affine, &G2Prepared)> = g1.iter().zip(g2.iter()).collect();
    let miller = Secret::new(Bls12::multi_miller_loop(&terms));
    Ok(Secret::new(miller.final_exponentiation()))
}

/// The policy's leaves in row order (depth-first, as `lsss::compile` emits rows).
fn leaf_attributes(policy: &Policy) -> Vec<&str> {
    fn walk<'a>(node: &'a PolicyNode, out: &mut Vec<&'a str>) {
        match node {
            PolicyNode::Attr(a) => out.push(a),
            gate => gate.children().iter().for_each(|c| walk(c, out)),
        }
    }
    let mut out = Vec::with_capacity(policy.leaf_count());
    walk(policy.root(), &mut out);
    out
}

/// HKDF-SHA256: IKM the compressed blinding factor, salt [`KDF_SALT`], info
/// `KDF_INFO || u32(len capsule) || capsule encoding || u32(len context) || context`.
pub(crate) fn derive_key(z: &Gt, capsule: &[u8], context: &[u8]) -> Result<SharedKey> {
    let ikm = Zeroizing::new(gt_bytes(z).ok_or(Error::DegenerateCapsule)?);
    let len = |what: &'static str, bytes: &[u8]| {
        u32::try_from(bytes.len()).map_err(|_| Error::LimitExceeded {
            what,
            actual: bytes.len(),
            max: u32::MAX as usize,
        })
    };
    let capsule_len = len("capsule bytes", capsule)?;
    let context_len = len("context bytes", context)?;
    let mut info = Vec::with_capacity(KDF_INFO.len() + 8 + capsule.len() + context.len());
    info.extend_from_slice(KDF_INFO);
    info.extend_from_slice(&capsule_len.to_be_bytes());
    info.extend_from_slice(capsule);
    info.extend_from_slice(&context_len.to_be_bytes());
    info.extend_from_slice(context);
    let mut key = SharedKey::zeroed();
    Hkdf::<Sha256>::new(Some(KDF_SALT), &ikm[..])
        .expand(&info, key.bytes_mut())
        .map_err(|_| Error::DegenerateCapsule)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::from_seed([7; 32])
    }

    #[test]
    fn round_trip_and_refusal() {
        let mut rng = rng();
        let (pk, msk) = setup(&mut rng);
        let policy = Policy::parse(r#""m" and ("r1" or "r2") and 2 of ("a", "b", "c")"#).unwrap();
        let (capsule, key) = encapsulate(&pk, &policy, b"ctx", &mut rng).unwrap();
        let good = keygen(&msk, &["m", "r2", "c", "a"], &mut rng).unwrap();
        assert_eq!(decapsulate(&good, &capsule, b"ctx").unwrap(), key);
        assert_ne!(decapsulate(&good, &capsule, b"other").unwrap(), key);
        let bad = keygen(&msk, &["m", "r2", "c"], &mut rng).unwrap();
        assert_eq!(
            decapsulate(&bad, &capsule, b"ctx"),
            Err(Error::PolicyNotSatisfied)
        );
    }

    /// The error path of `invert` (unreachable through the API: `a_t` are
    /// non-zero by construction and decoding) returns an error, not a panic.
    #[test]
    fn keygen_with_a_zero_a_is_an_error() {
        let mut rng = rng();
        let (_, mut msk) = setup(&mut rng);
        msk.a[1] = Scalar::ZERO;
        assert_eq!(
            keygen(&msk, &["a"], &mut rng).err(),
            Some(Error::InvalidScalar { offset: 0 })
        );
    }

    #[test]
    fn keygen_rejects_bad_attribute_sets() {
        let mut rng = rng();
        let (_, msk) = setup(&mut rng);
        assert_eq!(
            keygen::<&str>(&msk, &[], &mut rng).err(),
            Some(Error::NoAttributes)
        );
        assert_eq!(
            keygen(&msk, &["a", "b", "a"], &mut rng).err(),
            Some(Error::DuplicateAttribute {
                attribute: "a".into()
            })
        );
    }
}
