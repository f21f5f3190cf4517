//! Sealing an image into a bundle and opening it again, in constant memory.
//!
//! The stream after the header is `commitment (32) ‖ segment 0 ‖ … ‖ segment n-1`.
//! Segment `i` is the XChaCha20-Poly1305 encryption of image bytes
//! `[i·S, min((i+1)·S, len))` under the stream key with nonce
//! `prefix (19) ‖ u32be(i) ‖ last (1 byte: 1 for i = n-1, else 0)` (STREAM BE32)
//! and associated data SHA-256(header), followed by its 16-byte tag.

use std::io::{Read, Write};

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use alloy::primitives::B256;
use chacha20poly1305::XChaCha20Poly1305;
use otaledger_cpabe::{Policy, PublicKey};
use sha2::{Digest, Sha256};

use super::header::{
    AeadAlgorithm, Header, NONCE_PREFIX_LEN, ReleaseTarget, check_image_len, check_segment_size,
    segment_count,
};
use super::keys::ContentKey;
use super::limits::{COMMITMENT_LEN, MAX_DIAGNOSE_TRIES, MAX_POLICY_TEXT_LEN, TAG_LEN};
use crate::{Error, Result};

type Stream = StreamBE32<XChaCha20Poly1305>;

/// Options of [`seal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealOptions {
    /// Plaintext bytes per segment.
    pub segment_size: u32,
}

impl Default for SealOptions {
    fn default() -> Self {
        Self {
            segment_size: super::limits::DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// What to seal an image for: the release, its policy and the stream's parameters.
#[derive(Debug, Clone, Copy)]
pub struct BundleSpec<'a> {
    /// The release the bundle is made for.
    pub target: ReleaseTarget,
    /// The CP-ABE policy a device's key must satisfy.
    pub policy: &'a Policy,
    /// Stream parameters.
    pub options: SealOptions,
}

/// What sealing produced: the header and the digests a manifest records.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The bundle's header.
    pub header: Header,
    /// SHA-256 of the whole bundle (the manifest's `bundleSha256`).
    pub bundle_sha256: B256,
    /// Length of the whole bundle (the manifest's `bundleSize`).
    pub bundle_len: u64,
    /// SHA-256 of the plaintext image (the manifest's `imageSha256`).
    pub image_sha256: B256,
}

/// What opening verified about the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// SHA-256 of the plaintext image (compare with the manifest's `imageSha256`).
    pub image_sha256: B256,
    /// The image's length.
    pub image_len: u64,
}

fn digest(h: Sha256) -> B256 {
    B256::from(<[u8; 32]>::from(h.finalize()))
}

fn stream(key: &ContentKey, header: &Header) -> Stream {
    Stream::from_aead(key.stream_aead(), &(*header.nonce_prefix()).into())
}

/// Encrypts `image` (exactly `image_len` bytes) as `spec` says, with the
/// authority's public parameters `params`, into `out`: header, key commitment,
/// segments. Memory use is one segment whatever the image size.
pub fn seal(
    params: &PublicKey,
    spec: &BundleSpec<'_>,
    mut image: impl Read,
    image_len: u64,
    mut out: impl Write,
    rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore),
) -> Result<Sealed> {
    let BundleSpec {
        target,
        policy,
        options,
    } = *spec;
    check_segment_size(options.segment_size)?;
    check_image_len(image_len, options.segment_size)?;
    let policy_text = policy.to_string();
    if policy_text.len() > MAX_POLICY_TEXT_LEN {
        return Err(Error::FieldOutOfRange {
            format: "bundle header",
            field: "policy text length",
            value: policy_text.len() as u64,
            min: 1,
            max: MAX_POLICY_TEXT_LEN as u64,
        });
    }
    let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
    rng.fill_bytes(&mut nonce_prefix);
    let aead = AeadAlgorithm::XChaCha20Poly1305StreamBe32;
    let context = Header::context_bytes(
        &target,
        aead,
        options.segment_size,
        &nonce_prefix,
        image_len,
        &policy_text,
    );
    let (capsule, key) = ContentKey::encapsulate(params, policy, &context, rng)?;
    let header = Header::assemble(
        target,
        aead,
        options.segment_size,
        nonce_prefix,
        image_len,
        capsule,
        context,
    )?;
    let header_hash = header.hash();

    let mut bundle_hash = Sha256::new();
    let mut image_hash = Sha256::new();
    let mut emit = |bytes: &[u8]| -> Result<()> {
        bundle_hash.update(bytes);
        out.write_all(bytes).map_err(|source| Error::Stream {
            during: "writing the bundle",
            source,
        })
    };
    emit(header.as_bytes())?;
    emit(&key.commitment(&header_hash.0))?;

    let stream = stream(&key, &header);
    let segments = segment_count(image_len, options.segment_size);
    let size = options.segment_size as usize;
    let mut buf = Vec::with_capacity(size + TAG_LEN);
    let mut remaining = image_len;
    for i in 0..segments {
        let take = remaining.min(size as u64) as usize;
        buf.clear();
        buf.resize(take, 0);
        read_exact_or_count(&mut image, &mut buf, image_len, image_len - remaining)?;
        image_hash.update(&buf);
        remaining -= take as u64;
        let last = i + 1 == segments;
        // i < segments <= 2^32 - 1 (checked by check_image_len).
        stream
            .encrypt_in_place(i as u32, last, header_hash.as_slice(), &mut buf)
            .map_err(|_| Error::Stream {
                during: "encrypting a segment",
                source: std::io::Error::other("aead refused the segment"),
            })?;
        emit(&buf)?;
    }
    // The reader must be exhausted: an image longer than declared is an error.
    let mut probe = [0u8; 1];
    let extra = image.read(&mut probe).map_err(|source| Error::Stream {
        during: "reading the image",
        source,
    })?;
    if extra != 0 {
        return Err(Error::ImageLength {
            declared: image_len,
            actual: image_len + 1,
        });
    }
    out.flush().map_err(|source| Error::Stream {
        during: "writing the bundle",
        source,
    })?;
    let bundle_len = header.as_bytes().len() as u64 + COMMITMENT_LEN as u64 + header.stream_len();
    Ok(Sealed {
        header,
        bundle_sha256: digest(bundle_hash),
        bundle_len,
        image_sha256: digest(image_hash),
    })
}

/// Fills `buf` from `r`; an early end is an [`Error::ImageLength`].
fn read_exact_or_count(r: &mut impl Read, buf: &mut [u8], declared: u64, done: u64) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(Error::ImageLength {
                    declared,
                    actual: done + filled as u64,
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Stream {
                    during: "reading the image",
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Decrypts the stream after a bundle's header, pushed in pieces of any size
/// (a device feeds it IPFS blocks as they arrive). Plaintext reaches the sink
/// only after its segment authenticated; one segment is buffered at most.
pub struct StreamDecryptor {
    stream: Stream,
    header_hash: B256,
    key: ContentKey,
    segment_size: usize,
    image_len: u64,
    segments: u64,
    /// Next segment position.
    next: u64,
    /// Pending commitment or segment bytes.
    buf: Vec<u8>,
    committed: bool,
    received: u64,
    expected: u64,
    image_hash: ImageHasher,
    done: bool,
}

/// Segments in flight to the hashing thread ([`StreamDecryptor::hash_on_thread`]): 8 of 64 KiB.
const HASH_QUEUE: usize = 8;

/// The image's SHA-256: computed as segments are decrypted, or on a helper thread that the
/// decrypted segments are copied to (so the AEAD and the hash use two cores).
enum ImageHasher {
    Inline(Sha256),
    Thread {
        segments: std::sync::mpsc::SyncSender<Vec<u8>>,
        hashed: std::thread::JoinHandle<Sha256>,
    },
    /// The helper thread is gone (it cannot fail, but if it ever did, no digest is reported).
    Lost,
}

impl ImageHasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Inline(hash) => hash.update(bytes),
            Self::Thread { segments, .. } => {
                if segments.send(bytes.to_vec()).is_err() {
                    *self = Self::Lost;
                }
            }
            Self::Lost => {}
        }
    }

    fn finish(self) -> Result<Sha256> {
        let lost = || Error::Stream {
            during: "hashing the image",
            source: std::io::Error::other("the hashing thread stopped"),
        };
        match self {
            Self::Inline(hash) => Ok(hash),
            Self::Thread { segments, hashed } => {
                drop(segments);
                hashed.join().map_err(|_| lost())
            }
            Self::Lost => Err(lost()),
        }
    }
}

impl std::fmt::Debug for StreamDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecryptor")
            .field("next", &self.next)
            .field("segments", &self.segments)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl StreamDecryptor {
    /// A decryptor for the stream of the bundle with `header`, whose content key is `key`.
    pub fn new(header: &Header, key: ContentKey) -> Self {
        let segment_size = header.segment_size() as usize;
        Self {
            stream: stream(&key, header),
            header_hash: header.hash(),
            key,
            segment_size,
            image_len: header.image_len(),
            segments: header.segment_count(),
            next: 0,
            buf: Vec::with_capacity(segment_size + TAG_LEN),
            committed: false,
            received: 0,
            expected: COMMITMENT_LEN as u64 + header.stream_len(),
            image_hash: ImageHasher::Inline(Sha256::new()),
            done: false,
        }
    }

    /// Hashes the image on a helper thread (the decrypted segments are copied to it, at most
    /// `HASH_QUEUE` (8) at a time), so decryption and hashing run on two cores; worth it where
    /// there are two. Only before the first byte is fed; if no thread can be started it keeps
    /// hashing inline. The result is the same either way.
    pub fn hash_on_thread(mut self) -> Self {
        if self.received != 0 {
            return self;
        }
        let (segments, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_QUEUE);
        let hashed = std::thread::Builder::new()
            .name("bundle-image-hash".into())
            .spawn(move || {
                let mut hash = Sha256::new();
                for segment in queue {
                    hash.update(&segment);
                }
                hash
            });
        if let Ok(hashed) = hashed {
            self.image_hash = ImageHasher::Thread { segments, hashed };
        }
        self
    }

    /// Encrypted length of the segment at `position`.
    fn segment_len(&self, position: u64) -> usize {
        let start = position * self.segment_size as u64;
        (self.image_len - start).min(self.segment_size as u64) as usize + TAG_LEN
    }

    /// Bytes the current item (commitment or segment) still needs.
    fn wanted(&self) -> usize {
        let total = if self.committed {
            self.segment_len(self.next)
        } else {
            COMMITMENT_LEN
        };
        total - self.buf.len()
    }

    /// Feeds the next bytes of the stream; verified plaintext goes to `sink`.
    pub fn update(
        &mut self,
        mut input: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        while !input.is_empty() {
            if self.done {
                return Err(Error::StreamExtended {
                    expected: self.expected,
                });
            }
            let take = self.wanted().min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            self.received += take as u64;
            if self.wanted() == 0 {
                self.complete_item(sink)?;
            }
        }
        Ok(())
    }

    fn complete_item(&mut self, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        if !self.committed {
            self.key.check_commitment(&self.header_hash.0, &self.buf)?;
            self.committed = true;
            self.buf.clear();
            return Ok(());
        }
        let position = self.next as u32;
        let last = self.next + 1 == self.segments;
        if self
            .stream
            .decrypt_in_place(position, last, self.header_hash.as_slice(), &mut self.buf)
            .is_err()
        {
            return Err(self.diagnose(position));
        }
        self.image_hash.update(&self.buf);
        sink(&self.buf)?;
        self.buf.clear();
        self.next += 1;
        self.done = last;
        Ok(())
    }

    /// Why the segment at `position` failed: it authenticates elsewhere
    /// (duplicated or reordered) or nowhere (altered). Tries the nearest
    /// positions first, at most [`MAX_DIAGNOSE_TRIES`]; a failed attempt leaves
    /// the buffer as it was (the tag is checked before anything is decrypted).
    fn diagnose(&mut self, position: u32) -> Error {
        let segments = self.segments;
        let len = self.buf.len();
        let mut tries = 0;
        for distance in 1..segments {
            for (candidate, earlier) in [
                (u64::from(position).checked_sub(distance), true),
                (Some(u64::from(position) + distance), false),
            ] {
                let Some(j) = candidate.filter(|&j| j < segments) else {
                    continue;
                };
                if self.segment_len(j) != len {
                    continue;
                }
                tries += 1;
                if tries > MAX_DIAGNOSE_TRIES {
                    return Error::SegmentTampered { index: position };
                }
                let ok = self
                    .stream
                    .decrypt_in_place(
                        j as u32,
                        j + 1 == segments,
                        self.header_hash.as_slice(),
                        &mut self.buf,
                    )
                    .is_ok();
                if ok {
                    return if earlier {
                        Error::SegmentDuplicated {
                            position,
                            copy_of: j as u32,
                        }
                    } else {
                        Error::SegmentReordered {
                            position,
                            belongs_at: j as u32,
                        }
                    };
                }
            }
        }
        Error::SegmentTampered { index: position }
    }

    /// Ends the stream: every segment must have arrived.
    pub fn finish(self) -> Result<Opened> {
        if !self.done {
            return Err(Error::StreamTruncated {
                expected: self.expected,
                received: self.received,
            });
        }
        Ok(Opened {
            image_sha256: digest(self.image_hash.finish()?),
            image_len: self.image_len,
        })
    }
}

/// Reads a bundle's header from `reader` (bounded by
/// [`super::limits::MAX_HEADER_LEN`]), returning it and any stream bytes read past it.
pub fn read_header(reader: &mut impl Read) -> Result<(Header, Vec<u8>)> {
    use super::header::Parsed;
    let mut buf = Vec::with_capacity(4096);
    let mut needed = super::header::FIXED_LEN;
    loop {
        match Header::parse_prefix(&buf)? {
            Parsed::Complete(header, used) => {
                let rest = buf.split_off(used);
                return Ok((*header, rest));
            }
            Parsed::Incomplete { needed: n } => needed = needed.max(n),
        }
        // The decoder bounds `needed` by MAX_HEADER_LEN before asking for it.
        let have = buf.len();
        buf.resize(needed, 0);
        let mut filled = have;
        while filled < needed {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(Error::Truncated {
                        format: "bundle header",
                        needed: needed as u64,
                        available: filled as u64,
                    });
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Stream {
                        during: "reading the bundle",
                        source,
                    });
                }
            }
        }
    }
}

/// Opens a bundle from `reader` with a device's CP-ABE key, writing the
/// verified image to `out`. Memory use is one segment whatever the image size.
/// On error, `out` may hold the plaintext of the segments before the failing
/// one: use [`open_to_path`] for all-or-nothing output.
pub fn open(
    mut reader: impl Read,
    key: &otaledger_cpabe::SecretKey,
    mut out: impl Write,
) -> Result<(Header, Opened)> {
    let (header, rest) = read_header(&mut reader)?;
    let content_key = ContentKey::unlock(&header, key)?;
    let mut decryptor = StreamDecryptor::new(&header, content_key);
    if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
        decryptor = decryptor.hash_on_thread();
    }
    let mut sink = |plain: &[u8]| {
        out.write_all(plain).map_err(|source| Error::Stream {
            during: "writing the image",
            source,
        })
    };
    decryptor.update(&rest, &mut sink)?;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::Stream {
                    during: "reading the bundle",
                    source,
                });
            }
        };
        decryptor.update(&chunk[..n], &mut sink)?;
    }
    let opened = decryptor.finish()?;
    out.flush().map_err(|source| Error::Stream {
        during: "writing the image",
        source,
    })?;
    Ok((header, opened))
}

/// Opens the bundle file `bundle` into `image`: the image appears (by rename
/// of a temporary file beside it) only if every segment verified; on any error
/// nothing is left at `image`.
pub fn open_to_path(
    bundle: &std::path::Path,
    key: &otaledger_cpabe::SecretKey,
    image: &std::path::Path,
) -> Result<(Header, Opened)> {
    let file = std::fs::File::open(bundle).map_err(|source| Error::Io {
        path: bundle.to_owned(),
        source,
    })?;
    crate::fsutil::write_atomic_with(image, |out| open(std::io::BufReader::new(file), key, out))
}
