//! A gateway dying mid-rollout: after the demo's round, the manufacturer publishes
//! release 2 (signed by two of the demo's signers) and the owner buys it for the whole
//! fleet. Two trustless gateways serve the demo's block store and `keys serve` takes
//! over as the devices' key service; every device lists both gateways. The first device
//! updates; then the first gateway is killed and the others fall back to the second one
//! and finish: every device ends on version 2 with the image in a slot.

use otaledger_core::device_file::DeviceConfig;
use otaledger_e2e::{
    TestChain, demo_signer_keys, device_run_until_keyed, fleet, gateway, installed_version,
    point_devices, release_sign,
};

const DEVICES: u32 = 3;
const BUYERS: u32 = 1;

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
    let v2 = chain.create_release(&state, &model, 2, 1000, &image, &work.join("v2"));
    let signer_keys = demo_signer_keys(&state);
    let sigs: Vec<_> = [0, 2]
        .into_iter()
        .map(|i| {
            let sig = work.join(format!("v2-{i}.sig.json"));
            release_sign(&signer_keys[i], &v2.manifest, &sig);
            sig
        })
        .collect();
    chain.publish(&state, &v2.manifest, &sigs);
    let indexes: Vec<u64> = devices.iter().map(|d| d.index).collect();
    chain.purchase(&state, &v2.id, &indexes);

    // The services: two gateways over the demo's store, the key service with the demo's key.
    let mut first = gateway(&state.join("ipfs"));
    let second = gateway(&state.join("ipfs"));
    let keys_service = chain.key_service(&state, &work.join("keyservice.sqlite"), &mfr, 0);

    // Every device: the two gateways in order, the new key service, no report endpoint.
    point_devices(
        &devices,
        &[first.url.as_str(), second.url.as_str()],
        &[keys_service.url.as_str()],
        &[],
    );

    let (head, rest) = devices.split_first().unwrap();
    let (code, events) = device_run_until_keyed(&head.dir, 0);
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
    let (code, events) = device_run_until_keyed(&control.dir, 0);
    assert_eq!(code, 25, "device {}: {events:?}", control.index);
    assert_eq!(installed_version(&control.dir), 0);
    config.ipfs.gateways = vec![first.url.clone(), second.url.clone()];
    std::fs::write(control.dir.join("device.toml"), config.to_toml().unwrap()).unwrap();
    for d in rest {
        let (code, events) = device_run_until_keyed(&d.dir, 0);
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
