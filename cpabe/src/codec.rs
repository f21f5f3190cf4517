//! Byte-level reading and writing for the versioned binary encodings.
//!
//! Every encoding starts with a 4-byte header: magic `0x4f 0x43` ("OC"),
//! version `0x01`, and the object kind. All integers are big-endian. Readers
//! never allocate more than the remaining input allows.

use blstrs::{G1Affine, G2Affine, Gt, Scalar};
use group::prime::PrimeCurveAffine;
use pairing::group::Group;
use zeroize::Zeroize;

use crate::error::{Error, GroupKind, Result};

/// Magic bytes opening every encoding.
pub const MAGIC: [u8; 2] = *b"OC";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Object kinds (the fourth header byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    PublicKey = 0x01,
    MasterKey = 0x02,
    SecretKey = 0x03,
    Capsule = 0x04,
    Policy = 0x05,
}

pub(crate) const G1_LEN: usize = 48;
pub(crate) const G2_LEN: usize = 96;
pub(crate) const GT_LEN: usize = 288;
pub(crate) const SCALAR_LEN: usize = 32;

/// Appends to a byte vector.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn with_header(kind: Kind) -> Self {
        let mut w = Self::new();
        w.bytes(&MAGIC);
        w.u8(FORMAT_VERSION);
        w.u8(kind as u8);
        w
    }

    /// Makes room for `n` more bytes. Growing copies into a new buffer and
    /// wipes the old one: `Vec`'s own growth would free it unwiped, and the
    /// master and secret keys are encoded through here (test
    /// `tests/heap_residue.rs`).
    fn reserve(&mut self, n: usize) {
        let needed = self.buf.len() + n;
        if needed > self.buf.capacity() {
            let mut grown = Vec::with_capacity(needed.max(2 * self.buf.capacity()).max(256));
            grown.extend_from_slice(&self.buf);
            core::mem::replace(&mut self.buf, grown).zeroize();
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.reserve(b.len());
        self.buf.extend_from_slice(b);
    }
    /// u16 length + UTF-8 bytes (callers keep strings within limits).
    pub(crate) fn str16(&mut self, s: &str) {
        self.u16(s.len() as u16);
        self.bytes(s.as_bytes());
    }
    pub(crate) fn g1(&mut self, p: &G1Affine) {
        self.bytes(&p.to_compressed());
    }
    pub(crate) fn g2(&mut self, p: &G2Affine) {
        self.bytes(&p.to_compressed());
    }
    pub(crate) fn gt(&mut self, e: &Gt) {
        self.bytes(&gt_bytes(e).unwrap_or([0u8; GT_LEN]));
    }
    pub(crate) fn scalar(&mut self, s: &Scalar) {
        self.bytes(&s.to_bytes_be());
    }
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// The 288-byte compressed form of a GT element, `None` for the identity
/// and for blstrs' `Gt::default()`, the zero of Fp12 (not in GT; reachable
/// through `hazmat::derive_key`): blstrs' compression panics on both.
pub(crate) fn gt_bytes(e: &Gt) -> Option<[u8; GT_LEN]> {
    use blstrs::Compress;
    if bool::from(e.is_identity()) || *e == Gt::default() {
        return None;
    }
    let mut out = [0u8; GT_LEN];
    let mut cursor: &mut [u8] = &mut out;
    e.write_compressed(&mut cursor).ok()?;
    Some(out)
}

/// Reads from a byte slice, tracking the offset for error reports.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` within the whole encoding (for error reports).
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self::with_base(buf, 0)
    }

    /// A reader over `buf`, which starts at offset `base` of the whole
    /// encoding (an embedded policy body), so errors report absolute offsets.
    pub(crate) fn with_base(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Checks the 4-byte header for `kind`.
    pub(crate) fn with_header(buf: &'a [u8], kind: Kind) -> Result<Self> {
        let mut r = Self::new(buf);
        let magic = r.array::<2>()?;
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { found: version });
        }
        let found = r.u8()?;
        if found != kind as u8 {
            return Err(Error::WrongKind {
                expected: kind as u8,
                found,
            });
        }
        Ok(r)
    }

    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        if rest.len() < n {
            return Err(Error::Truncated {
                offset: self.offset(),
                needed: n - rest.len(),
            });
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// u16 length + UTF-8.
    pub(crate) fn str16(&mut self) -> Result<String> {
        let len = self.u16()? as usize;
        let at = self.offset();
        let bytes = self.take(len)?;
        core::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Error::InvalidUtf8 { offset: at })
    }

    /// A checked (on-curve, subgroup, canonical), non-identity G1 point.
    pub(crate) fn g1(&mut self) -> Result<G1Affine> {
        let offset = self.offset();
        let bytes = self.array::<G1_LEN>()?;
        let p = Option::<G1Affine>::from(G1Affine::from_compressed(&bytes)).ok_or(
            Error::InvalidPoint {
                group: GroupKind::G1,
                offset,
            },
        )?;
        if bool::from(p.is_identity()) {
            return Err(Error::IdentityPoint {
                group: GroupKind::G1,
                offset,
            });
        }
        Ok(p)
    }

    /// A checked, non-identity G2 point.
    pub(crate) fn g2(&mut self) -> Result<G2Affine> {
        let offset = self.offset();
        let bytes = self.array::<G2_LEN>()?;
        let p = Option::<G2Affine>::from(G2Affine::from_compressed(&bytes)).ok_or(
            Error::InvalidPoint {
                group: GroupKind::G2,
                offset,
            },
        )?;
        if bool::from(p.is_identity()) {
            return Err(Error::IdentityPoint {
                group: GroupKind::G2,
                offset,
            });
        }
        Ok(p)
    }

    /// A checked (in the order-r subgroup), non-identity GT element.
    pub(crate) fn gt(&mut self) -> Result<Gt> {
        use blstrs::Compress;
        let offset = self.offset();
        let bytes = self.take(GT_LEN)?;
        if bytes.iter().all(|&b| b == 0) {
            return Err(Error::IdentityPoint {
                group: GroupKind::Gt,
                offset,
            });
        }
        let e = Gt::read_compressed(bytes).map_err(|_| Error::InvalidPoint {
            group: GroupKind::Gt,
            offset,
        })?;
        if bool::from(e.is_identity()) {
            return Err(Error::IdentityPoint {
                group: GroupKind::Gt,
                offset,
            });
        }
        Ok(e)
    }

    /// A canonical, non-zero scalar.
    pub(crate) fn nonzero_scalar(&mut self) -> Result<Scalar> {
        use ff::Field;
        let offset = self.offset();
        let bytes = self.array::<SCALAR_LEN>()?;
        let s = Option::<Scalar>::from(Scalar::from_bytes_be(&bytes))
            .ok_or(Error::InvalidScalar { offset })?;
        if bool::from(s.is_zero()) {
            return Err(Error::InvalidScalar { offset });
        }
        Ok(s)
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            trailing => Err(Error::TrailingBytes {
                offset: self.offset(),
                trailing,
            }),
        }
    }
}

/// Serde via the binary encoding: a lowercase hex string for human-readable
/// formats, raw bytes otherwise.
macro_rules! serde_via_bytes {
    ($t:ty, $what:literal) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> core::result::Result<S::Ok, S::Error> {
                // Master and secret keys go through here: every buffer holding
                // an encoding (bytes, hex) is wiped when dropped.
                let bytes = ::zeroize::Zeroizing::new(self.to_bytes());
                if s.is_human_readable() {
                    s.serialize_str(&::zeroize::Zeroizing::new(hex::encode(&bytes[..])))
                } else {
                    s.serialize_bytes(&bytes)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> core::result::Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                        f.write_str(concat!("the binary or hex encoding of ", $what))
                    }
                    fn visit_str<E: serde::de::Error>(
                        self,
                        v: &str,
                    ) -> core::result::Result<$t, E> {
                        // Decoded into a buffer of the final size that wipes
                        // itself (`hex::decode` grows a plain `Vec`, leaving
                        // unwiped copies of a key, and drops it unwiped on a bad digit).
                        if v.len() % 2 != 0 {
                            return Err(E::custom(hex::FromHexError::OddLength));
                        }
                        let mut bytes = ::zeroize::Zeroizing::new(vec![0u8; v.len() / 2]);
                        hex::decode_to_slice(v, &mut bytes[..]).map_err(E::custom)?;
                        <$t>::from_bytes(&bytes).map_err(E::custom)
                    }
                    fn visit_bytes<E: serde::de::Error>(
                        self,
                        v: &[u8],
                    ) -> core::result::Result<$t, E> {
                        <$t>::from_bytes(v).map_err(E::custom)
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> core::result::Result<$t, A::Error> {
                        let mut bytes = ::zeroize::Zeroizing::new(Vec::with_capacity(
                            seq.size_hint().unwrap_or(0).min(1 << 16),
                        ));
                        while let Some(b) = seq.next_element::<u8>()? {
                            if bytes.len() == bytes.capacity() {
                                // Grow into a new buffer and wipe the old one
                                // (`push` would free it unwiped).
                                let mut grown = ::zeroize::Zeroizing::new(Vec::with_capacity(
                                    (2 * bytes.capacity()).max(256),
                                ));
                                grown.extend_from_slice(&bytes);
                                bytes = grown;
                            }
                            bytes.push(b);
                        }
                        <$t>::from_bytes(&bytes).map_err(serde::de::Error::custom)
                    }
                }
                if d.is_human_readable() {
                    d.deserialize_str(V)
                } else {
                    d.deserialize_bytes(V)
                }
            }
        }
    };
}
pub(crate) use serde_via_bytes;
