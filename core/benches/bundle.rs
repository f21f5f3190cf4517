//! Bundle sealing and opening against the bare AEAD over the same bytes
//! (issue 13 §5): XChaCha20-Poly1305 over the same 64 KiB segments, with no
//! header, no CP-ABE, no hashing. Results: docs/benchmarks.md.
//!
//! `cargo bench -p otaledger-core --bench bundle`

use std::hint::black_box;

use alloy::primitives::Address;
use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otaledger_core::bundle::{
    BundleSpec, ContentKey, ReleaseTarget, SealOptions, StreamDecryptor, default_policy,
    model_attribute, read_header, release_attribute, seal,
};
use otaledger_cpabe::{keygen, rand_core::OsRng, setup};

const IMAGE: usize = 16 * 1024 * 1024;
const SEGMENT: usize = 64 * 1024;

fn benches(c: &mut Criterion) {
    let image: Vec<u8> = (0..IMAGE).map(|i| (i * 131 + i / 4093) as u8).collect();
    let (params, master) = setup(&mut OsRng);
    let device = keygen(
        &master,
        &[model_attribute(7), release_attribute(7, 1)],
        &mut OsRng,
    )
    .unwrap();
    let policy = default_policy(7, 1);
    let spec = BundleSpec {
        target: ReleaseTarget {
            chain_id: 1,
            registry: Address::repeat_byte(1),
            model_id: 7,
            version: 1,
        },
        policy: &policy,
        options: SealOptions {
            segment_size: SEGMENT as u32,
        },
    };
    let mut bundle = Vec::with_capacity(IMAGE + IMAGE / 64);
    seal(
        &params,
        &spec,
        &image[..],
        IMAGE as u64,
        &mut bundle,
        &mut OsRng,
    )
    .unwrap();

    let mut g = c.benchmark_group("bundle-16MiB");
    g.throughput(Throughput::Bytes(IMAGE as u64));
    g.sample_size(10);

    let aead = XChaCha20Poly1305::new(&[7u8; 32].into());
    let mut buf = Vec::with_capacity(SEGMENT + 16);
    g.bench_function("bare-aead-encrypt", |b| {
        b.iter(|| {
            for (i, chunk) in image.chunks(SEGMENT).enumerate() {
                buf.clear();
                buf.extend_from_slice(chunk);
                let mut nonce = [0u8; 24];
                nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
                aead.encrypt_in_place(&nonce.into(), b"", &mut buf).unwrap();
                black_box(&buf);
            }
        })
    });
    let sealed_segments: Vec<Vec<u8>> = image
        .chunks(SEGMENT)
        .enumerate()
        .map(|(i, chunk)| {
            let mut v = chunk.to_vec();
            let mut nonce = [0u8; 24];
            nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
            aead.encrypt_in_place(&nonce.into(), b"", &mut v).unwrap();
            v
        })
        .collect();
    g.bench_function("bare-aead-decrypt", |b| {
        b.iter(|| {
            for (i, seg) in sealed_segments.iter().enumerate() {
                buf.clear();
                buf.extend_from_slice(seg);
                let mut nonce = [0u8; 24];
                nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
                aead.decrypt_in_place(&nonce.into(), b"", &mut buf).unwrap();
                black_box(&buf);
            }
        })
    });
    // What sealing adds besides the AEAD: two SHA-256 passes (image and bundle; opening has one).
    g.bench_function("sha256", |b| {
        b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(black_box(&image)))
    });
    g.bench_function("bundle-seal", |b| {
        b.iter(|| {
            seal(
                &params,
                &spec,
                &image[..],
                IMAGE as u64,
                std::io::sink(),
                &mut OsRng,
            )
            .unwrap()
        })
    });
    // The push decryptor a device drives (one CP-ABE decapsulation per iteration, ~3 ms).
    let (header, rest) = read_header(&mut &bundle[..]).unwrap();
    let stream = &bundle[header.as_bytes().len()..];
    assert!(rest.len() <= stream.len());
    let open_stream = |threaded: bool| {
        let key = ContentKey::unlock(&header, &device).unwrap();
        let mut d = StreamDecryptor::new(&header, key);
        if threaded {
            d = d.hash_on_thread();
        }
        for piece in stream.chunks(256 * 1024) {
            d.update(piece, &mut |p| {
                black_box(p);
                Ok(())
            })
            .unwrap();
        }
        d.finish().unwrap()
    };
    g.bench_function("bundle-open-stream", |b| b.iter(|| open_stream(false)));
    // The same with the image hash on a second thread (what `open` and the device do on two
    // cores or more).
    g.bench_function("bundle-open-stream-hash-thread", |b| {
        b.iter(|| open_stream(true))
    });
    g.bench_function("bundle-open", |b| {
        b.iter(|| otaledger_core::bundle::open(&bundle[..], &device, std::io::sink()).unwrap())
    });
    g.finish();
}

criterion_group!(bundle, benches);
criterion_main!(bundle);
