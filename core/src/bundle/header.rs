//! The bundle header: its fields, canonical encoding and strict decoding.
//!
//! Layout (big-endian integers; offsets for a policy text of `P` bytes and a
//! capsule of `C` bytes; see `docs/bundle-format.md`):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `OTALBNDL` |
//! | 8 | 2 | format version (1) |
//! | 10 | 8 | chain id |
//! | 18 | 20 | registry address |
//! | 38 | 4 | model id |
//! | 42 | 8 | version |
//! | 50 | 1 | AEAD algorithm (1 = XChaCha20-Poly1305, STREAM BE32) |
//! | 51 | 4 | segment size (plaintext bytes per segment) |
//! | 55 | 19 | STREAM nonce prefix |
//! | 74 | 8 | image length (plaintext bytes) |
//! | 82 | 2 | policy text length `P` |
//! | 84 | P | policy text (UTF-8, canonical) |
//! | 84+P | 4 | capsule length `C` |
//! | 88+P | C | CP-ABE capsule (`otaledger-cpabe` encoding) |
//!
//! Bytes `0 .. 84+P` are the CP-ABE context; the whole header's SHA-256 is the
//! associated data of every segment.

use alloy::primitives::{Address, B256, keccak256};
use otaledger_cpabe::{Capsule, Policy};
use sha2::{Digest, Sha256};

use super::limits::{
    MAX_CAPSULE_LEN, MAX_POLICY_TEXT_LEN, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, TAG_LEN,
};
use crate::{Error, Result};

/// The first eight bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"OTALBNDL";
/// The bundle format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the STREAM nonce prefix (XChaCha20's 24-byte nonce less STREAM BE32's 5 bytes).
pub const NONCE_PREFIX_LEN: usize = 19;
/// Bytes before the policy text.
pub(crate) const FIXED_LEN: usize = 84;
const FORMAT: &str = "bundle header";

/// The AEAD a bundle's stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AeadAlgorithm {
    /// XChaCha20-Poly1305 in the STREAM construction with a 32-bit big-endian
    /// counter and a last-segment flag (`aead-stream`'s `StreamBE32`).
    XChaCha20Poly1305StreamBe32,
}

impl AeadAlgorithm {
    /// The header's byte for this algorithm.
    pub fn id(self) -> u8 {
        match self {
            Self::XChaCha20Poly1305StreamBe32 => 1,
        }
    }

    fn from_id(id: u8) -> Result<Self> {
        match id {
            1 => Ok(Self::XChaCha20Poly1305StreamBe32),
            id => Err(Error::UnsupportedAead { id }),
        }
    }
}

/// Where a release is published: fixed before encryption, bound into the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseTarget {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The `UpdateRegistry` the release is published in.
    pub registry: Address,
    /// The model (product line).
    pub model_id: u32,
    /// The release's version (strictly increasing per model on chain).
    pub version: u64,
}

/// A decoded, checked bundle header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    target: ReleaseTarget,
    aead: AeadAlgorithm,
    segment_size: u32,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    image_len: u64,
    policy_text: String,
    capsule: Capsule,
    /// The canonical encoding (what was decoded, or what will be written).
    bytes: Vec<u8>,
    /// Length of the CP-ABE context prefix of `bytes`.
    context_len: usize,
}

/// Whether a buffer holds a complete header yet ([`Header::parse_prefix`]).
#[derive(Debug)]
pub enum Parsed {
    /// The header, and how many bytes of the buffer it took.
    Complete(Box<Header>, usize),
    /// At least this many bytes (in total) are needed to go on.
    Incomplete {
        /// Bytes needed in the buffer before calling again.
        needed: usize,
    },
}

/// Number of segments of an image of `image_len` bytes: at least one (an empty
/// image is one empty last segment).
pub fn segment_count(image_len: u64, segment_size: u32) -> u64 {
    image_len.div_ceil(u64::from(segment_size)).max(1)
}

/// The largest image a header accepts with `segment_size`: the STREAM counter is 32 bits.
pub fn max_image_len(segment_size: u32) -> u64 {
    u64::from(u32::MAX) * u64::from(segment_size)
}

pub(crate) fn check_segment_size(segment_size: u32) -> Result<()> {
    if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
        return Err(Error::FieldOutOfRange {
            format: FORMAT,
            field: "segment size",
            value: segment_size.into(),
            min: MIN_SEGMENT_SIZE.into(),
            max: MAX_SEGMENT_SIZE.into(),
        });
    }
    Ok(())
}

pub(crate) fn check_image_len(image_len: u64, segment_size: u32) -> Result<()> {
    if image_len > max_image_len(segment_size) {
        return Err(Error::FieldOutOfRange {
            format: FORMAT,
            field: "image length",
            value: image_len,
            min: 0,
            max: max_image_len(segment_size),
        });
    }
    Ok(())
}

impl Header {
    /// The bytes before the capsule, which the CP-ABE key is bound to: every field
    /// but the capsule. Used to encapsulate before the capsule exists.
    pub(crate) fn context_bytes(
        target: &ReleaseTarget,
        aead: AeadAlgorithm,
        segment_size: u32,
        nonce_prefix: &[u8; NONCE_PREFIX_LEN],
        image_len: u64,
        policy_text: &str,
    ) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED_LEN + policy_text.len());
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        b.extend_from_slice(&target.chain_id.to_be_bytes());
        b.extend_from_slice(target.registry.as_slice());
        b.extend_from_slice(&target.model_id.to_be_bytes());
        b.extend_from_slice(&target.version.to_be_bytes());
        b.push(aead.id());
        b.extend_from_slice(&segment_size.to_be_bytes());
        b.extend_from_slice(nonce_prefix);
        b.extend_from_slice(&image_len.to_be_bytes());
        // The policy text is bounded by MAX_POLICY_TEXT_LEN (< 2^16) where it is made.
        b.extend_from_slice(&(policy_text.len() as u16).to_be_bytes());
        b.extend_from_slice(policy_text.as_bytes());
        debug_assert_eq!(b.len(), FIXED_LEN + policy_text.len());
        b
    }

    /// Assembles a header from its context bytes and the capsule made for them.
    pub(crate) fn assemble(
        target: ReleaseTarget,
        aead: AeadAlgorithm,
        segment_size: u32,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        image_len: u64,
        capsule: Capsule,
        context: Vec<u8>,
    ) -> Result<Self> {
        let policy_text = capsule.policy().to_string();
        let capsule_bytes = capsule.to_bytes();
        if capsule_bytes.len() > MAX_CAPSULE_LEN {
            return Err(Error::FieldOutOfRange {
                format: FORMAT,
                field: "capsule length",
                value: capsule_bytes.len() as u64,
                min: 1,
                max: MAX_CAPSULE_LEN as u64,
            });
        }
        let context_len = context.len();
        let mut bytes = context;
        bytes.extend_from_slice(&(capsule_bytes.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&capsule_bytes);
        Ok(Self {
            target,
            aead,
            segment_size,
            nonce_prefix,
            image_len,
            policy_text,
            capsule,
            bytes,
            context_len,
        })
    }

    /// Decodes a header that must fill `bytes` exactly.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        match Self::parse_prefix(bytes)? {
            Parsed::Complete(header, used) if used == bytes.len() => Ok(*header),
            Parsed::Complete(_, used) => Err(Error::TrailingBytes {
                format: FORMAT,
                extra: (bytes.len() - used) as u64,
            }),
            Parsed::Incomplete { needed } => Err(Error::Truncated {
                format: FORMAT,
                needed: needed as u64,
                available: bytes.len() as u64,
            }),
        }
    }

    /// Decodes the header at the start of `buf`, which may hold more (the stream)
    /// or less (then [`Parsed::Incomplete`] says how much to gather). Every field
    /// is checked as soon as it is complete, every length bounded before use, so a
    /// caller never buffers more than [`super::limits::MAX_HEADER_LEN`] bytes.
    pub fn parse_prefix(buf: &[u8]) -> Result<Parsed> {
        // Magic and version first, so a wrong file fails with the right error.
        if buf.len() >= MAGIC.len() && buf[..MAGIC.len()] != MAGIC {
            return Err(Error::BadMagic {
                format: FORMAT,
                found: hex::encode(&buf[..MAGIC.len()]),
            });
        }
        if buf.len() >= 10 {
            let version = u16::from_be_bytes([buf[8], buf[9]]);
            if version != FORMAT_VERSION {
                return Err(Error::UnsupportedVersion {
                    format: FORMAT,
                    found: version,
                    supported: FORMAT_VERSION,
                });
            }
        }
        if buf.len() < FIXED_LEN {
            return Ok(Parsed::Incomplete { needed: FIXED_LEN });
        }
        let mut r = Fields { buf, at: 10 };
        let chain_id = r.u64();
        let registry = Address::from_slice(r.take(20));
        let model_id = r.u32();
        let version = r.u64();
        let aead = AeadAlgorithm::from_id(r.take(1)[0])?;
        let segment_size = r.u32();
        check_segment_size(segment_size)?;
        let nonce_prefix: [u8; NONCE_PREFIX_LEN] = r.array();
        let image_len = r.u64();
        check_image_len(image_len, segment_size)?;
        let policy_len = usize::from(r.u16());
        if policy_len == 0 || policy_len > MAX_POLICY_TEXT_LEN {
            return Err(Error::FieldOutOfRange {
                format: FORMAT,
                field: "policy text length",
                value: policy_len as u64,
                min: 1,
                max: MAX_POLICY_TEXT_LEN as u64,
            });
        }
        debug_assert_eq!(r.at, FIXED_LEN);
        let context_len = FIXED_LEN + policy_len;
        if buf.len() < context_len + 4 {
            return Ok(Parsed::Incomplete {
                needed: context_len + 4,
            });
        }
        let policy_text = std::str::from_utf8(r.take(policy_len))
            .map_err(|e| Error::PolicyText {
                reason: e.to_string(),
            })?
            .to_owned();
        let policy = Policy::parse(&policy_text).map_err(|e| Error::PolicyText {
            reason: e.to_string(),
        })?;
        let capsule_len = r.u32() as usize;
        if capsule_len == 0 || capsule_len > MAX_CAPSULE_LEN {
            return Err(Error::FieldOutOfRange {
                format: FORMAT,
                field: "capsule length",
                value: capsule_len as u64,
                min: 1,
                max: MAX_CAPSULE_LEN as u64,
            });
        }
        let total = context_len + 4 + capsule_len;
        if buf.len() < total {
            return Ok(Parsed::Incomplete { needed: total });
        }
        let capsule =
            Capsule::from_bytes(r.take(capsule_len)).map_err(|source| Error::Capsule { source })?;
        // One header, one encoding: the text must be the capsule policy's canonical text.
        let canonical = capsule.policy().to_string();
        if *capsule.policy() != policy || canonical != policy_text {
            return Err(Error::PolicyMismatch {
                text: policy_text,
                capsule: canonical,
            });
        }
        let header = Self {
            target: ReleaseTarget {
                chain_id,
                registry,
                model_id,
                version,
            },
            aead,
            segment_size,
            nonce_prefix,
            image_len,
            policy_text,
            capsule,
            bytes: buf[..total].to_vec(),
            context_len,
        };
        Ok(Parsed::Complete(Box::new(header), total))
    }

    /// The release this bundle was made for.
    pub fn target(&self) -> &ReleaseTarget {
        &self.target
    }

    /// The stream's AEAD.
    pub fn aead(&self) -> AeadAlgorithm {
        self.aead
    }

    /// Plaintext bytes per segment (the last may be shorter).
    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }

    /// The STREAM nonce prefix.
    pub fn nonce_prefix(&self) -> &[u8; NONCE_PREFIX_LEN] {
        &self.nonce_prefix
    }

    /// The image's length in bytes.
    pub fn image_len(&self) -> u64 {
        self.image_len
    }

    /// Number of segments in the stream.
    pub fn segment_count(&self) -> u64 {
        segment_count(self.image_len, self.segment_size)
    }

    /// Length of the encrypted stream after the header and key commitment.
    pub fn stream_len(&self) -> u64 {
        self.image_len + self.segment_count() * TAG_LEN as u64
    }

    /// The release policy's canonical text.
    pub fn policy_text(&self) -> &str {
        &self.policy_text
    }

    /// The release policy.
    pub fn policy(&self) -> &Policy {
        self.capsule.policy()
    }

    /// The manifest's `policyId` for this policy: keccak-256 of its canonical
    /// `otaledger-cpabe` encoding.
    pub fn policy_id(&self) -> B256 {
        policy_id(self.policy())
    }

    /// The CP-ABE capsule holding the content key.
    pub fn capsule(&self) -> &Capsule {
        &self.capsule
    }

    /// The encoded header.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The CP-ABE context: every header byte before the capsule length.
    pub fn context(&self) -> &[u8] {
        &self.bytes[..self.context_len]
    }

    /// SHA-256 of the encoded header: the associated data of every segment.
    pub fn hash(&self) -> B256 {
        B256::from(<[u8; 32]>::from(Sha256::digest(&self.bytes)))
    }
}

/// The manifest's `policyId` of a release policy: keccak-256 of the policy's
/// canonical binary encoding (`Policy::to_bytes`, with its 4-byte header).
pub fn policy_id(policy: &Policy) -> B256 {
    keccak256(policy.to_bytes())
}

/// A cursor over a buffer whose length the caller checked.
struct Fields<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.buf[self.at..self.at + n];
        self.at += n;
        out
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N));
        out
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }
}
