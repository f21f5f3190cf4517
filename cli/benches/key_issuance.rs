//! Key-service issuance throughput: keys per second for the whole CPU work of
//! one issuance — FAME keygen for `model:<M>`, `release:<M>/<V>` and one more
//! static attribute, ECIES to the device's identity key, the key-service
//! signature, the delivery encoding and its CID (`keys serve` does exactly
//! this per purchase, [`otaledger_cli::keys::seal_key`]).
//!
//! `cargo bench -p otaledger-cli --bench key_issuance [-- SECONDS]`: runs
//! one thread, then as many threads as cores, for SECONDS each (default 5),
//! and prints keys/s for both.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use otaledger_cli::keys::{key_attributes, seal_key};
use otaledger_core::key_delivery::identity_public_key;
use otaledger_cpabe::{rand_core::OsRng, setup};
use otaledger_ipfs::{ImportOptions, NullSink, Profile, import};

fn run(threads: usize, seconds: f64) -> f64 {
    let (_, master) = setup(&mut OsRng);
    let master = Arc::new(master);
    let signer = Arc::new(PrivateKeySigner::random());
    let devices: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..64)
            .map(|_| identity_public_key(&PrivateKeySigner::random()))
            .collect(),
    );
    let attributes = Arc::new(key_attributes(7, 3, &["region:eu".to_owned()]));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (master, signer, devices, attributes, stop, done) = (
                master.clone(),
                signer.clone(),
                devices.clone(),
                attributes.clone(),
                stop.clone(),
                done.clone(),
            );
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let delivery = seal_key(
                        &master,
                        &signer,
                        31337,
                        Address::repeat_byte(0x11),
                        B256::repeat_byte(i as u8),
                        &devices[i % devices.len()],
                        &attributes,
                    )
                    .expect("issuing");
                    import(
                        &delivery[..],
                        &ImportOptions::profile(Profile::KuboV1),
                        &mut NullSink,
                        &mut |_| {},
                    )
                    .expect("hashing");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += threads;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("worker");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; a number is the seconds per run.
    let seconds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(5.0);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let one = run(1, seconds);
    println!("key issuance, 1 thread: {one:.0} keys/s");
    if cores > 1 {
        let all = run(cores, seconds);
        println!(
            "key issuance, {cores} threads: {all:.0} keys/s ({:.2}x one thread)",
            all / one
        );
    }
}
