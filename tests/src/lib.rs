//! Shared helpers of the end-to-end tests (`tests/tests/*.rs`): they drive the
//! built `otaledger` binary (the whole system through `otaledger demo`, then
//! the CLI's owner, manufacturer and device commands) against a real anvil,
//! and read the indexer's HTTP API. See `tests/README.md`.
//!
//! Every helper panics with the command's output when something fails, as an
//! assertion would: these are test fixtures, not a library for callers.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    node_bindings::AnvilInstance,
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use otaledger_core::device_file::DeviceConfig;
use serde_json::Value;

/// The `otaledger` binary: `OTALEDGER_BIN` if set, else the one cargo built
/// next to this test executable (`<target>/<profile>/otaledger`).
/// `cargo test --workspace` builds it (it is `otaledger-cli`'s binary); with
/// `cargo test -p otaledger-e2e` alone, build it first
/// (`cargo build -p otaledger-cli`).
pub fn otaledger_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("OTALEDGER_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // <target>/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps");
    let bin = profile_dir.join(format!("otaledger{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p otaledger-cli` (or set OTALEDGER_BIN)",
        bin.display()
    );
    bin
}

/// A command of the `otaledger` binary with the environment cleared of the
/// variables that would change what it does (keys, database, node).
pub fn otaledger() -> Command {
    let mut cmd = Command::new(otaledger_bin());
    for var in [
        "OTALEDGER_PRIVATE_KEY",
        "OTALEDGER_DATABASE",
        "OTALEDGER_RPC_URL",
        "ETH_RPC_URL",
        "ETH_KEYSTORE",
        "ETH_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd`, asserts that it succeeded and returns its stdout's last line as JSON
/// (every command's `--json` output; the demo's summary).
pub fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("running otaledger");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        shown(cmd),
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "{}: the last line is not JSON ({e}):\n{stdout}\n{stderr}",
            shown(cmd)
        )
    })
}

/// The program and arguments of `cmd`, without its environment (which holds keys).
fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A chain for one test: the pinned anvil and its first funded key, which the
/// demo uses as deployer, manufacturer operator and device owner.
pub struct TestChain {
    /// The node (stops when dropped).
    pub anvil: AnvilInstance,
    /// Deployer, operator and owner.
    pub key: PrivateKeySigner,
}

impl TestChain {
    /// Spawns anvil on a free port.
    pub fn spawn() -> Self {
        let anvil = otaledger_core::spawn_anvil().expect("spawning anvil (npm ci in the checkout)");
        let key = anvil.keys()[0].clone().into();
        Self { anvil, key }
    }

    /// The node's HTTP endpoint.
    pub fn rpc_url(&self) -> String {
        self.anvil.endpoint_url().to_string()
    }

    /// The key as `0x…` hex, for `OTALEDGER_PRIVATE_KEY`.
    pub fn key_hex(&self) -> String {
        alloy::hex::encode_prefixed(self.key.to_bytes())
    }

    /// `otaledger --json <command…>` against this chain, signing with [`TestChain::key`],
    /// with the demo's deployment files in `state/deployments`; add the
    /// command's own arguments after.
    pub fn cli(&self, state: &Path, command: &[&str]) -> Command {
        let mut cmd = otaledger();
        cmd.arg("--json")
            .args(command)
            .env("OTALEDGER_PRIVATE_KEY", self.key_hex())
            .env("ETH_RPC_URL", self.rpc_url())
            .arg("--deployments")
            .arg(state.join("deployments"));
        cmd
    }

    /// `otaledger demo --exit-when-done` on this chain in `state`: the contracts, a
    /// 2-of-3 manufacturer, a fleet of `devices` claimed by [`TestChain::key`], release
    /// version 1 bought for `buyers` of them and installed by exactly those.
    /// Returns the demo's JSON summary (after checking that exactly the bought devices
    /// installed). The demo's gateway, key service and indexer stop with it; the
    /// chain, the deployment files and every device's directory stay.
    pub fn demo(&self, state: &Path, devices: u32, buyers: u32) -> Value {
        let mut cmd = otaledger();
        cmd.args(["--json", "demo", "--exit-when-done", "--port", "0"])
            .args(["--devices", &devices.to_string()])
            .args(["--buyers", &buyers.to_string()])
            .args(["--rpc-url", &self.rpc_url(), "--confirmations", "0"])
            .arg("--dir")
            .arg(state)
            .env("OTALEDGER_PRIVATE_KEY", self.key_hex());
        let s = run_json(&mut cmd);
        assert_eq!(s["bought"], buyers, "{s}");
        assert_eq!(s["updated"], buyers, "{s}");
        s
    }
}

/// A release created by [`TestChain::create_release`] (not yet signed or published).
#[derive(Debug, Clone)]
pub struct NewRelease {
    /// Its id (`0x…`, the manifest's EIP-712 struct hash).
    pub id: String,
    /// Its unsigned `manifest.json`.
    pub manifest: PathBuf,
}

impl TestChain {
    /// `release create` of `version` for `model` from `image` (encrypted under the demo's
    /// authority parameters, its bundle added to the demo's block store `state/ipfs`),
    /// priced `price` wei per device, into `out`.
    pub fn create_release(
        &self,
        state: &Path,
        model: &str,
        version: u64,
        price: u128,
        image: &Path,
        out: &Path,
    ) -> NewRelease {
        let version = version.to_string();
        let created = run_json(
            self.cli(
                state,
                &["release", "create", "--model", model, "--version", &version],
            )
            .arg("--price")
            .arg(price.to_string())
            .arg("--image")
            .arg(image)
            .arg("--params")
            .arg(state.join("authority/params.cpabe"))
            .arg("--store")
            .arg(state.join("ipfs"))
            .arg("--out")
            .arg(out),
        );
        NewRelease {
            id: created["releaseId"]
                .as_str()
                .expect("release create names the release")
                .to_owned(),
            manifest: out.join("manifest.json"),
        }
    }

    /// `release publish` of `manifest` with these signature files; its JSON answer.
    pub fn publish(&self, state: &Path, manifest: &Path, sigs: &[PathBuf]) -> Value {
        let manifest = manifest.to_str().expect("a UTF-8 path");
        let mut publish = self.cli(state, &["release", "publish", "--manifest", manifest]);
        for sig in sigs {
            publish.arg("--sig").arg(sig);
        }
        run_json(&mut publish)
    }

    /// `purchase` of `release` for the devices with these global indexes, by
    /// [`TestChain::key`]; its JSON answer (with the transaction, `tx`).
    pub fn purchase(&self, state: &Path, release: &str, devices: &[u64]) -> Value {
        let mut buy = self.cli(state, &["purchase", "--release", release]);
        for d in devices {
            buy.args(["--device", &d.to_string()]);
        }
        run_json(&mut buy)
    }

    /// `keys serve` for `manufacturer` with the demo's key-service key, CP-ABE authority
    /// and block store, its own SQLite file `db`, issuing a key once a purchase has
    /// `confirmations` blocks on top.
    pub fn key_service(
        &self,
        state: &Path,
        db: &Path,
        manufacturer: &str,
        confirmations: u64,
    ) -> Daemon {
        let port = free_port();
        let mut ks = self.cli(state, &["keys", "serve", "--manufacturer", manufacturer]);
        let key_file = state.join("keyservice.key");
        let key = std::fs::read_to_string(&key_file)
            .unwrap_or_else(|e| panic!("{}: {e}", key_file.display()));
        ks.env("OTALEDGER_PRIVATE_KEY", key.trim())
            .arg("--authority")
            .arg(state.join("authority"))
            .arg("--master-password-file")
            .arg(state.join("master-password.txt"))
            .arg("--db")
            .arg(db)
            .arg("--store")
            .arg(state.join("ipfs"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--confirmations",
                &confirmations.to_string(),
                "--poll-ms",
                "100",
            ]);
        Daemon::spawn(ks, port)
    }

    /// `manufacturer rotate-signers` of `manufacturer` to `signers` (addresses) with
    /// `threshold`, each of `approvers` (keys of the current set) running `approval sign`
    /// on the request (files in `work`), then `approval submit`; its JSON answer.
    pub fn rotate_signers(
        &self,
        state: &Path,
        work: &Path,
        manufacturer: &str,
        signers: &[String],
        threshold: u32,
        approvers: &[&str],
    ) -> Value {
        let threshold = threshold.to_string();
        let request = work.join(format!("rotate-{manufacturer}.request.json"));
        let mut rotate = self.cli(
            state,
            &[
                "manufacturer",
                "rotate-signers",
                "--id",
                manufacturer,
                "--threshold",
                &threshold,
            ],
        );
        for s in signers {
            rotate.args(["--signer", s]);
        }
        rotate.arg("--out").arg(&request);
        run_json(&mut rotate);
        let request_arg = request.to_str().expect("a UTF-8 path");
        let mut submit = self.cli(state, &["approval", "submit", "--request", request_arg]);
        for (i, key) in approvers.iter().enumerate() {
            let sig = work.join(format!("rotate-{manufacturer}-{i}.sig.json"));
            approval_sign(key, &request, &sig);
            submit.arg("--sig").arg(sig);
        }
        run_json(&mut submit)
    }

    /// A JSON-RPC call on the node (`anvil_reorg`, `anvil_mine`, …).
    pub async fn rpc(&self, method: &'static str, params: Value) -> Value {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        provider
            .raw_request::<_, Value>(method.into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// The node's latest block number.
    pub async fn head(&self) -> u64 {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        provider.get_block_number().await.expect("eth_blockNumber")
    }
}

/// `release sign` of `manifest` by `key` (`0x…` hex) into the signature file `out`.
pub fn release_sign(key: &str, manifest: &Path, out: &Path) {
    run_json(
        sign_with(key, &["release", "sign", "--manifest"])
            .arg(manifest)
            .arg("--out")
            .arg(out),
    );
}

/// The address of `key` (`0x…` hex), lowercase `0x…`.
pub fn addr_of(key: &str) -> String {
    let signer: PrivateKeySigner = key.parse().expect("a private key");
    signer.address().to_string().to_lowercase()
}

/// `approval sign` of the request file `request` by `key` (`0x…` hex) into `out`.
pub fn approval_sign(key: &str, request: &Path, out: &Path) {
    run_json(
        sign_with(key, &["approval", "sign", "--request"])
            .arg(request)
            .arg("--out")
            .arg(out),
    );
}

/// `gateway serve` (a trustless gateway) over the block store `store`.
pub fn gateway(store: &Path) -> Daemon {
    let port = free_port();
    let mut cmd = otaledger();
    cmd.args(["gateway", "serve", "--store"])
        .arg(store)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    Daemon::spawn(cmd, port)
}

/// An offline signing command (`release sign`, `approval sign`): `otaledger --json
/// <command…>` with `key` (`0x…` hex) as `OTALEDGER_PRIVATE_KEY` and no node.
pub fn sign_with(key: &str, command: &[&str]) -> Command {
    let mut cmd = otaledger();
    cmd.arg("--json")
        .args(command)
        .env("OTALEDGER_PRIVATE_KEY", key);
    cmd
}

/// The demo manufacturer's signer keys (`state/signers/signer-N.key`, `0x…` hex), in
/// registration order.
pub fn demo_signer_keys(state: &Path) -> Vec<String> {
    (0..3)
        .map(|i| {
            let path = state.join(format!("signers/signer-{i}.key"));
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .trim()
                .to_owned()
        })
        .collect()
}

/// One device of a demo's fleet, from its summary.
#[derive(Debug, Clone)]
pub struct FleetDevice {
    /// Global device index on chain.
    pub index: u64,
    /// Its directory (`state/fleet/device-NNNNN`).
    pub dir: PathBuf,
    /// Whether the demo's owner bought release 1 for it.
    pub bought: bool,
}

/// The fleet of a demo summary, in provisioning order.
pub fn fleet(state: &Path, summary: &Value) -> Vec<FleetDevice> {
    summary["devices"]
        .as_array()
        .expect("the summary lists its devices")
        .iter()
        .enumerate()
        .map(|(i, d)| FleetDevice {
            index: d["index"].as_u64().expect("device index"),
            dir: state.join(format!("fleet/device-{i:05}")),
            bought: d["bought"] == true,
        })
        .collect()
}

/// The installed version in a device's own `state.json` (0 before any install).
pub fn installed_version(dir: &Path) -> u64 {
    std::fs::read(dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|s| s["installedVersion"].as_u64())
        .unwrap_or(0)
}

/// One `otaledger device run --once --json --confirmations 0` attempt: the exit code
/// and the JSON events it printed (the last is the `result`).
pub fn device_run_once(dir: &Path) -> (i32, Vec<Value>) {
    device_run(dir, 0)
}

/// One `otaledger device run --once --json` attempt acting on the head minus
/// `confirmations` blocks: the exit code and the JSON events it printed (the last is
/// the `result`).
pub fn device_run(dir: &Path, confirmations: u64) -> (i32, Vec<Value>) {
    let out: Output = otaledger()
        .args(["device", "run", "--once", "--json", "--confirmations"])
        .arg(confirmations.to_string())
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("running otaledger device run");
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "device run was killed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, events)
}

/// Whether a `device run` ended waiting for its key (exit 11 after the key service
/// answered 404), as opposed to not being entitled on chain (exit 11 at the check).
pub fn waiting_for_key(events: &[Value]) -> bool {
    events.iter().any(|e| {
        e["step"] == "key"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("not issued"))
    })
}

/// Whether a `device run` found the device not entitled on chain (the proven
/// entitlement bit clear at its trusted head; exit 11).
pub fn not_entitled(events: &[Value]) -> bool {
    events.iter().any(|e| {
        e["step"] == "check"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("not entitled"))
    })
}

/// [`device_run`] again while it waits for its key (the key service issues it a moment
/// after the purchase), at most 60 s; the last attempt's exit code and events.
pub fn device_run_until_keyed(dir: &Path, confirmations: u64) -> (i32, Vec<Value>) {
    let started = Instant::now();
    loop {
        let (code, events) = device_run(dir, confirmations);
        if code != 11 || !waiting_for_key(&events) || started.elapsed() > Duration::from_secs(60) {
            return (code, events);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Points every device's `device.toml` at these gateways, key services and report
/// receivers (the demo's own services stop with it).
pub fn point_devices(
    devices: &[FleetDevice],
    gateways: &[&str],
    key_services: &[&str],
    reports: &[&str],
) {
    let owned = |urls: &[&str]| urls.iter().map(|u| (*u).to_owned()).collect::<Vec<_>>();
    for d in devices {
        let mut config =
            DeviceConfig::load(&d.dir).unwrap_or_else(|e| panic!("{}: {e}", d.dir.display()));
        config.ipfs.gateways = owned(gateways);
        config.key_service.urls = owned(key_services);
        config.reports.urls = owned(reports);
        let toml = config.to_toml().expect("device.toml");
        std::fs::write(d.dir.join("device.toml"), toml).expect("writing device.toml");
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the caller).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port")
        .port()
}

/// `otaledger indexer run` as a child process, killed when dropped (or by
/// [`Indexer::kill`]).
pub struct Indexer {
    child: Option<Child>,
    /// The port of its read API.
    pub port: u16,
    /// Base URL of its read API, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Indexer {
    /// Starts the indexer on `database` (`sqlite://…` or `postgres://…`) following
    /// `chain` with the demo's deployment in `state`, and waits until `/readyz`
    /// says it has caught up with the head. Every block is taken as final
    /// (`--finality-depth 0`): this indexer cannot repair a reorg.
    pub async fn start(chain: &TestChain, state: &Path, database: &str) -> Self {
        Self::start_with(chain, state, database, 0, free_port()).await
    }

    /// [`Indexer::start`] with the last `finality_depth` blocks kept to repair reorgs up
    /// to that depth, its read API on `port`.
    pub async fn start_with(
        chain: &TestChain,
        state: &Path,
        database: &str,
        finality_depth: u64,
        port: u16,
    ) -> Self {
        let child = otaledger()
            .args(["indexer", "run", "--finality-depth"])
            .arg(finality_depth.to_string())
            .args(["--poll-ms", "100"])
            .args(["--ready-lag", "0", "--database", database])
            .args(["--rpc-url", &chain.rpc_url()])
            .arg("--deployments")
            .arg(state.join("deployments"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting otaledger indexer run");
        let indexer = Self {
            child: Some(child),
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        indexer.wait_ready().await;
        indexer
    }

    /// Kills the process now with SIGKILL (as a crash would: no shutdown, whatever it was
    /// writing) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            let ok = client
                .get(format!("{}/readyz", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the indexer at {} was not ready within 60 s",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET path` on the read API, as JSON (panics on a non-2xx answer).
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.get_status(path).await;
        assert!(status.is_success(), "GET {path}: {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// `GET path` on the read API: the status and the body, whatever the status.
    pub async fn get_status(&self, path: &str) -> (reqwest::StatusCode, String) {
        let url = format!("{}{path}", self.url);
        let resp = reqwest::get(&url).await.expect("GET on the indexer");
        let status = resp.status();
        (status, resp.text().await.expect("the indexer's answer"))
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `otaledger indexer verify --json` of `database` against `chain`: whether it exited 0
/// (the mirror equals the chain up to its checkpoint) and its report.
pub fn indexer_verify(chain: &TestChain, state: &Path, database: &str) -> (bool, Value) {
    let out = otaledger()
        .args(["--json", "indexer", "verify", "--database", database])
        .args(["--rpc-url", &chain.rpc_url()])
        .arg("--deployments")
        .arg(state.join("deployments"))
        .output()
        .expect("running otaledger indexer verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "indexer verify printed no JSON report ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.success(), report)
}

/// Where the tests' PostgreSQL runs (`script/ensure-postgres.sh`): `OTALEDGER_TEST_POSTGRES`,
/// default `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn postgres_admin_url() -> String {
    std::env::var("OTALEDGER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database for one test, dropped by [`FreshPostgres::drop_database`].
pub struct FreshPostgres {
    admin: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl FreshPostgres {
    /// Creates `otaledger_e2e_<pid>_<nanos>` on [`postgres_admin_url`].
    pub async fn create() -> Self {
        let admin = postgres_admin_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("otaledger_e2e_{}_{nanos}", std::process::id());
        let mut conn = connect_admin(&admin).await;
        // The name is ours: letters, digits and underscores.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Self { admin, name, url }
    }

    /// Drops the database (after the processes using it have stopped).
    pub async fn drop_database(self) {
        let mut conn = connect_admin(&self.admin).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("DROP DATABASE {}: {e}", self.name));
    }
}

async fn connect_admin(admin: &str) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| {
            panic!("connecting to PostgreSQL at {admin} ({e}): run script/ensure-postgres.sh")
        })
}

/// A long-running `otaledger` command (`gateway serve`, `keys serve`) as a child
/// process listening on 127.0.0.1, killed when dropped (or by [`Daemon::kill`]).
pub struct Daemon {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Daemon {
    /// Spawns `cmd` (which must listen on `port`) and waits until the port accepts.
    pub fn spawn(mut cmd: Command, port: u16) -> Self {
        let shown = shown(&cmd);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {shown}: {e}"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{shown} did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Kills the process now (as a crash would: no shutdown) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
