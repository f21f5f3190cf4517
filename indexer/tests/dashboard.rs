//! The dashboard over a real anvil history, served on a real port: `/v1/fleet`
//! (statuses after a scenario round, on SQLite and PostgreSQL), the SSE stream
//! delivering a purchase, the audit trail, the signer history, the page's
//! headers and the stream's client bound; then the page itself in Debian's
//! Chromium (playwright-core, `indexer/tests/browser/dashboard.mjs`).

mod common;

use std::{process::Stdio, time::Duration};

use alloy::primitives::{Address, B256, Bytes, U256};
use common::{Kind, TestDb, config};
use otaledger_core::{
    bindings::market::UpdateMarket,
    bindings::registry::{IUpdateRegistry::Manifest, UpdateRegistry},
    test_support::{Chain, PRICE, Scenario},
};
use otaledger_indexer::{
    Indexer,
    dashboard::{self, DashboardConfig},
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Setup {
    chain: Chain,
    indexer: Indexer,
    db: TestDb,
    url: String,
}

async fn setup(kind: Kind, max_clients: usize) -> Setup {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    scenario.round(&chain).await.unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 0)).await.unwrap();
    indexer.sync().await.unwrap();
    let app = dashboard::app(
        indexer.api_state(2),
        DashboardConfig {
            map: None,
            poll: Duration::from_millis(100),
            max_clients,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Setup {
        chain,
        indexer,
        db,
        url,
    }
}

async fn get(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

fn hex<const N: usize>(v: &Value) -> [u8; N] {
    let s = v.as_str().unwrap();
    alloy::hex::decode(s).unwrap().try_into().unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

/// Re-activates device `index` and buys the model's latest release for it (a
/// gift through `purchaseFor`), then lets the indexer see it.
async fn buy_for(s: &mut Setup, index: u64, release_id: &str) {
    let release = get(&format!("{}/v1/releases/{release_id}", s.url)).await;
    let manifest = Manifest {
        modelId: release["model_id"].as_u64().unwrap() as u32,
        version: num(&release["version"]),
        bundleSha256: B256::from(hex::<32>(&release["bundle_sha256"])),
        bundleSize: num(&release["bundle_size"]),
        bundleCid: Bytes::from(
            alloy::hex::decode(release["bundle_cid"].as_str().unwrap()).unwrap(),
        ),
        imageSha256: B256::from(hex::<32>(&release["image_sha256"])),
        price: release["price"].as_str().unwrap().parse().unwrap(),
        paymentToken: Address::from(hex::<20>(&release["payment_token"])),
        policyId: B256::from(hex::<32>(&release["policy_id"])),
        expiry: num(&release["expiry"]),
        metadataHash: B256::from(hex::<32>(&release["metadata_hash"])),
    };
    let device = get(&format!("{}/v1/devices/{index}", s.url)).await;
    let batch = device["claim"]["batch_id"].as_u64().unwrap();
    let d = &s.chain.deployment;
    let registry = UpdateRegistry::new(d.registry, &s.chain.provider);
    let r = registry
        .setDeviceActive(batch as _, index, true)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(r.status());
    let market = UpdateMarket::new(d.market, &s.chain.provider);
    let r = market
        .purchaseFor(manifest.into(), vec![index])
        .value(U256::from(PRICE))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(r.status());
    s.indexer.sync().await.unwrap();
}

async fn fleet_and_stream(kind: Kind) {
    let mut s = setup(kind, 1).await;
    let fleet = get(&format!("{}/v1/fleet", s.url)).await;
    let devices = fleet["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3, "{fleet}");
    // v2 and v3 are revoked: v1 is the latest; devices 0 and 1 bought it, device 2 did not.
    let status: Vec<&str> = devices
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["amber", "amber", "red"], "{fleet}");
    let latest = devices[0]["latest_release"].as_str().unwrap().to_owned();
    assert_eq!(devices[0]["latest"], "00000000000000000001");
    assert_eq!(devices[2]["chain_status"], 2);
    assert!(devices[2]["owner"].as_str().unwrap().starts_with("0x0101"));
    assert!(devices.iter().all(|d| d["installed"].is_null()));
    let watched = devices[2]["index"].as_u64().unwrap();

    // The stream: first the devices changed since the cursor (none), then the purchase.
    let cursor = fleet["cursor"].as_str().unwrap();
    let mut stream = reqwest::get(format!("{}/v1/fleet/stream?cursor={cursor}", s.url))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    // The bound: a second client is refused while the first is connected.
    let second = reqwest::get(format!("{}/v1/fleet/stream", s.url))
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    let mut text = String::new();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    text.push_str(std::str::from_utf8(&first).unwrap());
    assert!(text.contains("\"devices\":[]"), "{text}");
    buy_for(&mut s, watched, &latest).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let event = loop {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("no change delivered")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if let Some(line) = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .find(|l| l.contains("\"amber\""))
        {
            break serde_json::from_str::<Value>(line).unwrap();
        }
    };
    let changed = event["devices"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{event}");
    assert_eq!(changed[0]["index"], watched);
    assert_eq!(changed[0]["status"], "amber");
    assert_eq!(changed[0]["chain_status"], 1);

    // The audit trail in chain order, each chain event with its transaction.
    let trail = get(&format!("{}/v1/fleet/devices/{watched}", s.url)).await;
    let kinds: Vec<&str> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "provisioned",
            "claimed",
            "transferred",
            "status",
            "status",
            "purchased"
        ],
        "{trail}"
    );
    assert!(
        trail["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tx_hash"].as_str().unwrap().starts_with("0x"))
    );
    assert_eq!(
        reqwest::get(format!("{}/v1/fleet/devices/999", s.url))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reqwest::get(format!("{}/v1/fleet/devices/x", s.url))
            .await
            .unwrap()
            .status(),
        400
    );
    // Signer history: the registration's set and the rotation's.
    let m =
        get(&format!("{}/v1/manufacturers", s.url)).await["items"][0]["manufacturer_id"].clone();
    let history = get(&format!("{}/v1/manufacturers/{m}/signers", s.url)).await;
    let sets = history["signer_sets"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{history}");
    assert!(
        sets.iter()
            .all(|s| s["signers"].as_array().unwrap().len() == 3)
    );
    assert_ne!(sets[0]["signers"], sets[1]["signers"]);

    // Install reports, written straight into the reports table (the
    // signature checks of `POST /v1/reports` are monitoring.rs's): an
    // installed report turns a device green, a refusal grey with its class;
    // both reach the stream.
    let pool = s.indexer.pool();
    let first = devices[0]["index"].as_i64().unwrap();
    let second = devices[1]["index"].as_i64().unwrap();
    // One transaction: the stream's poller sees all three reports or none (three separate
    // statements let a poll fall between them and split the change over two events).
    let mut tx = pool.begin().await.unwrap();
    for (device, outcome, detail, nonce) in [
        (first, "installed", "", 1),
        (second, "installed", "", 1),
        (second, "refused", "signature", 2),
    ] {
        sqlx::query(
            "INSERT INTO reports (device_index, release_id, version, outcome, detail, \
             block_number, report_time, nonce, signer, received_at, raw) \
             VALUES ($1, $2, $3, $4, $5, 1, 1, $6, '0x', 1, '{}')",
        )
        .bind(device)
        .bind(&latest)
        .bind("00000000000000000001")
        .bind(outcome)
        .bind(detail)
        .bind(nonce)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let event = loop {
        let chunk = tokio::time::timeout_at(deadline + Duration::from_secs(10), stream.chunk())
            .await
            .expect("reports not delivered")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if let Some(line) = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .find(|l| l.contains("\"green\""))
        {
            break serde_json::from_str::<Value>(line).unwrap();
        }
    };
    // Device 1 installed the latest release, then a later report refused: it
    // installed the latest, so it stays green (a refusal greys only devices
    // without a verified install of the latest).
    let changed = event["devices"].as_array().unwrap();
    assert_eq!(changed.len(), 2, "{event}");
    assert_eq!(changed[0]["status"], "green");
    assert_eq!(changed[0]["installed"], "00000000000000000001");
    assert_eq!(changed[1]["verdict"], "refused");
    assert_eq!(changed[1]["refusal"], "signature");
    sqlx::query("DELETE FROM reports WHERE device_index = $1 AND nonce = 1")
        .bind(second)
        .execute(pool)
        .await
        .unwrap();
    let fleet = get(&format!("{}/v1/fleet", s.url)).await;
    let d1 = &fleet["devices"][1];
    assert_eq!(d1["status"], "grey", "{fleet}");
    assert_eq!(d1["refusal"], "signature");
    assert!(d1["installed"].is_null());
    let trail = get(&format!("{}/v1/fleet/devices/{second}", s.url)).await;
    let last = trail["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "report", "{trail}");
    assert_eq!(last["outcome"], "refused");
    s.db.remove().await;
}

async fn page_and_assets(kind: Kind) {
    let s = setup(kind, 4).await;
    let page = reqwest::get(format!("{}/", s.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external reference"
    );
    // Every file of dashboard/ is served (a module the page imports but the binary lacks would
    // break the whole page), with its type.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard");
    let mut files: Vec<(String, &str)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "index.html")
        .map(|n| {
            let kind = if n.ends_with(".js") {
                "text/javascript"
            } else if n.ends_with(".css") {
                "text/css"
            } else {
                panic!("dashboard/{n}: no content type known for it")
            };
            (n, kind)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for (name, kind) in files {
        let r = reqwest::get(format!("{}/assets/{name}", s.url))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert_eq!(r.headers()["cache-control"], "no-cache");
    }
    // What a wallet on the page is checked against: the indexer's own deployment.
    let d = &s.chain.deployment;
    let deployment = get(&format!("{}/v1/deployment", s.url)).await;
    assert_eq!(deployment["chain_id"], d.chain_id);
    assert_eq!(deployment["registry"], format!("{:#x}", d.registry));
    assert_eq!(deployment["market"], format!("{:#x}", d.market));
    assert!(deployment["checkpoint"].as_i64().unwrap() > 0);
    let missing = reqwest::get(format!("{}/assets/../Cargo.toml", s.url))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    s.db.remove().await;
}

both_databases!(fleet_and_stream, page_and_assets);

/// The page in Chromium: every device drawn, a purchase turns the node amber
/// without a reload, a click opens the audit trail; screenshots (desktop,
/// trail, phone) go to `target/screenshots/`. Fails without Chromium when
/// `OTALEDGER_REQUIRE_BROWSER=1`, else skips loudly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        if std::env::var("OTALEDGER_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("{chromium} is missing (make chromium installs it)");
        }
        eprintln!("SKIPPED: browser test: {chromium} is missing (make chromium installs it)");
        return;
    }
    let mut s = setup(Kind::Sqlite, 4).await;
    let fleet = get(&format!("{}/v1/fleet", s.url)).await;
    let devices = fleet["devices"].as_array().unwrap();
    let watched = devices[2]["index"].as_u64().unwrap();
    let latest = devices[0]["latest_release"].as_str().unwrap().to_owned();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut node = tokio::process::Command::new("node")
        .arg(root.join("indexer/tests/browser/dashboard.mjs"))
        .arg(format!("{}/", s.url))
        .arg(devices.len().to_string())
        .arg(watched.to_string())
        .arg(&shots)
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = node.stdin.take().unwrap();
    let mut out = BufReader::new(node.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), out.next_line())
        .await
        .expect("browser not ready")
        .unwrap();
    assert_eq!(line.as_deref(), Some("READY"));
    buy_for(&mut s, watched, &latest).await;
    stdin.write_all(b"GO\n").await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(60), out.next_line())
        .await
        .expect("browser did not finish")
        .unwrap();
    let status = node.wait().await.unwrap();
    assert_eq!(line.as_deref(), Some("DONE"));
    assert!(status.success());
    for name in [
        "dashboard-desktop.png",
        "dashboard-trail.png",
        "dashboard-phone.png",
    ] {
        assert!(shots.join(name).metadata().unwrap().len() > 1000, "{name}");
    }
    s.db.remove().await;
}
