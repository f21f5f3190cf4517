//! The scheme's objects, their binary encodings and their wiping on drop.
//!
//! Layouts (after the 4-byte header of [`crate::codec`]; G1 = 48-byte,
//! G2 = 96-byte compressed points, GT = 288 bytes, scalars 32 bytes, all big-endian):
//! - `PublicKey`: `H1 H2` (G2) `T1 T2` (GT): 772 bytes.
//! - `MasterKey`: `a1 a2 b1 b2 d1 d2 d3` (non-zero scalars): 228 bytes.
//! - `SecretKey`: `sk0[3]` (G2) `sk'[3]` (G1) `u16 n`, then n times
//!   `u16 len, attribute, sk_y[3]` (G1), attributes strictly increasing.
//! - `Capsule`: `u32 len, policy body` `ct0[3]` (G2) `u16 rows`, rows × `ct_i[3]` (G1).

use std::fmt;

use blstrs::{G1Affine, G2Affine, Gt, Scalar};
use ff::Field;
use group::prime::PrimeCurveAffine;
use zeroize::ZeroizeOnDrop;

use crate::codec::{Kind, Reader, Writer, serde_via_bytes};
use crate::error::{Error, Result};
use crate::limits::{MAX_KEY_ATTRIBUTES, MAX_POLICY_LEAVES};
use crate::policy::{Policy, check_attribute};
use crate::secret::{Secret, Wipe};

/// Public parameters: `H_t = h^{a_t}` and `T_t = e(g, h)^{d_t a_t + d_3}`.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) h_a: [G2Affine; 2],
    pub(crate) t: [Gt; 2],
}

/// The authority's master secret `(a1, a2, b1, b2, d1, d2, d3)`; wiped on drop.
#[derive(Clone)]
pub struct MasterKey {
    pub(crate) a: [Scalar; 2],
    pub(crate) b: [Scalar; 2],
    pub(crate) d: [Scalar; 3],
}

/// A device's key for a set of attributes; the group elements are wiped on drop.
#[derive(Clone)]
pub struct SecretKey {
    /// Sorted, unique.
    pub(crate) attributes: Vec<String>,
    pub(crate) k0: [G2Affine; 3],
    pub(crate) k_prime: [G1Affine; 3],
    /// One triple per attribute, same order as `attributes`.
    pub(crate) k_attr: Vec<[G1Affine; 3]>,
}

/// A key capsule: the policy and FAME's ciphertext without a message part
/// (the key is derived from the blinding factor itself).
#[derive(Clone, PartialEq, Eq)]
pub struct Capsule {
    pub(crate) policy: Policy,
    pub(crate) c0: [G2Affine; 3],
    pub(crate) rows: Vec<[G1Affine; 3]>,
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        #[cfg(test)]
        tests::count_wipe();
        self.a.wipe();
        self.b.wipe();
        self.d.wipe();
    }
}

/// The scalars are overwritten with zero on drop.
impl ZeroizeOnDrop for MasterKey {}

impl Drop for SecretKey {
    fn drop(&mut self) {
        #[cfg(test)]
        tests::count_wipe();
        self.k_prime.wipe();
        self.k_attr.wipe();
        self.k0.wipe();
    }
}

/// The group elements are overwritten with the identity on drop (the
/// attribute names are not secret).
impl ZeroizeOnDrop for SecretKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").finish_non_exhaustive()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<secret>)")
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Capsule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capsule")
            .field("policy", &self.policy.to_string())
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// The binary encoding (772 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_header(Kind::PublicKey);
        self.h_a.iter().for_each(|p| w.g2(p));
        self.t.iter().for_each(|e| w.gt(e));
        w.into_bytes()
    }

    /// Decodes and checks (subgroup, non-identity) a public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::with_header(bytes, Kind::PublicKey)?;
        let h_a = [r.g2()?, r.g2()?];
        let t = [r.gt()?, r.gt()?];
        r.finish()?;
        Ok(Self { h_a, t })
    }
}

impl MasterKey {
    /// The binary encoding (228 bytes). Handle as a secret.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_header(Kind::MasterKey);
        self.a
            .iter()
            .chain(&self.b)
            .chain(&self.d)
            .for_each(|s| w.scalar(s));
        w.into_bytes()
    }

    /// Decodes a master key (canonical, non-zero scalars).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::with_header(bytes, Kind::MasterKey)?;
        // Filled in place, so a scalar read before a later error is wiped
        // with the partial key (its `Drop`).
        let mut key = Self {
            a: [Scalar::ZERO; 2],
            b: [Scalar::ZERO; 2],
            d: [Scalar::ZERO; 3],
        };
        for s in key.a.iter_mut().chain(&mut key.b).chain(&mut key.d) {
            *s = r.nonzero_scalar()?;
        }
        r.finish()?;
        Ok(key)
    }
}

impl SecretKey {
    /// The attributes this key holds, sorted.
    pub fn attributes(&self) -> &[String] {
        &self.attributes
    }

    /// The binary encoding. Handle as a secret.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_header(Kind::SecretKey);
        self.k0.iter().for_each(|p| w.g2(p));
        self.k_prime.iter().for_each(|p| w.g1(p));
        w.u16(self.attributes.len() as u16);
        for (a, k) in self.attributes.iter().zip(&self.k_attr) {
            w.str16(a);
            k.iter().for_each(|p| w.g1(p));
        }
        w.into_bytes()
    }

    /// Decodes and checks a secret key: points on the curve, in the subgroup
    /// and not the identity; attributes valid, sorted and unique; within
    /// [`MAX_KEY_ATTRIBUTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::with_header(bytes, Kind::SecretKey)?;
        // Filled in place, so the components read before a later error are
        // wiped with the partial key (its `Drop`).
        let mut key = Self {
            attributes: Vec::new(),
            k0: [G2Affine::identity(); 3],
            k_prime: [G1Affine::identity(); 3],
            k_attr: Vec::new(),
        };
        for p in &mut key.k0 {
            *p = r.g2()?;
        }
        for p in &mut key.k_prime {
            *p = r.g1()?;
        }
        let n = r.u16()? as usize;
        if n == 0 {
            return Err(Error::NoAttributes);
        }
        if n > MAX_KEY_ATTRIBUTES {
            return Err(Error::LimitExceeded {
                what: "key attributes",
                actual: n,
                max: MAX_KEY_ATTRIBUTES,
            });
        }
        // Each entry takes at least 147 bytes, so a valid input never
        // outgrows this capacity (a reallocation would leave an unwiped copy).
        let capacity = n.min(r.remaining() / 147);
        key.attributes = Vec::with_capacity(capacity);
        key.k_attr = Vec::with_capacity(capacity);
        for _ in 0..n {
            let at = r.offset();
            let a = r.str16()?;
            check_attribute(&a)?;
            if key
                .attributes
                .last()
                .is_some_and(|prev| prev.as_bytes() >= a.as_bytes())
            {
                return Err(Error::UnsortedAttributes { offset: at });
            }
            key.attributes.push(a);
            // Read into a wiping container and pushed only when complete: a
            // truncated last entry then fails before the push, so the push
            // stays within the capacity (a reallocation would free an
            // unwiped copy of the components read so far).
            let mut triple = Secret::new([G1Affine::identity(); 3]);
            for p in triple.iter_mut() {
                *p = r.g1()?;
            }
            debug_assert!(key.k_attr.len() < key.k_attr.capacity(), "would reallocate");
            key.k_attr.push(*triple);
        }
        r.finish()?;
        Ok(key)
    }
}

impl Capsule {
    /// The policy the capsule was made for.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The binary encoding: `4 + 4 + |policy| + 288 + 2 + 144 × rows` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_header(Kind::Capsule);
        let body = self.policy.body_bytes();
        w.u32(body.len() as u32);
        w.bytes(&body);
        self.c0.iter().for_each(|p| w.g2(p));
        w.u16(self.rows.len() as u16);
        for row in &self.rows {
            row.iter().for_each(|p| w.g1(p));
        }
        w.into_bytes()
    }

    /// Decodes and checks a capsule: a valid policy within the limits, checked
    /// non-identity points, exactly one row per policy leaf.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::with_header(bytes, Kind::Capsule)?;
        let len = r.u32()? as usize;
        let body_at = r.offset();
        let body = r.take(len)?;
        let mut pr = Reader::with_base(body, body_at);
        let policy = Policy::read_body(&mut pr)?;
        pr.finish()?;
        let c0 = [r.g2()?, r.g2()?, r.g2()?];
        let n = r.u16()? as usize;
        if n != policy.leaf_count() {
            return Err(Error::RowCountMismatch {
                expected: policy.leaf_count(),
                found: n,
            });
        }
        debug_assert!(n <= MAX_POLICY_LEAVES);
        let mut rows = Vec::with_capacity(n.min(r.remaining() / 144));
        for _ in 0..n {
            rows.push([r.g1()?, r.g1()?, r.g1()?]);
        }
        r.finish()?;
        Ok(Self { policy, c0, rows })
    }
}

serde_via_bytes!(PublicKey, "a CP-ABE public key");
serde_via_bytes!(MasterKey, "a CP-ABE master key");
serde_via_bytes!(SecretKey, "a CP-ABE secret key");
serde_via_bytes!(Capsule, "a CP-ABE capsule");

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use std::cell::Cell;

    thread_local! {
        static WIPES: Cell<usize> = const { Cell::new(0) };
    }

    /// Called by the `Drop` of `MasterKey` and `SecretKey` in test builds.
    pub(super) fn count_wipe() {
        WIPES.with(|w| w.set(w.get() + 1));
    }

    fn wipes() -> usize {
        WIPES.with(Cell::get)
    }

    /// A decoder that fails after reading secret components must drop them
    /// through the key's wiping `Drop`, not as loose arrays and vectors.
    /// (An earlier build read them into locals: an error after the first
    /// attribute left `sk0`, `sk'` and the read components unwiped.)
    #[test]
    fn decoding_errors_after_secret_parts_wipe_them() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([9; 32]);
        let (_, msk) = crate::setup(&mut rng);
        let sk = crate::keygen(&msk, &["a", "b"], &mut rng).unwrap();
        let (mb, sb) = (msk.to_bytes(), sk.to_bytes());

        // Master key: cut inside d3, after six scalars were read.
        let before = wipes();
        assert!(matches!(
            MasterKey::from_bytes(&mb[..mb.len() - 1]),
            Err(Error::Truncated { .. })
        ));
        assert_eq!(wipes(), before + 1, "partial master key not wiped");
        // A zero scalar in the last place.
        let mut zero_d3 = mb.clone();
        zero_d3[mb.len() - 32..].fill(0);
        let before = wipes();
        assert!(MasterKey::from_bytes(&zero_d3).is_err());
        assert_eq!(wipes(), before + 1);

        // Secret key: cut inside the last point of the second attribute,
        // after sk0, sk' and the first attribute's components were read
        // (this input also leaves room for only one entry in the vectors:
        // the debug assertion in the decoder checks no push reallocates);
        // and trailing bytes after a complete key.
        for bad in [sb[..sb.len() - 1].to_vec(), [&sb[..], &[0]].concat()] {
            let before = wipes();
            assert!(SecretKey::from_bytes(&bad).is_err());
            assert_eq!(wipes(), before + 1, "partial secret key not wiped");
        }
        // Unsorted attributes: the error comes after the first component triple.
        let before = wipes();
        let swapped = {
            let mut b = sb.clone();
            let first = 4 + 3 * 96 + 3 * 48 + 2;
            let (x, y) = (first + 2, first + 147 + 2);
            b.swap(x, y);
            b
        };
        assert!(matches!(
            SecretKey::from_bytes(&swapped),
            Err(Error::UnsortedAttributes { .. })
        ));
        assert_eq!(wipes(), before + 1);
        // A decoded key is wiped once, when dropped.
        let before = wipes();
        drop(SecretKey::from_bytes(&sb).unwrap());
        assert_eq!(wipes(), before + 1);
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;
    use rand_core::SeedableRng;
    use serde::Deserialize;
    use serde::de::value::{Error as DeError, SeqDeserializer};

    /// Secret keys through serde: hex (JSON) and a byte sequence of unknown
    /// length (the path that grows its buffer, wiping each outgrown one)
    /// decode to the same key; a broken sequence is refused.
    #[test]
    fn secret_keys_round_trip_through_every_serde_path() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([10; 32]);
        let (_, msk) = crate::setup(&mut rng);
        let sk = crate::keygen(&msk, &["a", "b", "c"], &mut rng).unwrap();
        let json = serde_json::to_string(&sk).unwrap();
        let back: SecretKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_bytes(), sk.to_bytes());
        let back: MasterKey = serde_json::from_str(&serde_json::to_string(&msk).unwrap()).unwrap();
        assert_eq!(back.to_bytes(), msk.to_bytes());

        // `filter` hides the length: the visitor starts from an empty buffer.
        let seq = |b: Vec<u8>| SeqDeserializer::<_, DeError>::new(b.into_iter().filter(|_| true));
        let sb = sk.to_bytes();
        assert!(sb.len() > 2 * 256, "the buffer grows more than once");
        let back = SecretKey::deserialize(seq(sb.clone())).unwrap();
        assert_eq!(back.to_bytes(), sb);
        let back = MasterKey::deserialize(seq(msk.to_bytes())).unwrap();
        assert_eq!(back.to_bytes(), msk.to_bytes());
        assert!(SecretKey::deserialize(seq(sb[..sb.len() - 1].to_vec())).is_err());
    }
}
