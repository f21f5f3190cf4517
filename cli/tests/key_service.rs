//! `otaledger keys serve` as a process against a real anvil with the contracts
//! deployed: it starts, follows the chain (checkpoint on `/healthz`), serves
//! `/metrics`, answers 404 for a key never issued and 400 naming the malformed
//! path part, and stops on SIGTERM.
//!
//! Then the issuance flow: a paid device's key opens its bundle (not release
//! v2's), an unpaid device gets 404; kill -9 trials; a reorged-out purchase.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    network::EthereumWallet,
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use otaledger_core::{
    deploy::{self, DEFAULT_REFUND_WINDOW, DEFAULT_SALT},
    spawn_anvil,
};

const BIN: &str = env!("CARGO_BIN_EXE_otaledger");

/// Runs the binary with `--json`; it must succeed; returns its JSON.
fn ok(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .arg("--json")
        .args(args)
        .env_remove("OTALEDGER_PRIVATE_KEY")
        .env_remove("ETH_RPC_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "otaledger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A plain HTTP/1.0 GET of raw bytes: (status, body).
fn get_bytes(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, all[end + 4..].to_vec())
}

/// A plain HTTP/1.0 GET: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn serve_starts_follows_and_answers() {
    let anvil = spawn_anvil().unwrap();
    let operator: PrivateKeySigner = anvil.keys()[0].clone().into();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(operator))
        .connect_http(anvil.endpoint_url());
    let deployed = deploy::deploy(&provider, DEFAULT_SALT, DEFAULT_REFUND_WINDOW, "test")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deployments = dir.path().join("deployments");
    deployed.deployment.store(&deployments).unwrap();
    let store = dir.path().join("ipfs");
    let authority = dir.path().join("authority");
    otaledger_cli::authority::init(&authority, "master pw", &store, 10).unwrap();
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "master pw\n").unwrap();
    let key_service = PrivateKeySigner::random();
    let mut child = Command::new(BIN)
        .args([
            "--json",
            "keys",
            "serve",
            "--manufacturer",
            "1",
            "--confirmations",
            "0",
        ])
        .args(["--listen", "127.0.0.1:0", "--poll-ms", "100"])
        .arg("--rpc-url")
        .arg(anvil.endpoint_url().to_string())
        .arg("--deployments")
        .arg(&deployments)
        .arg("--authority")
        .arg(&authority)
        .arg("--master-password-file")
        .arg(&pw)
        .arg("--store")
        .arg(&store)
        .arg("--db")
        .arg(dir.path().join("keys.sqlite"))
        .arg("--private-key")
        .arg(alloy::hex::encode_prefixed(key_service.to_bytes()))
        .env_remove("OTALEDGER_PRIVATE_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        let _ = child.kill();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        panic!("no start line ({e}): {line:?} {err}")
    });
    let addr = started["listen"].as_str().unwrap().to_owned();
    assert_eq!(
        started["keyService"].as_str().unwrap().to_lowercase(),
        key_service.address().to_string().to_lowercase()
    );

    // The follower reaches the head.
    let head = provider.get_block_number().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(&addr, "/healthz");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "ok");
        if v["checkpoint"].as_u64().unwrap() >= head {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint never reached {head}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("otaledger_keys_issued_total 0"), "{body}");
    assert!(body.contains("otaledger_keyservice_checkpoint"), "{body}");

    let release = format!("0x{}", "ab".repeat(32));
    let (status, body) = get(&addr, &format!("/v1/keys/{release}/7"));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, body) = get(&addr, "/v1/keys/0x1234/7");
    assert_eq!(status, 400);
    assert!(body.contains("release"), "{body}");
    let (status, body) = get(&addr, &format!("/v1/keys/{release}/-7"));
    assert_eq!(status, 400);
    assert!(body.contains("device"), "{body}");

    // SIGTERM: a graceful stop with exit status 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A deployed chain with a 2-of-3 manufacturer, its authority, a model, a
/// published release and `count` provisioned devices of which the first
/// `claimed` are claimed by anvil key 1.
struct Fixture {
    anvil: alloy::node_bindings::AnvilInstance,
    dir: tempfile::TempDir,
    rpc: String,
    deployments: String,
    mfr: String,
    release: String,
    first: u64,
    own: String,
    key_service: PrivateKeySigner,
    created: serde_json::Value,
    image: Vec<u8>,
}

impl Fixture {
    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn device_dir(&self, i: u64) -> String {
        format!("{}/device-{i:05}", self.p("fleet"))
    }

    /// Runs a chain command (with --rpc-url and --deployments).
    fn call(&self, args: &[&str]) -> serde_json::Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["--rpc-url", &self.rpc, "--deployments", &self.deployments]);
        ok(&all)
    }

    /// Buys the release for `devices` as their owner.
    fn buy(&self, devices: &[u64]) {
        let mut args = vec![
            "purchase".to_owned(),
            "--release".into(),
            self.release.clone(),
        ];
        for d in devices {
            args.extend(["--device".into(), d.to_string()]);
        }
        args.extend(["--private-key".into(), self.own.clone()]);
        self.call(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Starts `keys serve` (confirmations as given); returns it and its address.
    fn serve(&self, confirmations: u64) -> (std::process::Child, String) {
        let mut child = Command::new(BIN)
            .args(["--json", "keys", "serve", "--manufacturer", &self.mfr])
            .args(["--confirmations", &confirmations.to_string()])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--poll-ms",
                "50",
                "--workers",
                "2",
            ])
            .args(["--rpc-url", &self.rpc, "--deployments", &self.deployments])
            .args([
                "--authority",
                &self.p("authority"),
                "--master-password-file",
                &self.p("pw"),
            ])
            .args(["--store", &self.p("ipfs"), "--db", &self.p("keys.sqlite")])
            .args([
                "--private-key",
                &alloy::hex::encode_prefixed(self.key_service.to_bytes()),
            ])
            .env_remove("OTALEDGER_PRIVATE_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("keys serve printed no start line ({e}): {line:?}"));
        let addr = started["listen"].as_str().unwrap().to_owned();
        (child, addr)
    }

    fn key_path(&self, device: u64) -> String {
        format!("/v1/keys/{}/{device}", self.release)
    }

    /// Waits until the service's checkpoint reaches the chain's head.
    async fn caught_up(&self, addr: &str) {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        let head = provider.get_block_number().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = get(addr, "/healthz");
            if status == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                if v["checkpoint"].as_u64().unwrap() >= head {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "checkpoint never reached {head}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn fixture(count: u64, claimed: u64) -> Fixture {
    let anvil = spawn_anvil().unwrap();
    let rpc = anvil.endpoint_url().to_string();
    let operator: PrivateKeySigner = anvil.keys()[0].clone().into();
    let owner: PrivateKeySigner = anvil.keys()[1].clone().into();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(operator.clone()))
        .connect_http(anvil.endpoint_url());
    let deployed = deploy::deploy(&provider, DEFAULT_SALT, DEFAULT_REFUND_WINDOW, "test")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let deployments = p("deployments");
    deployed
        .deployment
        .store(&dir.path().join("deployments"))
        .unwrap();
    let hex = |k: &PrivateKeySigner| alloy::hex::encode_prefixed(k.to_bytes());
    let (op, own) = (hex(&operator), hex(&owner));
    let chain = [
        "--rpc-url",
        rpc.as_str(),
        "--deployments",
        deployments.as_str(),
    ];
    let call = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&chain);
        ok(&all)
    };
    let signers: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    let addrs: Vec<String> = signers.iter().map(|k| k.address().to_string()).collect();
    let mfr = call(&[
        "manufacturer",
        "register",
        "--name",
        "Acme",
        "--threshold",
        "2",
        "--signer",
        &addrs[0],
        "--signer",
        &addrs[1],
        "--signer",
        &addrs[2],
        "--private-key",
        &op,
    ])["manufacturerId"]
        .as_u64()
        .unwrap()
        .to_string();
    std::fs::write(p("pw"), "master pw\n").unwrap();
    call(&[
        "authority",
        "init",
        "--dir",
        &p("authority"),
        "--master-password-file",
        &p("pw"),
        "--store",
        &p("ipfs"),
        "--scrypt-log-n",
        "10",
        "--manufacturer",
        &mfr,
        "--private-key",
        &op,
    ]);
    let model = call(&[
        "model",
        "define",
        "--manufacturer",
        &mfr,
        "--name",
        "thermo",
        "--private-key",
        &op,
    ])["modelId"]
        .as_u64()
        .unwrap()
        .to_string();
    let image: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(p("image.bin"), &image).unwrap();
    let created = ok(&[
        "release",
        "create",
        "--model",
        &model,
        "--version",
        "1",
        "--image",
        &p("image.bin"),
        "--price",
        "1000",
        "--params",
        &format!("{}/params.cpabe", p("authority")),
        "--out",
        &p("rel"),
        "--store",
        &p("ipfs"),
        "--chain",
        "31337",
        "--deployments",
        &deployments,
    ]);
    let release = created["releaseId"].as_str().unwrap().to_owned();
    let manifest = format!("{}/manifest.json", p("rel"));
    let sig = |k: &PrivateKeySigner| {
        ok(&[
            "release",
            "sign",
            "--manifest",
            &manifest,
            "--private-key",
            &hex(k),
        ])["signatureFile"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (s0, s2) = (sig(&signers[0]), sig(&signers[2]));
    call(&[
        "release",
        "publish",
        "--manifest",
        &manifest,
        "--sig",
        &s0,
        "--sig",
        &s2,
        "--private-key",
        &op,
    ]);
    let key_service = PrivateKeySigner::random();
    let ks = key_service.address().to_string();
    let first = call(&[
        "device",
        "provision",
        "--manufacturer",
        &mfr,
        "--model",
        &model,
        "--count",
        &count.to_string(),
        "--out",
        &p("fleet"),
        "--key-service",
        &ks,
        "--authority",
        &p("authority"),
        "--master-password-file",
        &p("pw"),
        "--store",
        &p("ipfs"),
        "--private-key",
        &op,
    ])["firstIndex"]
        .as_u64()
        .unwrap();
    let device_dir = |i: u64| format!("{}/device-{i:05}", p("fleet"));
    for i in 0..claimed {
        call(&[
            "device",
            "claim",
            "--device-dir",
            &device_dir(i),
            "--private-key",
            &own,
        ]);
    }

    Fixture {
        anvil,
        dir,
        rpc,
        deployments,
        mfr,
        release,
        first,
        own,
        key_service,
        created,
        image,
    }
}

/// The paid device gets a key over HTTP that opens the bundle byte for byte
/// (through `device open`); the claimed but unpaid device gets 404.
#[tokio::test]
async fn paid_device_gets_a_key_unpaid_gets_404() {
    let f = fixture(3, 2).await;
    f.buy(&[f.first]);
    let (mut child, addr) = f.serve(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivery = loop {
        let (status, body) = get_bytes(&addr, &f.key_path(f.first));
        if status == 200 {
            break body;
        }
        assert_eq!(status, 404);
        assert!(Instant::now() < deadline, "no key issued in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    f.caught_up(&addr).await;
    // The unpaid (claimed) device has none, with the chain fully followed.
    let (status, _) = get_bytes(&addr, &f.key_path(f.first + 1));
    assert_eq!(status, 404);
    let (_, metrics) = get(&addr, "/metrics");
    assert!(
        metrics.contains("otaledger_keys_issued_total 1"),
        "{metrics}"
    );
    let _ = child.kill();
    let _ = child.wait();

    std::fs::write(f.p("key.bin"), &delivery).unwrap();
    let bundle = format!("{}/bundle.bin", f.p("rel"));
    let opened = ok(&[
        "device",
        "open",
        "--device-dir",
        &f.device_dir(0),
        "--key",
        &f.p("key.bin"),
        "--bundle",
        &bundle,
        "--out",
        &f.p("installed.bin"),
    ]);
    assert_eq!(opened["imageSha256"], f.created["imageSha256"]);
    assert_eq!(std::fs::read(f.p("installed.bin")).unwrap(), f.image);
    // The paid device's key does not open for the unpaid device.
    let out = Command::new(BIN)
        .args([
            "device",
            "open",
            "--device-dir",
            &f.device_dir(1),
            "--key",
            &f.p("key.bin"),
        ])
        .args(["--bundle", &bundle, "--out", &f.p("stolen.bin")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!f.dir.path().join("stolen.bin").exists());
    // The key for release 1 does not open release 2 of the same model.
    let model = opened["modelId"].as_u64().unwrap().to_string();
    ok(&[
        "release",
        "create",
        "--model",
        &model,
        "--version",
        "2",
        "--image",
        &f.p("image.bin"),
        "--params",
        &format!("{}/params.cpabe", f.p("authority")),
        "--out",
        &f.p("rel2"),
        "--store",
        &f.p("ipfs"),
        "--chain",
        "31337",
        "--deployments",
        &f.deployments,
    ]);
    let out = Command::new(BIN)
        .args([
            "device",
            "open",
            "--device-dir",
            &f.device_dir(0),
            "--key",
            &f.p("key.bin"),
        ])
        .args(["--bundle", &format!("{}/bundle.bin", f.p("rel2"))])
        .args(["--out", &f.p("v2.bin")])
        .output()
        .unwrap();
    assert!(!out.status.success(), "release 1's key opened release 2");
    assert!(!f.dir.path().join("v2.bin").exists());
}

/// kill -9 at random moments while 200 purchases arrive (twenty per trial, in
/// transactions of one to five devices), restart, 10 trials: every paid device
/// ends with exactly one key (a key once served never changes), no unpaid
/// device has one.
#[tokio::test]
async fn kill_9_while_purchases_arrive_issues_exactly_once() {
    use otaledger_cpabe::rand_core::{OsRng, RngCore};
    const DEVICES: u64 = 210;
    const PAID: u64 = 200;
    let f = fixture(DEVICES, DEVICES).await;
    let mut served: std::collections::HashMap<u64, Vec<u8>> = Default::default();
    let mut next = 0;
    for _trial in 0..10 {
        let (mut child, addr) = f.serve(0);
        // Twenty purchases while it runs, then a kill -9 after a random pause.
        let until = (next + 20).min(PAID);
        while next < until {
            let n = (1 + OsRng.next_u64() % 5).min(until - next);
            f.buy(&(next..next + n).map(|d| f.first + d).collect::<Vec<_>>());
            next += n;
        }
        tokio::time::sleep(Duration::from_millis(OsRng.next_u64() % 300)).await;
        for (d, bytes) in &served {
            let (status, body) = get_bytes(&addr, &f.key_path(*d));
            assert_eq!(status, 200, "device {d} lost its key");
            assert_eq!(&body, bytes, "device {d}'s key changed");
        }
        for d in 0..DEVICES {
            let (status, body) = get_bytes(&addr, &f.key_path(f.first + d));
            if status == 200 {
                assert!(d < next, "unpaid device {d} has a key");
                served.entry(f.first + d).or_insert(body);
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // The rest bought; one last run settles everything.
    while next < PAID {
        f.buy(&[f.first + next]);
        next += 1;
    }
    let (mut child, addr) = f.serve(0);
    f.caught_up(&addr).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    for d in 0..DEVICES {
        loop {
            let (status, body) = get_bytes(&addr, &f.key_path(f.first + d));
            if d >= PAID {
                assert_eq!(status, 404, "unpaid device {d} has a key");
                break;
            }
            if status == 200 {
                if let Some(before) = served.get(&(f.first + d)) {
                    assert_eq!(before, &body, "device {d}'s key changed");
                }
                break;
            }
            assert!(Instant::now() < deadline, "device {d} never got its key");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (_, metrics) = get(&addr, "/metrics");
    assert!(
        metrics.contains(&format!("otaledger_keys_stored {PAID}")),
        "{metrics}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A purchase reorged out (anvil snapshot/revert, then a longer chain)
/// after the service saw it but before its confirmations is never issued;
/// a purchase on the new branch is.
#[tokio::test]
async fn purchase_reorged_out_before_confirmations_is_never_issued() {
    let f = fixture(2, 2).await;
    let provider = ProviderBuilder::new().connect_http(f.anvil.endpoint_url());
    let raw = |method: &'static str, params: serde_json::Value| {
        let provider = provider.clone();
        async move {
            provider
                .raw_request::<_, serde_json::Value>(method.into(), params)
                .await
                .unwrap()
        }
    };
    let (mut child, addr) = f.serve(5);
    let snapshot = raw("evm_snapshot", serde_json::json!([])).await;
    f.buy(&[f.first]);
    // The service mirrored the purchase (its block is at the checkpoint) but waits.
    f.caught_up(&addr).await;
    let (status, _) = get_bytes(&addr, &f.key_path(f.first));
    assert_eq!(status, 404);
    raw("evm_revert", serde_json::json!([snapshot])).await;
    f.buy(&[f.first + 1]);
    raw("anvil_mine", serde_json::json!(["0xa"])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = get_bytes(&addr, &f.key_path(f.first + 1));
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new branch's purchase got no key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f.caught_up(&addr).await;
    let (status, _) = get_bytes(&addr, &f.key_path(f.first));
    assert_eq!(status, 404, "a reorged-out purchase was issued");
    let _ = child.kill();
    let _ = child.wait();
}
