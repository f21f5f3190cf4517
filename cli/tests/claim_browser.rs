//! Claiming a device in the dashboard (Chromium via playwright-core,
//! `cli/tests/browser/claim.mjs`): a paused `otaledger demo` with two devices provisioned but
//! unclaimed, each with its consent file written by `device claim-request` for the owner. In
//! the page the owner's claim of the first is checked, a copy retargeted at the second device
//! is refused by the registry's simulation with the chain unmoved, the real claim is mined and
//! the map and roles grow by one, a second claim is refused, and a stranger cannot use the
//! owner's file. The indexer then shows the device as the owner's. Then a stranger registers a
//! manufacturer in the page (a name with U+202E refused first) and, as its operator, defines a
//! model; the indexer shows both.

mod support;

use serde_json::Value;
use support::{http_get, lines, next};

const DEVICES: u64 = 4;

/// Fails without Chromium when `OTALEDGER_REQUIRE_BROWSER=1`, else skips loudly.
#[test]
fn the_owner_claims_a_device_in_the_page_with_its_consent_file() {
    let Some(chromium) = support::chromium("claim browser test") else {
        return;
    };
    let (root, shots) = support::roots();
    let tmp = tempfile::tempdir().unwrap();
    let (_demo, _demo_out, paused) = support::paused_demo(
        DEVICES,
        &["--no-purchase", "--unclaimed", "2"],
        &tmp.path().join("state"),
    );
    let field = |k: &str| support::field(&paused, k);
    let files = paused["claim_files"].clone();
    assert_eq!(files.as_array().map(Vec::len), Some(2), "{paused}");
    let mut node = support::browser_script(
        "claim.mjs",
        &[
            field("dashboard"),
            field("rpc"),
            field("owner"),
            DEVICES.to_string(),
            files.to_string(),
        ],
        &chromium,
        &root,
        &shots,
    );
    let out = lines(&mut node.0);
    let claimed = next(&out, 180, "the page did not claim");
    let index: u64 = claimed
        .strip_prefix("CLAIMED ")
        .unwrap_or_else(|| panic!("{claimed}"))
        .parse()
        .unwrap();
    assert_eq!(
        next(&out, 120, "the page did not register a manufacturer"),
        "REGISTERED Beta Devices"
    );
    assert_eq!(next(&out, 60, "browser did not finish"), "DONE");
    assert!(node.0.wait().unwrap().success());

    // The indexer: the device is the owner's.
    let dashboard = field("dashboard");
    let addr = dashboard
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let response = http_get(addr, &format!("/v1/fleet/devices/{index}"));
    let body: Value = serde_json::from_str(response.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert!(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "claimed"
                && e["owner"]
                    .as_str()
                    .is_some_and(|o| o.eq_ignore_ascii_case(&field("owner")))),
        "{body}"
    );
    // The indexer: the manufacturer registered in the page, and its model.
    let models = http_get(addr, "/v1/models");
    assert!(models.contains("beta-one"), "{models}");
    let manufacturers = http_get(addr, "/v1/manufacturers");
    assert!(manufacturers.contains("Beta Devices"), "{manufacturers}");
    for name in ["claim-claimed.png", "setup-registered.png"] {
        assert!(shots.join(name).metadata().unwrap().len() > 1000, "{name}");
    }
}
