//! What the browser tests of `otaledger demo` share (`demo_browser.rs`, `dapp_browser.rs`):
//! children killed when a test ends, their stdout read on a thread with timeouts, and the
//! Chromium check.

#![allow(dead_code)] // each test binary uses its own part

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::Duration,
};

/// Stops the child when the test ends, passed or failed: SIGINT first (the demo then stops
/// what it started, anvil included, which a SIGKILL would orphan), SIGKILL after 10 s.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &self.0.id().to_string()])
                .status();
            for _ in 0..100 {
                if !matches!(self.0.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's stdout lines, read on a thread so that waits can time out.
pub(crate) fn lines(child: &mut Child) -> Receiver<String> {
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

/// The next line within `secs`, or a panic naming `what` did not happen.
pub(crate) fn next(rx: &Receiver<String>, secs: u64, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Chromium's path (`CHROMIUM` or /usr/bin/chromium), or `None` after a loud skip; fails
/// instead when `OTALEDGER_REQUIRE_BROWSER=1` (as the indexer's browser test).
pub(crate) fn chromium(test: &str) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if std::path::Path::new(&chromium).exists() {
        return Some(chromium);
    }
    if std::env::var("OTALEDGER_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{chromium} is missing (make chromium installs it)");
    }
    eprintln!("SKIPPED: {test}: {chromium} is missing (make chromium installs it)");
    None
}

/// The repository root and `target/screenshots` (created).
pub(crate) fn roots() -> (std::path::PathBuf, std::path::PathBuf) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    (root, shots)
}

/// `otaledger --json demo --pause-before-purchase --port 0 --devices N` with `extra` options and
/// its state in `dir`, started and waited for until it pauses: the demo, its stdout lines
/// after the pause, and the pause line (`dashboard`, `rpc`, `owner`, …).
pub(crate) fn paused_demo(
    devices: u64,
    extra: &[&str],
    dir: &Path,
) -> (Killed, Receiver<String>, serde_json::Value) {
    let mut demo = Killed(
        Command::new(env!("CARGO_BIN_EXE_otaledger"))
            .args(["--json", "demo", "--pause-before-purchase"])
            .args(extra)
            .args(["--port", "0", "--devices", &devices.to_string()])
            .arg("--dir")
            .arg(dir)
            .env_remove("OTALEDGER_PRIVATE_KEY")
            .env_remove("OTALEDGER_DATABASE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = lines(&mut demo.0);
    let paused: serde_json::Value =
        serde_json::from_str(&next(&out, 180, "the demo did not pause")).unwrap();
    assert_eq!(paused["event"], "paused-before-purchase", "{paused}");
    (demo, out, paused)
}

/// `node cli/tests/browser/<script> ARGS… SCREENSHOT_DIR` with Chromium at `chromium`, run
/// from the repository root with stdin and stdout piped (the scripts take their cues on
/// stdin and print what they saw on stdout).
pub(crate) fn browser_script(
    script: &str,
    args: &[String],
    chromium: &str,
    root: &Path,
    shots: &Path,
) -> Killed {
    Killed(
        Command::new("node")
            .arg(root.join("cli/tests/browser").join(script))
            .args(args)
            .arg(shots)
            .env("CHROMIUM", chromium)
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// A plain HTTP/1.0 GET of `path` from `addr` (`host:port`): the response with its headers.
pub(crate) fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Field `k` of the demo's pause line, as text (a panic naming it when absent).
pub(crate) fn field(paused: &serde_json::Value, k: &str) -> String {
    paused[k]
        .as_str()
        .unwrap_or_else(|| panic!("no {k}: {paused}"))
        .to_owned()
}

/// `otaledger --json release create` of model 1 `version` from `image` into `out`, on a demo's
/// chain (`rpc`) with the demo's authority, store and deployments in `state`, plus `extra`
/// options; the finished process.
pub(crate) fn release_create(
    state: &Path,
    rpc: &str,
    version: u64,
    image: &Path,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otaledger"))
        .args(["--json", "release", "create", "--model", "1", "--version"])
        .arg(version.to_string())
        .args(["--rpc-url", rpc])
        .args(extra)
        .arg("--image")
        .arg(image)
        .arg("--params")
        .arg(state.join("authority/params.cpabe"))
        .arg("--store")
        .arg(state.join("ipfs"))
        .arg("--deployments")
        .arg(state.join("deployments"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}
