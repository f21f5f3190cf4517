//! Verified fetch vs a plain HTTP download of the same bytes from the same local server.
//!
//! `cargo bench -p otaledger-ipfs --features server,client --bench fetch -- speed 256M 5`
//! alternates the two, `N` runs each, and prints the best wall time of each and their ratio
//! (target: fetch ≥ 0.8× plain). Both write to a file and fsync it. It also prints the on-CPU
//! time of one SHA-256 pass over the file: the verified fetch from our gateway does two (the
//! gateway checks every block it reads, the client verifies every block it receives), so
//! `plain CPU + 2 × sha256` is its floor, and half of that its best wall time on two free cores.
//!
//! `cargo bench -p otaledger-ipfs --features server,client --bench fetch -- rss 16M` fetches
//! once and prints the process's peak RSS (VmHWM; gateway and client in one process); compare
//! with `rss 1G`.

mod net_setup;

use std::io::Write;
use std::time::Instant;

use net_setup::{
    args, cpu_secs, mib_s, parse_size, peak_rss_kib, runq_wait_secs, setup, thread_cpu_secs,
};
use otaledger_ipfs::{FetchOptions, fetch};

fn main() {
    let args = args(&["speed", "1M", "1"]);
    let mode = args.first().map(String::as_str).unwrap_or("speed");
    let size = parse_size(args.get(1).map(String::as_str).unwrap_or("256M"));
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let s = setup(size).await;
        let out = s.dir.path().join("out.bin");
        let gateways = [s.base.clone()];
        match mode {
            "rss" => {
                let before = peak_rss_kib();
                let t = Instant::now();
                fetch(s.root, s.size, &gateways, &out, &FetchOptions::default()).await.unwrap();
                let secs = t.elapsed().as_secs_f64();
                println!(
                    "fetch {size} bytes: {secs:.2} s ({:.0} MiB/s); peak RSS before fetch {before} KiB, after {} KiB",
                    mib_s(size, secs),
                    peak_rss_kib()
                );
            }
            _ => {
                let client = reqwest::Client::new();
                let plain_url = s.base.join("plain").unwrap();
                let (mut best_fetch, mut best_plain) = (f64::MAX, f64::MAX);
                let (mut cpu_fetch, mut cpu_plain) = (f64::MAX, f64::MAX);
                let (mut best_client, mut cpu_client) = (f64::MAX, f64::MAX);
                // Time this process's threads were runnable but waiting for a core, in the
                // best-wall run of each (other processes on the machine, or our own threads).
                let (mut wait_fetch, mut wait_plain) = (0.0, 0.0);
                let precomputed = [s.precomputed.clone()];
                for _ in 0..runs {
                    let c = cpu_secs();
                    let t = Instant::now();
                    fetch(s.root, s.size, &precomputed, &out, &FetchOptions::default())
                        .await
                        .unwrap();
                    best_client = best_client.min(t.elapsed().as_secs_f64());
                    cpu_client = cpu_client.min(cpu_secs() - c);
                    std::fs::remove_file(&out).unwrap();

                    let c = cpu_secs();
                    let w = runq_wait_secs();
                    let t = Instant::now();
                    fetch(s.root, s.size, &gateways, &out, &FetchOptions::default()).await.unwrap();
                    let wall = t.elapsed().as_secs_f64();
                    if wall < best_fetch {
                        best_fetch = wall;
                        wait_fetch = runq_wait_secs() - w;
                    }
                    cpu_fetch = cpu_fetch.min(cpu_secs() - c);
                    std::fs::remove_file(&out).unwrap();

                    let c = cpu_secs();
                    let w = runq_wait_secs();
                    let t = Instant::now();
                    let mut resp = client.get(plain_url.clone()).send().await.unwrap();
                    let mut f = std::fs::File::create(&out).unwrap();
                    let mut n = 0u64;
                    while let Some(chunk) = resp.chunk().await.unwrap() {
                        f.write_all(&chunk).unwrap();
                        n += chunk.len() as u64;
                    }
                    f.sync_all().unwrap();
                    assert_eq!(n, s.size);
                    let wall = t.elapsed().as_secs_f64();
                    if wall < best_plain {
                        best_plain = wall;
                        wait_plain = runq_wait_secs() - w;
                    }
                    cpu_plain = cpu_plain.min(cpu_secs() - c);
                    std::fs::remove_file(&out).unwrap();
                }
                let sha = sha256_cpu(&s.file, runs);
                println!(
                    "one SHA-256 pass over the file (page cache, 256 KiB reads, this thread's CPU, best): {sha:.3} s ({:.0} MiB/s)",
                    mib_s(size, sha)
                );
                println!(
                    "process CPU (gateway + client, best): verified fetch {cpu_fetch:.2} s, plain HTTP {cpu_plain:.2} s, fetch of a precomputed CAR {cpu_client:.2} s"
                );
                println!(
                    "waiting for a core (runnable, all threads) in the best run: verified fetch {wait_fetch:.3} s, plain HTTP {wait_plain:.3} s"
                );
                println!(
                    "verified fetch of the precomputed CAR (server sends a file, as for plain): {best_client:.3} s ({:.0} MiB/s), ratio {:.2}x",
                    mib_s(size, best_client),
                    best_plain / best_client
                );
                println!(
                    "{size} bytes, best of {runs}: verified fetch {best_fetch:.3} s ({:.0} MiB/s), plain HTTP {best_plain:.3} s ({:.0} MiB/s), ratio {:.2}x",
                    mib_s(size, best_fetch),
                    mib_s(size, best_plain),
                    best_plain / best_fetch
                );
            }
        }
    });
}

/// Best on-CPU time of reading `path` (page cache warm) and hashing it with SHA-256 in 256 KiB
/// pieces, as the gateway and the client each do once per byte.
fn sha256_cpu(path: &std::path::Path, runs: usize) -> f64 {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut best = f64::MAX;
    let mut buf = vec![0u8; 256 * 1024];
    for _ in 0..runs {
        let c = thread_cpu_secs();
        let mut f = std::fs::File::open(path).unwrap();
        let mut h = Sha256::new();
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        std::hint::black_box(h.finalize());
        best = best.min(thread_cpu_secs() - c);
    }
    best
}
