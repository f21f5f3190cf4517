//! Raw access to the scheme's group elements, for the collusion and attack
//! tests and for analysis. Enabled by the `hazmat` feature; never needed to
//! use the KEM, and a key built from arbitrary parts is as (in)valid as its parts.

pub use blstrs;
use blstrs::{G1Affine, G2Affine, Gt};

use crate::error::{Error, Result};
use crate::keys::{Capsule, SecretKey};
use crate::policy::Policy;
use crate::secret::SharedKey;

/// The components of a [`SecretKey`]. `Debug` shows the attributes only.
#[derive(Clone)]
pub struct SecretKeyParts {
    /// `sk0 = (b1 r1, b2 r2, r1 + r2)·h`.
    pub k0: [G2Affine; 3],
    /// `sk'`, carrying the master secret `d`.
    pub k_prime: [G1Affine; 3],
    /// Per attribute `(y, sk_y)`, in any order.
    pub attributes: Vec<(String, [G1Affine; 3])>,
}

impl core::fmt::Debug for SecretKeyParts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecretKeyParts")
            .field(
                "attributes",
                &self.attributes.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The components of a [`Capsule`].
#[derive(Debug, Clone)]
pub struct CapsuleParts {
    /// The policy.
    pub policy: Policy,
    /// `ct0 = (s1·H1, s2·H2, (s1 + s2)·h)`.
    pub c0: [G2Affine; 3],
    /// `ct_i` per LSSS row, in row order.
    pub rows: Vec<[G1Affine; 3]>,
}

impl SecretKey {
    /// Splits the key into its components.
    pub fn to_parts(&self) -> SecretKeyParts {
        SecretKeyParts {
            k0: self.k0,
            k_prime: self.k_prime,
            attributes: self
                .attributes
                .iter()
                .cloned()
                .zip(self.k_attr.iter().copied())
                .collect(),
        }
    }

    /// Assembles a key from components (through the checked encoding, so the
    /// same rules apply as to decoded keys).
    pub fn from_parts(mut parts: SecretKeyParts) -> Result<Self> {
        parts
            .attributes
            .sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
        let key = SecretKey {
            attributes: parts.attributes.iter().map(|(a, _)| a.clone()).collect(),
            k0: parts.k0,
            k_prime: parts.k_prime,
            k_attr: parts.attributes.iter().map(|(_, k)| *k).collect(),
        };
        SecretKey::from_bytes(&zeroize::Zeroizing::new(key.to_bytes()))
    }
}

impl Capsule {
    /// Splits the capsule into its components.
    pub fn to_parts(&self) -> CapsuleParts {
        CapsuleParts {
            policy: self.policy.clone(),
            c0: self.c0,
            rows: self.rows.clone(),
        }
    }

    /// Assembles a capsule from components.
    pub fn from_parts(parts: CapsuleParts) -> Result<Self> {
        if parts.rows.len() != parts.policy.leaf_count() {
            return Err(Error::RowCountMismatch {
                expected: parts.policy.leaf_count(),
                found: parts.rows.len(),
            });
        }
        Ok(Capsule {
            policy: parts.policy,
            c0: parts.c0,
            rows: parts.rows,
        })
    }
}

/// The KEM's key derivation from a blinding factor `Z` (as decapsulation
/// computes it) for `capsule` and `context`.
pub fn derive_key(z: &Gt, capsule: &Capsule, context: &[u8]) -> Result<SharedKey> {
    crate::fame::derive_key(z, &capsule.to_bytes(), context)
}

/// The blinding factor `Z` that decapsulation computes from the pairings,
/// before the key derivation (for tests of what the pairing equations bind).
/// The returned copy is not wiped.
pub fn blinding_factor(sk: &SecretKey, capsule: &Capsule) -> Result<Gt> {
    crate::fame::blinding_factor(sk, capsule).map(|z| *z)
}

/// `H(y, l, t)`, the hash-to-curve point of attribute `y` (`l ∈ 1..=3`, `t ∈ 1..=2`).
pub fn attribute_point(attribute: &str, l: u8, t: u8) -> blstrs::G1Projective {
    crate::hash::attribute_point(attribute, l, t)
}

/// `H(0, j, l, t)`, the point of LSSS column `j` (0-based).
pub fn column_point(column: usize, l: u8, t: u8) -> blstrs::G1Projective {
    crate::hash::column_point(column, l, t)
}

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng;

    #[test]
    fn debug_output_holds_no_key_material() {
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([4; 32]);
        let (_, msk) = crate::setup(&mut rng);
        let sk = crate::keygen(&msk, &["model:x"], &mut rng).unwrap();
        let parts = sk.to_parts();
        let point = hex::encode(parts.k_prime[0].to_compressed());
        for shown in [format!("{parts:?}"), format!("{sk:?}"), format!("{msk:?}")] {
            assert!(!shown.contains(&point[..16]), "{shown}");
            assert!(!shown.contains("G1Affine"), "{shown}");
        }
        assert!(format!("{parts:?}").contains("model:x"));
    }
}
