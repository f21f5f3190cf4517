//! `otaledger demo` watched in Chromium (playwright-core, `cli/tests/browser/demo.mjs`): the
//! real binary with a small fleet and `--pause-before-purchase`; the page loads while every
//! node is red, then, without a reload, exactly the bought devices turn green and the others
//! stay red; a bought device's audit trail shows its purchase and install. Screenshots
//! (desktop, trail, phone) go to `target/screenshots/`.

mod support;

use std::io::Write;

use serde_json::Value;
use support::{lines, next};

const DEVICES: u64 = 12;
const BUYERS: u64 = 4;

/// Fails without Chromium when `OTALEDGER_REQUIRE_BROWSER=1`, else skips loudly (as the
/// indexer's browser test).
#[test]
fn the_demo_turns_exactly_the_bought_devices_green_in_the_browser() {
    let Some(chromium) = support::chromium("demo browser test") else {
        return;
    };
    let (root, shots) = support::roots();
    let tmp = tempfile::tempdir().unwrap();

    let (mut demo, demo_out, paused) = support::paused_demo(
        DEVICES,
        &["--exit-when-done", "--buyers", &BUYERS.to_string()],
        &tmp.path().join("state"),
    );
    let url = paused["dashboard"].as_str().unwrap().to_owned();

    let mut node = support::browser_script(
        "demo.mjs",
        &[url.clone(), DEVICES.to_string(), BUYERS.to_string()],
        &chromium,
        &root,
        &shots,
    );
    let browser_out = lines(&mut node.0);
    assert_eq!(next(&browser_out, 90, "browser not ready"), "READY");
    // Buy and run the fleet round.
    writeln!(demo.0.stdin.take().unwrap(), "go").unwrap();
    let mut node_in = node.0.stdin.take().unwrap();
    writeln!(node_in, "GO").unwrap();
    let green = next(&browser_out, 120, "the bought devices did not turn green");
    let green: Vec<u64> = serde_json::from_str(
        green
            .strip_prefix("GREEN ")
            .unwrap_or_else(|| panic!("{green}")),
    )
    .unwrap();
    assert_eq!(next(&browser_out, 60, "browser did not finish"), "DONE");
    assert!(node.0.wait().unwrap().success());

    // The demo's own account: the green nodes are exactly the devices it bought.
    let summary: Value =
        serde_json::from_str(&next(&demo_out, 120, "no summary from the demo")).unwrap();
    assert!(demo.0.wait().unwrap().success());
    let mut bought: Vec<u64> = summary["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["bought"] == true)
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    bought.sort_unstable();
    assert_eq!(bought.len() as u64, BUYERS);
    assert_eq!(green, bought);
    for name in ["demo-desktop.png", "demo-trail.png", "demo-phone.png"] {
        assert!(shots.join(name).metadata().unwrap().len() > 1000, "{name}");
    }
}
