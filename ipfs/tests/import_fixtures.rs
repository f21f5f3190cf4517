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

fn keystream_file(dir: &Path, seed: &str, size: u64) -> PathBuf {
    let key: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    let nonce = [0u8; 12];
    let mut cipher = ChaCha20::new(&key.into(), &nonce.into());
    let path = dir.join(format!("{seed}-{size}"));
    let mut w = BufWriter::new(File::create(&path).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        cipher.apply_keystream(&mut buf[..n]);
        w.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    w.flush().unwrap();
    path
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
