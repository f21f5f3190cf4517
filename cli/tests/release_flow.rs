//! The manufacturer's flow through the built binary, as a user types it, against
//! a real anvil: register a 2-of-3 manufacturer, create the CP-ABE authority
//! (parameters' CID set on chain), define a model, create a release offline,
//! sign it with a `cast wallet` keystore and a raw key, publish it, provision,
//! claim and buy — and a provisioned device updating itself with
//! `device run --once` from the real gateway and the real key service (`keys
//! serve` as a process, which issues exactly the two paid devices' keys) and a
//! report receiver; plus the bad
//! inputs a user meets, each with a message naming the problem.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use alloy::{
    network::EthereumWallet, primitives::Address, providers::ProviderBuilder,
    signers::local::PrivateKeySigner,
};
use otaledger_core::{
    FoundryTool,
    bindings::registry::UpdateRegistry,
    bundle::{model_attribute, open_to_path, release_attribute},
    deploy::{self, DEFAULT_REFUND_WINDOW, DEFAULT_SALT},
    find_foundry_tool, spawn_anvil, workspace_root,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_otaledger");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("OTALEDGER_HOME")
        .env_remove("OTALEDGER_PRIVATE_KEY")
        .env_remove("ETH_RPC_URL")
        .env_remove("ETH_KEYSTORE")
        .env_remove("ETH_PASSWORD")
        .env_remove("OTALEDGER_MASTER_PASSWORD")
        .output()
        .unwrap()
}

/// Runs a command with `--json` that must succeed; returns its JSON.
fn ok(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(
        out.status.success(),
        "otaledger {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "otaledger {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "otaledger {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn hex_key(k: &PrivateKeySigner) -> String {
    alloy::hex::encode_prefixed(k.to_bytes())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `otaledger keys serve` as a child process, killed when dropped.
struct KeysServe {
    child: std::process::Child,
    addr: String,
}

impl Drop for KeysServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl KeysServe {
    /// Starts the real key service of manufacturer `mfr` (0 confirmations, fast polling).
    #[allow(clippy::too_many_arguments)]
    fn start(
        mfr: u64,
        rpc: &str,
        deployments: &Path,
        authority: &Path,
        master_pw: &Path,
        store: &Path,
        db: &Path,
        key: &PrivateKeySigner,
    ) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .args([
                "--json",
                "keys",
                "serve",
                "--manufacturer",
                &mfr.to_string(),
            ])
            .args(["--confirmations", "0", "--listen", "127.0.0.1:0"])
            .args(["--poll-ms", "50", "--rpc-url", rpc])
            .args(["--deployments", s(deployments), "--authority", s(authority)])
            .args(["--master-password-file", s(master_pw), "--store", s(store)])
            .args(["--db", s(db), "--private-key", &hex_key(key)])
            .env_remove("OTALEDGER_PRIVATE_KEY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("keys serve printed no start line ({e}): {line:?}"));
        let addr = started["listen"].as_str().unwrap().to_owned();
        Self { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `otaledger_keys_issued_total` from the service's `/metrics`.
    async fn issued(&self) -> u64 {
        let body = http_get(&format!("http://{}/metrics", self.addr)).await;
        body.lines()
            .find_map(|l| l.strip_prefix("otaledger_keys_issued_total "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no otaledger_keys_issued_total in {body}"))
    }

    /// Waits until the service has issued `n` keys (it follows the chain by polling).
    async fn wait_issued(&self, n: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let issued = self.issued().await;
            assert!(issued <= n, "{issued} keys issued, expected {n}");
            if issued == n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the key service issued {issued} of {n} keys"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// A plain HTTP/1.0 GET of a body (no client crate needed).
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = url::Url::parse(url).unwrap();
    let addr = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap());
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(format!("GET {} HTTP/1.0\r\nHost: {addr}\r\n\r\n", u.path()).as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// A report receiver that stores every body and answers 202 (the indexer's side is another
/// branch's; the signature is checked here).
async fn report_receiver(bodies: Arc<Mutex<Vec<Vec<u8>>>>) -> String {
    use axum::{http::StatusCode, routing::post};
    let app = axum::Router::new().route(
        "/v1/reports",
        post(move |body: axum::body::Bytes| {
            let bodies = bodies.clone();
            async move {
                bodies.lock().unwrap().push(body.to_vec());
                (StatusCode::ACCEPTED, r#"{"accepted":true}"#)
            }
        }),
    );
    serve(app).await
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Runs `device run --once --json` in `dir`; returns the exit code and the result event.
fn device_run(dir: &Path) -> (i32, Value) {
    let out = run(&[
        "--json",
        "device",
        "run",
        "--dir",
        s(dir),
        "--once",
        "--confirmations",
        "0",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "result")
        .unwrap_or_else(|| {
            panic!(
                "no result event: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.code().unwrap(), result)
}

// Multi-threaded: the gateway, key service and report receiver run in this process while the
// test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manufacturer_flow_through_the_binary() {
    let anvil = spawn_anvil().unwrap();
    let rpc = anvil.endpoint_url().to_string();
    let operator: PrivateKeySigner = anvil.keys()[0].clone().into();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(operator.clone()))
        .connect_http(anvil.endpoint_url());
    let deployed = deploy::deploy(&provider, DEFAULT_SALT, DEFAULT_REFUND_WINDOW, "test")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deployments = dir.path().join("deployments");
    deployed.deployment.store(&deployments).unwrap();
    let store = dir.path().join("ipfs");
    let op_key = hex_key(&operator);
    let chain = ["--rpc-url", rpc.as_str(), "--deployments", s(&deployments)];
    let with = |args: &[&str], extra: &[&str]| -> Vec<String> {
        args.iter().chain(extra).map(|a| a.to_string()).collect()
    };
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let call = |v: Vec<String>| ok(&v.iter().map(String::as_str).collect::<Vec<_>>());

    // Three release signers; the first one's key lives in a `cast wallet` keystore.
    let signers: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    let keystores = dir.path().join("keystores");
    let cast = find_foundry_tool(FoundryTool::Cast, &workspace_root()).unwrap();
    let imported = Command::new(cast)
        .args(["wallet", "import", "signer0", "--keystore-dir"])
        .arg(&keystores)
        .args(["--unsafe-password", "hunter2", "--private-key"])
        .arg(hex_key(&signers[0]))
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let keystore = keystores.join("signer0");
    let password = dir.path().join("password.txt");
    std::fs::write(&password, "hunter2\n").unwrap();
    let wrong_password = dir.path().join("wrong.txt");
    std::fs::write(&wrong_password, "hunter3\n").unwrap();

    // manufacturer register (2-of-3) and show.
    let mut args = with(
        &[
            "manufacturer",
            "register",
            "--name",
            "Acme",
            "--threshold",
            "2",
        ],
        &chain,
    );
    for k in &signers {
        args.extend(["--signer".into(), k.address().to_string()]);
    }
    args.extend(["--private-key".into(), op_key.clone()]);
    let registered = call(strs(&args));
    let mfr = registered["manufacturerId"].as_u64().unwrap();
    assert!(registered["gasUsed"].as_u64().unwrap() > 0);
    let shown = call(with(
        &["manufacturer", "show", "--id", &mfr.to_string()],
        &chain,
    ));
    let mut expected: Vec<Address> = signers.iter().map(|k| k.address()).collect();
    expected.sort();
    let listed: Vec<Address> = serde_json::from_value(shown["signers"].clone()).unwrap();
    assert_eq!(listed, expected);
    assert_eq!(shown["threshold"], 2);

    // authority init: parameters to the store, CID on chain; the master key encrypted.
    let authority = dir.path().join("authority");
    let master_pw = dir.path().join("master-password.txt");
    std::fs::write(&master_pw, "a long master passphrase\n").unwrap();
    let init = call(with(
        &[
            "authority",
            "init",
            "--dir",
            s(&authority),
            "--master-password-file",
            s(&master_pw),
            "--store",
            s(&store),
            "--scrypt-log-n",
            "10",
            "--manufacturer",
            &mfr.to_string(),
            "--private-key",
            &op_key,
        ],
        &chain,
    ));
    let params_cid = init["paramsCid"].as_str().unwrap().to_owned();
    let registry = UpdateRegistry::new(deployed.deployment.registry, &provider);
    let receipt_log = registry
        .ParamsCidSet_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(receipt_log.last().unwrap().0.paramsCid, params_cid);
    let master_text = std::fs::read_to_string(authority.join("master.json")).unwrap();
    let master = otaledger_cli::authority::load_master(
        &authority.join("master.json"),
        "a long master passphrase",
    )
    .unwrap();
    assert!(!master_text.contains(&alloy::hex::encode(master.to_bytes())));

    // model define and show.
    let defined = call(with(
        &[
            "model",
            "define",
            "--manufacturer",
            &mfr.to_string(),
            "--name",
            "thermo-x",
            "--private-key",
            &op_key,
        ],
        &chain,
    ));
    let model = defined["modelId"].as_u64().unwrap() as u32;
    let shown = call(with(&["model", "show", "--id", &model.to_string()], &chain));
    assert_eq!(shown["latestVersion"], 0);

    // release create, offline (--chain instead of --rpc-url).
    let image = dir.path().join("image.bin");
    let image_bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&image, &image_bytes).unwrap();
    let release_dir = dir.path().join("release-1");
    let created = ok(&[
        "release",
        "create",
        "--model",
        &model.to_string(),
        "--version",
        "1",
        "--image",
        s(&image),
        "--price",
        "1000000000000000",
        "--params",
        s(&authority.join("params.cpabe")),
        "--out",
        s(&release_dir),
        "--store",
        s(&store),
        "--chain",
        "31337",
        "--deployments",
        s(&deployments),
    ]);
    let manifest = release_dir.join("manifest.json");
    assert!(created["cid"].as_str().unwrap().starts_with("bafy"));
    assert_eq!(
        created["policy"],
        format!("\"model:{model}\" and \"release:{model}/1\"")
    );
    // The bundle opens with a device key for the release from the authority's master key.
    let device = otaledger_cpabe::keygen(
        &master,
        &[model_attribute(model), release_attribute(model, 1)],
        &mut otaledger_cpabe::rand_core::OsRng,
    )
    .unwrap();
    let opened_path = dir.path().join("opened.bin");
    open_to_path(&release_dir.join("bundle.bin"), &device, &opened_path).unwrap();
    assert_eq!(std::fs::read(&opened_path).unwrap(), image_bytes);

    // Signing: a wrong keystore password is named; then the keystore and a raw key sign.
    let err = fails(&[
        "release",
        "sign",
        "--manifest",
        s(&manifest),
        "--keystore",
        s(&keystore),
        "--password-file",
        s(&wrong_password),
    ]);
    assert!(err.contains("wrong password"), "{err}");
    let sig0 = ok(&[
        "release",
        "sign",
        "--manifest",
        s(&manifest),
        "--keystore",
        s(&keystore),
        "--password-file",
        s(&password),
    ]);
    assert_eq!(
        serde_json::from_value::<Address>(sig0["signer"].clone()).unwrap(),
        signers[0].address()
    );
    assert_eq!(sig0["releaseId"], created["releaseId"]);
    let sig2 = ok(&[
        "release",
        "sign",
        "--manifest",
        s(&manifest),
        "--private-key",
        &hex_key(&signers[2]),
    ]);
    let stranger = PrivateKeySigner::random();
    let sig_stranger = ok(&[
        "release",
        "sign",
        "--manifest",
        s(&manifest),
        "--private-key",
        &hex_key(&stranger),
    ]);
    let sig_path = |v: &Value| v["signatureFile"].as_str().unwrap().to_owned();

    // Publishing: one signature is too few, a stranger's is refused, both named.
    let publish = |sigs: &[String]| -> Vec<String> {
        let mut a = with(
            &[
                "release",
                "publish",
                "--manifest",
                s(&manifest),
                "--private-key",
                &op_key,
            ],
            &chain,
        );
        for sig in sigs {
            a.extend(["--sig".into(), sig.clone()]);
        }
        a
    };
    let as_strs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    let err = fails(
        &publish(&[sig_path(&sig0)])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(err.contains("threshold is 2"), "{err}");
    let args = publish(&[sig_path(&sig0), sig_path(&sig_stranger)]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("is not a member of the signer set"),
        "{}: {err}",
        as_strs(&args)
    );

    // Published with the signature files in the "wrong" order: they are sorted by signer.
    let published = call(publish(&[sig_path(&sig2), sig_path(&sig0)]));
    assert_eq!(published["releaseId"], created["releaseId"]);
    assert!(published["gasUsed"].as_u64().unwrap() > 0);
    let shown = call(with(&["model", "show", "--id", &model.to_string()], &chain));
    assert_eq!(shown["latestVersion"], 1);
    let shown = call(with(
        &[
            "release",
            "show",
            "--release",
            created["releaseId"].as_str().unwrap(),
        ],
        &chain,
    ));
    assert_eq!(shown["bundleCid"], created["cid"]);
    assert_eq!(shown["bundleSha256"], created["bundleSha256"]);
    assert_eq!(shown["revokedAt"], Value::Null);

    // The same version again: the registry's custom error, decoded with its values.
    let err = fails(
        &publish(&[sig_path(&sig2), sig_path(&sig0)])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        err.contains(&format!(
            "UpdateRegistryVersionNotIncreasing {{ modelId: {model}, latest: 1, given: 1 }}"
        )),
        "{err}"
    );

    // The devices' servers: the real gateway over the store, a key service, a report receiver.
    let gateway = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let blocks = otaledger_ipfs::Blockstore::open(&store).unwrap();
        tokio::spawn(async move {
            otaledger_ipfs::serve(
                listener,
                blocks,
                otaledger_ipfs::GatewayConfig::default(),
                std::future::pending(),
            )
            .await
            .unwrap()
        });
        url
    };
    let reports: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let reports_url = report_receiver(reports.clone()).await;

    // device provision: twenty devices with their directories and the batch on chain.
    let fleet = dir.path().join("fleet");
    let key_service_key = PrivateKeySigner::random();
    let key_service = key_service_key.address();
    let keys = KeysServe::start(
        mfr,
        &rpc,
        &deployments,
        &authority,
        &master_pw,
        &store,
        &dir.path().join("keys.sqlite"),
        &key_service_key,
    );
    let keys_url = keys.url();
    let provisioned = call(with(
        &[
            "device",
            "provision",
            "--manufacturer",
            &mfr.to_string(),
            "--model",
            &model.to_string(),
            "--count",
            "20",
            "--out",
            s(&fleet),
            "--key-service",
            &key_service.to_string(),
            "--key-service-url",
            &keys_url,
            "--report-url",
            &reports_url,
            "--gateway",
            &gateway,
            "--authority",
            s(&authority),
            "--master-password-file",
            s(&master_pw),
            "--store",
            s(&store),
            "--private-key",
            &op_key,
        ],
        &chain,
    ));
    let first = provisioned["firstIndex"].as_u64().unwrap();
    let device_dir = |i: usize| fleet.join(format!("device-{i:05}"));
    let config = otaledger_cli::device::DeviceConfig::load(&device_dir(1)).unwrap();
    assert_eq!(config.device_index, first + 1);
    assert_eq!(config.key_service.address, key_service);
    assert_eq!(config.key_service.urls, vec![keys_url.clone()]);
    assert_eq!(config.reports.urls, vec![reports_url.clone()]);
    assert_eq!(config.attributes, vec![model_attribute(model)]);
    // A device's provisioned key holds only its static attributes: the release stays closed.
    let static_key = otaledger_cpabe::SecretKey::from_bytes(
        &std::fs::read(device_dir(1).join("cpabe.key")).unwrap(),
    )
    .unwrap();
    assert!(
        open_to_path(
            &release_dir.join("bundle.bin"),
            &static_key,
            &dir.path().join("no.bin")
        )
        .is_err()
    );
    assert!(!dir.path().join("no.bin").exists());

    // An owner claims three devices (with the devices' own signatures) and buys the release for two.
    let owner: PrivateKeySigner = anvil.keys()[1].clone().into();
    let owner_key = hex_key(&owner);
    for i in [1, 2, 3] {
        let claimed = call(with(
            &[
                "device",
                "claim",
                "--device-dir",
                s(&device_dir(i)),
                "--private-key",
                &owner_key,
            ],
            &chain,
        ));
        assert_eq!(claimed["deviceIndex"], first + i as u64);
    }
    // Claimed but not yet bought: the proven entitlement bit says not entitled (exit 11).
    let (code, result) = device_run(&device_dir(1));
    assert_eq!(code, 11, "{result}");
    let release_id = created["releaseId"].as_str().unwrap().to_owned();
    let (d1, d2) = ((first + 1).to_string(), (first + 2).to_string());
    let bought = call(with(
        &[
            "purchase",
            "--release",
            &release_id,
            "--device",
            &d2,
            "--device",
            &d1,
            "--private-key",
            &owner_key,
        ],
        &chain,
    ));
    assert_eq!(bought["amount"], "0x71afd498d0000"); // 2 × 0.001 ETH
    let market =
        otaledger_core::bindings::market::UpdateMarket::new(deployed.deployment.market, &provider);
    let id: alloy::primitives::B256 = release_id.parse().unwrap();
    assert!(market.isEntitled(id, first + 1).call().await.unwrap());
    assert!(!market.isEntitled(id, first + 3).call().await.unwrap());
    let err = fails(
        &with(
            &[
                "purchase",
                "--release",
                &release_id,
                "--device",
                &d1,
                "--private-key",
                &owner_key,
            ],
            &chain,
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(
        err.contains(&format!(
            "UpdateMarketAlreadyEntitled {{ releaseId: {release_id}, deviceIndex: {d1} }}"
        )),
        "{err}"
    );

    // keys issue: the paid device gets its key (signed by the key service), the unpaid one none.
    let leaves = fleet.join("leaves.json");
    let issue = |index: u64, position: u64, out: &Path| -> Vec<String> {
        with(
            &[
                "keys",
                "issue",
                "--release",
                &release_id,
                "--device",
                &index.to_string(),
                "--leaves",
                s(&leaves),
                "--position",
                &position.to_string(),
                "--authority",
                s(&authority),
                "--master-password-file",
                s(&master_pw),
                "--out",
                s(out),
                "--private-key",
                &hex_key(&key_service_key),
            ],
            &chain,
        )
    };
    let key1 = dir.path().join("key-1.bin");
    let issued = call(issue(first + 1, 1, &key1));
    assert_eq!(
        issued["attributes"],
        serde_json::json!([model_attribute(model), release_attribute(model, 1)])
    );
    let key3 = dir.path().join("key-3.bin");
    let err = fails(
        &issue(first + 3, 3, &key3)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        err.contains("no claim of device") || err.contains("not entitled"),
        "{err}"
    );
    assert!(!key3.exists());
    // The paid device opens the bundle byte for byte.
    let installed = dir.path().join("installed.bin");
    let opened = ok(&[
        "device",
        "open",
        "--device-dir",
        s(&device_dir(1)),
        "--key",
        s(&key1),
        "--bundle",
        s(&release_dir.join("bundle.bin")),
        "--out",
        s(&installed),
    ]);
    assert_eq!(opened["imageSha256"], created["imageSha256"]);
    assert_eq!(std::fs::read(&installed).unwrap(), image_bytes);
    // Another device cannot use device 1's delivery.
    let err = fails(&[
        "device",
        "open",
        "--device-dir",
        s(&device_dir(2)),
        "--key",
        s(&key1),
        "--bundle",
        s(&release_dir.join("bundle.bin")),
        "--out",
        s(&dir.path().join("stolen.bin")),
    ]);
    assert!(err.contains("key delivery"), "{err}");
    assert!(!dir.path().join("stolen.bin").exists());

    // The real key service saw the two purchases and issued exactly two keys.
    keys.wait_issued(2).await;
    // The provisioned device updates itself with the key service's delivery (exit 0) from the
    // gateway with every check, then is up to date (exit 10).
    let (code, result) = device_run(&device_dir(1));
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["result"]["outcome"], "updated");
    assert_eq!(result["result"]["releaseId"], release_id.as_str());
    assert_eq!(
        std::fs::read(device_dir(1).join("slots/slot-b.img")).unwrap(),
        image_bytes
    );
    let (code, result) = device_run(&device_dir(1));
    assert_eq!(code, 10, "{result}");
    // The other paid device updates too; the claimed but unpaid one gets no key (exit 11).
    let (code, result) = device_run(&device_dir(2));
    assert_eq!(code, 0, "{result}");
    assert_eq!(
        std::fs::read(device_dir(2).join("slots/slot-b.img")).unwrap(),
        image_bytes
    );
    let (code, result) = device_run(&device_dir(3));
    assert_eq!(code, 11, "{result}");
    assert!(!device_dir(3).join("slots/slot-b.img").exists());
    assert_eq!(keys.issued().await, 2);
    // The signed reports reached the receiver, by each device's identity key.
    let received = reports.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    let report = otaledger_core::report::SignedReport::from_json(&received[0]).unwrap();
    assert_eq!(report.signer().unwrap(), config.address);
    assert_eq!(
        report.report.outcome,
        otaledger_core::report::Outcome::Installed
    );

    // A malformed manifest names the field.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, text.replace("\"bundleSize\"", "\"bundleBytes\"")).unwrap();
    let err = fails(&[
        "release",
        "sign",
        "--manifest",
        s(&broken),
        "--private-key",
        &op_key,
    ]);
    assert!(err.contains("bundleBytes"), "{err}");
    // A second create into the same directory is refused, the manifest untouched.
    let err = fails(&[
        "release",
        "create",
        "--model",
        &model.to_string(),
        "--version",
        "2",
        "--image",
        s(&image),
        "--params",
        s(&authority.join("params.cpabe")),
        "--out",
        s(&release_dir),
        "--store",
        s(&store),
        "--chain",
        "31337",
        "--deployments",
        s(&deployments),
    ]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), text);
    // No master password and no terminal to ask on: named, nothing created.
    let second = dir.path().join("authority-2");
    let err = fails(&[
        "authority",
        "init",
        "--dir",
        s(&second),
        "--store",
        s(&store),
        "--scrypt-log-n",
        "10",
    ]);
    assert!(err.contains("OTALEDGER_MASTER_PASSWORD"), "{err}");
    assert!(!second.join("master.json").exists());
    // The password from the environment (never on the command line) protects the new key.
    let out = Command::new(BIN)
        .args(["--json", "authority", "init", "--dir", s(&second)])
        .args(["--store", s(&store), "--scrypt-log-n", "10"])
        .env("OTALEDGER_MASTER_PASSWORD", "from the environment")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    otaledger_cli::authority::load_master(&second.join("master.json"), "from the environment")
        .unwrap();
    assert!(
        otaledger_cli::authority::load_master(&second.join("master.json"), "something else")
            .is_err()
    );
    // A keystore without a password file, ETH_PASSWORD or terminal: named.
    let err = fails(&[
        "release",
        "sign",
        "--manifest",
        s(&manifest),
        "--keystore",
        s(&keystore),
    ]);
    assert!(err.contains("ETH_PASSWORD"), "{err}");
    // Offline commands need a chain; the wrong --chain for the node is named.
    let err = fails(&[
        "model",
        "show",
        "--id",
        "1",
        "--deployments",
        s(&deployments),
    ]);
    assert!(err.contains("--chain"), "{err}");
    let err = fails(&[
        "model",
        "show",
        "--id",
        "1",
        "--rpc-url",
        &rpc,
        "--chain",
        "1",
        "--deployments",
        s(&deployments),
    ]);
    assert!(err.contains("--chain 1 but the node"), "{err}");
}
