//! Runs the dashboard's ES modules in Node for the tests that check them without a browser
//! (`dashboard_abi.rs`, `review_dashboard.rs`).

#![allow(dead_code, unreachable_pub)] // each test binary uses part of it

use std::process::{Command, Stdio};

use serde_json::Value;

/// Runs `script` as an ES module with the page's modules imported as `abi`, `publish`,
/// `claim`, `keccak`, `walletjs` (`wallet.js`), `session`, `permit` and `policy`, `input` (read from stdin: it may
/// be large) as `input`, and returns the JSON it prints with `out` (BigInts as decimal text).
pub fn node(script: &str, input: &Value) -> Value {
    use std::io::Write as _;
    let module = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../dashboard")
            .join(name);
        serde_json::to_string(&format!(
            "file://{}",
            path.canonicalize().unwrap().display()
        ))
        .unwrap()
    };
    let imports: String = [
        ("abi", "abi.js"),
        ("publish", "publish.js"),
        ("claim", "claim.js"),
        ("keccak", "keccak.js"),
        ("walletjs", "wallet.js"),
        ("session", "session.js"),
        ("permit", "permit.js"),
        ("policy", "policy.js"),
    ]
    .iter()
    .map(|(name, file)| format!("import * as {name} from {};\n", module(file)))
    .collect();
    let prelude = format!(
        "{imports}import {{ readFileSync }} from 'node:fs';\nconst input = JSON.parse(readFileSync(0, 'utf8'));\nconst out = (v) => console.log(JSON.stringify(v, (_, x) => typeof x === 'bigint' ? x.toString() : x));\n"
    );
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e"])
        .arg(format!("{prelude}{script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (the project needs Node for its tools)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "node printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// A small seeded generator (xorshift64*), so failures replay.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `N` random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.next() as u8)
    }
}

/// 0x-prefixed lower-case hex.
pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    alloy::hex::encode_prefixed(bytes)
}
