//! Shared setup of the gateway and fetch benchmarks: a file of pseudo-random bytes written to
//! disk in 1 MiB pieces (never held in memory), imported (kubo-v1) into a temporary blockstore,
//! and one HTTP server on 127.0.0.1 that serves the store as a trustless gateway and the same
//! file as plain bytes at `/plain` (streamed from disk in 256 KiB reads).
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::routing::get;
use otaledger_ipfs::{Blockstore, Cid, ImportOptions, Profile, import_path};

/// A served fixture.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub store: Blockstore,
    pub root: Cid,
    pub size: u64,
    pub file: PathBuf,
    pub base: url::Url,
    /// A "gateway" that answers every `/ipfs/..` request with the CAR exported beforehand, sent
    /// as plain bytes from disk: the server does no more work than for `/plain`, so a fetch from
    /// it measures the client's side alone.
    pub precomputed: url::Url,
}

/// Parse `16M`, `1G`, `1048576`.
pub fn parse_size(s: &str) -> u64 {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 1 << 10),
        Some(b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().expect("size like 16M") * mul
}

/// Positional arguments. `cargo bench` passes `--bench`; without it (`cargo test
/// --all-targets` runs bench targets as tests) the arguments are `smoke` ones: a 1 MiB file
/// and one run, so CI checks the benchmark works without spending minutes in it.
pub fn args(smoke: &[&str]) -> Vec<String> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if !all.iter().any(|a| a == "--bench") {
        return smoke.iter().map(|s| (*s).to_owned()).collect();
    }
    all.into_iter().filter(|a| !a.starts_with("--")).collect()
}

fn write_file(path: &Path, size: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.into_inner().unwrap().sync_all().unwrap();
}

/// Build the fixture and start the server on the current runtime.
pub async fn setup(size: u64) -> Setup {
    let dir = match std::env::var_os("BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let file = dir.path().join("input.bin");
    write_file(&file, size);
    let store = Blockstore::open(dir.path().join("store")).unwrap();
    let imported = {
        let mut sink = &store;
        import_path(
            &file,
            &ImportOptions::profile(Profile::KuboV1),
            &mut sink,
            &mut |_| {},
        )
        .unwrap()
    };
    let car_file = dir.path().join("export.car");
    otaledger_ipfs::traverse::export_car(
        &store,
        &imported.root,
        otaledger_ipfs::traverse::DagScope::Entity,
        std::io::BufWriter::new(std::fs::File::create(&car_file).unwrap()),
    )
    .unwrap();
    let plain = file.clone();
    let app = otaledger_ipfs::router(store.clone())
        .route(
            "/plain",
            get(move || {
                let path = plain.clone();
                async move { Body::from_stream(file_stream(path)) }
            }),
        )
        .route(
            "/precomputed/ipfs/{cid}",
            get(move || {
                let path = car_file.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/vnd.ipld.car; version=1; order=dfs; dups=n",
                        )],
                        Body::from_stream(file_stream(path)),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Setup {
        dir,
        store,
        root: imported.root,
        size,
        file,
        base: format!("http://{addr}/").parse().unwrap(),
        precomputed: format!("http://{addr}/precomputed/").parse().unwrap(),
    }
}

fn file_stream(path: PathBuf) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(None::<tokio::fs::File>, move |state| {
        let path = path.clone();
        async move {
            let mut f = match state {
                Some(f) => f,
                None => tokio::fs::File::open(&path).await.ok()?,
            };
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

/// Peak resident set of this process (VmHWM), KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// MiB/s for `bytes` in `secs`.
pub fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs
}

/// CPU time (user + system) this process has used, seconds (from `/proc/self/stat`, 100 Hz ticks).
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU time of the calling thread, seconds (`/proc/thread-self/schedstat`, nanoseconds).
pub fn thread_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// Time all threads of this process have spent runnable but waiting for a core, seconds (sum
/// of the second field of `/proc/self/task/*/schedstat`; threads that ended are not counted).
pub fn runq_wait_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
    ns as f64 / 1e9
}
