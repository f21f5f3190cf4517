//! The bundle format (`otaledger-bundle` v1) as a device meets it: round trips
//! in any chunking, strict header decoding under raw mutated input, and every
//! kind of tampering refused with its own error variant and nothing written.

use std::sync::OnceLock;

use alloy::primitives::Address;
use otaledger_core::{
    Error,
    bundle::{
        BundleSpec, ContentKey, Header, MAGIC, Parsed, ReleaseTarget, SealOptions, Sealed,
        StreamDecryptor, default_policy, limits::MAX_HEADER_LEN, model_attribute, open,
        open_to_path, parse_policy, release_attribute, seal,
    },
};
use otaledger_cpabe::{MasterKey, PublicKey, SecretKey, keygen, rand_core::OsRng, setup};
use proptest::prelude::*;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

const MODEL: u32 = 7;
const VERSION: u64 = 42;

fn target(version: u64) -> ReleaseTarget {
    ReleaseTarget {
        chain_id: 31337,
        registry: Address::repeat_byte(0x5a),
        model_id: MODEL,
        version,
    }
}

struct Authority {
    params: PublicKey,
    master: MasterKey,
    /// A paid device: model and release attributes.
    device: SecretKey,
}

fn authority() -> &'static Authority {
    static A: OnceLock<Authority> = OnceLock::new();
    A.get_or_init(|| {
        let (params, master) = setup(&mut OsRng);
        let device = keygen(
            &master,
            &[
                model_attribute(MODEL),
                release_attribute(MODEL, VERSION),
                "serial:0001".into(),
            ],
            &mut OsRng,
        )
        .unwrap();
        Authority {
            params,
            master,
            device,
        }
    })
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn seal_bytes(image: &[u8], segment_size: u32, version: u64) -> (Sealed, Vec<u8>) {
    let a = authority();
    let policy = default_policy(MODEL, version);
    let mut out = Vec::new();
    let spec = BundleSpec {
        target: target(version),
        policy: &policy,
        options: SealOptions { segment_size },
    };
    let sealed = seal(
        &a.params,
        &spec,
        image,
        image.len() as u64,
        &mut out,
        &mut OsRng,
    )
    .unwrap();
    (sealed, out)
}

/// A 5-segment bundle (64-byte segments, the last one 8 bytes).
fn small() -> &'static (Sealed, Vec<u8>, Vec<u8>) {
    static S: OnceLock<(Sealed, Vec<u8>, Vec<u8>)> = OnceLock::new();
    S.get_or_init(|| {
        let img = image(4 * 64 + 8);
        let (sealed, bytes) = seal_bytes(&img, 64, VERSION);
        (sealed, bytes, img)
    })
}

/// Offsets of segment `i` in `bytes` for the small bundle.
fn segment_range(sealed: &Sealed, i: usize) -> std::ops::Range<usize> {
    let start = sealed.header.as_bytes().len() + 32;
    let seg = 64 + 16;
    let begin = start + i * seg;
    let end = (begin + seg).min(start + sealed.header.stream_len() as usize);
    begin..end
}

fn open_vec(
    bytes: &[u8],
    key: &SecretKey,
) -> (
    Result<(Header, otaledger_core::bundle::Opened), Error>,
    Vec<u8>,
) {
    let mut out = Vec::new();
    let r = open(bytes, key, &mut out);
    (r, out)
}

#[test]
fn round_trips_at_every_boundary() {
    let a = authority();
    for (len, seg) in [
        (0, 64),
        (1, 64),
        (63, 64),
        (64, 64),
        (65, 64),
        (640, 64),
        (1000, 100),
        (200_000, 64 * 1024),
    ] {
        let img = image(len);
        let (sealed, bytes) = seal_bytes(&img, seg, VERSION);
        assert_eq!(sealed.bundle_len, bytes.len() as u64);
        assert_eq!(
            sealed.bundle_sha256.0,
            <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
        );
        let (r, out) = open_vec(&bytes, &a.device);
        let (header, opened) = r.unwrap();
        assert_eq!(out, img, "len {len} segment {seg}");
        assert_eq!(opened.image_sha256, sealed.image_sha256);
        assert_eq!(header, sealed.header);
        assert_eq!(header.policy_text(), r#""model:7" and "release:7/42""#);
    }
}

#[test]
fn push_decryptor_accepts_any_chunking() {
    let a = authority();
    let img = image(5000);
    let (sealed, bytes) = seal_bytes(&img, 256, VERSION);
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    for _ in 0..20 {
        let mut header_buf = Vec::new();
        let mut rest = &bytes[..];
        // Header: gather until complete, in random pieces.
        let (header, used) = loop {
            let n = (rand_chacha::rand_core::RngCore::next_u32(&mut rng) % 97 + 1) as usize;
            let n = n.min(rest.len());
            header_buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            match Header::parse_prefix(&header_buf).unwrap() {
                Parsed::Complete(h, used) => break (*h, used),
                Parsed::Incomplete { needed } => assert!(needed <= MAX_HEADER_LEN),
            }
        };
        let mut d = StreamDecryptor::new(&header, ContentKey::unlock(&header, &a.device).unwrap());
        let mut out = Vec::new();
        let mut sink = |p: &[u8]| {
            out.extend_from_slice(p);
            Ok(())
        };
        d.update(&header_buf[used..], &mut sink).unwrap();
        while !rest.is_empty() {
            let n = (rand_chacha::rand_core::RngCore::next_u32(&mut rng) % 700 + 1) as usize;
            let n = n.min(rest.len());
            d.update(&rest[..n], &mut sink).unwrap();
            rest = &rest[n..];
        }
        let opened = d.finish().unwrap();
        assert_eq!(opened.image_sha256, sealed.image_sha256);
        assert_eq!(out, img);
    }
}

#[test]
fn wrong_keys_are_refused() {
    let a = authority();
    let (_, bytes, _) = small();
    // Attributes that do not satisfy the policy: no key at all.
    let unpaid = keygen(&a.master, &[model_attribute(MODEL)], &mut OsRng).unwrap();
    let (r, out) = open_vec(bytes, &unpaid);
    assert!(
        matches!(
            r,
            Err(Error::CpAbe {
                during: "decapsulation",
                ..
            })
        ),
        "{r:?}"
    );
    assert!(out.is_empty());
    // A key for release v42 does not open v43.
    let (_, v43) = seal_bytes(&image(100), 64, VERSION + 1);
    let (r, _) = open_vec(&v43, &a.device);
    assert!(matches!(r, Err(Error::CpAbe { .. })), "{r:?}");
    // The right attributes from another authority: the key commitment refuses it.
    let (_, other_master) = setup(&mut OsRng);
    let foreign = keygen(
        &other_master,
        &[model_attribute(MODEL), release_attribute(MODEL, VERSION)],
        &mut OsRng,
    )
    .unwrap();
    let (r, out) = open_vec(bytes, &foreign);
    assert!(matches!(r, Err(Error::KeyCommitment)), "{r:?}");
    assert!(out.is_empty());
}

/// Which error a flipped header byte must give, by field.
fn expected_for_header_offset(offset: usize, policy_len: usize) -> &'static str {
    match offset {
        0..8 => "magic",
        8..10 => "version",
        50 => "aead",
        // chain id, registry, model, version, nonce prefix: bound by the KEM context.
        10..50 | 55..74 => "commitment",
        // segment size, image length: out of range, or bound by the context.
        51..55 | 74..82 => "range-or-commitment",
        82..84 => "policy-length",
        o if o < 84 + policy_len => "policy",
        o if o < 88 + policy_len => "capsule-length",
        _ => "capsule",
    }
}

#[test]
fn every_flipped_header_byte_is_refused_before_any_output() {
    let a = authority();
    let (sealed, bytes, _) = small();
    let header_len = sealed.header.as_bytes().len();
    let policy_len = sealed.header.policy_text().len();
    for offset in 0..header_len {
        let mut bad = bytes.clone();
        bad[offset] ^= 0x01;
        let (r, out) = open_vec(&bad, &a.device);
        let err = r.expect_err("a flipped header byte must be refused");
        assert!(out.is_empty(), "offset {offset}: plaintext written");
        let field = expected_for_header_offset(offset, policy_len);
        let ok = match field {
            "magic" => matches!(err, Error::BadMagic { .. }),
            "version" => matches!(err, Error::UnsupportedVersion { .. }),
            "aead" => matches!(err, Error::UnsupportedAead { .. }),
            "commitment" => matches!(err, Error::KeyCommitment),
            "range-or-commitment" => {
                matches!(err, Error::KeyCommitment | Error::FieldOutOfRange { .. })
            }
            "policy-length" => matches!(
                err,
                Error::FieldOutOfRange { .. } | Error::PolicyText { .. } | Error::Truncated { .. }
            ),
            "policy" => matches!(err, Error::PolicyText { .. } | Error::PolicyMismatch { .. }),
            "capsule-length" => matches!(
                err,
                Error::FieldOutOfRange { .. } | Error::Truncated { .. } | Error::Capsule { .. }
            ),
            _ => matches!(
                err,
                Error::Capsule { .. } | Error::PolicyMismatch { .. } | Error::KeyCommitment
            ),
        };
        assert!(ok, "offset {offset} ({field}): unexpected {err:?}");
    }
}

#[test]
fn flipped_commitment_is_refused() {
    let a = authority();
    let (sealed, bytes, _) = small();
    let at = sealed.header.as_bytes().len();
    for i in [0, 17, 31] {
        let mut bad = bytes.clone();
        bad[at + i] ^= 0x80;
        let (r, out) = open_vec(&bad, &a.device);
        assert!(matches!(r, Err(Error::KeyCommitment)), "{r:?}");
        assert!(out.is_empty());
    }
}

#[test]
fn flipped_segment_byte_is_refused_at_its_segment() {
    let a = authority();
    let (sealed, bytes, img) = small();
    for seg in 0..5 {
        let range = segment_range(sealed, seg);
        for at in [range.start, range.start + range.len() / 2, range.end - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x04;
            let (r, out) = open_vec(&bad, &a.device);
            assert!(
                matches!(r, Err(Error::SegmentTampered { index }) if index == seg as u32),
                "segment {seg} byte {at}: {r:?}"
            );
            // Only the verified segments before it were released.
            assert_eq!(out, img[..seg * 64]);
        }
    }
}

#[test]
fn truncated_streams_are_refused() {
    let a = authority();
    let (sealed, bytes, _) = small();
    let header_len = sealed.header.as_bytes().len();
    let total = bytes.len();
    // Inside the header.
    for cut in [0, 5, 83, header_len - 1] {
        let (r, out) = open_vec(&bytes[..cut], &a.device);
        assert!(
            matches!(
                r,
                Err(Error::Truncated {
                    format: "bundle header",
                    ..
                })
            ),
            "cut {cut}: {r:?}"
        );
        assert!(out.is_empty());
    }
    // Inside the commitment, at and inside segments, the whole last segment, its tag.
    let last = segment_range(sealed, 4);
    for cut in [
        header_len,
        header_len + 31,
        header_len + 32,
        header_len + 32 + 80,
        last.start,
        total - 16,
        total - 1,
    ] {
        let (r, _) = open_vec(&bytes[..cut], &a.device);
        match r {
            Err(Error::StreamTruncated { expected, received }) => {
                assert_eq!(expected, (total - header_len) as u64);
                assert_eq!(received, (cut - header_len) as u64);
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn reordered_duplicated_and_extended_streams_are_refused() {
    let a = authority();
    let (sealed, bytes, img) = small();
    let seg = |i| bytes[segment_range(sealed, i)].to_vec();
    let prefix = &bytes[..segment_range(sealed, 0).start];

    // Segments 1 and 2 swapped.
    let swapped = [prefix.to_vec(), seg(0), seg(2), seg(1), seg(3), seg(4)].concat();
    let (r, out) = open_vec(&swapped, &a.device);
    assert!(
        matches!(
            r,
            Err(Error::SegmentReordered {
                position: 1,
                belongs_at: 2
            })
        ),
        "{r:?}"
    );
    assert_eq!(out, img[..64]);

    // Segment 1 sent twice.
    let duplicated = [
        prefix.to_vec(),
        seg(0),
        seg(1),
        seg(1),
        seg(2),
        seg(3),
        seg(4),
    ]
    .concat();
    let (r, _) = open_vec(&duplicated, &a.device);
    assert!(
        matches!(
            r,
            Err(Error::SegmentDuplicated {
                position: 2,
                copy_of: 1
            })
        ),
        "{r:?}"
    );

    // A full segment moved into the last position's place is not the last one.
    let dropped_middle = [prefix.to_vec(), seg(0), seg(1), seg(3), seg(4)].concat();
    let (r, _) = open_vec(&dropped_middle, &a.device);
    assert!(
        matches!(
            r,
            Err(Error::SegmentReordered {
                position: 2,
                belongs_at: 3
            })
        ),
        "{r:?}"
    );

    // Extended: one byte, or a whole segment, after the last one.
    for tail in [vec![0u8], seg(4), seg(0)] {
        let extended = [bytes.clone(), tail].concat();
        let (r, _) = open_vec(&extended, &a.device);
        assert!(matches!(r, Err(Error::StreamExtended { .. })), "{r:?}");
    }
}

#[test]
fn open_to_path_writes_all_or_nothing() {
    let a = authority();
    let (sealed, bytes, img) = small();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.bin");
    let out = dir.path().join("image.bin");
    let mut bad = bytes.clone();
    let last = segment_range(sealed, 4);
    bad[last.start] ^= 1;
    std::fs::write(&bundle, &bad).unwrap();
    let r = open_to_path(&bundle, &a.device, &out);
    assert!(
        matches!(r, Err(Error::SegmentTampered { index: 4 })),
        "{r:?}"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("bundle.bin")],
        "nothing written"
    );

    std::fs::write(&bundle, bytes).unwrap();
    let (_, opened) = open_to_path(&bundle, &a.device, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), *img);
    assert_eq!(opened.image_sha256, sealed.image_sha256);
}

#[test]
fn seal_refuses_an_image_of_another_length() {
    let a = authority();
    let policy = default_policy(MODEL, VERSION);
    let spec = BundleSpec {
        target: target(VERSION),
        policy: &policy,
        options: SealOptions::default(),
    };
    let img = image(100);
    let r = seal(&a.params, &spec, &img[..], 101, Vec::new(), &mut OsRng);
    assert!(
        matches!(
            r,
            Err(Error::ImageLength {
                declared: 101,
                actual: 100
            })
        ),
        "{r:?}"
    );
    let r = seal(&a.params, &spec, &img[..], 99, Vec::new(), &mut OsRng);
    assert!(
        matches!(
            r,
            Err(Error::ImageLength {
                declared: 99,
                actual: 100
            })
        ),
        "{r:?}"
    );
    let tiny = SealOptions { segment_size: 63 };
    let r = seal(
        &a.params,
        &BundleSpec {
            options: tiny,
            ..spec
        },
        &img[..],
        100,
        Vec::new(),
        &mut OsRng,
    );
    assert!(
        matches!(
            r,
            Err(Error::FieldOutOfRange {
                field: "segment size",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn custom_policies_need_their_attributes() {
    let a = authority();
    let policy =
        parse_policy(r#""model:7" and "release:7/42" and ("region:eu" or "region:in")"#).unwrap();
    let spec = BundleSpec {
        target: target(VERSION),
        policy: &policy,
        options: SealOptions { segment_size: 64 },
    };
    let img = image(300);
    let mut bytes = Vec::new();
    seal(&a.params, &spec, &img[..], 300, &mut bytes, &mut OsRng).unwrap();
    let (r, _) = open_vec(&bytes, &a.device);
    assert!(
        matches!(r, Err(Error::CpAbe { .. })),
        "no region attribute: {r:?}"
    );
    let eu = keygen(
        &a.master,
        &["model:7", "release:7/42", "region:eu"],
        &mut OsRng,
    )
    .unwrap();
    let (r, out) = open_vec(&bytes, &eu);
    r.unwrap();
    assert_eq!(out, img);
    assert!(matches!(
        parse_policy("model:7 and"),
        Err(Error::PolicyText { .. })
    ));
}

/// One valid header to mutate.
fn header_bytes() -> &'static [u8] {
    let (sealed, _, _) = small();
    sealed.header.as_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Raw mutated headers: decoding never panics, never asks for more than the
    /// bound, and accepts only the canonical encoding of what it returns.
    #[test]
    fn mutated_headers_decode_strictly(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = header_bytes().to_vec();
        for (at, value, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = value,
                1 => bytes.insert(at, value),
                2 if at < bytes.len() => { bytes.remove(at); }
                _ if at + 4 <= bytes.len() => bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes()),
                _ => {}
            }
        }
        let cut = cut % (bytes.len() + 1);
        for input in [&bytes[..], &bytes[..cut]] {
            match Header::parse_prefix(input) {
                Ok(Parsed::Complete(h, used)) => {
                    prop_assert_eq!(h.as_bytes(), &input[..used]);
                    prop_assert_eq!(Header::decode(&input[..used]).unwrap(), *h);
                }
                Ok(Parsed::Incomplete { needed }) => {
                    prop_assert!(needed > input.len());
                    prop_assert!(needed <= MAX_HEADER_LEN);
                }
                Err(_) => {}
            }
        }
    }

    /// Arbitrary bytes behind the magic and version.
    #[test]
    fn random_headers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let bytes = [&MAGIC[..], &[0, 1], &body].concat();
        if let Ok(Parsed::Incomplete { needed }) = Header::parse_prefix(&bytes) {
            prop_assert!(needed <= MAX_HEADER_LEN);
        }
    }
}

/// The image hash on a helper thread (`hash_on_thread`, what `open` and the device use on two
/// cores) gives the inline digest at every boundary, in any chunking; asked for after the first
/// bytes it changes nothing; a tampered segment is refused the same way, and a truncated
/// stream too.
#[test]
fn hashing_on_a_thread_gives_the_inline_digest_and_the_same_refusals() {
    let a = authority();
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    for (len, seg) in [
        (0, 64),
        (1, 64),
        (64, 64),
        (65, 64),
        (5000, 64),
        (300_000, 4096),
    ] {
        let img = image(len);
        let (sealed, bytes) = seal_bytes(&img, seg, VERSION);
        let header_len = sealed.header.as_bytes().len();
        let stream = &bytes[header_len..];
        let run = |threaded: bool, late: bool, rng: &mut ChaCha20Rng| {
            let key = ContentKey::unlock(&sealed.header, &a.device).unwrap();
            let mut d = StreamDecryptor::new(&sealed.header, key);
            if threaded {
                d = d.hash_on_thread();
            }
            let mut out = Vec::new();
            let mut rest = stream;
            let mut first = true;
            while !rest.is_empty() {
                let n = (rand_chacha::rand_core::RngCore::next_u32(rng) % 5000 + 1) as usize;
                let n = n.min(rest.len());
                d.update(&rest[..n], &mut |p: &[u8]| {
                    out.extend_from_slice(p);
                    Ok(())
                })
                .unwrap();
                rest = &rest[n..];
                if first && late {
                    d = d.hash_on_thread();
                    first = false;
                }
            }
            (d.finish().unwrap(), out)
        };
        for (threaded, late) in [(false, false), (true, false), (false, true)] {
            let (opened, out) = run(threaded, late, &mut rng);
            assert_eq!(
                opened.image_sha256, sealed.image_sha256,
                "len {len} {threaded} {late}"
            );
            assert_eq!(out, img);
        }
    }

    // Refusals: a flipped byte in segment 2, and the stream cut before its last segment.
    let (sealed, bytes, _) = small();
    let header_len = sealed.header.as_bytes().len();
    let mut tampered = bytes.clone();
    tampered[segment_range(sealed, 2).start + 3] ^= 1;
    let key = || ContentKey::unlock(&sealed.header, &a.device).unwrap();
    let mut d = StreamDecryptor::new(&sealed.header, key()).hash_on_thread();
    let r = d.update(&tampered[header_len..], &mut |_| Ok(()));
    assert!(
        matches!(r, Err(Error::SegmentTampered { index: 2 })),
        "{r:?}"
    );
    let mut d = StreamDecryptor::new(&sealed.header, key()).hash_on_thread();
    d.update(
        &bytes[header_len..segment_range(sealed, 4).start],
        &mut |_| Ok(()),
    )
    .unwrap();
    assert!(matches!(d.finish(), Err(Error::StreamTruncated { .. })));
}
