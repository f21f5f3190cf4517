//! `otaledger demo` end to end through the built binary: the whole system (chain, contracts,
//! gateway, key service, indexer, a fleet of device-SDK updaters) with a small fleet, checked
//! from the demo's JSON summary, from the chain, from the indexer's database and from every
//! device's own state: exactly the bought devices installed the release. Then a second run in
//! the same state directory, and the PostgreSQL variant.

mod support;

use std::{
    path::Path,
    process::{Command, Output},
};

use alloy::{
    primitives::{Address, B256},
    providers::ProviderBuilder,
    signers::local::PrivateKeySigner,
};
use otaledger_core::{
    bindings::{market::UpdateMarket, registry::UpdateRegistry},
    spawn_anvil,
};
use serde_json::Value;
use support::http_get;

const BIN: &str = env!("CARGO_BIN_EXE_otaledger");
const DEVICES: u64 = 8;
const BUYERS: u64 = 3;

fn demo(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["--json", "demo", "--exit-when-done", "--port", "0"])
        .args(["--devices", &DEVICES.to_string()])
        .args(["--buyers", &BUYERS.to_string()])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .env_remove("OTALEDGER_PRIVATE_KEY")
        .env_remove("OTALEDGER_DATABASE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The summary: the last line on stdout of a successful run.
fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last line is not JSON ({e}): {stdout}\n{stderr}"))
}

/// Exactly the bought devices installed version 1 and show green; the rest are untouched and red.
fn assert_exactly_the_bought(s: &Value, database: &str) {
    assert_eq!(s["database"], database);
    assert_eq!(s["device_count"], DEVICES);
    assert_eq!(s["bought"], BUYERS);
    assert_eq!(s["updated"], BUYERS);
    assert_eq!(s["not_updated"], DEVICES - BUYERS);
    let devices = s["devices"].as_array().unwrap();
    assert_eq!(devices.len() as u64, DEVICES);
    let bought = devices.iter().filter(|d| d["bought"] == true).count() as u64;
    assert_eq!(bought, BUYERS);
    for d in devices {
        if d["bought"] == true {
            assert_eq!(d["installed_version"], 1, "{d}");
            assert_eq!(d["verdict"], "updated", "{d}");
            assert_eq!(d["dashboard_status"], "green", "{d}");
        } else {
            assert_eq!(d["installed_version"], 0, "{d}");
            assert_eq!(d["verdict"], "not-entitled", "{d}");
            assert_eq!(d["dashboard_status"], "red", "{d}");
        }
    }
    // The gas of the old round is still reported.
    let steps: Vec<&str> = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["step"].as_str().unwrap())
        .collect();
    assert!(
        steps.iter().any(|st| st.starts_with("publishRelease")),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|st| st.starts_with("purchase")),
        "{steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_sqlite_installs_exactly_the_bought_devices_and_runs_again() {
    // Our own chain (`--rpc-url`), so the chain can be checked after the demo has exited.
    let anvil = spawn_anvil().unwrap();
    let key: PrivateKeySigner = anvil.keys()[0].clone().into();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let rpc = anvil.endpoint_url().to_string();
    let key_hex = alloy::hex::encode_prefixed(key.to_bytes());
    let out = demo(
        &state,
        &["--rpc-url", &rpc, "--confirmations", "0"],
        &[("OTALEDGER_PRIVATE_KEY", &key_hex)],
    );
    let s = summary(&out);
    assert_exactly_the_bought(&s, "sqlite");

    // The chain: every device claimed by the owner, entitled iff bought.
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    let registry_address: Address = serde_json::from_value(s["registry"].clone()).unwrap();
    let market_address: Address = serde_json::from_value(s["market"].clone()).unwrap();
    let release: B256 = serde_json::from_value(s["release_id"].clone()).unwrap();
    let market = UpdateMarket::new(market_address, &provider);
    let registry = UpdateRegistry::new(registry_address, &provider);
    let model = registry
        .model(s["model_id"].as_u64().unwrap() as u32)
        .call()
        .await
        .unwrap();
    assert_eq!(model.latestVersion, 1);
    for d in s["devices"].as_array().unwrap() {
        let index = d["index"].as_u64().unwrap();
        let entitled = market.isEntitled(release, index).call().await.unwrap();
        assert_eq!(entitled, d["bought"] == true, "device {index}");
    }

    // The indexer's database (left in the state directory): an `installed` report for
    // version 1 from exactly the bought devices, and the fleet's colours.
    let db = format!("sqlite://{}", state.join("indexer.sqlite").display());
    let pool = otaledger_indexer::db::connect(&db).await.unwrap();
    let reports = otaledger_indexer::dashboard::read_reports(&pool, None)
        .await
        .unwrap();
    let mut installed: Vec<u64> = reports
        .iter()
        .filter(|r| r.outcome == "installed" && r.version.trim_start_matches('0') == "1")
        .map(|r| r.device_index as u64)
        .collect();
    installed.sort_unstable();
    let mut bought: Vec<u64> = s["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["bought"] == true)
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    bought.sort_unstable();
    assert_eq!(installed, bought);
    let fleet = otaledger_indexer::dashboard::read_fleet(&pool, None)
        .await
        .unwrap();
    assert_eq!(fleet.len() as u64, DEVICES);
    for f in &fleet {
        let want = if bought.contains(&(f.index as u64)) {
            "green"
        } else {
            "red"
        };
        assert_eq!(f.status, want, "device {}", f.index);
    }
    pool.close().await;

    // Every device's own state file, and the image in its active slot for the bought ones.
    let image = std::fs::read(state.join("release/image.bin")).unwrap();
    for i in 0..DEVICES {
        let dir = state.join(format!("fleet/device-{i:05}"));
        let config = otaledger_core::device_file::DeviceConfig::load(&dir).unwrap();
        // Devices ask the demo's indexer for releases first; it also takes their reports.
        assert_eq!(config.indexer.urls.len(), 1, "device {i}");
        assert_eq!(config.indexer.urls, config.reports.urls, "device {i}");
        let state_file: Value =
            serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap_or_default())
                .unwrap_or(Value::Null);
        let version = state_file["installedVersion"].as_u64().unwrap_or(0);
        let was_bought = bought.contains(&config.device_index);
        assert_eq!(version, u64::from(was_bought), "device {i}: {state_file}");
        let holds_image = std::fs::read_dir(dir.join("slots"))
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| std::fs::read(e.path()).is_ok_and(|b| b == image))
            })
            .unwrap_or(false);
        assert_eq!(
            holds_image, was_bought,
            "device {i}: a slot holds the image"
        );
    }

    // A second run in the same directory (its own anvil this time, the default) works too.
    let out = demo(&state, &[], &[]);
    assert_exactly_the_bought(&summary(&out), "sqlite");

    // A directory that is not the demo's is never wiped.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let out = demo(&foreign, &[], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to wipe"), "{err}");
    assert!(foreign.join("notes.txt").exists());

    // More buyers than devices is named.
    let out = Command::new(BIN)
        .args(["demo", "--devices", "2", "--buyers", "3", "--dir"])
        .arg(tmp.path().join("never"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--buyers 3 is more than --devices 2"), "{err}");
}

/// Where the tests' PostgreSQL runs (`script/ensure-postgres.sh`).
fn postgres_admin_url() -> String {
    std::env::var("OTALEDGER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_postgres_installs_exactly_the_bought_devices() {
    let admin = postgres_admin_url();
    let tmp = tempfile::tempdir().unwrap();
    let out = demo(&tmp.path().join("state"), &["--postgres", &admin], &[]);
    let s = summary(&out);
    assert_exactly_the_bought(&s, "postgres");
    // The fresh database the demo created is dropped on exit.
    let name = s["database_name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("otaledger_demo_"), "{name}");
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "database {name} left behind");
}

/// Without `--exit-when-done` the demo serves the dashboard until Ctrl-C (SIGINT), then stops
/// every service and its anvil, and exits 0.
#[test]
fn demo_serves_until_ctrl_c_and_stops_everything() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--port", "0", "--devices", "3", "--buyers", "1"])
        .arg("--dir")
        .arg(tmp.path().join("state"))
        .env_remove("OTALEDGER_PRIVATE_KEY")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(tmp.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut anvil = None;
    let mut dashboard = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("anvil at http://").nth(1) {
            anvil = rest.split('/').next().map(str::to_owned);
        }
        if let Some(rest) = line.split("serving the dashboard at http://").nth(1) {
            dashboard = rest.split('/').next().map(str::to_owned);
            seen.push(line);
            break;
        }
        seen.push(line);
    }
    let (anvil, dashboard) = (
        anvil.unwrap_or_else(|| panic!("no anvil line: {seen:#?}")),
        dashboard.unwrap_or_else(|| panic!("no serving line: {seen:#?}")),
    );
    // While serving: the dashboard's fleet answers with the three devices, one green.
    let fleet = http_get(&dashboard, "/v1/fleet");
    let fleet: Value = serde_json::from_str(fleet.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let statuses: Vec<&str> = fleet["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 3, "{fleet}");
    assert_eq!(statuses.iter().filter(|s| **s == "green").count(), 1);
    assert!(std::net::TcpStream::connect(&anvil).is_ok());

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = wait_stopped(&mut child, &tmp.path().join("stderr"), "the demo");
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l == "stopping"), "{rest:?}");
    // Its anvil and its dashboard are gone.
    assert!(
        std::net::TcpStream::connect(&anvil).is_err(),
        "anvil still up"
    );
    assert!(
        std::net::TcpStream::connect(&dashboard).is_err(),
        "dashboard still up"
    );
}

/// Waits (30 s at most) for `child` to exit after SIGINT; past that, kills it and fails with
/// what it wrote on stderr.
fn wait_stopped(
    child: &mut std::process::Child,
    stderr: &std::path::Path,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not stop within 30 s of SIGINT; its stderr:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `--pause-before-purchase` stops before buying (every device red on the dashboard) and
/// waits on stdin; Ctrl-C there still stops everything (a blocked read of stdin does not
/// hold the exit).
#[test]
fn paused_demo_shows_the_fleet_red_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--json",
            "demo",
            "--port",
            "0",
            "--devices",
            "3",
            "--buyers",
            "1",
        ])
        .arg("--pause-before-purchase")
        .arg("--dir")
        .arg(tmp.path().join("state"))
        .env_remove("OTALEDGER_PRIVATE_KEY")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(tmp.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let paused: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(paused["event"], "paused-before-purchase", "{paused}");
    let dashboard = paused["dashboard"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // The demo pauses once the indexer has the published release: every device red.
    let fleet = http_get(&dashboard, "/v1/fleet");
    let fleet: Value = serde_json::from_str(fleet.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let statuses: Vec<&str> = fleet["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["red", "red", "red"], "{fleet}");

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = wait_stopped(&mut child, &tmp.path().join("stderr"), "the paused demo");
    assert!(status.success(), "{status}");
    // No summary: it never bought.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        std::net::TcpStream::connect(&dashboard).is_err(),
        "dashboard still up"
    );
}

/// `otaledger fleet simulate` through the binary, small: every entitled device installs, the
/// device not bought keeps checking and does not; the report's counts come from the relays
/// (with `--relay cache` the gateway served the bundle once for the three devices and the
/// shared headers and proofs were answered from the cache); every device's attempts land in
/// `devices.json`.
#[test]
fn fleet_simulate_reports_what_the_relays_counted() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("simulate");
    let out = Command::new(BIN)
        .args([
            "--json",
            "fleet",
            "simulate",
            "--devices",
            "4",
            "--buyers",
            "3",
        ])
        .args([
            "--image-size",
            "64K",
            "--relay",
            "cache",
            "--timeout",
            "120",
        ])
        .arg("--dir")
        .arg(&state)
        .env_remove("OTALEDGER_DATABASE")
        .output()
        .unwrap();
    let r = summary(&out);
    assert_eq!(
        (&r["devices"], &r["entitled"], &r["installed"]),
        (&4.into(), &3.into(), &3.into())
    );
    assert_eq!(r["image_size"], 65536);
    assert_eq!(r["update"]["count"], 3);
    assert!(r["attempts"]["count"].as_u64().unwrap() >= 4);
    let bundle = r["bundle_size"].as_u64().unwrap();
    let served = r["gateway_bytes_served"].as_u64().unwrap();
    let upstream = r["gateway_bytes_upstream"].as_u64().unwrap();
    assert!(served >= 3 * bundle, "{served} < 3 × {bundle}");
    assert!(
        upstream < 2 * bundle,
        "the cache asked the gateway {upstream} bytes"
    );
    assert!(r["rpc_cache_hit_rate"].as_f64().unwrap() > 0.0);
    assert!(r["rpc_methods_per_check"]["eth_getProof"].as_f64().unwrap() > 0.0);
    // One voted head per attempt: the release is checked at the head its latest version was
    // proven at (`Client::check_at`), not at a second one.
    for method in ["eth_blockNumber", "eth_getBlockByNumber"] {
        assert_eq!(r["rpc_methods_per_check"][method], 1.0, "{method}: {r}");
    }
    assert!(r["cpu_ms_per_update_process"].as_f64().unwrap() > 0.0);
    assert!(r["peak_rss_process_mib"].as_f64().unwrap() > 0.0);
    let devices: Vec<Value> =
        serde_json::from_slice(&std::fs::read(state.join("devices.json")).unwrap()).unwrap();
    assert_eq!(devices.len(), 4);
    for d in &devices {
        let bought = d["bought"].as_bool().unwrap();
        assert_eq!(d["installed_version"], u64::from(bought));
        assert_eq!(d["installed_after_ms"].is_number(), bought);
        assert!(!d["attempts"].as_array().unwrap().is_empty());
    }
}
