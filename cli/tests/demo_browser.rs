//! `otaledger demo` watched in Chromium (playwright-core, `cli/tests/browser/demo.mjs`): the
//! real binary with a small fleet and `--pause-before-purchase`; the page loads while every
//! node is red, then, without a reload, exactly the bought devices turn green and the others
//! stay red; a bought device's audit trail shows its purchase and install. Screenshots
//! (desktop, trail, phone) go to `target/screenshots/`.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::Duration,
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_otaledger");
const DEVICES: u64 = 12;
const BUYERS: u64 = 4;

/// Kills the child when the test ends, passed or failed.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's stdout lines, read on a thread so that waits can time out.
fn lines(child: &mut Child) -> Receiver<String> {
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next(rx: &Receiver<String>, secs: u64, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Fails without Chromium when `OTALEDGER_REQUIRE_BROWSER=1`, else skips loudly (as the
/// indexer's browser test).
#[test]
fn the_demo_turns_exactly_the_bought_devices_green_in_the_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        if std::env::var("OTALEDGER_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("{chromium} is missing (make chromium installs it)");
        }
        eprintln!("SKIPPED: demo browser test: {chromium} is missing (make chromium installs it)");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let mut demo = Killed(
        Command::new(BIN)
            .args([
                "--json",
                "demo",
                "--exit-when-done",
                "--pause-before-purchase",
            ])
            .args(["--port", "0", "--devices", &DEVICES.to_string()])
            .args(["--buyers", &BUYERS.to_string()])
            .arg("--dir")
            .arg(tmp.path().join("state"))
            .env_remove("OTALEDGER_PRIVATE_KEY")
            .env_remove("OTALEDGER_DATABASE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let demo_out = lines(&mut demo.0);
    let paused: Value =
        serde_json::from_str(&next(&demo_out, 180, "the demo did not pause")).unwrap();
    assert_eq!(paused["event"], "paused-before-purchase", "{paused}");
    let url = paused["dashboard"].as_str().unwrap().to_owned();

    let mut node = Killed(
        Command::new("node")
            .arg(root.join("cli/tests/browser/demo.mjs"))
            .arg(&url)
            .arg(DEVICES.to_string())
            .arg(BUYERS.to_string())
            .arg(&shots)
            .env("CHROMIUM", &chromium)
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
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
