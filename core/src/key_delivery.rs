//! Key delivery, format `otaledger-key` version 1: a device's purchased CP-ABE
//! key, encrypted to the device's secp256k1 identity key with ECIES and signed
//! by the manufacturer's key-service key (whose address the device got at
//! provisioning).
//!
//! Layout (big-endian integers; `E` the ECIES ciphertext length):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `OTALKEYD` |
//! | 8 | 2 | format version (1) |
//! | 10 | 8 | chain id |
//! | 18 | 20 | registry address |
//! | 38 | 32 | release id the key was issued for |
//! | 70 | 20 | device address (the recipient's identity) |
//! | 90 | 4 | ciphertext length `E` |
//! | 94 | E | ECIES ciphertext of the `otaledger-cpabe` secret key encoding |
//! | 94+E | 64 | EIP-2098 signature by the key service of `keccak256(bytes 0 .. 94+E)` |
//!
//! ECIES is the `ecies` crate's secp256k1 scheme with its default
//! configuration: a 65-byte uncompressed ephemeral public key, HKDF-SHA256
//! over `ephemeral ‖ shared point` (both uncompressed), AES-256-GCM with a
//! 16-byte nonce; the ciphertext is `ephemeral ‖ nonce ‖ tag ‖ body`.
//! The signed bytes start with the magic, so a signature over them cannot be
//! mistaken for an EIP-191 or EIP-712 one (those start with `0x19`).

use alloy::{
    primitives::{Address, B256, keccak256},
    signers::local::PrivateKeySigner,
};
use otaledger_cpabe::SecretKey;
use zeroize::Zeroizing;

use crate::{
    Error, Result,
    signing::{recover_compact, sign_compact},
};

/// The first eight bytes of a key delivery.
pub const MAGIC: [u8; 8] = *b"OTALKEYD";
/// The key delivery format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// ECIES overhead: ephemeral key (65), nonce (16), tag (16).
pub const ECIES_OVERHEAD: usize = 65 + 16 + 16;
/// Longest ECIES ciphertext accepted: a key with 64 attributes of 64 bytes is
/// about 14 KiB; 256 KiB covers `otaledger-cpabe`'s own limits.
pub const MAX_CIPHERTEXT_LEN: usize = 256 * 1024;
const FIXED_LEN: usize = 94;
const SIGNATURE_LEN: usize = 64;
const FORMAT: &str = "key delivery";

/// A decoded key delivery (still encrypted; see [`KeyDelivery::open`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDelivery {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The registry.
    pub registry: Address,
    /// The release the key was issued for.
    pub release_id: B256,
    /// The recipient device's address.
    pub device: Address,
    /// The ECIES ciphertext.
    pub ciphertext: Vec<u8>,
    /// The key service's signature.
    pub signature: [u8; 64],
}

/// What a device expects a delivery to be addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    /// The device's chain.
    pub chain_id: u64,
    /// The device's registry.
    pub registry: Address,
    /// The key service the device trusts (from provisioning).
    pub key_service: Address,
}

impl KeyDelivery {
    /// Encrypts `key` to the device with identity public key `device_public`
    /// (33- or 65-byte SEC1) and signs the delivery with `key_service`.
    pub fn seal(
        chain_id: u64,
        registry: Address,
        release_id: B256,
        device_public: &[u8],
        key: &SecretKey,
        key_service: &PrivateKeySigner,
    ) -> Result<Self> {
        let device = public_key_address(device_public)?;
        let plain = Zeroizing::new(key.to_bytes());
        let ciphertext = ecies::encrypt(device_public, &plain).map_err(|e| Error::Ecies {
            reason: e.to_string(),
        })?;
        let mut delivery = Self {
            chain_id,
            registry,
            release_id,
            device,
            ciphertext,
            signature: [0; 64],
        };
        let digest = keccak256(delivery.signed_bytes()?);
        delivery.signature = sign_compact(key_service, digest)?;
        Ok(delivery)
    }

    fn signed_bytes(&self) -> Result<Vec<u8>> {
        let len = self.ciphertext.len();
        check_ciphertext_len(len)?;
        let mut b = Vec::with_capacity(FIXED_LEN + len + SIGNATURE_LEN);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        b.extend_from_slice(&self.chain_id.to_be_bytes());
        b.extend_from_slice(self.registry.as_slice());
        b.extend_from_slice(self.release_id.as_slice());
        b.extend_from_slice(self.device.as_slice());
        b.extend_from_slice(&(len as u32).to_be_bytes());
        b.extend_from_slice(&self.ciphertext);
        Ok(b)
    }

    /// The binary encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut b = self.signed_bytes()?;
        b.extend_from_slice(&self.signature);
        Ok(b)
    }

    /// Decodes a delivery that must fill `bytes` exactly; every length is
    /// checked before use. The signature is checked by [`KeyDelivery::open`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let truncated = |needed: usize| Error::Truncated {
            format: FORMAT,
            needed: needed as u64,
            available: bytes.len() as u64,
        };
        if bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] != MAGIC {
            return Err(Error::BadMagic {
                format: FORMAT,
                found: hex::encode(&bytes[..MAGIC.len()]),
            });
        }
        if bytes.len() < FIXED_LEN {
            return Err(truncated(FIXED_LEN));
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                format: FORMAT,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let be64 = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(a)
        };
        let len = u32::from_be_bytes([bytes[90], bytes[91], bytes[92], bytes[93]]) as usize;
        check_ciphertext_len(len)?;
        let total = FIXED_LEN + len + SIGNATURE_LEN;
        if bytes.len() < total {
            return Err(truncated(total));
        }
        if bytes.len() > total {
            return Err(Error::TrailingBytes {
                format: FORMAT,
                extra: (bytes.len() - total) as u64,
            });
        }
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[FIXED_LEN + len..]);
        Ok(Self {
            chain_id: be64(10),
            registry: Address::from_slice(&bytes[18..38]),
            release_id: B256::from_slice(&bytes[38..70]),
            device: Address::from_slice(&bytes[70..90]),
            ciphertext: bytes[FIXED_LEN..FIXED_LEN + len].to_vec(),
            signature,
        })
    }

    /// The key service that signed this delivery. A high-s signature is refused
    /// ([`Error::MalleableSignature`]), so a delivery has one encoding.
    pub fn signer(&self) -> Result<Address> {
        let digest = keccak256(self.signed_bytes()?);
        recover_compact(&self.signature, &digest)
    }

    /// Checks the delivery as a device: signed by `expected.key_service`, for
    /// its chain and registry, addressed to the device whose identity secret
    /// key is `identity` (32 bytes); then decrypts and decodes the CP-ABE key.
    pub fn open(&self, expected: &Recipient, identity: &[u8; 32]) -> Result<SecretKey> {
        let recovered = self.signer().ok();
        if recovered != Some(expected.key_service) {
            return Err(Error::KeyDeliverySigner {
                recovered,
                expected: expected.key_service,
            });
        }
        let device = PrivateKeySigner::from_slice(identity)
            .map_err(|_| Error::InvalidKey {
                what: "device identity key",
            })?
            .address();
        let checks = [
            (
                "chain id",
                self.chain_id.to_string(),
                expected.chain_id.to_string(),
            ),
            (
                "registry",
                self.registry.to_string(),
                expected.registry.to_string(),
            ),
            ("device", self.device.to_string(), device.to_string()),
        ];
        for (field, found, want) in checks {
            if found != want {
                return Err(Error::KeyDeliveryMismatch {
                    field,
                    found,
                    expected: want,
                });
            }
        }
        let plain = Zeroizing::new(
            ecies::decrypt(identity, &self.ciphertext).map_err(|_| Error::KeyDeliveryDecrypt)?,
        );
        SecretKey::from_bytes(&plain).map_err(|source| Error::CpAbe {
            during: "decoding the delivered key",
            source,
        })
    }
}

/// The Ethereum address of a SEC1 secp256k1 public key (33 or 65 bytes).
pub fn public_key_address(public: &[u8]) -> Result<Address> {
    let key = alloy::signers::k256::PublicKey::from_sec1_bytes(public).map_err(|_| {
        Error::InvalidKey {
            what: "device identity public key",
        }
    })?;
    Ok(Address::from_public_key(&key.into()))
}

/// The uncompressed SEC1 public key (65 bytes) of an identity key.
pub fn identity_public_key(identity: &PrivateKeySigner) -> Vec<u8> {
    identity
        .credential()
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec()
}

/// Refuses a ciphertext length outside `ECIES_OVERHEAD + 1..=MAX_CIPHERTEXT_LEN` (on encoding
/// and, before anything is sliced, on decoding).
fn check_ciphertext_len(len: usize) -> Result<()> {
    if (ECIES_OVERHEAD + 1..=MAX_CIPHERTEXT_LEN).contains(&len) {
        return Ok(());
    }
    Err(Error::FieldOutOfRange {
        format: FORMAT,
        field: "ciphertext length",
        value: len as u64,
        min: (ECIES_OVERHEAD + 1) as u64,
        max: MAX_CIPHERTEXT_LEN as u64,
    })
}
