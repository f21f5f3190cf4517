//! End to end through the built binary: a file added to the store comes back through
//! `otaledger gateway serve` (a real port) and `otaledger ipfs get`, byte for byte; CAR export
//! and import round-trip; a failing fetch names the gateway and leaves no output.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_otaledger");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("OTALEDGER_HOME")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "otaledger {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A gateway child process; killed when dropped.
struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(store: &Path) -> Gateway {
    let mut child = Command::new(BIN)
        .args([
            "--json",
            "gateway",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
        ])
        .arg(store)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    Gateway {
        child,
        url: v["listen"].as_str().unwrap().to_owned(),
    }
}

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn add_serve_get_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let bytes = data(3 * 262_144 + 17);
    std::fs::write(d("image.bin"), &bytes).unwrap();

    let cid = ok(&["ipfs", "add", &d("image.bin"), "--store", &d("store"), "-Q"]);
    let cid = cid.trim().to_owned();
    assert!(cid.starts_with("bafy"), "{cid}");
    // Kubo's output line without -Q, and the same CID with --json.
    assert_eq!(
        ok(&["ipfs", "add", &d("image.bin"), "--store", &d("store")]).trim(),
        format!("added {cid} image.bin")
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "ipfs",
        "add",
        &d("image.bin"),
        "--store",
        &d("store"),
    ]))
    .unwrap();
    assert_eq!(json["cid"], cid.as_str());
    assert_eq!(json["size"], bytes.len());
    // --only-hash stores nothing; the kubo profile gives a CIDv0.
    let v0 = ok(&[
        "ipfs",
        "add",
        &d("image.bin"),
        "--store",
        &d("empty"),
        "-n",
        "-Q",
        "--profile",
        "kubo",
    ]);
    assert!(v0.trim().starts_with("Qm"), "{v0}");

    let gw = serve(&dir.path().join("store"));
    let size = bytes.len().to_string();
    ok(&[
        "ipfs",
        "get",
        &cid,
        "-o",
        &d("out.bin"),
        "--gateway",
        &gw.url,
        "--size",
        &size,
    ]);
    assert!(std::fs::read(d("out.bin")).unwrap() == bytes);
    // Without --size the root's declared size is used.
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "ipfs",
        "get",
        &cid,
        "-o",
        &d("out2.bin"),
        "--gateway",
        &gw.url,
    ]))
    .unwrap();
    assert_eq!(json["mode"], "car");
    assert!(std::fs::read(d("out2.bin")).unwrap() == bytes);

    // CAR export → import into another store → export again: the same bytes.
    ok(&[
        "ipfs",
        "car",
        "export",
        &cid,
        "-o",
        &d("a.car"),
        "--store",
        &d("store"),
    ]);
    let imported: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "ipfs",
        "car",
        "import",
        &d("a.car"),
        "--store",
        &d("store2"),
    ]))
    .unwrap();
    assert_eq!(imported["roots"][0], cid.as_str());
    assert_eq!(imported["blocks"], 5);
    ok(&[
        "ipfs",
        "car",
        "export",
        &cid,
        "-o",
        &d("b.car"),
        "--store",
        &d("store2"),
    ]);
    assert_eq!(
        std::fs::read(d("a.car")).unwrap(),
        std::fs::read(d("b.car")).unwrap()
    );
}

#[test]
fn failing_get_names_the_gateway_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-store");
    let gw = serve(&empty);
    let out = dir.path().join("out.bin");
    let cid = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
    let res = run(&[
        "ipfs",
        "get",
        cid,
        "-o",
        out.to_str().unwrap(),
        "--gateway",
        &gw.url,
        "--size",
        "11",
    ]);
    assert!(!res.status.success());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains(&gw.url) && stderr.contains("404"),
        "{stderr}"
    );
    assert!(!out.exists());
}
