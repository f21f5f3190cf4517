//! CAR v1: a streaming reader that checks every block and a writer that skips duplicates.
//!
//! A CAR v1 stream is `varint(len) header` followed by sections `varint(len) CID block`. The
//! header is the dag-cbor map `{"roots": [CID, ...], "version": 1}`; this module carries its own
//! strict dag-cbor codec for exactly that map (canonical lengths, canonical key order, CIDs as
//! tag 42 byte strings with the 0x00 multibase prefix), so nothing else is accepted.

use std::{
    collections::HashSet,
    io::{BufRead, BufReader, ErrorKind, Read, Write},
};

use crate::{Cid, block::check_block, error::CarError, limits::MAX_BLOCK_SIZE};

/// Largest header accepted: 64 KiB (about 1,700 CIDv1 roots).
pub const MAX_HEADER_SIZE: u64 = 64 * 1024;
/// Largest section accepted by default: the largest block plus room for its CID.
pub const MAX_SECTION_SIZE: u64 = MAX_BLOCK_SIZE as u64 + 256;

/// Reads a CAR v1 stream block by block, checking each block's hash.
#[derive(Debug)]
pub struct CarReader<R> {
    inner: BufReader<R>,
    roots: Vec<Cid>,
    offset: u64,
    max_section: u64,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header (version 1, at least one root).
    pub fn new(reader: R) -> Result<Self, CarError> {
        Self::with_max_section(reader, MAX_SECTION_SIZE)
    }

    /// Like [`CarReader::new`] with another bound on section size.
    pub fn with_max_section(reader: R, max_section: u64) -> Result<Self, CarError> {
        let mut this = Self {
            inner: BufReader::with_capacity(64 * 1024, reader),
            roots: Vec::new(),
            offset: 0,
            max_section,
        };
        let len = this.varint()?.ok_or(CarError::Truncated { offset: 0 })?;
        if len > MAX_HEADER_SIZE {
            return Err(CarError::HeaderTooLarge {
                size: len,
                max: MAX_HEADER_SIZE,
            });
        }
        let header = this.exact(len)?;
        this.roots = decode_header(&header)?;
        Ok(this)
    }

    /// The roots the header names.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// Bytes of the stream consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next block, hash-checked; `None` at the clean end of the stream.
    pub fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
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
        // Read the CID straight from the stream (bounded by the section), then the block.
        let mut section = (&mut self.inner).take(len);
        let cid = match Cid::read_bytes(&mut section) {
            Ok(cid) => cid,
            Err(_) if self.at_eof() => {
                return Err(CarError::Truncated {
                    offset: start + len,
                });
            }
            Err(_) => return Err(CarError::BadCid { offset: start }),
        };
        let cid_len = len - section.limit();
        self.offset += cid_len;
        let block = self.exact(len - cid_len)?;
        check_block(&cid, &block)?;
        Ok(Some((cid, block)))
    }

    fn at_eof(&mut self) -> bool {
        self.inner.fill_buf().map_or(true, |b| b.is_empty())
    }

    /// The underlying reader (buffered bytes not yet consumed are lost).
    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }

    /// Reads an unsigned LEB128 varint; `None` on a clean end of stream before its first byte.
    fn varint(&mut self) -> Result<Option<u64>, CarError> {
        read_varint(&mut self.inner, &mut self.offset)
    }

    fn exact(&mut self, len: u64) -> Result<Vec<u8>, CarError> {
        // `len` was bounded by the caller, so it fits in memory and in usize.
        let mut buf = Vec::with_capacity(len as usize);
        let got = (&mut self.inner).take(len).read_to_end(&mut buf)?;
        self.offset += got as u64;
        if (got as u64) < len {
            return Err(CarError::Truncated {
                offset: self.offset,
            });
        }
        Ok(buf)
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<(Cid, Vec<u8>), CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

/// Writes a CAR v1 stream; a block whose CID was already written is skipped.
#[derive(Debug)]
pub struct CarWriter<W: Write> {
    inner: W,
    written: HashSet<Cid>,
    bytes: u64,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header naming `roots` (at least one).
    pub fn new(mut inner: W, roots: &[Cid]) -> Result<Self, CarError> {
        if roots.is_empty() {
            return Err(CarError::NoRoots);
        }
        let header = encode_header(roots);
        let mut out = Vec::with_capacity(header.len() + 10);
        put_varint(&mut out, header.len() as u64);
        out.extend_from_slice(&header);
        inner.write_all(&out)?;
        Ok(Self {
            inner,
            written: HashSet::new(),
            bytes: out.len() as u64,
        })
    }

    /// Writes one section; returns `false` (writing nothing) if the CID was already written.
    pub fn write_block(&mut self, cid: &Cid, data: &[u8]) -> Result<bool, CarError> {
        if !self.written.insert(*cid) {
            return Ok(false);
        }
        let cid_bytes = cid.to_bytes();
        let mut prefix = Vec::with_capacity(cid_bytes.len() + 10);
        put_varint(&mut prefix, (cid_bytes.len() + data.len()) as u64);
        prefix.extend_from_slice(&cid_bytes);
        self.inner.write_all(&prefix)?;
        self.inner.write_all(data)?;
        self.bytes += (prefix.len() + data.len()) as u64;
        Ok(true)
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> Result<W, CarError> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes `{"roots": [..], "version": 1}` as canonical dag-cbor.
pub fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + roots.len() * 42);
    cbor_head(&mut out, 5, 2);
    cbor_head(&mut out, 3, 5);
    out.extend_from_slice(b"roots");
    cbor_head(&mut out, 4, roots.len() as u64);
    for root in roots {
        let bytes = root.to_bytes();
        cbor_head(&mut out, 6, 42);
        cbor_head(&mut out, 2, bytes.len() as u64 + 1);
        out.push(0);
        out.extend_from_slice(&bytes);
    }
    cbor_head(&mut out, 3, 7);
    out.extend_from_slice(b"version");
    cbor_head(&mut out, 0, 1);
    out
}

fn cbor_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= 0xff {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

struct Cbor<'a> {
    buf: &'a [u8],
}

const BAD: fn(&'static str) -> CarError = |reason| CarError::BadHeader { reason };

impl<'a> Cbor<'a> {
    /// Reads a head with a canonical (shortest) argument; returns (major type, argument).
    fn head(&mut self) -> Result<(u8, u64), CarError> {
        let (&first, rest) = self.buf.split_first().ok_or(BAD("truncated"))?;
        self.buf = rest;
        let major = first >> 5;
        let info = first & 0x1f;
        let (arg, min) = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => (self.take(1)?, 24),
            25 => (self.take(2)?, 0x100),
            26 => (self.take(4)?, 0x1_0000),
            27 => (self.take(8)?, 0x1_0000_0000),
            _ => return Err(BAD("indefinite or reserved length")),
        };
        if arg < min {
            return Err(BAD("non-canonical integer encoding"));
        }
        Ok((major, arg))
    }

    fn take(&mut self, n: usize) -> Result<u64, CarError> {
        if self.buf.len() < n {
            return Err(BAD("truncated"));
        }
        let (bytes, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn slice(&mut self, len: u64) -> Result<&'a [u8], CarError> {
        let len = usize::try_from(len).map_err(|_| BAD("truncated"))?;
        if self.buf.len() < len {
            return Err(BAD("truncated"));
        }
        let (bytes, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(bytes)
    }

    fn text(&mut self) -> Result<&'a [u8], CarError> {
        match self.head()? {
            (3, len) => self.slice(len),
            _ => Err(BAD("map key is not a string")),
        }
    }

    fn version(&mut self) -> Result<(), CarError> {
        match self.head()? {
            (0, 1) => Ok(()),
            (0, version) => Err(CarError::UnsupportedVersion { version }),
            _ => Err(BAD("version is not an integer")),
        }
    }

    fn cid(&mut self) -> Result<Cid, CarError> {
        if self.head()? != (6, 42) {
            return Err(BAD("root is not a tag-42 cid"));
        }
        let bytes = match self.head()? {
            (2, len) => self.slice(len)?,
            _ => return Err(BAD("cid is not a byte string")),
        };
        let Some((0, cid_bytes)) = bytes.split_first() else {
            return Err(BAD("cid lacks the 0x00 multibase prefix"));
        };
        let cid = Cid::try_from(cid_bytes).map_err(|_| BAD("invalid root cid"))?;
        if cid.encoded_len() != cid_bytes.len() {
            return Err(BAD("trailing bytes after root cid"));
        }
        Ok(cid)
    }
}

/// Decodes a CAR v1 header strictly, returning its roots.
pub fn decode_header(buf: &[u8]) -> Result<Vec<Cid>, CarError> {
    let mut c = Cbor { buf };
    let entries = match c.head()? {
        (5, n) => n,
        _ => return Err(BAD("header is not a map")),
    };
    let roots = match entries {
        1 => {
            // A CARv2 pragma, or a v1 header without roots.
            if c.text()? != b"version" {
                return Err(BAD("unknown header key"));
            }
            c.version()?;
            return Err(CarError::NoRoots);
        }
        2 => {
            if c.text()? != b"roots" {
                return Err(BAD("expected the roots key first"));
            }
            let n = match c.head()? {
                (4, n) => n,
                _ => return Err(BAD("roots is not an array")),
            };
            if n == 0 {
                return Err(CarError::NoRoots);
            }
            // Each root takes at least 4 bytes: never allocate more than the header could hold.
            let mut roots = Vec::with_capacity((n as usize).min(buf.len() / 4));
            for _ in 0..n {
                roots.push(c.cid()?);
            }
            if c.text()? != b"version" {
                return Err(BAD("expected the version key second"));
            }
            c.version()?;
            roots
        }
        _ => return Err(BAD("header map must have exactly roots and version")),
    };
    if !c.buf.is_empty() {
        return Err(BAD("trailing bytes after the header map"));
    }
    Ok(roots)
}

/// Reads a minimally encoded unsigned LEB128 varint from `reader`, advancing
/// `offset` by the bytes consumed; `None` on a clean end of stream before its
/// first byte. Shared by [`CarReader`] and the fetch client's section reader.
pub(crate) fn read_varint<R: Read>(
    reader: &mut R,
    offset: &mut u64,
) -> Result<Option<u64>, CarError> {
    let start = *offset;
    let mut value = 0u64;
    let mut i = 0;
    while i < 10 {
        let mut byte = [0u8; 1];
        match reader.read(&mut byte) {
            Ok(0) if i == 0 => return Ok(None),
            Ok(0) => return Err(CarError::Truncated { offset: *offset }),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        *offset += 1;
        let b = byte[0];
        if i == 9 && b > 1 {
            return Err(CarError::BadVarint { offset: start });
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(CarError::BadVarint { offset: start });
            }
            return Ok(Some(value));
        }
        i += 1;
    }
    Err(CarError::BadVarint { offset: start })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns `ErrorKind::Interrupted` before every byte it hands out.
    struct Interrupting<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Interrupting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.data.len()).min(1);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_varint_retries_interrupted_reads_without_losing_bits() {
        // 300 = 0xac 0x02; then a clean end.
        let mut r = Interrupting {
            data: &[0xac, 0x02],
            interrupt: false,
        };
        let mut offset = 0;
        assert_eq!(read_varint(&mut r, &mut offset).unwrap(), Some(300));
        assert_eq!(offset, 2);
        assert_eq!(read_varint(&mut r, &mut offset).unwrap(), None);
    }

    #[test]
    fn read_varint_rejects_non_minimal_overlong_and_truncated() {
        let mut offset = 0;
        assert!(matches!(
            read_varint(&mut &[0x80, 0x00][..], &mut offset),
            Err(CarError::BadVarint { offset: 0 })
        ));
        let mut offset = 0;
        assert!(matches!(
            read_varint(&mut &[0xff; 11][..], &mut offset),
            Err(CarError::BadVarint { .. })
        ));
        let mut offset = 0;
        assert!(matches!(
            read_varint(&mut &[0x80][..], &mut offset),
            Err(CarError::Truncated { offset: 1 })
        ));
    }
    use crate::{DAG_PB, RAW, block_cid};

    #[test]
    fn roundtrip_and_dedup() {
        let a = block_cid(cid::Version::V1, RAW, b"a");
        let b = block_cid(cid::Version::V0, DAG_PB, b"b");
        let mut w = CarWriter::new(Vec::new(), &[a, b]).unwrap();
        assert!(w.write_block(&a, b"a").unwrap());
        assert!(!w.write_block(&a, b"a").unwrap());
        assert!(w.write_block(&b, b"b").unwrap());
        let bytes = w.finish().unwrap();
        let mut r = CarReader::new(&bytes[..]).unwrap();
        assert_eq!(r.roots(), [a, b]);
        assert_eq!(r.next_block().unwrap(), Some((a, b"a".to_vec())));
        assert_eq!(r.next_block().unwrap(), Some((b, b"b".to_vec())));
        assert_eq!(r.next_block().unwrap(), None);
    }

    #[test]
    fn header_rules() {
        let a = block_cid(cid::Version::V1, RAW, b"a");
        assert!(matches!(
            decode_header(&encode_header(&[])),
            Err(CarError::NoRoots)
        ));
        // CARv2 pragma: {version: 2}
        let pragma = [0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02];
        assert!(matches!(
            decode_header(&pragma),
            Err(CarError::UnsupportedVersion { version: 2 })
        ));
        let mut h = encode_header(&[a]);
        h.push(0);
        assert!(matches!(decode_header(&h), Err(CarError::BadHeader { .. })));
        // non-canonical length of the map
        let mut h = vec![0xb8, 0x02];
        h.extend_from_slice(&encode_header(&[a])[1..]);
        assert!(matches!(decode_header(&h), Err(CarError::BadHeader { .. })));
    }

    #[test]
    fn tampered_block_and_bad_varints() {
        let a = block_cid(cid::Version::V1, RAW, b"a");
        let mut w = CarWriter::new(Vec::new(), &[a]).unwrap();
        w.write_block(&a, b"a").unwrap();
        let mut bytes = w.finish().unwrap();
        let last = bytes.len() - 1;
        bytes[last] = b'b';
        let mut r = CarReader::new(&bytes[..]).unwrap();
        assert!(matches!(r.next_block(), Err(CarError::Block(_))));

        assert!(matches!(
            CarReader::new(&[0x80, 0x00][..]),
            Err(CarError::BadVarint { .. })
        ));
        let huge = [0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            CarReader::new(&huge[..]),
            Err(CarError::HeaderTooLarge { .. })
        ));
        let mut w = CarWriter::new(Vec::new(), &[a]).unwrap().finish().unwrap();
        w.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
        let mut r = CarReader::new(&w[..]).unwrap();
        assert!(matches!(
            r.next_block(),
            Err(CarError::SectionTooLarge { .. })
        ));
        let mut w = CarWriter::new(Vec::new(), &[a]).unwrap().finish().unwrap();
        w.extend_from_slice(&[0x05, 0x01]);
        let mut r = CarReader::new(&w[..]).unwrap();
        assert!(matches!(r.next_block(), Err(CarError::Truncated { .. })));
    }
}
