//! FAME (this crate) side by side with rabe 0.4.2's AC17 and BSW07 in one run:
//! setup; keygen with 5 and 20 attributes; encapsulate / decapsulate for AND
//! and OR policies of 2, 5, 10 and 20 attributes; the key derivation alone
//! (encoding the capsule and HKDF over it, part of every decapsulation).
//! Prints capsule and key sizes first. Run: `cargo bench -p otaledger-cpabe --bench cpabe -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use otaledger_cpabe::hazmat::{blinding_factor, derive_key};
use otaledger_cpabe::{Policy, decapsulate, encapsulate, keygen, setup};
use rabe::schemes::{ac17, bsw};
use rabe::utils::policy::pest::PolicyLanguage;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const SIZES: [usize; 4] = [2, 5, 10, 20];
const PLAINTEXT: [u8; 32] = [0x42; 32];

fn attrs(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("attr{i}")).collect()
}

/// `"a0" op ("a1" op (...))`: rabe's AC17 panics on an AND of more than two
/// children, so its policies are nested binary gates (ours take the same text).
fn policy_text(n: usize, op: &str) -> String {
    let names = attrs(n);
    let mut text = format!("\"{}\"", names[n - 1]);
    for name in names[..n - 1].iter().rev() {
        text = format!("\"{name}\" {op} ({text})");
    }
    text
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([11; 32])
}

/// rabe's AC17 capsule at its most compact (BN254 compressed: G1 32, G2 64, GT 384
/// bytes), plus its AES-GCM wrap of a 32-byte key (12 + 32 + 16), policy text and row labels.
fn rabe_ac17_capsule_size(ct: &ac17::Ac17CpCiphertext) -> usize {
    3 * 64
        + ct.ct
            .c
            .iter()
            .map(|(a, g)| a.len() + 32 * g.len())
            .sum::<usize>()
        + 384
        + ct.ct.ct.len()
        + ct.policy.0.len()
}

fn rabe_ac17_key_size(sk: &ac17::Ac17CpSecretKey) -> usize {
    3 * 64
        + 3 * 32
        + sk.sk
            .k
            .iter()
            .map(|(a, g)| a.len() + 32 * g.len())
            .sum::<usize>()
}

fn print_sizes() {
    let mut rng = rng();
    let (pk, msk) = setup(&mut rng);
    let (rpk, rmsk) = ac17::setup();
    println!("\nsizes in bytes (ours: exact encoding; rabe AC17: compressed lower bound)");
    println!(
        "| policy | ours capsule | rabe AC17 capsule | ratio | ours key (n attrs) | rabe AC17 key |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for op in ["and", "or"] {
        for n in SIZES {
            let text = policy_text(n, op);
            let (capsule, _) =
                encapsulate(&pk, &Policy::parse(&text).unwrap(), b"", &mut rng).unwrap();
            let ct =
                ac17::cp_encrypt(&rpk, &text, &PLAINTEXT, PolicyLanguage::HumanPolicy).unwrap();
            let names = attrs(n);
            let sk = keygen(&msk, &names, &mut rng).unwrap();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let rsk = ac17::cp_keygen(&rmsk, &refs).unwrap();
            let (ours, theirs) = (capsule.to_bytes().len(), rabe_ac17_capsule_size(&ct));
            println!(
                "| {op} {n} | {ours} | {theirs} | {:.2} | {} | {} |",
                ours as f64 / theirs as f64,
                sk.to_bytes().len(),
                rabe_ac17_key_size(&rsk)
            );
        }
    }
    println!(
        "public key: {} bytes; master key: {} bytes\n",
        pk.to_bytes().len(),
        msk.to_bytes().len()
    );
}

fn bench_setup(c: &mut Criterion) {
    print_sizes();
    let mut g = c.benchmark_group("setup");
    g.sample_size(10);
    let mut r = rng();
    g.bench_function("fame", |b| b.iter(|| setup(&mut r)));
    g.bench_function("rabe-ac17", |b| b.iter(ac17::setup));
    g.bench_function("rabe-bsw07", |b| b.iter(bsw::setup));
    g.finish();
}

fn bench_keygen(c: &mut Criterion) {
    let mut g = c.benchmark_group("keygen");
    g.sample_size(10);
    let mut r = rng();
    let (_, msk) = setup(&mut r);
    let (_, amsk) = ac17::setup();
    let (bpk, bmsk) = bsw::setup();
    for n in [5, 20] {
        let names = attrs(n);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        g.bench_with_input(BenchmarkId::new("fame", n), &n, |b, _| {
            b.iter(|| keygen(&msk, &refs, &mut r).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("rabe-ac17", n), &n, |b, _| {
            b.iter(|| ac17::cp_keygen(&amsk, &refs).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("rabe-bsw07", n), &n, |b, _| {
            b.iter(|| bsw::keygen(&bpk, &bmsk, &refs).unwrap())
        });
    }
    g.finish();
}

fn bench_encapsulate_decapsulate(c: &mut Criterion) {
    let mut r = rng();
    let (pk, msk) = setup(&mut r);
    let (apk, amsk) = ac17::setup();
    let (bpk, bmsk) = bsw::setup();
    for op in ["and", "or"] {
        let mut enc = c.benchmark_group(format!("encapsulate-{op}"));
        enc.sample_size(10);
        for n in SIZES {
            let text = policy_text(n, op);
            let policy = Policy::parse(&text).unwrap();
            enc.bench_with_input(BenchmarkId::new("fame", n), &n, |b, _| {
                b.iter(|| encapsulate(&pk, &policy, b"ctx", &mut r).unwrap())
            });
            enc.bench_with_input(BenchmarkId::new("rabe-ac17", n), &n, |b, _| {
                b.iter(|| {
                    ac17::cp_encrypt(&apk, &text, &PLAINTEXT, PolicyLanguage::HumanPolicy).unwrap()
                })
            });
            enc.bench_with_input(BenchmarkId::new("rabe-bsw07", n), &n, |b, _| {
                b.iter(|| {
                    bsw::encrypt(&bpk, &text, PolicyLanguage::HumanPolicy, &PLAINTEXT).unwrap()
                })
            });
        }
        enc.finish();

        let mut dec = c.benchmark_group(format!("decapsulate-{op}"));
        dec.sample_size(10);
        for n in SIZES {
            let text = policy_text(n, op);
            let names = attrs(n);
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let (capsule, key) =
                encapsulate(&pk, &Policy::parse(&text).unwrap(), b"ctx", &mut r).unwrap();
            let sk = keygen(&msk, &refs, &mut r).unwrap();
            assert_eq!(decapsulate(&sk, &capsule, b"ctx").unwrap(), key);
            let act =
                ac17::cp_encrypt(&apk, &text, &PLAINTEXT, PolicyLanguage::HumanPolicy).unwrap();
            let ask = ac17::cp_keygen(&amsk, &refs).unwrap();
            assert_eq!(ac17::cp_decrypt(&ask, &act).unwrap(), PLAINTEXT);
            let bct = bsw::encrypt(&bpk, &text, PolicyLanguage::HumanPolicy, &PLAINTEXT).unwrap();
            let bsk = bsw::keygen(&bpk, &bmsk, &refs).unwrap();
            assert_eq!(bsw::decrypt(&bsk, &bct).unwrap(), PLAINTEXT);
            dec.bench_with_input(BenchmarkId::new("fame", n), &n, |b, _| {
                b.iter(|| decapsulate(black_box(&sk), black_box(&capsule), b"ctx").unwrap())
            });
            dec.bench_with_input(BenchmarkId::new("rabe-ac17", n), &n, |b, _| {
                b.iter(|| ac17::cp_decrypt(black_box(&ask), black_box(&act)).unwrap())
            });
            dec.bench_with_input(BenchmarkId::new("rabe-bsw07", n), &n, |b, _| {
                b.iter(|| bsw::decrypt(black_box(&bsk), black_box(&bct)).unwrap())
            });
        }
        dec.finish();
    }
}

/// The KDF step of decapsulation: it encodes the whole capsule and runs HKDF
/// over it (key derivation version 2), so its cost grows with the rows.
fn bench_key_derivation(c: &mut Criterion) {
    let mut r = rng();
    let (pk, msk) = setup(&mut r);
    let mut g = c.benchmark_group("derive-key-and");
    for n in SIZES {
        let names = attrs(n);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let policy = Policy::parse(&policy_text(n, "and")).unwrap();
        let (capsule, key) = encapsulate(&pk, &policy, b"ctx", &mut r).unwrap();
        let sk = keygen(&msk, &refs, &mut r).unwrap();
        let z = blinding_factor(&sk, &capsule).unwrap();
        assert_eq!(derive_key(&z, &capsule, b"ctx").unwrap(), key);
        g.bench_with_input(BenchmarkId::new("fame", n), &n, |b, _| {
            b.iter(|| derive_key(black_box(&z), black_box(&capsule), b"ctx").unwrap())
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_setup,
    bench_keygen,
    bench_encapsulate_decapsulate,
    bench_key_derivation
);
criterion_main!(benches);
