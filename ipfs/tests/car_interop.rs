//! CAR files we write are read by the npm `@ipld/car` reference implementation (which checks
//! every block and reassembles the file), and CARs it writes are read and verified by ours.
//!
//! Needs `npm ci` at the repository root.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::Command,
};

use otaledger_ipfs::{
    Blockstore, Cid, ImportOptions, Limits, Profile, Pushed, Verifier,
    car::CarReader,
    import,
    traverse::{DagScope, export_car},
};
use sha2::{Digest, Sha256};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn node(args: &[&str]) -> String {
    let root = repo_root();
    assert!(
        root.join("node_modules/@ipld/car").exists(),
        "run `npm ci` at the repository root first"
    );
    let out = Command::new("node")
        .arg(root.join("ipfs/tests/js/car.mjs"))
        .args(args)
        .current_dir(&root)
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Random bytes with a long run of zeros in the middle, so some leaves repeat.
fn data(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|i| {
            if (len / 3..len / 2).contains(&i) {
                return 0;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Reads a CAR with our reader and verifier; returns the root and the file bytes.
fn read_and_verify(path: &Path, size: u64) -> (Cid, Vec<u8>) {
    let mut car = CarReader::new(File::open(path).unwrap()).unwrap();
    let root = car.roots()[0];
    let mut v = Verifier::new(root, Limits::for_size(size)).unwrap();
    let mut out = Vec::new();
    loop {
        while let Some(r) = v.repeat().unwrap() {
            let start = r.offset as usize;
            out.extend_from_within(start..start + r.len as usize);
        }
        let Some((cid, block)) = car.next_block().unwrap() else {
            break;
        };
        if let Pushed::Data(d) = v.push(&cid, &block).unwrap() {
            out.extend_from_slice(d);
        }
    }
    assert!(v.is_done());
    (root, out)
}

#[test]
fn our_car_is_read_by_ipld_car() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(300 * 1024 + 5);
    for profile in [Profile::Kubo, Profile::KuboV1] {
        let store = Blockstore::open(dir.path().join(profile.name())).unwrap();
        let opts = ImportOptions {
            chunk_size: Some(1024),
            ..ImportOptions::profile(profile)
        };
        let imported = import(&bytes[..], &opts, &mut &store, &mut |_| {}).unwrap();
        let car_path = dir.path().join(format!("{}.car", profile.name()));
        let written = export_car(
            &store,
            &imported.root,
            DagScope::All,
            File::create(&car_path).unwrap(),
        )
        .unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&node(&["read", car_path.to_str().unwrap()])).unwrap();
        assert_eq!(report["roots"][0], imported.root.to_string());
        assert_eq!(report["blocks"], written);
        assert_eq!(report["size"], bytes.len() as u64);
        assert_eq!(report["sha256"], hex(&Sha256::digest(&bytes)));
        // Our own reader agrees.
        assert_eq!(read_and_verify(&car_path, bytes.len() as u64).1, bytes);
    }
}

#[test]
fn ipld_car_is_read_and_verified_by_ours() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(200 * 1024 + 3);
    let input = dir.path().join("input");
    std::fs::write(&input, &bytes).unwrap();
    for profile in [Profile::Kubo, Profile::KuboV1, Profile::UnixfsV1_2025] {
        let car_path = dir.path().join(format!("{}.car", profile.name()));
        let root = node(&[
            "write",
            input.to_str().unwrap(),
            profile.name(),
            car_path.to_str().unwrap(),
            "1024",
        ]);
        let (car_root, got) = read_and_verify(&car_path, bytes.len() as u64);
        assert_eq!(car_root.to_string(), root);
        assert_eq!(got, bytes);
        let opts = ImportOptions {
            chunk_size: Some(1024),
            ..ImportOptions::profile(profile)
        };
        let ours = import(
            &bytes[..],
            &opts,
            &mut otaledger_ipfs::NullSink,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(ours.root, car_root);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
