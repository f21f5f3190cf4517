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
use zeroize::Zeroize;

use crate::codec::gt_bytes;
use crate::error::{Error, Result};
use crate::hash::{attribute_point, column_point};
use crate::keys::{Capsule, MasterKey, PublicKey, SecretKey, wipe};
use crate::limits::MAX_KEY_ATTRIBUTES;
use crate::lsss;
use crate::policy::{Policy, PolicyNode, check_attribute};

/// HKDF salt of the KEM (version 1).
const KDF_SALT: &[u8] = b"OTALEDGER-CPABE-V1 KEM salt";
/// Prefix of the HKDF info; the policy body and the context follow, length-prefixed.
const KDF_INFO: &[u8] = b"OTALEDGER-CPABE-V1 key";

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
fn gt_mul_secret(x: &Gt, s: &Scalar, rng: &mut (impl CryptoRng + RngCore)) -> Gt {
    let mut u = Scalar::random(&mut *rng);
    let mut rest = *s - u;
    let out = x * rest + x * u;
    [u, rest] = [Scalar::ZERO; 2];
    std::hint::black_box((&u, &rest));
    out
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
    let mut x = [
        msk.d[0] * msk.a[0] + msk.d[2],
        msk.d[1] * msk.a[1] + msk.d[2],
    ];
    let mut xg = x.map(|x| (G1Projective::generator() * x).to_affine());
    let t = xg.map(|p| blstrs::pairing(&p, &G2Affine::generator()));
    x.zeroize_scalars();
    wipe(&mut xg, G1Affine::identity());
    (PublicKey { h_a, t }, msk)
}

/// Issues a key for `attributes` (any order, no duplicates, at most
/// [`MAX_KEY_ATTRIBUTES`]).
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

    let mut r = [nonzero_scalar(rng), nonzero_scalar(rng)];
    let mut br = [msk.b[0] * r[0], msk.b[1] * r[1], r[0] + r[1]];
    // a_t are non-zero by construction and by decoding.
    let mut a_inv = [invert(&msk.a[0])?, invert(&msk.a[1])?];
    let h = G2Projective::generator();
    let g = G1Projective::generator();
    let k0 = [
        (h * br[0]).to_affine(),
        (h * br[1]).to_affine(),
        (h * br[2]).to_affine(),
    ];

    // One component triple for hash points `hash(l, t)` and blinding σ:
    // t ∈ {1,2}: Σ_l (br_l / a_t)·hash(l, t) + (σ / a_t)·g + extra_t·g; third: (extra_3 - σ)·g.
    let mut component =
        |hash: &dyn Fn(u8, u8) -> G1Projective, extra: [Scalar; 3]| -> [G1Affine; 3] {
            let mut sigma = Scalar::random(&mut *rng);
            let mut out = [G1Projective::identity(); 3];
            for t in 0..2 {
                let points = [
                    hash(1, t as u8 + 1),
                    hash(2, t as u8 + 1),
                    hash(3, t as u8 + 1),
                    g,
                ];
                let mut scalars = [
                    br[0] * a_inv[t],
                    br[1] * a_inv[t],
                    br[2] * a_inv[t],
                    sigma * a_inv[t] + extra[t],
                ];
                // One constant-time scalar multiplication per point: blst's
                // multi-exponentiation (Pippenger) is not constant-time.
                out[t] = points.iter().zip(&scalars).map(|(p, s)| p * s).sum();
                scalars.zeroize_scalars();
            }
            out[2] = g * (extra[2] - sigma);
            sigma = Scalar::ZERO;
            std::hint::black_box(&sigma);
            let mut affine = [G1Affine::identity(); 3];
            G1Projective::batch_normalize(&out, &mut affine);
            affine
        };
    let k_prime = component(&|l, t| column_point(0, l, t), msk.d);
    let k_attr = sorted
        .iter()
        .map(|y| component(&|l, t| attribute_point(y, l, t), [Scalar::ZERO; 3]))
        .collect();
    r.zeroize_scalars();
    br.zeroize_scalars();
    a_inv.zeroize_scalars();
    Ok(SecretKey {
        attributes: sorted,
        k0,
        k_prime,
        k_attr,
    })
}

/// Overwrites scalar temporaries (blstrs' `Scalar` has no `Zeroize`).
trait WipeScalars {
    fn zeroize_scalars(&mut self);
}

impl<const N: usize> WipeScalars for [Scalar; N] {
    fn zeroize_scalars(&mut self) {
        for s in self.iter_mut() {
            *s = Scalar::ZERO;
        }
        std::hint::black_box(self);
    }
}

fn invert(s: &Scalar) -> Result<Scalar> {
    Option::from(s.invert()).ok_or(Error::InvalidScalar { offset: 0 })
}

/// Encapsulates a fresh 32-byte key under `policy`, bound to `context`
/// (the bundle format passes the manifest hash).
pub fn encapsulate(
    pk: &PublicKey,
    policy: &Policy,
    context: &[u8],
    rng: &mut (impl CryptoRng + RngCore),
) -> Result<(Capsule, [u8; 32])> {
    let m = lsss::compile(policy);
    let mut s = [nonzero_scalar(rng), nonzero_scalar(rng)];
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
    let columns: Vec<[G1Projective; 3]> = (0..m.columns)
        .map(|j| [1u8, 2, 3].map(|l| mix(&|t| column_point(j, l, t))))
        .collect();
    // A_{y,l} = Σ_t s_t·H(y,l,t), once per distinct attribute.
    let mut per_attribute = std::collections::BTreeMap::new();
    for row in &m.rows {
        per_attribute
            .entry(row.attribute)
            .or_insert_with(|| [1u8, 2, 3].map(|l| mix(&|t| attribute_point(row.attribute, l, t))));
    }
    let one = Scalar::ONE;
    let minus_one = -Scalar::ONE;
    let mut rows_p: Vec<G1Projective> = Vec::with_capacity(3 * m.rows.len());
    for row in &m.rows {
        let base = per_attribute
            .get(row.attribute)
            .copied()
            .unwrap_or([G1Projective::identity(); 3]);
        for l in 0..3 {
            let mut acc = base[l];
            for &(j, v) in &row.entries {
                let p = columns.get(j).map_or(G1Projective::identity(), |c| c[l]);
                if v == one {
                    acc += p;
                } else if v == minus_one {
                    acc -= p;
                } else {
                    acc += p * v;
                }
            }
            rows_p.push(acc);
        }
    }
    let mut rows_a = vec![G1Affine::identity(); rows_p.len()];
    G1Projective::batch_normalize(&rows_p, &mut rows_a);
    let rows = rows_a.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();

    let mut z = gt_mul_secret(&pk.t[0], &s[0], rng) + gt_mul_secret(&pk.t[1], &s[1], rng);
    s.zeroize_scalars();
    let key = derive_key(&z, policy, context);
    wipe(std::slice::from_mut(&mut z), Gt::identity());
    let key = key?;
    Ok((
        Capsule {
            policy: policy.clone(),
            c0,
            rows,
        },
        key,
    ))
}

/// Recovers the key of `capsule` with `sk`, if its attributes satisfy the policy.
///
/// A capsule not made for this `context`, or tampered with, yields a
/// different key (the AEAD that uses it then fails); it is not detected here.
pub fn decapsulate(sk: &SecretKey, capsule: &Capsule, context: &[u8]) -> Result<[u8; 32]> {
    let have: BTreeSet<&str> = sk.attributes.iter().map(String::as_str).collect();
    let coefficients = lsss::reconstruction(&capsule.policy, &have)?;
    let leaves = leaf_attributes(&capsule.policy);
    let mut a = [G1Projective::identity(); 3];
    let mut b = sk.k_prime.map(G1Projective::from);
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
    let mut g1 = [G1Affine::identity(); 6];
    let mut points = [b[0], b[1], b[2], -a[0], -a[1], -a[2]];
    G1Projective::batch_normalize(&points, &mut g1);
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
    let mut z = Bls12::multi_miller_loop(&terms).final_exponentiation();
    drop(terms);
    // `b` (and its affine form in `g1[..3]`) is a sum of key components; `z` is the KEM secret.
    wipe(&mut b, G1Projective::identity());
    wipe(&mut points, G1Projective::identity());
    wipe(&mut g1, G1Affine::identity());
    let key = derive_key(&z, &capsule.policy, context);
    wipe(std::slice::from_mut(&mut z), Gt::identity());
    key
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
/// `KDF_INFO || u32(len policy) || policy body || u32(len context) || context`.
pub(crate) fn derive_key(z: &Gt, policy: &Policy, context: &[u8]) -> Result<[u8; 32]> {
    let mut ikm = gt_bytes(z).ok_or(Error::DegenerateCapsule)?;
    let body = policy.body_bytes();
    let context_len = u32::try_from(context.len()).map_err(|_| Error::LimitExceeded {
        what: "context bytes",
        actual: context.len(),
        max: u32::MAX as usize,
    })?;
    let mut info = Vec::with_capacity(KDF_INFO.len() + 8 + body.len() + context.len());
    info.extend_from_slice(KDF_INFO);
    info.extend_from_slice(&(body.len() as u32).to_be_bytes());
    info.extend_from_slice(&body);
    info.extend_from_slice(&context_len.to_be_bytes());
    info.extend_from_slice(context);
    let mut key = [0u8; 32];
    let expanded = Hkdf::<Sha256>::new(Some(KDF_SALT), &ikm).expand(&info, &mut key);
    ikm.zeroize();
    expanded.map_err(|_| Error::DegenerateCapsule)?;
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
