//! Verified fetch vs a plain HTTP download of the same bytes from the same local server.
//!
//! `cargo bench -p otaledger-ipfs --features server,client --bench fetch -- speed 256M 5`
//! alternates the two, `N` runs each, and prints the best wall time of each and their ratio
//! (target: fetch ≥ 0.8× plain). Both write to a file and fsync it.
//!
//! `cargo bench -p otaledger-ipfs --features server,client --bench fetch -- rss 16M` fetches
//! once and prints the process's peak RSS (VmHWM; gateway and client in one process); compare
//! with `rss 1G`.

mod net_setup;

use std::io::Write;
use std::time::Instant;

use net_setup::{args, cpu_secs, mib_s, parse_size, peak_rss_kib, setup};
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
                    let t = Instant::now();
                    fetch(s.root, s.size, &gateways, &out, &FetchOptions::default()).await.unwrap();
                    best_fetch = best_fetch.min(t.elapsed().as_secs_f64());
                    cpu_fetch = cpu_fetch.min(cpu_secs() - c);
                    std::fs::remove_file(&out).unwrap();

                    let c = cpu_secs();
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
                    best_plain = best_plain.min(t.elapsed().as_secs_f64());
                    cpu_plain = cpu_plain.min(cpu_secs() - c);
                    std::fs::remove_file(&out).unwrap();
                }
                println!(
                    "process CPU (gateway + client, best): verified fetch {cpu_fetch:.2} s, plain HTTP {cpu_plain:.2} s, fetch of a precomputed CAR {cpu_client:.2} s"
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
