//! The owner buys in the dashboard with a wallet (Chromium via playwright-core,
//! `cli/tests/browser/dapp.mjs`): `otaledger demo --pause-before-purchase --no-purchase` with
//! 10 devices; the page, with a test EIP-1193 provider forwarding to the demo's anvil dev
//! accounts, shows the wrong-chain warning until the wallet switches, reads the owner's roles
//! from chain, selects 3 devices on the map (a click and a box), prices them from the
//! verified manifest, explains a refused transfer by its custom error, buys, and watches
//! exactly those 3 turn amber and, after the demo's fleet round, green. The demo's own
//! account agrees: the devices entitled on chain are exactly the 3, and exactly they
//! installed. Then the manufacturer's operator revokes the release in the page
//! (`emergencyRevoke`) and the owner claims the refund for exactly those 3. Screenshots
//! (wrong chain, revoke, desktop, phone) go to `target/screenshots/`.

mod support;

use std::io::Write;

use serde_json::Value;
use support::{lines, next};

const DEVICES: u64 = 10;

fn list(line: &str, prefix: &str) -> Vec<u64> {
    serde_json::from_str(
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix}: {line}")),
    )
    .unwrap()
}

/// Fails without Chromium when `OTALEDGER_REQUIRE_BROWSER=1`, else skips loudly.
#[test]
fn the_owner_buys_three_of_ten_devices_on_the_map_and_exactly_those_turn_green() {
    let Some(chromium) = support::chromium("dapp browser test") else {
        return;
    };
    let (root, shots) = support::roots();
    let tmp = tempfile::tempdir().unwrap();
    let (mut demo, demo_out, paused) =
        support::paused_demo(DEVICES, &["--no-purchase"], &tmp.path().join("state"));
    let field = |k: &str| support::field(&paused, k);

    let mut node = support::browser_script(
        "dapp.mjs",
        &[
            field("dashboard"),
            field("rpc"),
            field("owner"),
            DEVICES.to_string(),
        ],
        &chromium,
        &root,
        &shots,
    );
    let browser_out = lines(&mut node.0);
    let bought = list(&next(&browser_out, 180, "the page did not buy"), "BOUGHT ");
    assert_eq!(bought.len(), 3, "{bought:?}");
    // The demo reads the entitlements from chain and runs its fleet round.
    writeln!(demo.0.stdin.take().unwrap(), "go").unwrap();
    let mut node_in = node.0.stdin.take().unwrap();
    writeln!(node_in, "GO").unwrap();
    let green = list(
        &next(&browser_out, 180, "the bought devices did not turn green"),
        "GREEN ",
    );
    assert_eq!(green, bought);

    // The demo's own account (it keeps serving after its summary): the devices entitled on
    // chain are exactly the three, and exactly they installed.
    let summary: Value =
        serde_json::from_str(&next(&demo_out, 180, "no summary from the demo")).unwrap();
    let mut entitled: Vec<u64> = summary["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["bought"] == true)
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    entitled.sort_unstable();
    assert_eq!(entitled, bought, "entitled on chain");
    assert_eq!(summary["updated"], 3);

    // Emergency revoke by the operator, refunds claimed by the owner, in the page.
    writeln!(node_in, "REVOKE").unwrap();
    let refunded = list(
        &next(&browser_out, 180, "the refund was not claimed"),
        "REFUNDED ",
    );
    assert_eq!(refunded, bought);
    assert_eq!(next(&browser_out, 60, "browser did not finish"), "DONE");
    assert!(node.0.wait().unwrap().success());
    for name in [
        "dapp-wrong-chain.png",
        "dapp-revoke.png",
        "dapp-desktop.png",
        "dapp-phone.png",
    ] {
        assert!(shots.join(name).metadata().unwrap().len() > 1000, "{name}");
    }
}
