//! CID computation (kubo-v1, only-hash) versus plain sha256 of the same bytes, on one core.
//!
//! Run: `cargo bench -p otaledger-ipfs --bench import`. The input size defaults to 256 MiB and
//! can be lowered with `IPFS_BENCH_MIB` for a quick look. Wall-clock times suffer on a loaded
//! machine; `examples/cid_speed.rs` reports on-CPU time as well.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otaledger_ipfs::{ImportOptions, NullSink, Profile, import, import_with_threads};
use sha2::{Digest, Sha256};

fn input() -> Vec<u8> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs each benchmark once as a
    // smoke test, for which 1 MiB is enough.
    let benching = std::env::args().any(|a| a == "--bench");
    let mib: usize = std::env::var("IPFS_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 256 } else { 1 });
    // Deterministic, incompressible-looking bytes (xorshift).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut v = vec![0u8; mib * 1024 * 1024];
    for chunk in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    v
}

fn bench(c: &mut Criterion) {
    let data = input();
    let mut g = c.benchmark_group("cid_vs_sha256");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("sha256", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&data))))
    });
    g.bench_function("cid_kubo_v1_only_hash", |b| {
        b.iter(|| {
            import(
                black_box(&data[..]),
                &ImportOptions::profile(Profile::KuboV1),
                &mut NullSink,
                &mut |_| {},
            )
            .unwrap()
            .root
        })
    });
    g.bench_function("cid_unixfs_v1_2025_only_hash", |b| {
        b.iter(|| {
            import(
                black_box(&data[..]),
                &ImportOptions::profile(Profile::UnixfsV1_2025),
                &mut NullSink,
                &mut |_| {},
            )
            .unwrap()
            .root
        })
    });
    g.bench_function("cid_kubo_v1_only_hash_2_threads", |b| {
        b.iter(|| {
            import_with_threads(
                black_box(&data[..]),
                &ImportOptions::profile(Profile::KuboV1),
                &mut NullSink,
                &mut |_| {},
                2,
            )
            .unwrap()
            .root
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
