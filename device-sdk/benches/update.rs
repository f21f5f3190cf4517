//! A whole update, end to end, and its memory. One process builds the update world of the suite
//! (`tests/suite/fleet.rs`: a real anvil with the real contracts, the real gateway over a block
//! store, a key service, a CP-ABE authority), publishes and buys a release of the given size and
//! issues the device its key; then the device's updater (`Updater::run_once`, steps 0–9: head,
//! proofs, policy, signatures, key, verified download from the gateway, decryption into the
//! inactive slot, A/B install with its health check) runs in a child process (this binary with
//! `--child`), so its peak RSS (VmHWM) is the updater's alone.
//!
//! - `cargo bench -p otaledger-device-sdk --bench update -- speed 64M 3`: the update's wall time
//!   (best of 3, each a fresh device directory) against two baselines over the same bundle, best
//!   of 3 each: (a) in memory, SHA-256 of the bundle + CP-ABE unlock + AEAD decryption with the
//!   image's SHA-256 (what the issue compares with); (b) a plain HTTP download of the bundle from
//!   a local server (one `GET`, no verification) + SHA-256.
//! - `cargo bench -p otaledger-device-sdk --bench update -- rss 16M 1G`: one update per size
//!   (each a newer release, a fresh device directory), the child's peak RSS.
//!
//! Under `cargo test --benches` (no `--bench` argument) it runs one 256 KiB update and both
//! baselines once, as a smoke test.

use std::{io::Write, path::Path, process::Command, time::Instant};

use otaledger_core::bundle::{ContentKey, StreamDecryptor, read_header};
use otaledger_device_sdk::client::Updater;
use sha2::Digest;

#[path = "../tests/suite/common.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod common;
#[path = "../tests/suite/fleet.rs"]
#[allow(dead_code, unused_imports)]
mod fleet;

/// What a child reports (one JSON line on stdout).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ChildReport {
    outcome: String,
    secs: f64,
    cpu_secs: f64,
    rss_before_kib: u64,
    peak_rss_kib: u64,
    /// CPU of the parent (the gateway serving the child) during the run; set by the parent.
    #[serde(default)]
    gateway_cpu_secs: f64,
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) of this process, seconds (`/proc/self/stat`, 100 Hz ticks).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    (tick(11) + tick(12)) / 100.0
}

/// The child: one `run_once` over the spec's directory, on the reference client's runtime
/// (tokio multi-thread, as `otaledger device run`).
fn child(spec_path: &str) {
    let spec: fleet::ChildSpec =
        serde_json::from_slice(&std::fs::read(spec_path).unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut updater = Updater::new(spec.parts());
    let rss_before_kib = status_kib("VmHWM:");
    let (cpu0, t) = (cpu_secs(), Instant::now());
    // `OTALEDGER_BENCH_PHASES=1`: each step's event with the time since the start, on stderr.
    if std::env::var_os("OTALEDGER_BENCH_PHASES").is_some() {
        updater = updater.with_observer(move |e| {
            eprintln!(
                "  {:7.1} ms  {}: {}",
                t.elapsed().as_secs_f64() * 1000.0,
                e.step,
                e.message
            );
        });
    }
    let outcome = rt.block_on(updater.run_once());
    let secs = t.elapsed().as_secs_f64();
    let report = ChildReport {
        outcome: format!("{outcome:?}"),
        secs,
        cpu_secs: cpu_secs() - cpu0,
        rss_before_kib,
        peak_rss_kib: status_kib("VmHWM:"),
        gateway_cpu_secs: 0.0,
    };
    println!("{}", serde_json::to_string(&report).unwrap());
}

/// Runs one update of devices[0] in a fresh directory under `root`, in a child process.
async fn update(f: &fleet::Fleet, root: &Path, run: usize) -> ChildReport {
    let dir = root.join(format!("device-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = f.child_spec(&dir);
    let spec_path = root.join(format!("device-{run}.json"));
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    // This process's CPU while the child runs: the gateway serving it (and the key service).
    let parent_cpu0 = cpu_secs();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(std::env::current_exe().unwrap())
            .arg("--child")
            .arg(&spec_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::env::var_os("OTALEDGER_BENCH_PHASES").is_some() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let parent_cpu = cpu_secs() - parent_cpu0;
    let mut report: ChildReport = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "child printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(report.outcome.starts_with("Ok(Updated"), "{report:?}");
    report.gateway_cpu_secs = parent_cpu;
    // The run removed its download; the slot holds the image (checked by the health check).
    std::fs::remove_dir_all(&dir).unwrap();
    report
}

/// Baseline (a): SHA-256 of the bundle, CP-ABE unlock, AEAD decryption segment by segment and
/// the image's SHA-256, all in memory. Returns the seconds taken.
fn in_memory(bundle: &[u8], key: &otaledger_cpabe::SecretKey, image_sha256: [u8; 32]) -> f64 {
    let t = Instant::now();
    let bundle_sha = sha2::Sha256::digest(bundle);
    let mut reader = bundle;
    let (header, rest) = read_header(&mut reader).unwrap();
    let mut decryptor = StreamDecryptor::new(&header, ContentKey::unlock(&header, key).unwrap());
    let mut sink = |plain: &[u8]| -> otaledger_core::Result<()> {
        std::hint::black_box(plain);
        Ok(())
    };
    decryptor.update(&rest, &mut sink).unwrap();
    decryptor.update(reader, &mut sink).unwrap();
    let opened = decryptor.finish().unwrap();
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(bundle_sha);
    assert_eq!(opened.image_sha256.0, image_sha256);
    secs
}

/// Baseline (b): one plain `GET` of the bundle from a local HTTP server, hashed as it arrives.
async fn plain_download(url: &url::Url, bundle_sha256: [u8; 32]) -> f64 {
    let client = reqwest::Client::new();
    let t = Instant::now();
    let mut resp = client.get(url.clone()).send().await.unwrap();
    let mut hasher = sha2::Sha256::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        hasher.update(&chunk);
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(<[u8; 32]>::from(hasher.finalize()), bundle_sha256);
    secs
}

fn parse_size(s: &str) -> usize {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: usize = n
        .parse()
        .unwrap_or_else(|_| panic!("size {s:?}: e.g. 64M, 1G"));
    n * match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => panic!("size {s:?}: unit K, M or G"),
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

async fn speed(size: usize, runs: usize) {
    let f = fleet::Fleet::new().await;
    let t = Instant::now();
    let release = f.publish(1, size).await;
    f.issue(release.release_id, release.release_id);
    println!(
        "published a {:.1} MiB image ({} byte bundle) in {:.1} s",
        mib(size),
        release.bundle.len(),
        t.elapsed().as_secs_f64()
    );
    let root = tempfile::tempdir().unwrap();
    let key = f.secret_key(1);
    let image_sha: [u8; 32] = sha2::Sha256::digest(&release.image).into();
    let bundle_sha: [u8; 32] = sha2::Sha256::digest(&release.bundle).into();
    let body = axum::body::Bytes::from(release.bundle.clone());
    let plain = fleet::serve(axum::Router::new().route(
        "/bundle",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    ))
    .await
    .join("bundle")
    .unwrap();

    let mut best_update: Option<ChildReport> = None;
    let (mut best_mem, mut best_plain) = (f64::MAX, f64::MAX);
    for run in 0..runs {
        let r = update(&f, root.path(), run).await;
        println!(
            "run {run}: update {:.2} s (child CPU {:.2} s, gateway CPU {:.2} s, peak RSS {} KiB); ",
            r.secs, r.cpu_secs, r.gateway_cpu_secs, r.peak_rss_kib
        );
        if best_update.as_ref().is_none_or(|b| r.secs < b.secs) {
            best_update = Some(r);
        }
        let m = in_memory(&release.bundle, &key, image_sha);
        let p = plain_download(&plain, bundle_sha).await;
        println!("run {run}: in memory {m:.2} s, plain download + sha256 {p:.2} s");
        best_mem = best_mem.min(m);
        best_plain = best_plain.min(p);
    }
    let u = best_update.unwrap();
    println!(
        "image {:.1} MiB, best of {runs}: update {:.2} s ({:.0} MiB/s of bundle, child CPU {:.2} s, gateway CPU {:.2} s, peak RSS {} KiB); \
         (a) sha256 + unlock + AEAD in memory {best_mem:.2} s → ratio {:.2}; \
         (b) plain download + sha256 {best_plain:.2} s → ratio {:.2}",
        mib(size),
        u.secs,
        mib(release.bundle.len()) / u.secs,
        u.cpu_secs,
        u.gateway_cpu_secs,
        u.peak_rss_kib,
        best_mem / u.secs,
        best_plain / u.secs,
    );
}

async fn rss(sizes: &[usize]) {
    let f = fleet::Fleet::new().await;
    let root = tempfile::tempdir().unwrap();
    for (i, &size) in sizes.iter().enumerate() {
        // Each size a newer release: a fresh device installs the model's latest.
        let version = i as u64 + 1;
        let release = f.publish(version, size).await;
        f.issue(release.release_id, release.release_id);
        drop(release);
        let r = update(&f, root.path(), i).await;
        println!(
            "image {:.0} MiB: update {:.2} s, child CPU {:.2} s, peak RSS {} KiB ({:.1} MiB; {} KiB before the update)",
            mib(size),
            r.secs,
            r.cpu_secs,
            r.peak_rss_kib,
            r.peak_rss_kib as f64 / 1024.0,
            r.rss_before_kib
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1]);
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a smoke size.
    let benching = args.iter().any(|a| a == "--bench");
    let rest: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    rt.block_on(async {
        if !benching {
            speed(256 << 10, 1).await;
            return;
        }
        match rest.first().copied().unwrap_or("speed") {
            "speed" => {
                let size = parse_size(rest.get(1).copied().unwrap_or("64M"));
                let runs = rest.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
                speed(size, runs).await;
            }
            "rss" => {
                let sizes: Vec<usize> = if rest.len() > 1 {
                    rest[1..].iter().map(|s| parse_size(s)).collect()
                } else {
                    vec![16 << 20, 256 << 20]
                };
                rss(&sizes).await;
            }
            other => panic!("unknown mode {other:?}: speed [SIZE [RUNS]] | rss SIZE…"),
        }
    });
    let _ = std::io::stdout().flush();
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
