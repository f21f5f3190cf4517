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
//!
//! The second test pays in the release's ERC-20 (`demo --token`) with one EIP-2612 permit
//! (`cli/tests/browser/token.mjs`).

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

/// The owner pays in the release's ERC-20 with an EIP-2612 permit (`cli/tests/browser/token.mjs`):
/// `otaledger demo --token` prices the release at 10 dUSD a device in its `DemoToken`; the page
/// prices 4 devices in dUSD, has the wallet sign one permit and sends one `purchaseWithPermit`
/// (no `approve`), and every device turns amber, then green after the demo's fleet round. On
/// chain: the owner paid exactly 40 dUSD, the permit's nonce was used, and the demo's account
/// agrees that all 4 are entitled and installed. Screenshot: `token-permit.png`.
#[test]
fn the_owner_pays_in_the_token_with_one_permit_and_one_transaction() {
    use alloy::{primitives::Address, providers::ProviderBuilder};
    use otaledger_core::bindings::demo_token::DemoToken;

    const COUNT: u64 = 4;
    let Some(chromium) = support::chromium("token browser test") else {
        return;
    };
    let (root, shots) = support::roots();
    let tmp = tempfile::tempdir().unwrap();
    let (mut demo, demo_out, paused) = support::paused_demo(
        COUNT,
        &["--token", "--no-purchase", "--unclaimed", "0"],
        &tmp.path().join("state"),
    );
    let field = |k: &str| support::field(&paused, k);
    let token: Address = field("token").parse().unwrap();
    let owner: Address = field("owner").parse().unwrap();
    let rpc = field("rpc");

    let mut node = support::browser_script(
        "token.mjs",
        &[
            field("dashboard"),
            rpc.clone(),
            field("owner"),
            COUNT.to_string(),
        ],
        &chromium,
        &root,
        &shots,
    );
    let browser_out = lines(&mut node.0);
    let bought = list(&next(&browser_out, 180, "the page did not buy"), "BOUGHT ");
    assert_eq!(bought.len(), COUNT as usize, "{bought:?}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (balance, nonce) = runtime.block_on(async {
        let dusd = DemoToken::new(
            token,
            ProviderBuilder::new().connect_http(rpc.parse().unwrap()),
        );
        (
            dusd.balanceOf(owner).call().await.unwrap(),
            dusd.nonces(owner).call().await.unwrap(),
        )
    });
    assert_eq!(
        balance,
        alloy::primitives::U256::from(10_000_000_000_000u64 - 40_000_000),
        "the owner paid 4 × 10 dUSD"
    );
    assert_eq!(
        nonce,
        alloy::primitives::U256::from(1u64),
        "one permit used"
    );

    writeln!(demo.0.stdin.take().unwrap(), "go").unwrap();
    writeln!(node.0.stdin.take().unwrap(), "GO").unwrap();
    let green = list(
        &next(&browser_out, 180, "the bought devices did not turn green"),
        "GREEN ",
    );
    assert_eq!(green, bought);
    let summary: Value =
        serde_json::from_str(&next(&demo_out, 180, "no summary from the demo")).unwrap();
    assert_eq!(summary["updated"], COUNT, "{summary}");
    assert_eq!(next(&browser_out, 60, "browser did not finish"), "DONE");
    assert!(node.0.wait().unwrap().success());
    assert!(shots.join("token-permit.png").metadata().unwrap().len() > 1000);
}
