//! Minimal strict protobuf wire primitives shared by the dag-pb and UnixFS codecs.

use alloc::vec::Vec;

use crate::error::DecodeError;

/// Wire type of varint fields.
pub(crate) const VARINT: u8 = 0;
/// Wire type of length-delimited fields.
pub(crate) const LEN: u8 = 2;
/// Wire type of 32-bit fixed fields.
pub(crate) const FIXED32: u8 = 5;

/// A cursor over a protobuf message that only accepts minimal varints.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a minimal unsigned LEB128 varint of at most 10 bytes.
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(DecodeError::Truncated { offset: self.pos });
            };
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(DecodeError::BadVarint { offset: start });
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                // A last byte of zero (after the first) means the encoding was not minimal.
                if i > 0 && byte == 0 {
                    return Err(DecodeError::BadVarint { offset: start });
                }
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint { offset: start })
    }

    /// Reads a field key, returning (field number, wire type).
    pub(crate) fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let key = self.varint()?;
        // The low three bits are < 8, so the cast is lossless.
        Ok((key >> 3, (key & 7) as u8))
    }

    /// Reads a length-delimited payload.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated { offset: start })?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    /// Reads four little-endian bytes.
    pub(crate) fn fixed32(&mut self) -> Result<u32, DecodeError> {
        let start = self.pos;
        let bytes = self
            .buf
            .get(start..start.saturating_add(4))
            .ok_or(DecodeError::Truncated { offset: start })?;
        self.pos = start + 4;
        let mut b = [0u8; 4];
        b.copy_from_slice(bytes);
        Ok(u32::from_le_bytes(b))
    }
}

/// Appends a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a field key.
pub(crate) fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u8) {
    put_varint(out, (field << 3) | u64::from(wire_type));
}

/// Appends a length-delimited field.
pub(crate) fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_roundtrip_and_len() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn rejects_non_minimal_and_overflow() {
        assert!(matches!(
            Reader::new(&[0x80, 0x00]).varint(),
            Err(DecodeError::BadVarint { .. })
        ));
        let mut too_big = [0xffu8; 10];
        too_big[9] = 0x02;
        assert!(matches!(
            Reader::new(&too_big).varint(),
            Err(DecodeError::BadVarint { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xffu8; 11]).varint(),
            Err(DecodeError::BadVarint { .. })
        ));
        assert!(matches!(
            Reader::new(&[0x80]).varint(),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn bytes_bounds_checked() {
        assert!(matches!(
            Reader::new(&[0x05, 1, 2]).bytes(),
            Err(DecodeError::Truncated { .. })
        ));
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX);
        assert!(Reader::new(&huge).bytes().is_err());
    }
}
