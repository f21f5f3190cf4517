//! Peak memory of sealing and opening a bundle, for docs/benchmarks.md:
//! the image is generated on the fly (never held in memory), the bundle goes
//! to a file, and each run prints the process's peak RSS (`VmHWM`).
//!
//! ```sh
//! cargo run --release -p otaledger-core --example bundle_rss -- seal 1024 /tmp/b.bin
//! cargo run --release -p otaledger-core --example bundle_rss -- open /tmp/b.bin
//! ```

use std::io::{BufReader, BufWriter, Read};

use alloy::primitives::Address;
use otaledger_core::bundle::{
    BundleSpec, ReleaseTarget, SealOptions, default_policy, model_attribute, open,
    release_attribute, seal,
};
use otaledger_cpabe::keygen;
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

/// `len` bytes of a repeating pattern, produced as read.
struct Pattern {
    left: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The same authority in every run, so `open` can read what `seal` wrote.
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let (params, master) = otaledger_cpabe::setup(&mut rng);
    let target = ReleaseTarget {
        chain_id: 1,
        registry: Address::repeat_byte(1),
        model_id: 7,
        version: 1,
    };
    match args.get(1).map(String::as_str) {
        Some("seal") => {
            let mib: u64 = args[2].parse().expect("size in MiB");
            let len = mib * 1024 * 1024;
            let policy = default_policy(7, 1);
            let out = BufWriter::new(std::fs::File::create(&args[3]).expect("output file"));
            let spec = BundleSpec {
                target,
                policy: &policy,
                options: SealOptions::default(),
            };
            let started = std::time::Instant::now();
            let sealed =
                seal(&params, &spec, Pattern { left: len }, len, out, &mut rng).expect("seal");
            println!(
                "seal {mib} MiB: {:.2} s, bundle {} bytes, peak RSS {} KiB",
                started.elapsed().as_secs_f64(),
                sealed.bundle_len,
                peak_rss_kib()
            );
        }
        Some("open") => {
            let key = keygen(
                &master,
                &[model_attribute(7), release_attribute(7, 1)],
                &mut rng,
            )
            .expect("keygen");
            let file = BufReader::new(std::fs::File::open(&args[2]).expect("bundle file"));
            let started = std::time::Instant::now();
            let (_, opened) = open(file, &key, std::io::sink()).expect("open");
            println!(
                "open {} MiB: {:.2} s, peak RSS {} KiB",
                opened.image_len / (1024 * 1024),
                started.elapsed().as_secs_f64(),
                peak_rss_kib()
            );
        }
        _ => eprintln!("usage: bundle_rss seal <MiB> <bundle> | open <bundle>"),
    }
}
