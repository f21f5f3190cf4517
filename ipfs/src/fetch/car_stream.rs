//! CAR v1 framing for the verified fetch: the header and the sections, without hashing.
//!
//! Every block read here goes straight to the [`crate::Verifier`], which hashes it against the
//! link that named it; hashing it here as well (as [`crate::car::CarReader`] does for callers
//! without a verifier) would cost a second SHA-256 pass over the whole file. Framing is as strict
//! as the reader's: minimal varints, bounded header and sections, a header with roots.

use std::io::{BufRead, BufReader, Read};

use cid::Cid;

use crate::CarError;
use crate::car::{MAX_HEADER_SIZE, MAX_SECTION_SIZE, decode_header};

/// Sections of a CAR v1 stream.
pub(crate) struct CarSections<R> {
    inner: BufReader<R>,
    offset: u64,
    max_section: u64,
}

impl<R: Read> CarSections<R> {
    /// Read and check the header (version 1, at least one root; the roots themselves are
    /// ignored, as the trustless gateway specification tells clients to). The header is refused
    /// past [`MAX_HEADER_SIZE`] and every section past `max_section` (at most
    /// [`MAX_SECTION_SIZE`]) before any of it is read.
    pub(crate) fn new(reader: R, max_section: u64) -> Result<Self, CarError> {
        let mut this = Self {
            inner: BufReader::with_capacity(64 * 1024, reader),
            offset: 0,
            max_section: max_section.min(MAX_SECTION_SIZE),
        };
        let len = this.varint()?.ok_or(CarError::Truncated { offset: 0 })?;
        if len > MAX_HEADER_SIZE {
            return Err(CarError::HeaderTooLarge {
                size: len,
                max: MAX_HEADER_SIZE,
            });
        }
        let mut header = Vec::new();
        this.exact(len, &mut header)?;
        decode_header(&header)?;
        Ok(this)
    }

    /// The next section's CID, its block in `block` (reused between calls); `None` at a clean end.
    pub(crate) fn next(&mut self, block: &mut Vec<u8>) -> Result<Option<Cid>, CarError> {
        let start = self.offset;
        let Some(len) = self.varint()? else {
            return Ok(None);
        };
        if len == 0 {
            return Err(CarError::BadCid { offset: start });
        }
        if len > self.max_section {
            return Err(CarError::SectionTooLarge {
                offset: start,
                size: len,
                max: self.max_section,
            });
        }
        let mut section = (&mut self.inner).take(len);
        let cid = match Cid::read_bytes(&mut section) {
            Ok(cid) => cid,
            Err(_) if section.limit() == 0 || self.at_eof() => {
                return Err(CarError::Truncated {
                    offset: start + len,
                });
            }
            Err(_) => return Err(CarError::BadCid { offset: start }),
        };
        let cid_len = len - section.limit();
        self.offset += cid_len;
        self.exact(len - cid_len, block)?;
        Ok(Some(cid))
    }

    fn at_eof(&mut self) -> bool {
        self.inner.fill_buf().map_or(true, |b| b.is_empty())
    }

    fn exact(&mut self, len: u64, buf: &mut Vec<u8>) -> Result<(), CarError> {
        buf.clear();
        // `len` is bounded by the callers (header or section limit).
        buf.reserve(len as usize);
        let got = (&mut self.inner).take(len).read_to_end(buf)?;
        self.offset += got as u64;
        if (got as u64) < len {
            return Err(CarError::Truncated {
                offset: self.offset,
            });
        }
        Ok(())
    }

    /// An unsigned LEB128 varint, minimally encoded; `None` on a clean end before its first byte.
    fn varint(&mut self) -> Result<Option<u64>, CarError> {
        crate::car::read_varint(&mut self.inner, &mut self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::car::CarWriter;
    use crate::{RAW, block_cid};

    #[test]
    fn reads_what_the_writer_wrote_and_rejects_bad_framing() {
        let a = block_cid(cid::Version::V1, RAW, b"a");
        let b = block_cid(cid::Version::V1, RAW, b"bb");
        let mut w = CarWriter::new(Vec::new(), &[a]).unwrap();
        w.write_block(&a, b"a").unwrap();
        w.write_block(&b, b"bb").unwrap();
        let car = w.finish().unwrap();
        let mut s = CarSections::new(&car[..], MAX_SECTION_SIZE).unwrap();
        let mut block = Vec::new();
        assert_eq!(s.next(&mut block).unwrap(), Some(a));
        assert_eq!(block, b"a");
        assert_eq!(s.next(&mut block).unwrap(), Some(b));
        assert_eq!(block, b"bb");
        assert_eq!(s.next(&mut block).unwrap(), None);
        // Cut inside the last block.
        let mut s = CarSections::new(&car[..car.len() - 1], MAX_SECTION_SIZE).unwrap();
        s.next(&mut block).unwrap();
        assert!(matches!(
            s.next(&mut block),
            Err(CarError::Truncated { .. })
        ));
        // A non-minimal varint as the header length.
        assert!(matches!(
            CarSections::new(&[0x80u8, 0x00][..], MAX_SECTION_SIZE),
            Err(CarError::BadVarint { .. })
        ));
        assert!(matches!(
            CarSections::new(&[][..], MAX_SECTION_SIZE),
            Err(CarError::Truncated { .. })
        ));
    }

    #[test]
    fn sections_above_the_block_limit_are_refused_unread() {
        let a = block_cid(cid::Version::V1, RAW, &[7u8; 1000]);
        let mut w = CarWriter::new(Vec::new(), &[a]).unwrap();
        w.write_block(&a, &[7u8; 1000]).unwrap();
        let car = w.finish().unwrap();
        // With a 512-byte block limit the section (CID + 1000 bytes) is refused on its length.
        let mut s = CarSections::new(&car[..], 512 + 256).unwrap();
        let mut block = Vec::new();
        assert!(matches!(
            s.next(&mut block),
            Err(CarError::SectionTooLarge { max: 768, .. })
        ));
        assert!(block.is_empty());
        // The limit never exceeds the reader's own.
        let s = CarSections::new(&car[..], u64::MAX).unwrap();
        assert_eq!(s.max_section, MAX_SECTION_SIZE);
    }
}
