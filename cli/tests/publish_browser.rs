//! A release published from the dashboard with signatures gathered from two wallets
//! (Chromium via playwright-core, `cli/tests/browser/publish.mjs`): a paused
//! `otaledger demo` (its manufacturer's 2-of-3 signers are anvil dev accounts), the next
//! version's bundle and manifest made by `otaledger release create` as a manufacturer would;
//! in the page the first signer loads the manifest (a tampered copy is refused) and signs, a
//! stranger with the shared link can neither sign nor publish (too few signatures: the
//! contract's error, nothing sent; a forged one is not counted), the third signer signs from the link and
//! publishes. Then, each through two wallets and the link: the model's version floor is
//! raised, the signer set rotated (one signer replaced), the new set revokes the release and
//! hands the operator role to another account.
//! The indexer then shows all of it. Screenshots go to `target/screenshots/`.

mod support;

use serde_json::Value;
use support::{http_get, lines, next};

const DEVICES: u64 = 4;

/// Fails without Chromium when `OTALEDGER_REQUIRE_BROWSER=1`, else skips loudly.
#[test]
fn two_signers_approve_in_their_wallets_and_the_release_is_published_from_the_page() {
    let Some(chromium) = support::chromium("publish browser test") else {
        return;
    };
    let (root, shots) = support::roots();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (_demo, _demo_out, paused) = support::paused_demo(DEVICES, &["--no-purchase"], &state);
    let field = |k: &str| support::field(&paused, k);
    let (dashboard, rpc) = (field("dashboard"), field("rpc"));

    // The manufacturer's machine: the next version, encrypted and described by the CLI.
    let image = tmp.path().join("image-v2.bin");
    std::fs::write(
        &image,
        (0..150_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let out = tmp.path().join("release-v2");
    let created = support::release_create(
        &state,
        &rpc,
        2,
        &image,
        &out,
        &["--price", "20000000000000000"],
    );
    assert!(
        created.status.success(),
        "release create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let release_id = created["releaseId"].as_str().unwrap().to_owned();

    let mut node = support::browser_script(
        "publish.mjs",
        &[
            dashboard.clone(),
            rpc,
            paused["signers"].to_string(),
            out.join("manifest.json").to_str().unwrap().to_owned(),
        ],
        &chromium,
        &root,
        &shots,
    );
    let browser_out = lines(&mut node.0);
    let published = next(&browser_out, 240, "the page did not publish");
    assert_eq!(published, format!("PUBLISHED {release_id}"));
    assert_eq!(
        next(&browser_out, 120, "the floor was not raised"),
        "FLOOR 2"
    );
    let rotated = next(&browser_out, 120, "the signers were not rotated");
    let newcomer = rotated.strip_prefix("ROTATED ").unwrap().to_owned();
    assert_eq!(
        next(&browser_out, 120, "the release was not revoked"),
        format!("REVOKED {release_id}")
    );
    let heir = next(&browser_out, 120, "the operator was not changed");
    assert!(heir.starts_with("OPERATOR 0x"), "{heir}");
    assert_eq!(next(&browser_out, 60, "browser did not finish"), "DONE");
    assert!(node.0.wait().unwrap().success());

    // The indexer follows the chain: it serves the release, version 2.
    let addr = dashboard
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut last = String::new();
    let served = (0..150).any(|_| {
        last = http_get(&addr, &format!("/v1/releases/{release_id}"));
        let ok = last.starts_with("HTTP/1.1 200") || last.starts_with("HTTP/1.0 200");
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        ok
    });
    assert!(served, "the indexer never served {release_id}: {last}");
    let body: Value = serde_json::from_str(last.split_once("\r\n\r\n").unwrap().1).unwrap();
    // Versions are zero-padded decimal text in the API (they sort as text).
    assert_eq!(
        body["version"].as_str().map(|v| v.trim_start_matches('0')),
        Some("2"),
        "{body}"
    );
    assert_eq!(
        body["approval"]["signers"].as_array().map(Vec::len),
        Some(3),
        "the approval names the full set of 3: {body}"
    );
    // The revocation and the rotation, as the indexer mirrors them.
    let revoked = (0..150).any(|_| {
        last = http_get(&addr, &format!("/v1/releases/{release_id}"));
        let body: Value = serde_json::from_str(last.split_once("\r\n\r\n").unwrap().1).unwrap();
        let ok = body["revocations"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        ok
    });
    assert!(revoked, "the indexer never showed the revocation: {last}");
    let sets = http_get(&addr, "/v1/manufacturers/1/signers");
    let sets: Value = serde_json::from_str(sets.split_once("\r\n\r\n").unwrap().1).unwrap();
    let newest = sets["signer_sets"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        newest["signers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().eq_ignore_ascii_case(&newcomer)),
        "{newest}"
    );
    for name in [
        "publish-first-signer.png",
        "publish-published.png",
        "publish-revoked.png",
    ] {
        assert!(shots.join(name).metadata().unwrap().len() > 1000, "{name}");
    }
}
