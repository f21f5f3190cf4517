//! A gateway dying mid-rollout: after the demo's round, the manufacturer publishes
//! release 2 (signed by two of the demo's signers) and the owner buys it for the whole
//! fleet. Two trustless gateways serve the demo's block store and `keys serve` takes
//! over as the devices' key service; every device lists both gateways. The first device
//! updates; then the first gateway is killed and the others fall back to the second one
//! and finish: every device ends on version 2 with the image in a slot.

use std::path::Path;

use otaledger_core::device_file::DeviceConfig;
use otaledger_e2e::{
    Daemon, TestChain, demo_signer_keys, device_run_once, fleet, free_port, installed_version,
    otaledger, run_json, sign_with,
};

const DEVICES: u32 = 3;
const BUYERS: u32 = 1;

fn gateway(store: &Path) -> Daemon {
    let port = free_port();
    let mut cmd = otaledger();
    cmd.args(["gateway", "serve", "--store"])
        .arg(store)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    Daemon::spawn(cmd, port)
}

/// `device run --once` until it is no longer waiting for its key (exit 11), at most 60 s.
fn run_until_keyed(dir: &Path) -> (i32, Vec<serde_json::Value>) {
    let started = std::time::Instant::now();
    loop {
        let (code, events) = device_run_once(dir);
        if code != 11 || started.elapsed() > std::time::Duration::from_secs(60) {
            return (code, events);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_fall_back_to_the_next_gateway_when_one_dies() {
    let chain = TestChain::spawn();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let state = work.join("state");
    let summary = chain.demo(&state, DEVICES, BUYERS);
    let mfr = summary["manufacturer_id"].as_u64().unwrap().to_string();
    let model = summary["model_id"].as_u64().unwrap().to_string();
    let devices = fleet(&state, &summary);

    // Release 2: created, signed by signers 0 and 2, published, bought for every device.
    let image = work.join("image-v2.bin");
    let image_bytes: Vec<u8> = (0..96 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&image, &image_bytes).unwrap();
    let v2 = work.join("v2");
    let created = run_json(
        chain
            .cli(
                &state,
                &["release", "create", "--model", &model, "--version", "2"],
            )
            .args(["--price", "1000", "--image"])
            .arg(&image)
            .arg("--params")
            .arg(state.join("authority/params.cpabe"))
            .arg("--store")
            .arg(state.join("ipfs"))
            .arg("--out")
            .arg(&v2),
    );
    let release = created["releaseId"].as_str().unwrap().to_owned();
    let manifest = v2.join("manifest.json");
    let signer_keys = demo_signer_keys(&state);
    let mut publish = chain.cli(&state, &["release", "publish"]);
    publish.arg("--manifest").arg(&manifest);
    for i in [0, 2] {
        let sig = work.join(format!("v2-{i}.sig.json"));
        run_json(
            sign_with(&signer_keys[i], &["release", "sign", "--manifest"])
                .arg(&manifest)
                .arg("--out")
                .arg(&sig),
        );
        publish.arg("--sig").arg(&sig);
    }
    run_json(&mut publish);
    let mut buy = chain.cli(&state, &["purchase", "--release", &release]);
    for d in &devices {
        buy.args(["--device", &d.index.to_string()]);
    }
    run_json(&mut buy);

    // The services: two gateways over the demo's store, the key service with the demo's key.
    let mut first = gateway(&state.join("ipfs"));
    let second = gateway(&state.join("ipfs"));
    let ks_port = free_port();
    let mut ks = chain.cli(&state, &["keys", "serve", "--manufacturer", &mfr]);
    let ks_key = std::fs::read_to_string(state.join("keyservice.key")).unwrap();
    ks.env("OTALEDGER_PRIVATE_KEY", ks_key.trim())
        .arg("--authority")
        .arg(state.join("authority"))
        .arg("--master-password-file")
        .arg(state.join("master-password.txt"))
        .arg("--db")
        .arg(work.join("keyservice.sqlite"))
        .arg("--store")
        .arg(state.join("ipfs"))
        .args(["--listen", &format!("127.0.0.1:{ks_port}")])
        .args(["--confirmations", "0", "--poll-ms", "100"]);
    let keys_service = Daemon::spawn(ks, ks_port);

    // Every device: the two gateways in order, the new key service, no report endpoint.
    for d in &devices {
        let mut config = DeviceConfig::load(&d.dir).unwrap();
        config.ipfs.gateways = vec![first.url.clone(), second.url.clone()];
        config.key_service.urls = vec![keys_service.url.clone()];
        config.reports.urls = Vec::new();
        std::fs::write(d.dir.join("device.toml"), config.to_toml().unwrap()).unwrap();
    }

    let (head, rest) = devices.split_first().unwrap();
    let (code, events) = run_until_keyed(&head.dir);
    assert_eq!(code, 0, "device {}: {events:?}", head.index);
    assert_eq!(installed_version(&head.dir), 2);

    // The first gateway dies; the rest of the fleet falls back to the second.
    first.kill();
    // The control: with the dead gateway alone, a device cannot download (exit 25) and
    // keeps its version; so what serves the others below is the second gateway.
    let control = &rest[0];
    let mut config = DeviceConfig::load(&control.dir).unwrap();
    config.ipfs.gateways = vec![first.url.clone()];
    std::fs::write(control.dir.join("device.toml"), config.to_toml().unwrap()).unwrap();
    let (code, events) = run_until_keyed(&control.dir);
    assert_eq!(code, 25, "device {}: {events:?}", control.index);
    assert_eq!(installed_version(&control.dir), 0);
    config.ipfs.gateways = vec![first.url.clone(), second.url.clone()];
    std::fs::write(control.dir.join("device.toml"), config.to_toml().unwrap()).unwrap();
    for d in rest {
        let (code, events) = run_until_keyed(&d.dir);
        assert_eq!(code, 0, "device {}: {events:?}", d.index);
        assert_eq!(installed_version(&d.dir), 2, "device {}", d.index);
    }
    // Every device holds the image in a slot.
    for d in &devices {
        let holds = std::fs::read_dir(d.dir.join("slots"))
            .unwrap()
            .flatten()
            .any(|e| std::fs::read(e.path()).is_ok_and(|b| b == image_bytes));
        assert!(holds, "device {}: no slot holds release 2's image", d.index);
    }
    drop(second);
}
