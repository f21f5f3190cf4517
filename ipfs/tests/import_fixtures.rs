//! Kubo's own CID vectors for the IPIP-499 profiles (`test/cli/cid_profiles_test.go`), with the
//! inputs regenerated offline as Kubo's `random_deterministic.go` does: the ChaCha20 (IETF)
//! keystream keyed by SHA-256 of the seed string, zero nonce, truncated to the size.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use chacha20::{
    ChaCha20,
    cipher::{KeyIvInit, StreamCipher},
};
use otaledger_ipfs::{ImportOptions, NullSink, Profile, import_path};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

/// ChaCha20 (RFC 8439) keystream, written out here because the `chacha20` crate's generic
/// code is instantiated in this test crate and runs unoptimized in debug builds (about 3 MB/s);
/// `keystream_matches_chacha20_crate` checks it against the crate.
struct Keystream {
    state: [u32; 16],
}

impl Keystream {
    fn new(key: &[u8; 32]) -> Self {
        let mut state = [0u32; 16];
        state[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        for (i, word) in key.chunks(4).enumerate() {
            state[4 + i] = u32::from_le_bytes(word.try_into().unwrap());
        }
        // counter (12) and the 96-bit nonce (13..16) start at zero
        Self { state }
    }

    fn block(&mut self, out: &mut [u8; 64]) {
        let mut x = self.state;
        for _ in 0..10 {
            for (a, b, c, d) in [
                (0, 4, 8, 12),
                (1, 5, 9, 13),
                (2, 6, 10, 14),
                (3, 7, 11, 15),
                (0, 5, 10, 15),
                (1, 6, 11, 12),
                (2, 7, 8, 13),
                (3, 4, 9, 14),
            ] {
                x[a] = x[a].wrapping_add(x[b]);
                x[d] = (x[d] ^ x[a]).rotate_left(16);
                x[c] = x[c].wrapping_add(x[d]);
                x[b] = (x[b] ^ x[c]).rotate_left(12);
                x[a] = x[a].wrapping_add(x[b]);
                x[d] = (x[d] ^ x[a]).rotate_left(8);
                x[c] = x[c].wrapping_add(x[d]);
                x[b] = (x[b] ^ x[c]).rotate_left(7);
            }
        }
        for (i, word) in x.iter().enumerate() {
            let v = word.wrapping_add(self.state[i]);
            out[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        self.state[12] = self.state[12].wrapping_add(1);
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut block = [0u8; 64];
        for chunk in buf.chunks_mut(64) {
            self.block(&mut block);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

fn seed_key(seed: &str) -> [u8; 32] {
    Sha256::digest(seed.as_bytes()).into()
}

fn keystream_file(dir: &Path, seed: &str, size: u64) -> PathBuf {
    let mut ks = Keystream::new(&seed_key(seed));
    let path = dir.join(format!("{seed}-{size}"));
    let mut w = BufWriter::new(File::create(&path).unwrap());
    // A multiple of 64 so every buffer starts on a block boundary.
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        ks.fill(&mut buf[..n]);
        w.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    w.flush().unwrap();
    path
}

#[test]
fn keystream_matches_chacha20_crate() {
    let key = seed_key("chunk-v0-seed");
    let mut reference = vec![0u8; 64 * 1024 + 7];
    ChaCha20::new(&key.into(), &[0u8; 12].into()).apply_keystream(&mut reference);
    let mut ours = vec![0u8; reference.len()];
    Keystream::new(&key).fill(&mut ours);
    assert_eq!(ours, reference);
}

fn check(profile: Profile, seed: &str, size: u64, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = keystream_file(dir.path(), seed, size);
    let got = import_path(
        &file,
        &ImportOptions::profile(profile),
        &mut NullSink,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(got.size, size);
    assert_eq!(got.root.to_string(), expected, "{profile} {seed} {size}");
}

#[test]
fn unixfs_v0_2015_chunk_boundary() {
    check(
        Profile::Kubo,
        "chunk-v0-seed",
        262_144,
        "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE",
    );
    check(
        Profile::Kubo,
        "chunk-v0-seed",
        262_145,
        "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ",
    );
}

#[test]
fn unixfs_v0_2015_fanout_boundary() {
    check(
        Profile::Kubo,
        "v0-seed",
        174 * 262_144,
        "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2",
    );
    check(
        Profile::Kubo,
        "v0-seed",
        174 * 262_144 + 1,
        "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW",
    );
}

#[test]
fn unixfs_v1_2025_chunk_boundary() {
    check(
        Profile::UnixfsV1_2025,
        "chunk-v1-seed",
        MIB,
        "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta",
    );
    check(
        Profile::UnixfsV1_2025,
        "chunk-v1-seed",
        MIB + 1,
        "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64",
    );
}

/// 1 GiB inputs: too slow for CI. Run with
/// `cargo test --release -p otaledger-ipfs --test import_fixtures -- --ignored`.
#[test]
#[ignore = "1 GiB inputs; run in release with --ignored"]
fn unixfs_v1_2025_fanout_boundary() {
    check(
        Profile::UnixfsV1_2025,
        "v1-2025-seed",
        1024 * MIB,
        "bafybeihmf37wcuvtx4hpu7he5zl5qaf2ineo2lqlfrapokkm5zzw7zyhvm",
    );
    check(
        Profile::UnixfsV1_2025,
        "v1-2025-seed",
        1024 * MIB + 1,
        "bafybeibdsi225ugbkmpbdohnxioyab6jsqrmkts3twhpvfnzp77xtzpyhe",
    );
    check(
        Profile::UnixfsV1_2025,
        "v1-2025-seed",
        1025 * MIB,
        "bafybeihmzokxxjqwxjcryerhp5ezpcog2wcawfryb2xm64xiakgm4a5jue",
    );
}
