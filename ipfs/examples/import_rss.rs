//! Peak memory of an import: writes SIZE deterministic bytes to a temporary file (streaming),
//! imports it with the kubo-v1 profile into a blockstore (or `--only-hash`), and prints the CID
//! and the process's peak resident set size (`VmHWM` from `/proc/self/status`).
//!
//! `cargo run --release -p otaledger-ipfs --example import_rss -- 16M [--only-hash]`

use std::{
    fs::File,
    io::{BufWriter, Write},
};

use otaledger_ipfs::{Blockstore, ImportOptions, NullSink, Profile, import_path};

fn parse_size(s: &str) -> u64 {
    let (num, mult) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().expect("size like 16M or 1G") * mult
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = parse_size(args.first().map_or("16M", String::as_str));
    let only_hash = args.iter().any(|a| a == "--only-hash");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("input");
    {
        let mut w = BufWriter::new(File::create(&path).expect("create input"));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            for chunk in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            let n = left.min(buf.len() as u64) as usize;
            w.write_all(&buf[..n]).expect("write input");
            left -= n as u64;
        }
        w.flush().expect("flush input");
    }
    let before = vm_hwm_kib();
    let opts = ImportOptions::profile(Profile::KuboV1);
    let imported = if only_hash {
        import_path(&path, &opts, &mut NullSink, &mut |_| {})
    } else {
        let store = Blockstore::open(dir.path().join("store")).expect("open store");
        import_path(&path, &opts, &mut &store, &mut |_| {})
    }
    .expect("import");
    println!(
        "size={size} cid={} blocks={} vm_hwm_kib={} (before import: {before})",
        imported.root,
        imported.blocks,
        vm_hwm_kib()
    );
}
