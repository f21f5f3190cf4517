//! The content key and what is derived from it.
//!
//! ```text
//! K          = CP-ABE KEM key (32 bytes), context = the header's context bytes
//! prk        = HKDF-SHA256-Extract(salt = "otaledger-bundle/1", ikm = K)
//! stream key = HKDF-Expand(prk, "otaledger-bundle/1 stream key", 32)
//! commitment = HKDF-Expand(prk, "otaledger-bundle/1 key commitment" ‖ SHA-256(header), 32)
//! ```
//!
//! The commitment makes the bundle key-committing (ChaCha20-Poly1305 alone is
//! not): one header opens under exactly one key, and a changed header or
//! capsule is refused before any segment is processed.

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use hkdf::Hkdf;
use otaledger_cpabe::{Capsule, PublicKey, SecretKey};
use sha2::Sha256;
use subtle_eq::ct_eq;
use zeroize::Zeroizing;

use super::header::Header;
use crate::{Error, Result};

const SALT: &[u8] = b"otaledger-bundle/1";
const STREAM_INFO: &[u8] = b"otaledger-bundle/1 stream key";
const COMMITMENT_INFO: &[u8] = b"otaledger-bundle/1 key commitment";

/// A bundle's content key (the CP-ABE KEM output); wiped on drop, never printed.
pub struct ContentKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(<secret>)")
    }
}

impl ContentKey {
    /// Takes the KEM's key bytes. This is the one place that touches the
    /// `otaledger-cpabe` key type, through `AsRef<[u8]>` only.
    fn from_kem(key: &otaledger_cpabe::SharedKey) -> Result<Self> {
        let bytes = key.as_bytes();
        let mut out = Zeroizing::new([0u8; 32]);
        if bytes.len() != out.len() {
            return Err(Error::InvalidKey {
                what: "cp-abe kem key (not 32 bytes)",
            });
        }
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }

    /// Encapsulates a fresh content key under `policy`, bound to `context`.
    pub(crate) fn encapsulate(
        params: &PublicKey,
        policy: &otaledger_cpabe::Policy,
        context: &[u8],
        rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
    ) -> Result<(Capsule, Self)> {
        let (capsule, key) =
            otaledger_cpabe::encapsulate(params, policy, context, rng).map_err(|source| {
                Error::CpAbe {
                    during: "encapsulation",
                    source,
                }
            })?;
        Ok((capsule, Self::from_kem(&key)?))
    }

    /// Recovers a bundle's content key with a device's CP-ABE key and checks it
    /// against the header's key commitment later (see [`super::StreamDecryptor`]).
    pub fn unlock(header: &Header, key: &SecretKey) -> Result<Self> {
        let k = otaledger_cpabe::decapsulate(key, header.capsule(), header.context()).map_err(
            |source| Error::CpAbe {
                during: "decapsulation",
                source,
            },
        )?;
        Self::from_kem(&k)
    }

    fn prk(&self) -> Hkdf<Sha256> {
        Hkdf::<Sha256>::new(Some(SALT), self.0.as_slice())
    }

    /// The STREAM AEAD keyed with the stream key.
    pub(crate) fn stream_aead(&self) -> XChaCha20Poly1305 {
        let mut k = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's output limit.
        self.prk()
            .expand(STREAM_INFO, k.as_mut_slice())
            .expect("32 bytes is a valid hkdf length");
        XChaCha20Poly1305::new(&(*k).into())
    }

    /// The key commitment for a header with this hash.
    pub(crate) fn commitment(&self, header_hash: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.prk()
            .expand_multi_info(&[COMMITMENT_INFO, header_hash], &mut out)
            .expect("32 bytes is a valid hkdf length");
        out
    }

    /// Whether `found` is this key's commitment for the header (constant time).
    pub(crate) fn check_commitment(&self, header_hash: &[u8; 32], found: &[u8]) -> Result<()> {
        if ct_eq(&self.commitment(header_hash), found) {
            Ok(())
        } else {
            Err(Error::KeyCommitment)
        }
    }
}

/// Constant-time equality without another dependency.
mod subtle_eq {
    pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}
