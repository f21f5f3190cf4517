//! Signer rotation after a key compromise: the demo's manufacturer (2-of-3 signers,
//! release 1 installed by the bought devices) learns that signer 1's key leaked. Two
//! honest signers approve a rotation to {signer 0, signer 2, a fresh key}
//! (`manufacturer rotate-signers`, `approval sign`, `approval submit`). Then:
//! a release 2 approved with the rotated-out key (with an honest one, or with the other
//! old signer) is refused on publish and nothing reaches the chain; the rotated-out key
//! cannot approve a second rotation either; the same release approved by the new set
//! publishes, and the chain (`manufacturer show`) and the indexer show the new set and the
//! new release's approval by the new signers only. The CLI refuses before sending
//! (naming the key); an approval assembled against the old set and sent straight to the
//! registry reverts with `UpdateRegistrySignerSetMismatch`.

use alloy::{
    primitives::Address, providers::ProviderBuilder, signers::local::PrivateKeySigner,
    sol_types::SolError,
};
use otaledger_core::{
    bindings::registry::UpdateRegistry,
    manifest::{ManifestFile, SignatureFile},
    signing::SignerSet,
};
use otaledger_e2e::{
    Indexer, TestChain, addr_of, approval_sign, demo_signer_keys, release_sign, run_json,
};
use serde_json::Value;

const DEVICES: u32 = 3;
const BUYERS: u32 = 1;

fn lower(addresses: &Value) -> Vec<String> {
    let mut v: Vec<String> = addresses
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {addresses}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_lowercase())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_out_key_approves_nothing_after_the_rotation() {
    let chain = TestChain::spawn();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let state = work.join("state");
    let summary = chain.demo(&state, DEVICES, BUYERS);
    let mfr = summary["manufacturer_id"].as_u64().unwrap().to_string();
    let model = summary["model_id"].as_u64().unwrap().to_string();
    let old = demo_signer_keys(&state);
    let compromised = &old[1];
    let fresh = alloy::hex::encode_prefixed(PrivateKeySigner::random().to_bytes());
    let new_set = [&old[0], &old[2], &fresh];

    // The rotation, approved by the two honest signers of the old set.
    let new_addrs_in_order: Vec<String> = new_set.iter().map(|k| addr_of(k)).collect();
    let rotated = chain.rotate_signers(
        &state,
        work,
        &mfr,
        &new_addrs_in_order,
        2,
        &[old[0].as_str(), old[2].as_str()],
    );
    let old_addrs: Vec<String> = old.iter().map(|k| addr_of(k)).collect();
    let new_addrs: Vec<String> = {
        let mut v: Vec<String> = new_set.iter().map(|k| addr_of(k)).collect();
        v.sort();
        v
    };
    assert_eq!(rotated["action"], "rotate-signers", "{rotated}");
    let shown = run_json(&mut chain.cli(&state, &["manufacturer", "show", "--id", &mfr]));
    assert_eq!(lower(&shown["signers"]), new_addrs, "{shown}");
    assert_eq!(shown["threshold"], 2);
    assert_eq!(shown["nonce"], 1);

    // The rotated-out key cannot approve a further rotation (with an honest signer).
    let request2 = work.join("rotate-again.request.json");
    let mut again = chain.cli(
        &state,
        &[
            "manufacturer",
            "rotate-signers",
            "--id",
            &mfr,
            "--threshold",
            "1",
        ],
    );
    again.args(["--signer", &addr_of(compromised)]);
    again.arg("--out").arg(&request2);
    run_json(&mut again);
    approval_sign(compromised, &request2, &work.join("again-1.sig.json"));
    approval_sign(&old[0], &request2, &work.join("again-0.sig.json"));
    let out = chain
        .cli(
            &state,
            &[
                "approval",
                "submit",
                "--request",
                request2.to_str().unwrap(),
                "--sig",
                work.join("again-1.sig.json").to_str().unwrap(),
                "--sig",
                work.join("again-0.sig.json").to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a rotation approved by the rotated-out key was submitted"
    );
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains(&addr_of(compromised)) && err.contains("not a member of the signer set"),
        "{err}"
    );
    let unchanged = run_json(&mut chain.cli(&state, &["manufacturer", "show", "--id", &mfr]));
    assert_eq!(lower(&unchanged["signers"]), new_addrs, "{unchanged}");

    // Release 2, created from the demo's authority parameters and block store.
    let image = work.join("image-v2.bin");
    std::fs::write(&image, vec![0x5a; 64 * 1024]).unwrap();
    let v2 = chain.create_release(&state, &model, 2, 0, &image, &work.join("v2"));
    let release_id = v2.id.clone();
    let manifest = v2.manifest;
    let sig = |name: &str| work.join(format!("{name}.sig.json"));
    release_sign(&old[0], &manifest, &sig("v2-0"));
    release_sign(compromised, &manifest, &sig("v2-1"));
    release_sign(&old[2], &manifest, &sig("v2-2"));
    release_sign(&fresh, &manifest, &sig("v2-new"));

    let publish = |a: &str, b: &str| {
        let mut cmd = chain.cli(
            &state,
            &[
                "release",
                "publish",
                "--manifest",
                manifest.to_str().unwrap(),
            ],
        );
        cmd.arg("--sig").arg(sig(a)).arg("--sig").arg(sig(b));
        cmd
    };
    let provider = ProviderBuilder::new().connect_http(chain.anvil.endpoint_url());
    let registry_address: Address = serde_json::from_value(summary["registry"].clone()).unwrap();
    let registry = UpdateRegistry::new(registry_address, &provider);
    let model_id: u32 = model.parse().unwrap();
    // The compromised key with an honest one, and with the other old signer: refused
    // by the CLI, naming the key.
    for (a, b) in [("v2-0", "v2-1"), ("v2-1", "v2-2")] {
        let out = publish(a, b).output().unwrap();
        assert!(!out.status.success(), "{a} + {b} published");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(
            err.contains(&addr_of(compromised)) && err.contains("not a member of the signer set"),
            "{err}"
        );
    }
    // And by the chain: an approval assembled against the old set (what a lying
    // source would hand over), sent straight to the registry, reverts.
    let file = ManifestFile::load(&manifest).unwrap();
    let old_set =
        SignerSet::new(old_addrs.iter().map(|a| a.parse().unwrap()).collect(), 2).unwrap();
    let forged = file
        .approval(
            &old_set,
            &[
                SignatureFile::load(&sig("v2-0")).unwrap(),
                SignatureFile::load(&sig("v2-1")).unwrap(),
            ],
        )
        .unwrap();
    let sender = ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(chain.key.clone()))
        .connect_http(chain.anvil.endpoint_url());
    let sent = UpdateRegistry::new(registry_address, &sender)
        .publishRelease(file.manifest.clone(), forged)
        .call()
        .await;
    let err = format!(
        "{:?}",
        sent.expect_err("the registry accepted an old-set approval")
    );
    let selector = alloy::hex::encode(UpdateRegistry::UpdateRegistrySignerSetMismatch::SELECTOR);
    assert!(
        err.contains(&selector),
        "not UpdateRegistrySignerSetMismatch: {err}"
    );
    assert_eq!(
        registry.model(model_id).call().await.unwrap().latestVersion,
        1
    );

    // The new set publishes it.
    let published = run_json(&mut publish("v2-0", "v2-new"));
    assert_eq!(published["releaseId"], release_id.as_str());
    assert_eq!(
        registry.model(model_id).call().await.unwrap().latestVersion,
        2
    );

    // The indexer: the release's approval names the new set only.
    let db = format!("sqlite://{}", work.join("index.sqlite").display());
    let indexer = Indexer::start(&chain, &state, &db).await;
    let r = indexer.get(&format!("/v1/releases/{release_id}")).await;
    assert_eq!(lower(&r["approval"]["signers"]), new_addrs, "{r}");
    assert!(!lower(&r["approval"]["signers"]).contains(&addr_of(compromised)));
    assert_eq!(r["approval"]["tx_hash"], published["tx"], "{r}");
}
