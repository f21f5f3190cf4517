//! Sign-In with Ethereum in the dashboard (Chromium via playwright-core,
//! `cli/tests/browser/signin.mjs`) against the real `otaledger demo` (paused before any
//! purchase, 6 devices): the owner signs in with the test wallet (personal_sign by anvil's
//! dev keys), labels and places a device on the map and sees it in the fleet, a bidi label
//! is refused, an expired and a replayed message are refused, sign-out ends the session,
//! an account that owns nothing is refused the owner's label (403), and the manufacturer's
//! operator sees its model's install statistics. Screenshots go to `target/screenshots/`.

mod support;

use support::{lines, next};

const DEVICES: u64 = 6;

/// Fails without Chromium when `OTALEDGER_REQUIRE_BROWSER=1`, else skips loudly.
#[test]
fn sign_in_labels_refusals_sign_out_and_statistics_in_the_page() {
    let Some(chromium) = support::chromium("sign-in browser test") else {
        return;
    };
    let (root, shots) = support::roots();
    let tmp = tempfile::tempdir().unwrap();
    let (_demo, _demo_out, paused) =
        support::paused_demo(DEVICES, &["--no-purchase"], &tmp.path().join("state"));
    let field = |k: &str| support::field(&paused, k);
    let mut node = support::browser_script(
        "signin.mjs",
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
    let out = lines(&mut node.0);
    assert_eq!(next(&out, 240, "the sign-in flows did not finish"), "DONE");
    assert!(node.0.wait().unwrap().success());
    for name in [
        "signin-signed-in.png",
        "signin-statistics.png",
        "signin-phone.png",
    ] {
        assert!(shots.join(name).metadata().unwrap().len() > 1000, "{name}");
    }
}
