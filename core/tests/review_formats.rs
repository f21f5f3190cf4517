//! Adversarial review of issue 13's formats (second reviewer): every decoder of
//! untrusted bytes attacked from the committed test vectors (`core/testdata/`):
//! truncation at every byte, every single-byte flip, length fields at their
//! edges, stream splicing and last-segment tricks, headers moved between
//! bundles and retargeted, key deliveries re-addressed, re-signed, malleated or
//! carrying a high-s signature, non-canonical manifest JSON, oversized and
//! special `device.toml` files, and a seeded mutation run over every format
//! that checks "no panic, and either an error or exactly the original data",
//! differentially against reference decoders written here from
//! `docs/bundle-format.md`. Each attack and its result is listed in
//! `docs/security.md` ("Review of the release formats").

use std::{io::Read, path::Path, sync::OnceLock};

use alloy::{
    primitives::{Address, B256, Signature, U256, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use otaledger_core::{
    Error,
    bundle::{
        BundleSpec, ContentKey, Header, Parsed, ReleaseTarget, SealOptions, StreamDecryptor,
        default_policy,
        limits::{MAX_CAPSULE_LEN, MAX_HEADER_LEN, MAX_POLICY_TEXT_LEN},
        open, read_header, seal,
    },
    device_file::{
        DEVICE_FILE, DeviceConfig, IpfsConfig, KeyServiceConfig, MAX_DEVICE_FILE, ReportsConfig,
        RpcConfig,
    },
    key_delivery::{KeyDelivery, Recipient, identity_public_key},
    leaves::{LeafEntry, leaves_root, parse_leaves},
    manifest::{ManifestFile, SignatureFile},
    report::{Outcome, Report, SignedReport},
};
use otaledger_cpabe::{PublicKey, SecretKey};
use rand_chacha::{
    ChaCha20Rng,
    rand_core::{RngCore, SeedableRng},
};

// ---------------------------------------------------------------------------
// Fixtures: the committed vectors.

struct Vectors {
    params: PublicKey,
    device: SecretKey,
    image: Vec<u8>,
    bundle: Vec<u8>,
    header_len: usize,
    target: ReleaseTarget,
    segment_size: usize,
    delivery: Vec<u8>,
    identity: [u8; 32],
    key_service: PrivateKeySigner,
    recipient: Recipient,
    release_id: B256,
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim_start_matches("0x")).unwrap()
}

fn testdata(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn v() -> &'static Vectors {
    static V: OnceLock<Vectors> = OnceLock::new();
    V.get_or_init(|| {
        let b = testdata("bundle-v1.json");
        let s = |k: &str| b[k].as_str().unwrap().to_owned();
        let header = unhex(&s("header"));
        let bundle = [
            header.clone(),
            unhex(&s("keyCommitment")),
            b["segments"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|x| unhex(x.as_str().unwrap()))
                .collect(),
        ]
        .concat();
        let k = testdata("key-delivery-v1.json");
        // The vector's key service is the key 0x24…24 (see core/tests/vectors.rs).
        let key_service = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x24)).unwrap();
        assert_eq!(
            key_service.address().to_string().to_lowercase(),
            k["keyService"].as_str().unwrap().to_lowercase()
        );
        let registry: Address = s("registry").parse().unwrap();
        Vectors {
            params: PublicKey::from_bytes(&unhex(&s("params"))).unwrap(),
            device: SecretKey::from_bytes(&unhex(&s("deviceKey"))).unwrap(),
            image: unhex(&s("image")),
            header_len: header.len(),
            target: ReleaseTarget {
                chain_id: b["chainId"].as_u64().unwrap(),
                registry,
                model_id: b["modelId"].as_u64().unwrap() as u32,
                version: b["version"].as_u64().unwrap(),
            },
            segment_size: b["segmentSize"].as_u64().unwrap() as usize,
            bundle,
            delivery: unhex(k["delivery"].as_str().unwrap()),
            identity: B256::from_slice(&unhex(k["identitySecret"].as_str().unwrap())).0,
            recipient: Recipient {
                chain_id: k["chainId"].as_u64().unwrap(),
                registry,
                key_service: key_service.address(),
            },
            key_service,
            release_id: k["releaseId"].as_str().unwrap().parse().unwrap(),
        }
    })
}

/// Opens `bytes` with the vector's device key; the output is what reached the sink.
fn open_bytes(bytes: &[u8]) -> (Result<(), Error>, Vec<u8>) {
    let mut out = Vec::new();
    let r = open(bytes, &v().device, &mut out).map(|_| ());
    (r, out)
}

/// What a refused bundle may have released: the verified whole segments before the bad one.
fn assert_verified_prefix(out: &[u8], what: &str) {
    let v = v();
    assert!(
        out.len().is_multiple_of(v.segment_size) && v.image.starts_with(out),
        "{what}: {} bytes released that are not whole verified segments",
        out.len()
    );
}

/// Seals `image` for the vector's release with the vector's public parameters.
fn seal_image(image: &[u8], segment_size: u32) -> Vec<u8> {
    let v = v();
    let policy = default_policy(v.target.model_id, v.target.version);
    let mut out = Vec::new();
    seal(
        &v.params,
        &BundleSpec {
            target: v.target,
            policy: &policy,
            options: SealOptions { segment_size },
        },
        image,
        image.len() as u64,
        &mut out,
        &mut ChaCha20Rng::from_seed([7; 32]),
    )
    .unwrap();
    out
}

// ---------------------------------------------------------------------------
// Bundle: truncation, flips, length fields, splicing.

#[test]
fn bundle_truncated_at_every_byte_is_refused() {
    let v = v();
    for cut in 0..v.bundle.len() {
        let (r, out) = open_bytes(&v.bundle[..cut]);
        match r {
            Err(Error::Truncated {
                format: "bundle header",
                ..
            }) => assert!(cut < v.header_len, "cut {cut}"),
            Err(Error::StreamTruncated { .. }) => assert!(cut >= v.header_len, "cut {cut}"),
            other => panic!("cut {cut}: {other:?}"),
        }
        assert_verified_prefix(&out, &format!("cut {cut}"));
    }
    let (r, out) = open_bytes(&v.bundle);
    r.unwrap();
    assert_eq!(out, v.image);
}

#[test]
fn bundle_every_single_byte_flip_is_refused() {
    let v = v();
    for at in 0..v.bundle.len() {
        for mask in [0x01u8, 0x80] {
            let mut bytes = v.bundle.clone();
            bytes[at] ^= mask;
            let (r, out) = open_bytes(&bytes);
            assert!(r.is_err(), "byte {at} ^ {mask:#x} opened");
            assert_verified_prefix(&out, &format!("byte {at}"));
            if at < v.header_len {
                assert!(out.is_empty(), "header byte {at}: output before refusal");
            }
        }
    }
}

/// Reads whatever is asked of it: `prefix`, then zeros without end, counting the bytes taken.
struct Endless<'a> {
    prefix: &'a [u8],
    taken: usize,
}

impl Read for Endless<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(1 << 16);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = self.prefix.get(self.taken + i).copied().unwrap_or(0);
        }
        self.taken += n;
        Ok(n)
    }
}

/// Byte offsets of the header's length fields (policy text of `p` bytes).
const SEGMENT_SIZE_AT: usize = 51;
const IMAGE_LEN_AT: usize = 74;
const POLICY_LEN_AT: usize = 82;

#[test]
fn header_length_fields_at_their_edges_fail_before_allocating() {
    let v = v();
    let header = &v.bundle[..v.header_len];
    let p = u16::from_be_bytes([header[POLICY_LEN_AT], header[POLICY_LEN_AT + 1]]) as usize;
    let capsule_len_at = 84 + p;
    let patched = |at: usize, value: &[u8]| {
        let mut h = header.to_vec();
        h[at..at + value.len()].copy_from_slice(value);
        h
    };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for s in [0u32, 1, 63, 4 * 1024 * 1024 + 1, u32::MAX] {
        cases.push(("segment size", patched(SEGMENT_SIZE_AT, &s.to_be_bytes())));
    }
    for l in [u64::MAX, u64::from(u32::MAX) * 64 + 1, 1 << 62] {
        cases.push(("image length", patched(IMAGE_LEN_AT, &l.to_be_bytes())));
    }
    for l in [0u16, (MAX_POLICY_TEXT_LEN + 1) as u16, u16::MAX] {
        cases.push((
            "policy text length",
            patched(POLICY_LEN_AT, &l.to_be_bytes()),
        ));
    }
    // A 4 GiB capsule (the "memory bomb"), one byte past the limit, and zero.
    for l in [u32::MAX, (MAX_CAPSULE_LEN + 1) as u32, 1 << 31, 0] {
        cases.push(("capsule length", patched(capsule_len_at, &l.to_be_bytes())));
    }
    for (field, bytes) in cases {
        let mut reader = Endless {
            prefix: &bytes,
            taken: 0,
        };
        let err = read_header(&mut reader).unwrap_err();
        assert!(
            matches!(err, Error::FieldOutOfRange { field: f, .. } if f == field),
            "{field}: {err:?}"
        );
        // Refused from the bytes of the fixed fields and the policy, never by
        // buffering what the field claims.
        assert!(
            reader.taken <= capsule_len_at + 4 + (1 << 16) && reader.taken <= MAX_HEADER_LEN,
            "{field}: read {} bytes",
            reader.taken
        );
        assert!(Header::decode(&bytes).is_err(), "{field}");
    }
    // In-range but false lengths are refused by the key commitment (the CP-ABE
    // context binds them), before any output.
    for l in [0u64, 1, v.image.len() as u64 - 1, v.image.len() as u64 + 1] {
        let mut bundle = v.bundle.clone();
        bundle[IMAGE_LEN_AT..IMAGE_LEN_AT + 8].copy_from_slice(&l.to_be_bytes());
        let (r, out) = open_bytes(&bundle);
        assert!(
            matches!(r, Err(Error::KeyCommitment)),
            "image length {l}: {r:?}"
        );
        assert!(out.is_empty());
    }
}

#[test]
fn last_segment_tricks_are_refused() {
    let v = v();
    let seg = v.segment_size;
    // An image of exactly four segments (the last one full) and an empty image.
    for image in [v.image[..4 * seg].to_vec(), Vec::new()] {
        let bundle = seal_image(&image, seg as u32);
        let (header, _) = read_header(&mut &bundle[..]).unwrap();
        let start = header.as_bytes().len() + 32;
        let segs: Vec<&[u8]> = bundle[start..].chunks(seg + 16).collect();
        assert_eq!(segs.len() as u64, header.segment_count());
        let n = segs.len();
        let prefix = &bundle[..start];
        let assemble = |parts: &[&[u8]]| [prefix, &parts.concat()].concat();
        let mut attempts: Vec<(&str, Vec<u8>)> = vec![
            ("last segment dropped", assemble(&segs[..n - 1])),
            (
                "last segment twice",
                assemble(&[&segs[..], &segs[n - 1..]].concat()),
            ),
            (
                "first segment appended",
                assemble(&[&segs[..], &segs[..1]].concat()),
            ),
            ("one zero byte appended", [bundle.clone(), vec![0]].concat()),
            (
                "16 zero bytes appended",
                [bundle.clone(), vec![0; 16]].concat(),
            ),
        ];
        if n > 1 {
            let mut swapped = segs.clone();
            swapped.swap(n - 2, n - 1);
            attempts.push(("last two swapped", assemble(&swapped)));
            attempts.push((
                "non-last segment in the last place",
                assemble(&[&segs[..n - 1], &segs[n - 2..n - 1]].concat()),
            ));
        }
        for (what, bytes) in attempts {
            let mut out = Vec::new();
            let r = open(&bytes[..], &v.device, &mut out);
            assert!(r.is_err(), "{what} (image {} bytes) opened", image.len());
            // (Appended bytes are refused after the last segment verified: `open`
            // may then have released the whole image; `open_to_path` releases nothing.)
            assert!(image.starts_with(&out), "{what}");
        }
        let mut out = Vec::new();
        open(&bundle[..], &v.device, &mut out).unwrap();
        assert_eq!(out, image);
    }
}

#[test]
fn header_swapped_between_bundles_is_refused() {
    let v = v();
    let a = &v.bundle;
    let b = seal_image(&v.image, v.segment_size as u32);
    assert_eq!(a.len(), b.len());
    let hl = v.header_len;
    assert_eq!(
        Header::decode(&b[..hl]).unwrap().target(),
        Header::decode(&a[..hl]).unwrap().target()
    );
    // Header of A, commitment and segments of B.
    let (r, out) = open_bytes(&[&a[..hl], &b[hl..]].concat());
    assert!(matches!(r, Err(Error::KeyCommitment)), "{r:?}");
    assert!(out.is_empty());
    // Header and commitment of A, segments of B.
    let (r, out) = open_bytes(&[&a[..hl + 32], &b[hl + 32..]].concat());
    assert!(
        matches!(r, Err(Error::SegmentTampered { index: 0 })),
        "{r:?}"
    );
    assert!(out.is_empty());
    // A's stream with one of B's segments spliced in at the same position.
    let s = v.segment_size + 16;
    let at = hl + 32 + 2 * s;
    let (r, out) = open_bytes(&[&a[..at], &b[at..at + s], &a[at + s..]].concat());
    assert!(
        matches!(r, Err(Error::SegmentTampered { index: 2 })),
        "{r:?}"
    );
    assert_eq!(out, v.image[..2 * v.segment_size]);
}

#[test]
fn bundle_retargeted_to_another_chain_registry_model_or_version_is_refused() {
    let v = v();
    let fields: [(&str, usize, Vec<u8>); 5] = [
        ("chain id", 10, 1u64.to_be_bytes().to_vec()),
        ("registry", 18, vec![0x11; 20]),
        ("model", 38, 8u32.to_be_bytes().to_vec()),
        ("version", 42, 43u64.to_be_bytes().to_vec()),
        ("version", 42, 41u64.to_be_bytes().to_vec()),
    ];
    for (what, at, value) in fields {
        let mut bytes = v.bundle.clone();
        bytes[at..at + value.len()].copy_from_slice(&value);
        let (r, out) = open_bytes(&bytes);
        assert!(matches!(r, Err(Error::KeyCommitment)), "{what}: {r:?}");
        assert!(out.is_empty(), "{what}");
    }
    // A genuine bundle for another model's policy does not open with this key.
    let policy = default_policy(8, v.target.version);
    let mut other = Vec::new();
    seal(
        &v.params,
        &BundleSpec {
            target: ReleaseTarget {
                model_id: 8,
                ..v.target
            },
            policy: &policy,
            options: SealOptions { segment_size: 64 },
        },
        &v.image[..],
        v.image.len() as u64,
        &mut other,
        &mut ChaCha20Rng::from_seed([8; 32]),
    )
    .unwrap();
    let (r, out) = open_bytes(&other);
    assert!(matches!(r, Err(Error::CpAbe { .. })), "{r:?}");
    assert!(out.is_empty());
}

/// A caller that ignores an error and goes on feeding the decryptor (after a
/// reordered segment, whose trial decryption at its true position left
/// plaintext in the buffer; after a tampered segment; after a bad commitment)
/// gets no more output, and `finish` refuses.
#[test]
fn a_decryptor_that_refused_releases_nothing_later() {
    let v = v();
    let header = Header::decode(&v.bundle[..v.header_len]).unwrap();
    let s = v.segment_size + 16;
    let stream = &v.bundle[v.header_len..];
    let seg = |i: usize| &stream[32 + i * s..(32 + (i + 1) * s).min(stream.len())];
    let swapped = [&stream[..32], seg(0), seg(2), seg(1), seg(3), seg(4)].concat();
    let mut tampered = stream.to_vec();
    tampered[32 + s + 5] ^= 1;
    let mut commitment = stream.to_vec();
    commitment[0] ^= 1;
    for (what, input, released) in [
        ("reordered", swapped, v.segment_size),
        ("tampered", tampered, v.segment_size),
        ("bad commitment", commitment, 0),
    ] {
        let mut d = StreamDecryptor::new(&header, ContentKey::unlock(&header, &v.device).unwrap());
        let mut out = Vec::new();
        let mut errors = 0;
        for piece in input.chunks(7) {
            let mut sink = |p: &[u8]| {
                out.extend_from_slice(p);
                Ok::<(), Error>(())
            };
            // (A later call may return Ok while it only gathers bytes; it
            // never completes an item, so it never releases anything.)
            if d.update(piece, &mut sink).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 0, "{what}: never refused");
        assert!(d.finish().is_err(), "{what}");
        assert_eq!(out, v.image[..released], "{what}: output after the refusal");
    }
}

// ---------------------------------------------------------------------------
// Key delivery.

fn open_delivery(bytes: &[u8], recipient: &Recipient) -> Result<SecretKey, Error> {
    KeyDelivery::decode(bytes)?.open(recipient, &v().identity)
}

/// Re-signs `bytes` (a delivery) with `key` over its signed part.
fn resign(bytes: &mut [u8], key: &PrivateKeySigner) {
    let split = bytes.len() - 64;
    let digest = keccak256(&bytes[..split]);
    let sig = key.sign_hash_sync(&digest).unwrap().as_erc2098();
    bytes[split..].copy_from_slice(&sig);
}

#[test]
fn key_delivery_truncated_or_extended_is_refused() {
    let v = v();
    for cut in 0..v.delivery.len() {
        let r = KeyDelivery::decode(&v.delivery[..cut]);
        assert!(
            matches!(r, Err(Error::Truncated { .. } | Error::BadMagic { .. })),
            "cut {cut}: {r:?}"
        );
    }
    for tail in [vec![0u8], vec![0; 64], v.delivery.clone()] {
        let r = KeyDelivery::decode(&[v.delivery.clone(), tail].concat());
        assert!(matches!(r, Err(Error::TrailingBytes { .. })), "{r:?}");
    }
    let key = open_delivery(&v.delivery, &v.recipient).unwrap();
    assert_eq!(key.to_bytes(), v.device.to_bytes());
}

#[test]
fn key_delivery_every_single_byte_flip_is_refused() {
    let v = v();
    for at in 0..v.delivery.len() {
        for mask in [0x01u8, 0x80] {
            let mut bytes = v.delivery.clone();
            bytes[at] ^= mask;
            assert!(
                open_delivery(&bytes, &v.recipient).is_err(),
                "byte {at} ^ {mask:#x} opened"
            );
        }
    }
}

#[test]
fn key_delivery_length_field_edges_are_refused() {
    let v = v();
    let e = v.delivery.len() - 94 - 64;
    for len in [
        0u32,
        1,
        97,
        98,
        e as u32 - 1,
        e as u32 + 1,
        256 * 1024 + 1,
        1 << 31,
        u32::MAX,
    ] {
        let mut bytes = v.delivery.clone();
        bytes[90..94].copy_from_slice(&len.to_be_bytes());
        let r = KeyDelivery::decode(&bytes);
        assert!(
            matches!(
                r,
                Err(Error::FieldOutOfRange { .. }
                    | Error::Truncated { .. }
                    | Error::TrailingBytes { .. })
            ),
            "length {len}: {r:?}"
        );
    }
}

#[test]
fn key_delivery_for_another_device_or_signed_by_another_key_is_refused() {
    let v = v();
    let other_device = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x43)).unwrap();
    // A genuine delivery for another device, signed by the real key service.
    let for_other = KeyDelivery::seal(
        v.recipient.chain_id,
        v.recipient.registry,
        v.release_id,
        &identity_public_key(&other_device),
        &v.device,
        &v.key_service,
    )
    .unwrap()
    .to_bytes()
    .unwrap();
    assert!(matches!(
        open_delivery(&for_other, &v.recipient),
        Err(Error::KeyDeliveryMismatch {
            field: "device",
            ..
        })
    ));
    // The other device's delivery re-addressed to this device: the signature no longer holds.
    let mut readdressed = for_other.clone();
    readdressed[70..90].copy_from_slice(&v.delivery[70..90]);
    assert!(matches!(
        open_delivery(&readdressed, &v.recipient),
        Err(Error::KeyDeliverySigner { .. })
    ));
    // ... and re-signed by anyone else.
    let stranger = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x55)).unwrap();
    resign(&mut readdressed, &stranger);
    assert!(matches!(
        open_delivery(&readdressed, &v.recipient),
        Err(Error::KeyDeliverySigner { .. })
    ));
    // The real delivery re-signed by another key.
    let mut bytes = v.delivery.clone();
    resign(&mut bytes, &stranger);
    assert!(matches!(
        open_delivery(&bytes, &v.recipient),
        Err(Error::KeyDeliverySigner { .. })
    ));
    // Wrong parity (v) bit of the real signature.
    let mut bytes = v.delivery.clone();
    let n = bytes.len();
    bytes[n - 32] ^= 0x80;
    assert!(matches!(
        open_delivery(&bytes, &v.recipient),
        Err(Error::KeyDeliverySigner { .. })
    ));
    // For another chain or registry.
    for (at, value) in [(10usize, vec![0u8; 8]), (18, vec![0x11; 20])] {
        let mut bytes = v.delivery.clone();
        bytes[at..at + value.len()].copy_from_slice(&value);
        resign(&mut bytes, &v.key_service);
        assert!(
            matches!(
                open_delivery(&bytes, &v.recipient),
                Err(Error::KeyDeliveryMismatch { .. })
            ),
            "offset {at}"
        );
    }
}

#[test]
fn key_delivery_ecies_malleation_is_refused_even_when_re_signed() {
    // Even a key service that signs whatever it is given (or a bug that
    // corrupts the ciphertext before signing) cannot make a device accept a
    // changed ECIES ciphertext: the ephemeral key feeds the KDF and AES-GCM
    // authenticates nonce and body.
    let v = v();
    let end = v.delivery.len() - 64;
    for at in 94..end {
        let mut bytes = v.delivery.clone();
        bytes[at] ^= 0x01;
        resign(&mut bytes, &v.key_service);
        let r = open_delivery(&bytes, &v.recipient);
        assert!(
            matches!(r, Err(Error::KeyDeliveryDecrypt)),
            "ciphertext byte {} flipped: {r:?}",
            at - 94
        );
    }
}

/// secp256k1 group order.
fn order() -> U256 {
    U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap()
}

/// A low-s signature of `digest` and its high-s twin, both encodable as
/// EIP-2098 (s = floor(n/2) and n - s = floor(n/2) + 1 are both below 2^255),
/// and the address both recover to. Nobody knows that address's key, but a
/// decoder that accepts the twin gives one signed message two encodings.
fn twin_signatures(digest: B256) -> ([u8; 64], [u8; 64], Address) {
    // r = the generator's x coordinate (a valid x).
    let r = U256::from_str_radix(
        "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        16,
    )
    .unwrap();
    let s_low = order() >> 1;
    let s_high = order() - s_low;
    let signer = Signature::new(r, s_low, false)
        .recover_address_from_prehash(&digest)
        .unwrap();
    // By hand: `Signature::as_erc2098` normalises s, so it cannot write the twin.
    let (low, high) = (erc2098(r, s_low, false), erc2098(r, s_high, true));
    assert_ne!(low, high);
    (low, high, signer)
}

/// The EIP-2098 bytes `r ‖ (yParity << 255 | s)`, whatever `s` is.
fn erc2098(r: U256, s: U256, odd: bool) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&r.to_be_bytes::<32>());
    out[32..].copy_from_slice(&s.to_be_bytes::<32>());
    out[32] |= u8::from(odd) << 7;
    out
}

#[test]
fn key_delivery_high_s_twin_is_refused() {
    let v = v();
    let split = v.delivery.len() - 64;
    let digest = keccak256(&v.delivery[..split]);
    let (low, high, signer) = twin_signatures(digest);
    let recipient = Recipient {
        key_service: signer,
        ..v.recipient
    };
    let mut bytes = v.delivery.clone();
    bytes[split..].copy_from_slice(&low);
    // The low-s form is this (keyless) service's signature.
    assert_eq!(
        KeyDelivery::decode(&bytes).unwrap().signer().unwrap(),
        signer
    );
    assert!(open_delivery(&bytes, &recipient).is_ok());
    bytes[split..].copy_from_slice(&high);
    let twin = KeyDelivery::decode(&bytes).and_then(|d| d.signer());
    assert!(
        !matches!(twin, Ok(a) if a == signer),
        "the high-s twin of a key delivery signature recovered to the same key service"
    );
    assert!(open_delivery(&bytes, &recipient).is_err());
}

#[test]
fn manifest_signature_file_high_s_twin_is_refused() {
    let digest = keccak256(b"a manifest digest");
    let (low, high, signer) = twin_signatures(digest);
    let file = |sig: [u8; 64]| {
        SignatureFile {
            signer,
            release_id: B256::repeat_byte(1),
            digest,
            signature: sig,
        }
        .to_json()
    };
    let p = Path::new("s.json");
    assert!(SignatureFile::from_json(&file(low), p).is_ok());
    assert!(
        SignatureFile::from_json(&file(high), p).is_err(),
        "the high-s twin of a signature file was accepted (the registry refuses it on publishing)"
    );
}

// ---------------------------------------------------------------------------
// manifest.json: non-canonical JSON is refused or means exactly the same.

fn manifest() -> ManifestFile {
    let v = v();
    let policy = default_policy(v.target.model_id, v.target.version);
    ManifestFile {
        chain_id: v.target.chain_id,
        registry: v.target.registry,
        policy: policy.to_string(),
        manifest: otaledger_core::bindings::registry::IUpdateRegistry::Manifest {
            modelId: v.target.model_id,
            version: v.target.version,
            bundleSha256: B256::repeat_byte(0xab),
            bundleSize: v.bundle.len() as u64,
            bundleCid: vec![1, 0x55, 0x12, 0x20, 9, 9].into(),
            imageSha256: B256::repeat_byte(0xcd),
            price: 1000,
            paymentToken: Address::ZERO,
            policyId: otaledger_core::bundle::policy_id(&policy),
            expiry: 1_900_000_000,
            metadataHash: B256::ZERO,
        },
    }
}

/// Accepted text must mean the original manifest: same digest, release id,
/// fields and policy.
fn assert_refused_or_same(text: &str, original: &ManifestFile, what: &str) {
    if let Ok(f) = ManifestFile::from_json(text, Path::new("m.json")) {
        assert_eq!(f.manifest, original.manifest, "{what}");
        assert_eq!(
            (f.chain_id, f.registry, f.digest(), f.release_id()),
            (
                original.chain_id,
                original.registry,
                original.digest(),
                original.release_id()
            ),
            "{what}"
        );
        assert_eq!(
            otaledger_core::bundle::parse_policy(&f.policy).unwrap(),
            otaledger_core::bundle::parse_policy(&original.policy).unwrap(),
            "{what}"
        );
    }
}

#[test]
fn manifest_non_canonical_json_is_refused_or_means_the_same() {
    let m = manifest();
    let text = m.to_json();
    assert_eq!(
        ManifestFile::from_json(&text, Path::new("m.json")).unwrap(),
        m
    );
    let bundle_hex = format!("0x{}", "ab".repeat(32));
    let variants: Vec<(&str, String)> = vec![
        (
            "duplicate top-level key",
            text.replacen(
                "\"chainId\": 31337,",
                "\"chainId\": 31337,\n  \"chainId\": 1,",
                1,
            ),
        ),
        (
            "duplicate nested key",
            text.replacen(
                "\"version\": 42,",
                "\"version\": 42,\n    \"version\": 43,",
                1,
            ),
        ),
        (
            "duplicate key, the same value",
            text.replacen(
                "\"version\": 42,",
                "\"version\": 42,\n    \"version\": 42,",
                1,
            ),
        ),
        (
            "extra field",
            text.replacen("\"expiry\"", "\"comment\": \"x\",\n    \"expiry\"", 1),
        ),
        (
            "look-alike key (Cyrillic o)",
            text.replacen("\"expiry\"", "\"m\u{043e}delId\": 9,\n    \"expiry\"", 1),
        ),
        (
            "uppercase hex",
            text.replace(
                &bundle_hex,
                &bundle_hex.to_uppercase().replacen("0X", "0x", 1),
            ),
        ),
        ("short hex", text.replace(&bundle_hex, &bundle_hex[..64])),
        (
            "hex without 0x",
            text.replace(&bundle_hex, &bundle_hex[2..]),
        ),
        (
            "odd hex",
            text.replace(&bundle_hex, &format!("{bundle_hex}0")),
        ),
        (
            "price with leading zeros",
            text.replace("\"1000\"", "\"0001000\""),
        ),
        ("price with a sign", text.replace("\"1000\"", "\"+1000\"")),
        ("price as a number", text.replace("\"1000\"", "1000")),
        (
            "price above uint128",
            text.replace("\"1000\"", &format!("\"{}0\"", u128::MAX)),
        ),
        (
            "price in unicode digits",
            text.replace("\"1000\"", "\"\u{0661}000\""),
        ),
        (
            "version with leading zero",
            text.replace("\"version\": 42", "\"version\": 042"),
        ),
        (
            "version as a float",
            text.replace("\"version\": 42", "\"version\": 42.0"),
        ),
        (
            "version as an exponent",
            text.replace("\"version\": 42", "\"version\": 4.2e1"),
        ),
        (
            "version above u64",
            text.replace("\"version\": 42", "\"version\": 18446744073709551658"),
        ),
        (
            "negative version",
            text.replace("\"version\": 42", "\"version\": -42"),
        ),
        (
            "model id above u32",
            text.replace("\"modelId\": 7", "\"modelId\": 4294967303"),
        ),
        (
            "null field",
            text.replace("\"expiry\": 1900000000", "\"expiry\": null"),
        ),
        (
            "escaped format tag",
            text.replace("otaledger-manifest/1", "otaledger-manifest\\u002f1"),
        ),
        (
            "escaped policy quote",
            text.replace("\\\"model:7\\\"", "\\u0022model:7\\u0022"),
        ),
        (
            "policy with look-alike attribute",
            text.replace("model:7", "m\u{043e}del:7"),
        ),
        (
            "policy in another form",
            text.replace(
                "\"\\\"model:7\\\" and \\\"release:7/42\\\"\"",
                "\"(\\\"model:7\\\") and  (\\\"release:7/42\\\")\"",
            ),
        ),
        ("byte order mark", format!("\u{feff}{text}")),
        ("trailing garbage", format!("{text}{{}}")),
        ("two documents", format!("{text}{text}")),
        ("array wrapper", format!("[{text}]")),
        ("CRLF line ends", text.replace('\n', "\r\n")),
        (
            "minified",
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&text).unwrap())
                .unwrap(),
        ),
    ];
    for (what, variant) in &variants {
        assert_ne!(
            variant, &text,
            "{what}: the variant did not change the text"
        );
        assert_refused_or_same(variant, &m, what);
    }
    // Field values that disagree with the derived fields are refused by name.
    for (what, from, to) in [
        ("policy of another release", "release:7/42", "release:7/43"),
        (
            "another registry",
            &m.registry.to_string().to_lowercase()[2..],
            "1111111111111111111111111111111111111111",
        ),
    ] {
        let r = ManifestFile::from_json(&text.replace(from, to), Path::new("m.json"));
        assert!(
            matches!(r, Err(Error::DerivedFieldMismatch { .. })),
            "{what}: {r:?}"
        );
    }
}

/// The manifest of the vector's bundle, as `release create` would write it.
fn manifest_of(bundle: &[u8]) -> ManifestFile {
    use sha2::Digest;
    let v = v();
    let (header, _) = read_header(&mut &bundle[..]).unwrap();
    let mut m = manifest();
    m.policy = header.policy_text().to_owned();
    m.manifest.policyId = header.policy_id();
    m.manifest.bundleSize = bundle.len() as u64;
    m.manifest.bundleSha256 = B256::from(<[u8; 32]>::from(sha2::Sha256::digest(bundle)));
    m.manifest.imageSha256 = B256::from(<[u8; 32]>::from(sha2::Sha256::digest(&v.image)));
    m
}

/// A signer holding the bundle can check it against the manifest before signing
/// (`release sign --bundle`): a bundle sealed under a weaker policy than the
/// manifest's, for another version, or another file, is refused by field.
#[test]
fn manifest_check_bundle_refuses_a_bundle_that_disagrees() {
    let v = v();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.bin");
    std::fs::write(&path, &v.bundle).unwrap();
    let honest = manifest_of(&v.bundle);
    honest.check_bundle(&path).unwrap();

    // Sealed under "model:7" (every device of the model opens it), listed in a
    // manifest that shows the release policy.
    let weaker = otaledger_core::bundle::parse_policy("\"model:7\"").unwrap();
    let mut weak_bundle = Vec::new();
    seal(
        &v.params,
        &BundleSpec {
            target: v.target,
            policy: &weaker,
            options: SealOptions { segment_size: 64 },
        },
        &v.image[..],
        v.image.len() as u64,
        &mut weak_bundle,
        &mut ChaCha20Rng::from_seed([9; 32]),
    )
    .unwrap();
    let weak_path = dir.path().join("weak.bin");
    std::fs::write(&weak_path, &weak_bundle).unwrap();
    let mut lying = manifest_of(&weak_bundle);
    lying.policy = honest.policy.clone();
    lying.manifest.policyId = honest.manifest.policyId;
    let r = lying.check_bundle(&weak_path);
    assert!(
        matches!(
            r,
            Err(Error::ManifestBundleMismatch {
                field: "policy",
                ..
            })
        ),
        "{r:?}"
    );
    // Only the policy id changed (the text left as the bundle's).
    let mut lying = manifest_of(&weak_bundle);
    lying.manifest.policyId = honest.manifest.policyId;
    let r = lying.check_bundle(&weak_path);
    assert!(
        matches!(
            r,
            Err(Error::ManifestBundleMismatch {
                field: "manifest.policyId",
                ..
            })
        ),
        "{r:?}"
    );
    for (field, edit) in [
        (
            "manifest.bundleSize",
            Box::new(|m: &mut ManifestFile| m.manifest.bundleSize += 1)
                as Box<dyn Fn(&mut ManifestFile)>,
        ),
        (
            "manifest.bundleSha256",
            Box::new(|m: &mut ManifestFile| m.manifest.bundleSha256 = B256::repeat_byte(1)),
        ),
        (
            "manifest.version",
            Box::new(|m: &mut ManifestFile| m.manifest.version += 1),
        ),
        (
            "manifest.modelId",
            Box::new(|m: &mut ManifestFile| m.manifest.modelId += 1),
        ),
        ("chainId", Box::new(|m: &mut ManifestFile| m.chain_id = 1)),
        (
            "registry",
            Box::new(|m: &mut ManifestFile| m.registry = Address::repeat_byte(0x11)),
        ),
    ] {
        let mut m = manifest_of(&v.bundle);
        edit(&mut m);
        let r = m.check_bundle(&path);
        assert!(
            matches!(r, Err(Error::ManifestBundleMismatch { field: f, .. }) if f == field),
            "{field}: {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// device.toml: path tricks and size bounds.

fn device_config() -> (DeviceConfig, PrivateKeySigner) {
    let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap();
    let config = DeviceConfig {
        format: "otaledger-device/1".into(),
        chain_id: 31337,
        registry: Address::repeat_byte(1),
        market: Address::repeat_byte(2),
        manufacturer_id: 1,
        model_id: 7,
        batch_id: 1,
        device_index: 12,
        position: 3,
        address: key.address(),
        public_key: identity_public_key(&key).into(),
        identity_key_file: "identity.key".into(),
        cpabe_key_file: "cpabe.key".into(),
        attributes: vec!["model:7".into()],
        merkle_proof: vec![B256::repeat_byte(3)],
        rpc: RpcConfig {
            urls: vec!["http://127.0.0.1:8545/".into()],
        },
        ipfs: IpfsConfig {
            gateways: vec!["http://127.0.0.1:8080/".into()],
        },
        key_service: KeyServiceConfig {
            address: Address::repeat_byte(4),
            urls: vec![],
        },
        reports: ReportsConfig::default(),
        indexer: Default::default(),
    };
    (config, key)
}

#[test]
fn device_toml_path_tricks_are_refused() {
    let (config, _) = device_config();
    let text = config.to_toml().unwrap();
    DeviceConfig::parse(&text, Path::new(DEVICE_FILE)).unwrap();
    for name in [
        "../identity.key",
        "/etc/passwd",
        "keys/identity.key",
        "..",
        ".",
        "",
        "a\\\\b",
        "x\\u0000y",
        "/",
    ] {
        for field in ["identity_key_file", "cpabe_key_file"] {
            let bad = text.replace(
                &format!(
                    "{field} = \"{}\"",
                    if field == "identity_key_file" {
                        "identity.key"
                    } else {
                        "cpabe.key"
                    }
                ),
                &format!("{field} = \"{name}\""),
            );
            assert_ne!(bad, text);
            let r = DeviceConfig::parse(&bad, Path::new(DEVICE_FILE));
            assert!(
                matches!(r, Err(Error::DeviceFile { .. })),
                "{field} = {name:?}: {r:?}"
            );
        }
    }
}

/// Makes a FIFO at `path` and writes `bytes` into it from a thread (a file
/// whose size `metadata` does not tell, like a character device or a pipe).
fn fifo_with(path: &Path, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    let path = path.to_owned();
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
            // The reader may stop early and close its end: that is the point.
            let _ = f.write_all(&bytes);
        }
    })
}

#[test]
fn device_files_that_are_not_regular_files_are_read_within_the_bound() {
    let (config, key) = device_config();
    let dir = tempfile::tempdir().unwrap();
    // A device.toml of MAX_DEVICE_FILE + 1 bytes that metadata() reports as 0 bytes.
    let mut text = config.to_toml().unwrap().into_bytes();
    text.resize(MAX_DEVICE_FILE as usize + 4096, b'\n');
    let writer = fifo_with(&dir.path().join(DEVICE_FILE), text);
    let r = DeviceConfig::load(dir.path());
    writer.join().unwrap();
    match r {
        Err(Error::DeviceFile { reason, .. }) => {
            assert!(
                reason.contains("at most"),
                "not refused for its size: {reason}"
            )
        }
        other => panic!("an oversized device.toml was accepted: {other:?}"),
    }
    // The identity key file: a valid key followed by a megabyte of blanks.
    let dir = tempfile::tempdir().unwrap();
    let mut key_text = hex::encode(key.to_bytes()).into_bytes();
    key_text.resize(1 << 20, b' ');
    let writer = fifo_with(&dir.path().join("identity.key"), key_text);
    let r = config.identity(dir.path());
    writer.join().unwrap();
    match r {
        Err(Error::DeviceFile { reason, .. }) => {
            assert!(
                reason.contains("at most"),
                "not refused for its size: {reason}"
            )
        }
        other => panic!("a 1 MiB identity key file was read whole: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Seeded mutation run over every format, with reference decoders.

/// One random mutation of `bytes`: a bit flip, a byte set, an insertion, a
/// deletion, a length-like word set to an edge value, a cut, or an extension.
fn mutate(rng: &mut ChaCha20Rng, bytes: &mut Vec<u8>) {
    let pick = |rng: &mut ChaCha20Rng, n: usize| (rng.next_u32() as usize) % n.max(1);
    let edits = 1 + pick(rng, 3);
    for _ in 0..edits {
        let at = pick(rng, bytes.len() + 1);
        match rng.next_u32() % 7 {
            0 if at < bytes.len() => bytes[at] ^= 1 << (rng.next_u32() % 8),
            1 if at < bytes.len() => bytes[at] = rng.next_u32() as u8,
            2 => bytes.insert(at, rng.next_u32() as u8),
            3 if at < bytes.len() => {
                bytes.remove(at);
            }
            4 if at + 4 <= bytes.len() => {
                let edge = [0u32, 1, 0x7fff_ffff, 0x8000_0000, u32::MAX][pick(rng, 5)];
                bytes[at..at + 4].copy_from_slice(&edge.to_be_bytes());
            }
            5 => bytes.truncate(at),
            _ => {
                let n = pick(rng, 64);
                bytes.extend((0..n).map(|_| rng.next_u32() as u8));
            }
        }
    }
}

/// The bundle header decoded from `docs/bundle-format.md` alone (no checks
/// beyond the layout): chain, registry, model, version, segment size, image
/// length, policy text and capsule bytes, and the header's length.
#[allow(clippy::type_complexity)]
fn reference_header(
    b: &[u8],
) -> Option<(u64, [u8; 20], u32, u64, u32, u64, Vec<u8>, Vec<u8>, usize)> {
    let be = |at: usize, n: usize| -> Option<u64> {
        let s = b.get(at..at + n)?;
        Some(s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    };
    if b.get(..8)? != b"OTALBNDL" || be(8, 2)? != 1 || *b.get(50)? != 1 {
        return None;
    }
    let p = be(82, 2)? as usize;
    let c = be(84 + p, 4)? as usize;
    let end = 88 + p + c;
    Some((
        be(10, 8)?,
        b.get(18..38)?.try_into().ok()?,
        be(38, 4)? as u32,
        be(42, 8)?,
        be(51, 4)? as u32,
        be(74, 8)?,
        b.get(84..84 + p)?.to_vec(),
        b.get(88 + p..end)?.to_vec(),
        end,
    ))
}

#[test]
fn seeded_mutations_never_panic_and_never_change_meaning() {
    let v = v();
    let mut rng = ChaCha20Rng::from_seed(*b"otaledger review 13 mutation run");

    // Header: structural decoding agrees with the reference decoder, never panics,
    // never asks for more than the bound.
    let header = &v.bundle[..v.header_len];
    for _ in 0..3000 {
        let mut bytes = header.to_vec();
        mutate(&mut rng, &mut bytes);
        match Header::parse_prefix(&bytes) {
            Ok(Parsed::Complete(h, used)) => {
                let r = reference_header(&bytes)
                    .expect("the reference decoder refused an accepted header");
                let t = h.target();
                assert_eq!(
                    (
                        t.chain_id,
                        t.registry.0.0,
                        t.model_id,
                        t.version,
                        h.segment_size(),
                        h.image_len()
                    ),
                    (r.0, r.1, r.2, r.3, r.4, r.5)
                );
                assert_eq!(h.policy_text().as_bytes(), &r.6[..]);
                assert_eq!(h.capsule().to_bytes(), r.7, "the capsule has one encoding");
                assert_eq!(used, r.8);
                assert_eq!(h.as_bytes(), &bytes[..used]);
            }
            Ok(Parsed::Incomplete { needed }) => {
                assert!(needed > bytes.len() && needed <= MAX_HEADER_LEN)
            }
            Err(_) => {}
        }
    }

    // Whole bundles (header and stream): an error, or exactly the image.
    for _ in 0..300 {
        let mut bytes = v.bundle.clone();
        mutate(&mut rng, &mut bytes);
        let (r, out) = open_bytes(&bytes);
        if r.is_ok() {
            assert_eq!(out, v.image, "a mutated bundle opened to other bytes");
            assert_eq!(bytes, v.bundle, "a changed bundle opened");
        } else {
            assert!(v.image.starts_with(&out));
        }
    }

    // The stream alone, fed in random pieces to one decryptor per attempt.
    let header = Header::decode(&v.bundle[..v.header_len]).unwrap();
    for _ in 0..300 {
        let mut stream = v.bundle[v.header_len..].to_vec();
        mutate(&mut rng, &mut stream);
        let key = ContentKey::unlock(&header, &v.device).unwrap();
        let mut d = StreamDecryptor::new(&header, key);
        let mut out = Vec::new();
        let mut sink = |p: &[u8]| {
            out.extend_from_slice(p);
            Ok::<(), Error>(())
        };
        let mut rest = &stream[..];
        let mut result = Ok(());
        while !rest.is_empty() && result.is_ok() {
            let n = 1 + (rng.next_u32() as usize % 97).min(rest.len() - 1);
            result = d.update(&rest[..n], &mut sink);
            rest = &rest[n..];
        }
        let result = result.and_then(|()| d.finish().map(|_| ()));
        if result.is_ok() {
            assert_eq!(stream, v.bundle[v.header_len..], "a changed stream opened");
            assert_eq!(out, v.image);
        } else {
            assert!(v.image.starts_with(&out));
        }
    }

    // Key delivery: decoding agrees with the reference layout and re-encodes
    // to the input; opening succeeds only for the original bytes.
    for _ in 0..1500 {
        let mut bytes = v.delivery.clone();
        mutate(&mut rng, &mut bytes);
        let decoded = KeyDelivery::decode(&bytes);
        let reference = (|| {
            if bytes.get(..10)? != b"OTALKEYD\x00\x01" {
                return None;
            }
            let e = u32::from_be_bytes(bytes.get(90..94)?.try_into().ok()?) as usize;
            (98..=256 * 1024).contains(&e).then_some(())?;
            (bytes.len() == 94 + e + 64).then_some(e)
        })();
        match (&decoded, reference) {
            (Ok(d), Some(e)) => {
                assert_eq!(d.to_bytes().unwrap(), bytes);
                assert_eq!(d.ciphertext.len(), e);
                assert_eq!(
                    d.chain_id,
                    u64::from_be_bytes(bytes[10..18].try_into().unwrap())
                );
                assert_eq!(d.device.as_slice(), &bytes[70..90]);
            }
            (Err(_), None) => {}
            (d, r) => panic!("decoder and reference disagree: {d:?} vs {r:?}"),
        }
        if let Ok(d) = decoded
            && let Ok(key) = d.open(&v.recipient, &v.identity)
        {
            assert_eq!(bytes, v.delivery, "a changed delivery opened");
            assert_eq!(key.to_bytes(), v.device.to_bytes());
        }
    }

    // manifest.json: whatever is accepted means the original manifest, and
    // only text serde_json reads as JSON is accepted.
    let m = manifest();
    let text = m.to_json();
    for _ in 0..1500 {
        let mut bytes = text.clone().into_bytes();
        mutate(&mut rng, &mut bytes);
        let Ok(mutated) = String::from_utf8(bytes) else {
            continue;
        };
        if ManifestFile::from_json(&mutated, Path::new("m.json")).is_ok() {
            assert!(serde_json::from_str::<serde_json::Value>(&mutated).is_ok());
        }
        assert_refused_or_same(&mutated, &m, &mutated);
    }

    // Install reports: a mutated report that still recovers to the device is the original.
    let device = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap();
    let signed = Report {
        chain_id: 31337,
        registry: v.target.registry,
        device_index: 12,
        release_id: v.release_id,
        version: 42,
        outcome: Outcome::Refused,
        detail: "image-hash".into(),
        block_number: 120,
        timestamp: 1_764_950_400,
        nonce: 7,
    }
    .sign(&device)
    .unwrap();
    let wire = signed.to_json().into_bytes();
    for _ in 0..1500 {
        let mut bytes = wire.clone();
        mutate(&mut rng, &mut bytes);
        if let Ok(r) = SignedReport::from_json(&bytes)
            && r.signer().ok() == Some(device.address())
        {
            assert_eq!(r, signed, "a changed report still recovers to the device");
        }
    }

    // Leaf lists: an accepted list is the original or has another Merkle root.
    let leaves: Vec<LeafEntry> = (0..3u8)
        .map(|i| {
            let k = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x60 + i)).unwrap();
            LeafEntry {
                position: u64::from(i),
                device: k.address(),
                model_id: 7,
                public_key: identity_public_key(&k).into(),
            }
        })
        .collect();
    let root = leaves_root(&leaves).unwrap();
    let list = serde_json::to_vec_pretty(&leaves).unwrap();
    for _ in 0..1500 {
        let mut bytes = list.clone();
        mutate(&mut rng, &mut bytes);
        if let Ok(parsed) = parse_leaves(&bytes) {
            assert!(
                parsed == leaves || leaves_root(&parsed).unwrap() != root,
                "a changed leaf list has the batch's root"
            );
        }
    }

    // device.toml: never panics; accepted files keep plain key file names.
    let (config, _) = device_config();
    let toml_text = config.to_toml().unwrap();
    for _ in 0..1500 {
        let mut bytes = toml_text.clone().into_bytes();
        mutate(&mut rng, &mut bytes);
        let Ok(mutated) = String::from_utf8(bytes) else {
            continue;
        };
        if let Ok(c) = DeviceConfig::parse(&mutated, Path::new(DEVICE_FILE)) {
            for name in [&c.identity_key_file, &c.cpabe_key_file] {
                assert!(
                    !name.is_empty() && !name.contains('/') && name != ".." && name != ".",
                    "{name:?}"
                );
            }
        }
    }
}
