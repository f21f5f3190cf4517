//! CID computation (only-hash) versus plain sha256 of the same in-memory bytes, on one core,
//! robust to a loaded machine: runs alternate, and each reports the minimum over the runs of
//! wall time and of the thread's on-CPU time (`/proc/thread-self/schedstat`).
//!
//! `cargo run --release -p otaledger-ipfs --example cid_speed -- [MIB=256] [RUNS=7]`

use std::{hint::black_box, time::Instant};

use otaledger_ipfs::{ImportOptions, NullSink, Profile, import, import_with_threads};
use sha2::{Digest, Sha256};

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn measure(f: &mut dyn FnMut()) -> (f64, f64) {
    let (c0, t0) = (cpu_ns(), Instant::now());
    f();
    let wall = t0.elapsed().as_secs_f64();
    (wall, (cpu_ns() - c0) as f64 / 1e9)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let mib = args.first().copied().unwrap_or(256);
    let runs = args.get(1).copied().unwrap_or(7);
    let mut data = vec![0u8; mib << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let cid = |p: Profile| {
        import(
            &data[..],
            &ImportOptions::profile(p),
            &mut NullSink,
            &mut |_| {},
        )
        .expect("import")
        .root
    };
    let cid2 = || {
        let opts = ImportOptions::profile(Profile::KuboV1);
        import_with_threads(&data[..], &opts, &mut NullSink, &mut |_| {}, 2)
            .expect("import")
            .root
    };
    let mut best = [(f64::MAX, f64::MAX); 4];
    for _ in 0..runs {
        let results = [
            measure(&mut || {
                black_box(Sha256::digest(black_box(&data)));
            }),
            measure(&mut || {
                black_box(cid(Profile::KuboV1));
            }),
            measure(&mut || {
                black_box(cid(Profile::UnixfsV1_2025));
            }),
            measure(&mut || {
                black_box(cid2());
            }),
        ];
        for (b, r) in best.iter_mut().zip(results) {
            b.0 = b.0.min(r.0);
            b.1 = b.1.min(r.1);
        }
    }
    // The CPU column of the two-thread run counts only the calling thread: compare wall times.
    let names = [
        "sha256",
        "cid kubo-v1",
        "cid unixfs-v1-2025",
        "cid kubo-v1 2 threads",
    ];
    println!("{mib} MiB, best of {runs} alternating runs");
    for (name, (wall, cpu)) in names.iter().zip(best) {
        println!(
            "{name:22} wall {wall:.3} s ({:.0} MiB/s)  cpu {cpu:.3} s ({:.0} MiB/s)  speed vs sha256: wall {:.2}x cpu {:.2}x",
            mib as f64 / wall,
            mib as f64 / cpu,
            best[0].0 / wall,
            best[0].1 / cpu
        );
    }
    assert_eq!(cid(Profile::KuboV1), cid2());
    println!("cid {}", cid(Profile::KuboV1));
}
