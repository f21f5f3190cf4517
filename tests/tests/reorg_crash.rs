//! A chain reorg and an indexer kill -9 in the middle of a rollout, on SQLite and on
//! PostgreSQL (a fresh database each; the indexer mirrors the chain from its deployment).
//!
//! After the demo's round (release 1, one device), the manufacturer publishes release 2
//! (signers 0 and 2); a gateway and `keys serve` (issuing at 0 confirmations) serve it and
//! every device reports to an `otaledger indexer run` child (reorg window 12 blocks).
//!
//! 1. The owner buys release 2 for devices A = {0, 1}; both install it (confirmations 0)
//!    and report to the indexer.
//! 2. The owner buys it for B1 = {2, 3} (block h−1) and then for B2 = {4} (block h, the
//!    head). The key service issues keys for all three at once. Devices 3 and 4, acting
//!    on the head minus 3 confirmations, check: not entitled at their trusted head, they
//!    wait (exit 11) and install nothing, though their keys are there.
//! 3. Once the indexer has both purchases, it is killed with SIGKILL.
//! 4. `anvil_reorg` replaces the last 2 blocks (h−1 and h, depth < the 3 confirmations):
//!    the new block h−1 is empty, the new block h holds B1's purchase again (the same
//!    signed transaction, now in another block); B2's purchase is dropped (not
//!    re-included: the chain no longer entitles device 4).
//! 5. With the indexer still down, device 2 (confirmations 0) installs from the
//!    re-included purchase; its report stays queued on the device.
//! 6. The indexer restarts on the same database: it finds its checkpoint off the chain,
//!    rewinds to the common ancestor (its metrics count one reorg of depth 2) and
//!    re-syncs. Device 2 delivers its queued report; device 3 still waits at 3
//!    confirmations, and installs once 3 more blocks are mined; device 4 is refused the
//!    release (not entitled: its purchase is gone, its issued key does not help) and
//!    device 5, never bought, likewise.
//!
//! Asserted: every device's installed version (`state.json`, `boot.json`, the image in
//! the active slot); that no device installed twice (the updated runs the test counted,
//! the `installed` reports the indexer holds, one per device; the report queues empty);
//! that the indexer's purchases, each device's audit trail and the dashboard's fleet
//! converge to what the chain says after the reorg (polled until equal); and that
//! `otaledger indexer verify` exits 0 with a clean report.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256},
    providers::{Provider, ProviderBuilder},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use otaledger_core::bindings::market::UpdateMarket;
use otaledger_e2e::{
    FleetDevice, FreshPostgres, Indexer, TestChain, demo_signer_keys, device_run,
    device_run_until_keyed, fleet, free_port, gateway, indexer_verify, installed_version,
    not_entitled, point_devices, release_sign,
};
use serde_json::{Value, json};

const DEVICES: u32 = 6;
/// The demo installs release 1 on one device.
const BUYERS: u32 = 1;
/// Release 2's price per device, in wei.
const PRICE: u128 = 1000;
/// Blocks the reorg replaces.
const REORG_DEPTH: u64 = 2;
/// Confirmations of the waiting devices: more than the reorg's depth.
const CONFIRMATIONS: u64 = 3;
/// The indexer's reorg window (`--finality-depth`).
const FINALITY_DEPTH: u64 = 12;
/// How long the indexer and the key service may take to catch up (a guard against a
/// hang, not a speed assertion).
const CATCH_UP: Duration = Duration::from_secs(60);

/// A fleet device and the installs the test saw it make.
struct Tracked {
    device: FleetDevice,
    /// Its version before release 2.
    initial: u64,
    /// `device run` attempts that ended `updated`.
    updates: u32,
}

impl Tracked {
    /// One `device run --once` at `confirmations`; counts an update.
    fn run(&mut self, confirmations: u64) -> (i32, Vec<Value>) {
        let (code, events) = device_run(&self.device.dir, confirmations);
        self.count(code, &events);
        (code, events)
    }

    /// [`Tracked::run`] again while the device waits for its key.
    fn run_until_keyed(&mut self, confirmations: u64) -> (i32, Vec<Value>) {
        let (code, events) = device_run_until_keyed(&self.device.dir, confirmations);
        self.count(code, &events);
        (code, events)
    }

    fn count(&mut self, code: i32, events: &[Value]) {
        let updated = events
            .last()
            .is_some_and(|e| e["result"]["outcome"] == "updated");
        assert_eq!(
            code == 0,
            updated,
            "device {}: exit {code} with {events:?}",
            self.device.index
        );
        if updated {
            self.updates += 1;
        }
    }

    /// Runs and asserts that the device is not entitled at its trusted head (exit 11 at
    /// the check, not while waiting for a key) and installed nothing.
    fn assert_not_entitled(&mut self, confirmations: u64) {
        let before = installed_version(&self.device.dir);
        let (code, events) = self.run(confirmations);
        assert_eq!(code, 11, "device {}: {events:?}", self.device.index);
        assert!(
            not_entitled(&events),
            "device {}: not refused at the entitlement check: {events:?}",
            self.device.index
        );
        assert_eq!(installed_version(&self.device.dir), before);
    }

    fn index(&self) -> u64 {
        self.device.index
    }
}

/// The device's report queue (`reports.json`): the signed reports not delivered yet.
fn queued_reports(dir: &Path) -> Vec<Value> {
    let path = dir.join("reports.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Vec::new();
    };
    let file: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    file["queue"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no queue: {file}", path.display()))
        .clone()
}

/// The device's boot state (`slots/boot.json`); a device that never installed has none
/// and runs its factory image (slot A, version 0).
fn boot_state(dir: &Path) -> Value {
    let path = dir.join("slots/boot.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            json!({"active": "a", "activeVersion": 0, "pending": null})
        }
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// A JSON number, or a decimal string (zero-padded versions), as `u64`.
fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

fn lower(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_lowercase()
}

/// Until `read` returns `expected` (then returns), or panics with the last difference
/// after [`CATCH_UP`].
async fn converge<T, F, Fut>(what: &str, expected: &T, mut read: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let started = Instant::now();
    loop {
        let got = read().await;
        if &got == expected {
            return;
        }
        if started.elapsed() > CATCH_UP {
            assert_eq!(&got, expected, "{what} did not converge");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the indexer shows of release 2 and the fleet, in the form the chain is read into.
#[derive(Debug, PartialEq, Eq)]
struct View {
    /// Purchases of release 2: (transaction, block number, block hash) → devices.
    purchases: BTreeMap<(String, u64, String), BTreeSet<u64>>,
    /// Per device: the purchase transactions of release 2 in its audit trail.
    trails: BTreeMap<u64, BTreeSet<String>>,
    /// Per device: the dashboard's status, installed version and latest release.
    fleet: BTreeMap<u64, (String, Option<u64>, String)>,
    /// Per device: its `installed` reports of release 2.
    installs: BTreeMap<u64, usize>,
}

/// Reads the [`View`] from the indexer's API.
async fn indexed(indexer: &Indexer, release: &str, devices: &[u64]) -> View {
    let mut purchases = BTreeMap::new();
    let page = indexer
        .get(&format!("/v1/purchases?release={release}&limit=500"))
        .await;
    for p in page["items"].as_array().expect("purchase items") {
        purchases.insert(
            (
                lower(&p["tx_hash"]),
                number(&p["block_number"]),
                lower(&p["block_hash"]),
            ),
            BTreeSet::new(),
        );
    }
    let mut trails = BTreeMap::new();
    let mut installs = BTreeMap::new();
    for &i in devices {
        let trail = indexer.get(&format!("/v1/devices/{i}")).await;
        let mut txs = BTreeSet::new();
        for p in trail["purchases"].as_array().expect("trail purchases") {
            if lower(&p["release_id"]) == release {
                let key = (
                    lower(&p["tx_hash"]),
                    number(&p["block_number"]),
                    lower(&p["block_hash"]),
                );
                // A device row without its purchase row shows as its own entry.
                purchases.entry(key.clone()).or_default().insert(i);
                txs.insert(key.0);
            }
        }
        trails.insert(i, txs);
        let reports = indexer.get(&format!("/v1/devices/{i}/reports")).await;
        let items = reports["items"].as_array().expect("report items");
        let n = items
            .iter()
            .filter(|r| r["outcome"] == "installed" && lower(&r["release_id"]) == release)
            .count();
        installs.insert(i, n);
    }
    let view = indexer.get("/v1/fleet").await;
    let fleet = view["devices"]
        .as_array()
        .expect("fleet devices")
        .iter()
        .map(|f| {
            (
                f["index"].as_u64().expect("fleet index"),
                (
                    f["status"].as_str().unwrap_or_default().to_owned(),
                    (!f["installed"].is_null()).then(|| number(&f["installed"])),
                    f["latest_release"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase(),
                ),
            )
        })
        .collect();
    View {
        purchases,
        trails,
        fleet,
        installs,
    }
}

/// The [`View`] the chain and the devices call for after the rollout: purchases from the
/// market's `Purchased` logs, statuses from the proven entitlements and what each device
/// installed.
async fn expected(chain: &TestChain, market: Address, release: &str, devices: &[Tracked]) -> View {
    let provider = ProviderBuilder::new().connect_http(chain.anvil.endpoint_url());
    let release_id: B256 = release.parse().expect("release id");
    let filter = Filter::new()
        .address(market)
        .event_signature(UpdateMarket::Purchased::SIGNATURE_HASH)
        .topic1(release_id)
        .from_block(0);
    let mut purchases = BTreeMap::new();
    let mut trails: BTreeMap<u64, BTreeSet<String>> = devices
        .iter()
        .map(|d| (d.index(), BTreeSet::new()))
        .collect();
    for log in provider.get_logs(&filter).await.expect("eth_getLogs") {
        let decoded = log
            .log_decode::<UpdateMarket::Purchased>()
            .expect("a Purchased log");
        let tx = format!("{:#x}", log.transaction_hash.expect("mined"));
        let key = (
            tx.clone(),
            log.block_number.expect("mined"),
            format!("{:#x}", log.block_hash.expect("mined")),
        );
        let bought: BTreeSet<u64> = decoded.inner.data.deviceIndexes.iter().copied().collect();
        for i in &bought {
            if let Some(t) = trails.get_mut(i) {
                t.insert(tx.clone());
            }
        }
        purchases.insert(key, bought);
    }
    let market = UpdateMarket::new(market, &provider);
    let mut fleet = BTreeMap::new();
    let mut installs = BTreeMap::new();
    for d in devices {
        let installed = installed_version(&d.device.dir);
        let entitled = market
            .isEntitled(release_id, d.index())
            .call()
            .await
            .expect("isEntitled");
        let status = if installed == 2 {
            "green"
        } else if entitled {
            "amber"
        } else {
            "red"
        };
        // The indexer only knows installs reported to it: the demo's round reported to
        // the demo's own (stopped) indexer.
        let reported = (installed == 2).then_some(2);
        fleet.insert(d.index(), (status.to_owned(), reported, release.to_owned()));
        installs.insert(d.index(), usize::from(installed == 2));
    }
    View {
        purchases,
        trails,
        fleet,
        installs,
    }
}

/// The value of an unlabelled metric, or of one with these labels.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn reorg_and_kill_9_mid_rollout(chain: &TestChain, work: &Path, database: &str) {
    let state = work.join("state");
    let summary = chain.demo(&state, DEVICES, BUYERS);
    let mfr = summary["manufacturer_id"].as_u64().unwrap().to_string();
    let model = summary["model_id"].as_u64().unwrap().to_string();
    let market: Address = serde_json::from_value(summary["market"].clone()).unwrap();
    let devices = fleet(&state, &summary);
    let mut tracked: Vec<Tracked> = devices
        .iter()
        .map(|d| Tracked {
            device: d.clone(),
            initial: installed_version(&d.dir),
            updates: 0,
        })
        .collect();
    let indexes: Vec<u64> = devices.iter().map(|d| d.index).collect();
    let [a0, a1, b2, b3, c4, n5] = &mut tracked[..] else {
        panic!("{DEVICES} devices");
    };

    // Release 2, signed by signers 0 and 2.
    let image = work.join("image-v2.bin");
    let image_bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&image, &image_bytes).unwrap();
    let v2 = chain.create_release(&state, &model, 2, PRICE, &image, &work.join("v2"));
    let release = v2.id.to_lowercase();
    let keys = demo_signer_keys(&state);
    let sigs: Vec<_> = [0, 2]
        .into_iter()
        .map(|i| {
            let sig = work.join(format!("v2-{i}.sig.json"));
            release_sign(&keys[i], &v2.manifest, &sig);
            sig
        })
        .collect();
    chain.publish(&state, &v2.manifest, &sigs);

    // The services, and the indexer the devices report to.
    let gw = gateway(&state.join("ipfs"));
    let ks = chain.key_service(&state, &work.join("keyservice.sqlite"), &mfr, 0);
    let port = free_port();
    let mut indexer = Indexer::start_with(chain, &state, database, FINALITY_DEPTH, port).await;
    point_devices(
        &devices,
        &[gw.url.as_str()],
        &[ks.url.as_str()],
        &[indexer.url.as_str()],
    );

    // 1. A installs and reports.
    chain.purchase(&state, &release, &[a0.index(), a1.index()]);
    for d in [&mut *a0, &mut *a1] {
        let (code, events) = d.run_until_keyed(0);
        assert_eq!(code, 0, "device {}: {events:?}", d.index());
        assert_eq!(installed_version(&d.device.dir), 2);
    }

    // 2. B1 and B2 bought in the last two blocks.
    let b1 = chain.purchase(&state, &release, &[b2.index(), b3.index()]);
    let b2_purchase = chain.purchase(&state, &release, &[c4.index()]);
    let b1_tx = lower(&b1["tx"]);
    let b2_tx = lower(&b2_purchase["tx"]);
    let receipt =
        |tx: String| async move { chain.rpc("eth_getTransactionReceipt", json!([tx])).await };
    let head = chain.head().await;
    let b1_before = receipt(b1_tx.clone()).await;
    assert_eq!(number_hex(&b1_before["blockNumber"]), head - 1);
    assert_eq!(
        number_hex(&receipt(b2_tx.clone()).await["blockNumber"]),
        head
    );
    let b1_raw = chain
        .rpc("eth_getRawTransactionByHash", json!([b1_tx]))
        .await;
    // The key service issues their keys at once (0 confirmations) ...
    let http = &reqwest::Client::new();
    for i in [b3.index(), c4.index()] {
        let url = &format!("{}/v1/keys/{release}/{i}", ks.url);
        converge(&format!("the key of device {i}"), &200, || async move {
            http.get(url)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16())
        })
        .await;
    }
    // ... but devices acting 3 blocks below the head are not entitled there yet: they wait.
    b3.assert_not_entitled(CONFIRMATIONS);
    c4.assert_not_entitled(CONFIRMATIONS);

    // 3. The indexer has both purchases; kill -9.
    let indexed_txs = || async {
        let page = indexer
            .get(&format!("/v1/purchases?release={release}&limit=500"))
            .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| lower(&p["tx_hash"]))
            .collect::<BTreeSet<_>>()
    };
    let held = {
        let started = Instant::now();
        loop {
            let txs = indexed_txs().await;
            if txs.contains(&b2_tx) || started.elapsed() > CATCH_UP {
                break txs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert!(held.contains(&b1_tx) && held.contains(&b2_tx), "{held:?}");
    indexer.kill();

    // 4. The reorg: blocks head-1 and head replaced; B1's purchase re-included in the new
    // head block, B2's dropped.
    let old_head_hash = chain
        .rpc("eth_getBlockByNumber", json!([format!("{head:#x}"), false]))
        .await["hash"]
        .clone();
    chain
        .rpc("anvil_reorg", json!([REORG_DEPTH, [[b1_raw, 1]]]))
        .await;
    assert_eq!(chain.head().await, head);
    let new_head = chain
        .rpc("eth_getBlockByNumber", json!([format!("{head:#x}"), false]))
        .await;
    assert_ne!(
        new_head["hash"], old_head_hash,
        "the head block was replaced"
    );
    let b1_after = receipt(b1_tx.clone()).await;
    assert_eq!(number_hex(&b1_after["blockNumber"]), head, "{b1_after}");
    assert_ne!(b1_after["blockHash"], b1_before["blockHash"]);
    assert_eq!(
        receipt(b2_tx.clone()).await,
        Value::Null,
        "B2's purchase was dropped"
    );

    // 5. Device 2 installs from the re-included purchase while the indexer is down; its
    // report waits in its queue.
    let (code, events) = b2.run_until_keyed(0);
    assert_eq!(code, 0, "device {}: {events:?}", b2.index());
    assert_eq!(installed_version(&b2.device.dir), 2);
    assert_eq!(queued_reports(&b2.device.dir).len(), 1);

    // 6. The indexer restarts on the same database and repairs the reorg.
    let indexer = Indexer::start_with(chain, &state, database, FINALITY_DEPTH, port).await;
    let metrics = reqwest::get(format!("{}/metrics", indexer.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&metrics, "otaledger_indexer_reorgs_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "otaledger_indexer_reorg_depth_blocks{which=\"last\"}"
        ),
        Some(REORG_DEPTH as f64),
        "{metrics}"
    );
    // Device 2 delivers its queued report (and is up to date).
    let (code, events) = b2.run(0);
    assert_eq!(code, 10, "device {}: {events:?}", b2.index());
    assert!(queued_reports(&b2.device.dir).is_empty());
    // Device 3 still waits at 3 confirmations; once they are there it installs.
    b3.assert_not_entitled(CONFIRMATIONS);
    chain.rpc("anvil_mine", json!([CONFIRMATIONS])).await;
    let (code, events) = b3.run_until_keyed(CONFIRMATIONS);
    assert_eq!(code, 0, "device {}: {events:?}", b3.index());
    // Device 4's purchase is gone: refused even at 0 confirmations with its key issued;
    // device 5 was never bought.
    c4.assert_not_entitled(0);
    n5.assert_not_entitled(0);

    // A last round: nobody installs again.
    for d in tracked.iter_mut() {
        let (code, events) = d.run(0);
        if d.initial < 2 && installed_version(&d.device.dir) == 2 {
            assert_eq!(code, 10, "device {}: {events:?}", d.index());
        } else {
            assert_eq!(code, 11, "device {}: {events:?}", d.index());
        }
    }

    // Each device's own state: installed once, from its first slot switch, the image
    // in the active slot; nothing left to report.
    let updated: BTreeSet<u64> = [0, 1, 2, 3].iter().map(|&i| tracked[i].index()).collect();
    for d in &tracked {
        let dir = &d.device.dir;
        let boot = boot_state(dir);
        assert_eq!(boot["pending"], Value::Null, "device {}: {boot}", d.index());
        assert!(
            queued_reports(dir).is_empty(),
            "device {}: reports left",
            d.index()
        );
        if updated.contains(&d.index()) {
            assert_eq!(installed_version(dir), 2, "device {}", d.index());
            assert_eq!(
                d.updates,
                1,
                "device {} installed more than once",
                d.index()
            );
            assert_eq!(boot["activeVersion"], 2, "device {}: {boot}", d.index());
            assert_eq!(lower(&boot["activeRelease"]), release, "{boot}");
            let slot = format!("slot-{}.img", boot["active"].as_str().unwrap());
            assert!(
                std::fs::read(dir.join("slots").join(slot)).is_ok_and(|b| b == image_bytes),
                "device {}: the active slot does not hold release 2's image",
                d.index()
            );
        } else {
            assert_eq!(installed_version(dir), d.initial, "device {}", d.index());
            assert_eq!(d.updates, 0, "device {}", d.index());
            assert_eq!(
                boot["activeVersion"],
                d.initial,
                "device {}: {boot}",
                d.index()
            );
        }
    }

    // The indexer converges to the chain after the reorg.
    let want = expected(chain, market, &release, &tracked).await;
    assert_eq!(want.purchases.len(), 2, "A's and B1's purchases: {want:?}");
    assert!(!want.trails[&tracked[4].index()].contains(&b2_tx));
    converge("the indexer's view", &want, || {
        indexed(&indexer, &release, &indexes)
    })
    .await;

    // And verifies clean against the chain.
    let (ok, report) = indexer_verify(chain, &state, database);
    assert!(ok, "indexer verify: {report}");
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["checkpointOnChain"], true, "{report}");
    assert_eq!(report["checkpoint"], chain.head().await, "{report}");
    drop(indexer);
}

/// A `0x…` quantity of a JSON-RPC answer.
fn number_hex(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a quantity: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reorg_and_indexer_kill_9_mid_rollout() {
        let chain = TestChain::spawn();
        let tmp = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", tmp.path().join("index.sqlite").display());
        reorg_and_kill_9_mid_rollout(&chain, tmp.path(), &database).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reorg_and_indexer_kill_9_mid_rollout() {
        let chain = TestChain::spawn();
        let tmp = tempfile::tempdir().unwrap();
        let db = FreshPostgres::create().await;
        reorg_and_kill_9_mid_rollout(&chain, tmp.path(), &db.url).await;
        db.drop_database().await;
    }
}
