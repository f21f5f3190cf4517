//! Freed heap memory holds no copy of a key's encoding after `to_bytes` or
//! serde (in either direction, on success and on error), nor of the shared
//! key or the compressed blinding factor after encapsulation and decapsulation.
//!
//! This binary installs a global allocator that, while armed, scans every
//! block being freed (and every block a reallocation leaves behind) for a
//! secret byte string: 32 bytes of the master key's `a1` or of a secret key's
//! compressed `sk'_1`, as they appear in the encodings. In memory, scalars
//! and points live in another form (Montgomery, affine coordinates), so only
//! encodings can match. A control checks that the scanner finds an unwiped
//! copy. One test function, as the scan counts every thread's frees.
//!
//! Before the fix this found the outgrown buffers of the encoder and of
//! `hex::decode`, the encoding freed by `Serialize`, and the partial output
//! of `hex::decode` on a bad digit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};

use otaledger_cpabe::hazmat::{blinding_factor, blstrs::Compress};
use otaledger_cpabe::{MasterKey, Policy, SecretKey, decapsulate, encapsulate, keygen, setup};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Deserialize;
use serde::de::value::{Error as DeError, SeqDeserializer};

static ARMED: AtomicBool = AtomicBool::new(false);
static NEEDLE: [AtomicU8; 32] = [const { AtomicU8::new(0) }; 32];
static HITS: AtomicUsize = AtomicUsize::new(0);

struct Scanning;

/// Whether the `len` bytes at `p` contain the needle (volatile reads: the
/// block is about to be freed and may hold bytes never written).
unsafe fn contains_needle(p: *const u8, len: usize) -> bool {
    let needle: [u8; 32] = core::array::from_fn(|i| NEEDLE[i].load(SeqCst));
    (0..=len.saturating_sub(32))
        .take_while(|_| len >= 32)
        .any(|start| (0..32).all(|i| unsafe { p.add(start + i).read_volatile() } == needle[i]))
}

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    // `realloc` is the trait's default: alloc, copy, then this `dealloc` of
    // the old block, so outgrown buffers are scanned too.
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if ARMED.load(SeqCst) && unsafe { contains_needle(p, layout.size()) } {
            HITS.fetch_add(1, SeqCst);
        }
        unsafe { System.dealloc(p, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

/// Runs `f` with the scanner armed and returns how many freed blocks held the needle.
fn residue(f: impl FnOnce()) -> usize {
    HITS.store(0, SeqCst);
    ARMED.store(true, SeqCst);
    f();
    ARMED.store(false, SeqCst);
    HITS.load(SeqCst)
}

fn set_needle(bytes: &[u8]) {
    for (slot, b) in NEEDLE.iter().zip(bytes) {
        slot.store(*b, SeqCst);
    }
}

#[test]
fn encoding_and_serde_of_keys_leave_no_copy_in_freed_memory() {
    let mut rng = ChaCha20Rng::from_seed([41; 32]);
    let (pk, msk) = setup(&mut rng);
    let encoding = zeroize::Zeroizing::new(msk.to_bytes());
    set_needle(&encoding[4..36]);

    // Control: an unwiped heap copy of the needle is found.
    assert_eq!(residue(|| drop(encoding[4..36].to_vec())), 1);

    let json = serde_json::to_string(&msk).unwrap();
    let hex = json.trim_matches('"').to_owned();
    assert_eq!(
        residue(|| drop(serde_json::to_string(&msk).unwrap())),
        0,
        "serialize"
    );
    assert_eq!(
        residue(|| {
            let back: MasterKey = serde_json::from_str(&json).unwrap();
            let again = zeroize::Zeroizing::new(back.to_bytes());
            assert_eq!(*again, *encoding, "round trip");
        }),
        0,
        "deserialize from hex"
    );
    // Errors after the secret part was decoded: a bad last digit, a cut.
    let bad_digit = format!("\"{}x\"", &hex[..hex.len() - 1]);
    let cut = format!("\"{}\"", &hex[..hex.len() - 2]);
    for text in [bad_digit, cut] {
        assert_eq!(
            residue(|| assert!(serde_json::from_str::<MasterKey>(&text).is_err())),
            0,
            "failed hex decode"
        );
    }
    // A byte sequence of unknown length (grows its buffer).
    assert_eq!(
        residue(|| {
            let seq = SeqDeserializer::<_, DeError>::new(encoding.iter().copied().filter(|_| true));
            drop(MasterKey::deserialize(seq).unwrap());
        }),
        0,
        "deserialize from a sequence"
    );

    // A secret key: the needle is the first 32 bytes of its compressed `sk'_1`.
    let sk = keygen(&msk, &["model:x", "region:eu", "release:42"], &mut rng).unwrap();
    let encoding = zeroize::Zeroizing::new(sk.to_bytes());
    let at = 4 + 3 * 96;
    set_needle(&encoding[at..at + 32]);
    assert_eq!(
        residue(|| drop(encoding[at..at + 32].to_vec())),
        1,
        "control"
    );
    assert_eq!(
        residue(|| drop(zeroize::Zeroizing::new(sk.to_bytes()))),
        0,
        "to_bytes (growing past its first buffer)"
    );
    let json = serde_json::to_string(&sk).unwrap();
    assert_eq!(
        residue(|| {
            drop(serde_json::to_string(&sk).unwrap());
            drop(serde_json::from_str::<SecretKey>(&json).unwrap());
            let seq = SeqDeserializer::<_, DeError>::new(encoding.iter().copied().filter(|_| true));
            drop(SecretKey::deserialize(seq).unwrap());
            let cut = format!("{}\"", &json[..json.len() - 3]);
            assert!(serde_json::from_str::<SecretKey>(&cut).is_err());
        }),
        0,
        "secret key serde"
    );

    // The KEM: neither the shared key nor the compressed blinding factor
    // (the HKDF input) is left on the heap by encapsulation or decapsulation.
    let policy = Policy::parse(r#""model:x" and ("region:eu" or "region:in")"#).unwrap();
    let (capsule, key) = encapsulate(&pk, &policy, b"ctx", &mut rng).unwrap();
    let mut z = zeroize::Zeroizing::new(Vec::new());
    blinding_factor(&sk, &capsule)
        .unwrap()
        .write_compressed(&mut *z)
        .unwrap();
    for needle in [&key.as_bytes()[..], &z[..32]] {
        set_needle(needle);
        assert_eq!(residue(|| drop(needle.to_vec())), 1, "control");
        assert_eq!(
            residue(|| {
                assert_eq!(decapsulate(&sk, &capsule, b"ctx").unwrap(), key);
            }),
            0,
            "decapsulate"
        );
    }
    // Encapsulation, replayed from the same RNG state so its key and Z are known.
    let (replay, replay_key) = encapsulate(&pk, &policy, b"ctx", &mut rng.clone()).unwrap();
    let mut replay_z = zeroize::Zeroizing::new(Vec::new());
    blinding_factor(&sk, &replay)
        .unwrap()
        .write_compressed(&mut *replay_z)
        .unwrap();
    for needle in [&replay_key.as_bytes()[..], &replay_z[..32]] {
        set_needle(needle);
        assert_eq!(
            residue(|| {
                let (c, k) = encapsulate(&pk, &policy, b"ctx", &mut rng.clone()).unwrap();
                assert!(c == replay && k == replay_key, "replayed");
            }),
            0,
            "encapsulate"
        );
    }
}
