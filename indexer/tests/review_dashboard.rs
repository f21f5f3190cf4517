//! Security review of the dashboard's browser-side flows, as an attacker would try them:
//! `dashboard/publish.js` (manifest.json parsing, EIP-712 typed data, shared links, the
//! approval gathered and submitted), `dashboard/session.js` (Sign-In with Ethereum in the
//! page) and the page's rendering sinks and CSP.
//!
//! Runs `node` on the ES modules as `indexer/tests/dashboard_abi.rs` does. The page-level
//! attacks run `initPublish` / `initSession` in node against a small fake DOM (every element
//! an object recording its text; `innerHTML` throws), the page's own `Wallet` class over a
//! fake EIP-1193 provider (eth_call answers ABI-encoded with `abi.js`; every request logged)
//! and a fake indexer (`getJson` / `fetch`). Signatures that must be real are made in Rust
//! over the manifest file's EIP-712 digest.
//!
//! A test that passes means the defence held. Tests whose comment starts `ATTACK` found a
//! weakness (nine did, in the first version of these flows): each asserted the secure
//! behaviour, failed until the fix, and now holds (docs/dashboard.md lists the fixes).

mod pagejs;

use alloy::{
    primitives::{Address, B256, Bytes, address},
    signers::{SignerSync as _, local::PrivateKeySigner},
};
use otaledger_core::{
    bindings::registry::IUpdateRegistry as Reg,
    bundle::{default_policy, policy_id},
    manifest::ManifestFile,
};
use pagejs::node;
use serde_json::{Value, json};

/// A fake page for `initPublish` / `initSession`: DOM, indexer, chain (through the real
/// `Wallet` class), all requests logged.
const PAGE: &str = r###"
const F = abi.FUNCTIONS;
const lower = (a) => String(a ?? '').toLowerCase();
class T { constructor(t) { this.data = String(t); } get textContent() { return this.data; } }
class E {
  constructor(tag, id = null) {
    Object.assign(this, { tag, id, attrs: {}, kids: [], listeners: {}, hidden: false, disabled: false, value: '', dataset: {}, style: {}, files: null, title: '' });
  }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; }
  addEventListener(t, f) { (this.listeners[t] ||= []).push(f); }
  set textContent(t) { this.kids = [new T(t)]; }
  get textContent() { return this.kids.map((k) => k.textContent).join(''); }
  replaceChildren(...c) { this.kids = c; }
  append(...c) { for (const x of c) this.kids.push(x instanceof E || x instanceof T ? x : new T(x)); }
  prepend(...c) { this.kids.unshift(...c); }
  set innerHTML(v) { throw new Error(`innerHTML set to ${v}`); }
  get children() { return this.kids.filter((k) => k instanceof E); }
  // Every text as its own node (what a browser would show, never parsed as markup).
  get html() { return this.kids.map((k) => (k instanceof E ? k.html : 'TEXT')).join(''); }
}
const els = new Map();
const $ = (id) => { if (!els.has(id)) els.set(id, new E('div', id)); return els.get(id); };
globalThis.document = { getElementById: $, createElement: (t) => new E(t), createTextNode: (t) => new T(t) };
const el = (tag, attrs = {}, ...children) => {
  const e = new E(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof E ? c : new T(String(c ?? '')));
  return e;
};
const short = (h) => (h && h.length > 14 ? `${h.slice(0, 8)}…${h.slice(-4)}` : h ?? '');
const fire = (id, type = 'click') => Promise.all(($(id).listeners[type] || []).map((f) => f({ preventDefault() {} })));
const tick = () => new Promise((r) => setTimeout(r, 0));
const b64url = (s) => Buffer.from(s, 'utf8').toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const link = (state) => `https://fleet.test/#publish=${b64url(JSON.stringify(state))}`;
const unlink = (l) => (l ? JSON.parse(Buffer.from(l.split('#publish=')[1], 'base64url').toString('utf8')) : null);
const JUNK = `0x${'11'.repeat(32)}${'22'.repeat(32)}1b`;
const ZERO = `0x${'00'.repeat(20)}`;
const SET_HASH = `0x${'ab'.repeat(32)}`;
const selectors = Object.fromEntries(Object.entries(F).map(([k, f]) => [f.selector, [k, f]]));

/** A publish panel with a connected wallet (`account`) on the deployment's chain. */
async function publishPage({ deployment = input.deployment, known = [], signers = input.signers, threshold = input.threshold,
  manufacturerId = 1, latest = 0, floor = 0, nonce = 0, name = 'Acme', hash = '', account = input.addr[0],
  simulate = () => null, signTyped = () => JUNK } = {}) {
  globalThis.location = { hash, origin: 'https://fleet.test', pathname: '/', host: 'fleet.test' };
  for (const k of [...els.keys()]) els.delete(k);
  $('approve-kind').value = 'publish';
  const log = [];
  const ids = new Map();
  for (const t of known) { const f = publish.parseManifestFile(t); ids.set(abi.encodeCall(F.releaseId, [f.tuple]), f.releaseId); }
  const provider = {
    async request({ method, params }) {
      log.push({ method, params });
      if (method === 'eth_chainId') return `0x${BigInt(deployment.chain_id).toString(16)}`;
      if (method === 'eth_requestAccounts') return [account];
      if (method === 'eth_signTypedData_v4') return signTyped(params);
      if (method === 'eth_sendTransaction') return `0x${'77'.repeat(32)}`;
      if (method === 'eth_getTransactionReceipt') return { status: '0x1', blockNumber: '0x5', gasUsed: '0x10' };
      if (method !== 'eth_call') throw new Error(`unexpected ${method}`);
      const { data, to } = params[0];
      // The ecrecover precompile: the signers Rust recovered for the signatures it made.
      if (to === '0x0000000000000000000000000000000000000001') {
        const who = input.recover[`${data.slice(2, 66)}${data.slice(130)}`.toLowerCase()];
        return who ? `0x${'00'.repeat(12)}${who.slice(2)}` : '0x';
      }
      const [fname, f] = selectors[data.slice(0, 10)];
      switch (fname) {
        case 'releaseId': return abi.encode(f.returns, [ids.get(data) ?? `0x${'ee'.repeat(32)}`]);
        case 'model': return abi.encode(f.returns, [[manufacturerId, latest, floor]]);
        case 'manufacturer': return abi.encode(f.returns, [[SET_HASH, ZERO, nonce, ZERO]]);
        case 'signersHash': {
          const [s, t] = abi.decode('(address[],uint8)', `0x${data.slice(10)}`);
          const same = s.map(lower).join() === signers.map(lower).join() && Number(t) === threshold;
          return abi.encode(f.returns, [same ? SET_HASH : `0x${'00'.repeat(32)}`]);
        }
        default: {
          const revert = simulate(fname, data);
          if (revert) throw { code: 3, message: 'execution reverted', data: revert };
          return abi.encode(f.returns, f.returns === '()' ? [] : [`0x${'00'.repeat(32)}`]);
        }
      }
    },
  };
  const getJson = async (url) => {
    log.push({ getJson: url });
    if (url === '/v1/deployment') return deployment;
    if (url === `/v1/manufacturers/${manufacturerId}/signers`) return { signer_sets: [{ signers, threshold }] };
    if (url.startsWith('/v1/manufacturers?')) return { items: [{ manufacturer_id: manufacturerId, name }] };
    throw new Error(`unexpected ${url}`);
  };
  const wallet = new walletjs.Wallet(provider, deployment);
  await wallet.connect();
  const api = publish.initPublish({ el, short, getJson });
  api.rolesChanged({ maker: true });
  await api.walletChanged(wallet, deployment);
  const state = () => ({
    status: $('publish-status').textContent,
    summary: $('publish-summary').textContent,
    summaryHtml: $('publish-summary').html,
    count: $('publish-count').textContent,
    listed: $('publish-signatures').children.map((c) => c.getAttribute('data-signer')),
    shared: unlink($('publish-link').value),
    signDisabled: $('publish-sign').disabled,
    sendDisabled: $('publish-send').disabled,
    methods: log.map((l) => l.method).filter(Boolean),
    calls: log.filter((l) => l.method === 'eth_call').map((l) => (l.params[0].to === '0x0000000000000000000000000000000000000001' ? 'ecrecover' : selectors[l.params[0].data.slice(0, 10)][0])),
  });
  return { api, wallet, log, state };
}
const loadText = async (t) => { $('approve-kind').value = 'publish'; $('publish-file').files = null; $('publish-manifest').value = t; await fire('publish-load'); };
const paste = async (t) => { $('publish-paste').value = t; await fire('publish-add'); };
"###;

fn page(script: &str) -> Value {
    node(&format!("{PAGE}\n{script}"), &context())
}

const CHAIN: u64 = 31_337;
const REGISTRY: Address = address!("5fbdb2315678afecb367f032d93f642f64180aa3");

fn keys() -> Vec<PrivateKeySigner> {
    (1..=3u8)
        .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).unwrap())
        .collect()
}

fn file(version: u64, expiry: u64, chain_id: u64, registry: Address) -> ManifestFile {
    let policy = default_policy(7, version);
    ManifestFile {
        chain_id,
        registry,
        policy: policy.to_string(),
        manifest: Reg::Manifest {
            modelId: 7,
            version,
            bundleSha256: B256::repeat_byte(0x5a),
            bundleSize: 1142,
            bundleCid: Bytes::from(vec![1, 0x55, 0x12, 0x20, 9, 9]),
            imageSha256: B256::repeat_byte(0x6b),
            price: 10_000_000_000_000_000,
            paymentToken: Address::ZERO,
            policyId: policy_id(&policy),
            expiry,
            metadataHash: B256::repeat_byte(0x7c),
        },
    }
}

fn good() -> ManifestFile {
    file(42, 0, CHAIN, REGISTRY)
}

fn sign(key: &PrivateKeySigner, f: &ManifestFile) -> String {
    alloy::hex::encode_prefixed(key.sign_hash_sync(&f.digest()).unwrap().as_bytes())
}

/// What the fake ecrecover answers: `digest ‖ r ‖ s` (hex) → the signer, for each signature
/// the tests make.
fn recover_table(made: &[(&PrivateKeySigner, &ManifestFile)]) -> Value {
    let mut table = serde_json::Map::new();
    for (key, f) in made {
        let sig = sign(key, f);
        table.insert(
            format!("{}{}", alloy::hex::encode(f.digest()), &sig[2..130]).to_lowercase(),
            json!(format!("{:#x}", key.address())),
        );
    }
    Value::Object(table)
}

/// What every page script gets as `input`.
fn context() -> Value {
    let k = keys();
    let addr: Vec<String> = k.iter().map(|k| format!("{:#x}", k.address())).collect();
    let mut signers = addr.clone();
    signers.sort();
    let other = file(43, 0, CHAIN, REGISTRY);
    json!({
        "deployment": {"chain_id": CHAIN, "registry": format!("{REGISTRY:#x}"), "market": format!("{:#x}", Address::repeat_byte(0x33))},
        "signers": signers,
        "threshold": 2,
        "addr": addr,
        "good": good().to_json(),
        "other": other.to_json(),
        "chain1": file(42, 0, 1, REGISTRY).to_json(),
        "registry2": file(42, 0, CHAIN, Address::repeat_byte(0x44)).to_json(),
        "far": file(42, (1 << 53) - 1, CHAIN, REGISTRY).to_json(),
        "sig": {
            "k0": sign(&k[0], &good()),
            "k1": sign(&k[1], &good()),
            "k0_other": sign(&k[0], &other),
        },
        "recover": recover_table(&[(&k[0], &good()), (&k[1], &good()), (&k[0], &other)]),
    })
}

// ------------------------------------------------------------ a malicious shared link

/// Attempt: a shared link (opened by a signer) carrying a canonical manifest for another chain,
/// or for another registry than this page's deployment, to make the signer's wallet sign typed
/// data whose domain is not this fleet's. HELD: both are refused before any on-chain check,
/// the Sign button stays disabled, and no eth_signTypedData_v4 request is ever made.
#[test]
fn shared_link_for_another_chain_or_registry_is_refused_before_signing() {
    let got = page(
        r#"
const res = [];
for (const t of [input.chain1, input.registry2]) {
  const p = await publishPage({ known: [t], hash: new URL(link({ kind: 'publish', payload: t, signatures: [] })).hash });
  const loaded = p.state();
  // Even a click on the disabled button (a script, a stale render) asks the wallet nothing.
  await fire('publish-sign');
  res.push({ ...loaded, methods: p.state().methods });
}
out(res);
"#,
    );
    for (s, what) in got.as_array().unwrap().iter().zip(["chain", "registry"]) {
        let status = s["status"].as_str().unwrap();
        assert!(status.starts_with("manifest refused"), "{what}: {status}");
        assert!(status.contains(what), "{what}: {status}");
        assert_eq!(s["signDisabled"], true, "{what}");
        assert!(
            !s["methods"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == "eth_signTypedData_v4"),
            "{what}: {s}"
        );
        assert_eq!(s["summary"], "", "{what}");
    }
}

/// Attempt: make the page display one manifest while the wallet signs another (the brief's
/// "display one thing, sign another"). Opened from a link; the signer signs. HELD: the typed
/// data handed to the wallet has this deployment's domain (chain 31337, this registry) and
/// exactly the manifest fields the page summarised (model 7, version 42, 0.01 ETH), and the
/// signature is filed under the signing account.
#[test]
fn the_wallet_signs_the_manifest_the_page_shows_under_this_deployment() {
    let got = page(
        r#"
const p = await publishPage({ known: [input.good], hash: new URL(link({ kind: 'publish', payload: input.good, signatures: [] })).hash, signTyped: () => input.sig.k0 });
await fire('publish-sign');
const req = p.log.find((l) => l.method === 'eth_signTypedData_v4');
out({ ...p.state(), typed: JSON.parse(req.params[1]), from: req.params[0] });
"#,
    );
    let f = good();
    let m = &f.manifest;
    let typed = &got["typed"];
    assert_eq!(
        typed["domain"],
        json!({"name": "OTA Ledger UpdateRegistry", "version": "1", "chainId": CHAIN, "verifyingContract": format!("{REGISTRY:#x}")})
    );
    assert_eq!(typed["primaryType"], "Manifest");
    let hex = |b: &[u8]| alloy::hex::encode_prefixed(b);
    assert_eq!(
        typed["message"],
        json!({
            "modelId": m.modelId.to_string(), "version": m.version.to_string(),
            "bundleSha256": hex(m.bundleSha256.as_slice()), "bundleSize": m.bundleSize.to_string(),
            "bundleCid": hex(&m.bundleCid), "imageSha256": hex(m.imageSha256.as_slice()),
            "price": m.price.to_string(), "paymentToken": format!("{:#x}", m.paymentToken),
            "policyId": hex(m.policyId.as_slice()), "expiry": m.expiry.to_string(),
            "metadataHash": hex(m.metadataHash.as_slice()),
        })
    );
    let summary = got["summary"].as_str().unwrap();
    assert!(
        summary.contains("model 7, version 42") && summary.contains("price 0.01 ETH"),
        "{summary}"
    );
    assert_eq!(got["from"], context()["addr"][0]);
    assert_eq!(got["listed"], json!([context()["addr"][0]]));
}

/// Attempt: a link for the "rotate the signer set" action (the most dangerous approval: the
/// attacker's key alone as the new set) — can what the page shows differ from what is signed?
/// HELD: the summary names the new set exactly (1 of 1: the attacker), and the typed data is
/// RotateSigners under this deployment's domain with that set and the chain's nonce.
#[test]
fn a_rotate_link_shows_the_set_the_wallet_signs() {
    let got = page(
        r#"
const attacker = `0x${'a7'.repeat(20)}`;
const p = await publishPage({ nonce: 5, hash: new URL(link({ kind: 'rotate', payload: { manufacturerId: '1', signers: [attacker], threshold: 1 }, signatures: [] })).hash });
await fire('publish-sign');
const req = p.log.find((l) => l.method === 'eth_signTypedData_v4');
out({ ...p.state(), typed: req && JSON.parse(req.params[1]), attacker });
"#,
    );
    let attacker = got["attacker"].as_str().unwrap();
    let summary = got["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("becomes 1 of 1: {attacker}")),
        "{summary}"
    );
    let typed = &got["typed"];
    assert_eq!(typed["primaryType"], "RotateSigners");
    assert_eq!(typed["domain"]["chainId"], CHAIN);
    assert_eq!(
        typed["domain"]["verifyingContract"],
        format!("{REGISTRY:#x}")
    );
    assert_eq!(
        typed["message"],
        json!({"manufacturerId": "1", "nonce": "5", "signers": [attacker], "threshold": "1"})
    );
}

/// Attempt: swap the manifest after signatures were gathered — paste a link carrying another
/// manifest (v43) with the v42 signatures, then load v43 directly. HELD: the paste is refused
/// ("approve something else"), and loading another manifest starts with no signatures.
#[test]
fn a_link_swapping_the_manifest_carries_no_earlier_signatures() {
    let got = page(
        r#"
const p = await publishPage({ known: [input.good, input.other], hash: new URL(link({ kind: 'publish', payload: input.good, signatures: [{ signer: input.addr[0], signature: input.sig.k0 }] })).hash });
const before = p.state();
await paste(link({ kind: 'publish', payload: input.other, signatures: [{ signer: input.addr[0], signature: input.sig.k0 }, { signer: input.addr[1], signature: input.sig.k1 }] }));
const pasted = p.state();
await loadText(input.other);
out({ before, pasted, after: p.state() });
"#,
    );
    assert_eq!(got["before"]["listed"], json!([context()["addr"][0]]));
    assert!(
        got["pasted"]["status"]
            .as_str()
            .unwrap()
            .contains("approve something else"),
        "{}",
        got["pasted"]
    );
    assert_eq!(got["pasted"]["listed"], got["before"]["listed"]);
    assert!(
        got["after"]["summary"]
            .as_str()
            .unwrap()
            .contains("version 43")
    );
    assert_eq!(got["after"]["listed"], json!([]));
    assert_eq!(got["after"]["shared"]["signatures"], json!([]));
}

/// Attempt: get a transaction sent without simulation, or with other data than simulated.
/// HELD: Submit goes through `Wallet.send`: a reverting eth_call (the contract refusing the
/// approval) sends nothing and shows the decoded reason; when it passes, the transaction
/// sent is byte for byte the one simulated. No dashboard script calls eth_sendTransaction
/// anywhere else.
#[test]
fn submitting_is_simulated_and_a_revert_sends_nothing() {
    let got = page(
        r#"
const revert = abi.encodeCall({ signature: 'Error(string)', selector: '0x08c379a0' }, ['approval refused']);
let refuse = true;
const p = await publishPage({ known: [input.good], hash: new URL(link({ kind: 'publish', payload: input.good, signatures: [{ signer: input.addr[0], signature: input.sig.k0 }, { signer: input.addr[2], signature: JUNK }] })).hash,
  simulate: (name) => (name === 'publishRelease' && refuse ? revert : null) });
await fire('publish-send');
const refused = { ...p.state(), log: $('publish-log').textContent };
refuse = false;
await fire('publish-send');
const sims = p.log.filter((l) => l.method === 'eth_call' && l.params[0].to !== '0x0000000000000000000000000000000000000001' && selectors[l.params[0].data.slice(0, 10)][0] === 'publishRelease');
const sent = p.log.filter((l) => l.method === 'eth_sendTransaction');
out({ refused, after: p.state(), sims: sims.map((l) => l.params[0]), sent: sent.map((l) => l.params[0]) });
"#,
    );
    let refused = &got["refused"];
    assert!(
        !refused["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "eth_sendTransaction"),
        "{refused}"
    );
    assert!(
        refused["log"]
            .as_str()
            .unwrap()
            .contains("approval refused"),
        "{refused}"
    );
    let sims = got["sims"].as_array().unwrap();
    let sent = got["sent"].as_array().unwrap();
    assert_eq!(sims.len(), 2);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0], sims[1],
        "the transaction sent is the one simulated"
    );
    // Nothing else in the page sends a transaction.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "js") {
            let text = std::fs::read_to_string(&path).unwrap();
            let n = text.matches("'eth_sendTransaction'").count();
            let expected = usize::from(path.file_name().unwrap() == "wallet.js");
            assert_eq!(n, expected, "{}", path.display());
        }
    }
}

/// ATTACK: "signatures claimed by one signer but made by another". A link carries, for the
/// manifest, two signatures both made by signer 0's key, one claimed as signer 0 and one as
/// signer 1 (or any 65-byte junk claimed as any signer). The page lists both signers and shows
/// "2 of 2 signatures" — threshold met — without checking who signed. The contract refuses at
/// simulation, so nothing wrong is published, but the display is a lie the link's author
/// controls: signer 1 sees they "already signed" and does not sign; the others believe the
/// approval is complete; only the Submit attempt shows an opaque contract error naming no
/// signer. IMPACT: low-medium (griefing, misleading approval state; no unauthorised action).
/// FIX: verify each signature before counting it: recover the signer from the typed-data
/// digest (a small secp256k1 + keccak in the page, or an eth_call to a view that recovers),
/// list unverified ones as "claimed, unverified" and never count them.
#[test]
fn claimed_signatures_are_not_counted_until_verified() {
    let got = page(
        r#"
const p = await publishPage({ known: [input.good], hash: new URL(link({ kind: 'publish', payload: input.good, signatures: [{ signer: input.addr[0], signature: input.sig.k0 }, { signer: input.addr[1], signature: input.sig.k0 }] })).hash });
out(p.state());
"#,
    );
    let count = got["count"].as_str().unwrap();
    assert!(
        count.starts_with("1 of 2"),
        "only signer 0 signed, the page says: {count}"
    );
}

/// ATTACK: clobber gathered signatures. Signer 0 has signed (a valid signature is in the
/// panel). Someone pastes a link "with my signatures" for the same manifest that carries junk
/// claimed as signer 0 (and as anyone else). `publish-add` does `signatures.set(...)` for each:
/// the valid signature is silently replaced by the junk, the count does not change, and the
/// shared link from now on carries the junk. Submit then fails in simulation with a contract
/// error that names no signer, and the signers cannot tell whose signature to redo; a junk
/// entry claimed by an address outside the set is sent to the contract too (no way to remove
/// it but reloading). IMPACT: low-medium denial of service on approvals (publish, revoke,
/// emergency floor) by anyone who can get a link pasted. FIX: never replace a signature
/// already held (keep the first, or the one the page's own wallet made); better, verify
/// before accepting (see `claimed_signatures_are_not_counted_until_verified`); drop
/// signatures of addresses outside the current set from the approval.
#[test]
fn pasted_signatures_do_not_replace_gathered_ones() {
    let got = page(
        r#"
const p = await publishPage({ known: [input.good], hash: new URL(link({ kind: 'publish', payload: input.good, signatures: [{ signer: input.addr[0], signature: input.sig.k0 }] })).hash });
await paste(link({ kind: 'publish', payload: input.good, signatures: [{ signer: input.addr[0], signature: JUNK }] }));
out(p.state());
"#,
    );
    assert_eq!(
        got["shared"]["signatures"],
        json!([{"signer": context()["addr"][0], "signature": context()["sig"]["k0"]}]),
        "{got}"
    );
}

/// ATTACK (race): signer 0 clicks Sign for manifest A (v42); while the wallet prompt is open,
/// another manifest B (v43) is loaded (pasted, or a file chosen). When the wallet returns A's
/// signature, the click handler files it under signer 0 in B's approval: the page shows
/// "signer 0 signed" for B, and B's share link carries a signature over A. Nothing wrong can be
/// published (the contract refuses), but the approval state is false and the other signers are
/// told signer 0 approved B. IMPACT: low (misattribution, confusing failures). FIX: capture
/// `run` (or the action) before `await wallet.request(...)` and drop the signature when it
/// changed.
#[test]
fn a_signature_returned_after_the_manifest_changed_is_dropped() {
    let got = page(
        r#"
let release;
const p = await publishPage({ known: [input.good, input.other], hash: new URL(link({ kind: 'publish', payload: input.good, signatures: [] })).hash,
  signTyped: () => new Promise((r) => { release = () => r(input.sig.k0); }) });
const signing = fire('publish-sign');
for (let i = 0; i < 20 && !release; i++) await tick();
await loadText(input.other);
release();
await signing;
out(p.state());
"#,
    );
    assert!(got["summary"].as_str().unwrap().contains("version 43"));
    assert_eq!(
        got["listed"],
        json!([]),
        "a signature over v42 is listed for v43: {got}"
    );
}

/// ATTACK (robustness): a manifest whose expiry is far in the future (any uint64 seconds above
/// 8.64e12, e.g. 2^53 - 1, which the page otherwise reads exactly and the registry accepts) is
/// refused by the page: the summary's `new Date(expiry * 1000).toISOString()` throws a
/// RangeError ("Invalid time value") inside `prepare`, shown as "manifest refused". IMPACT:
/// low (a valid release cannot be approved from the page; no wrong signing). FIX: show the
/// expiry as a number of seconds (or a date only when it is within Date's range).
#[test]
fn a_far_expiry_is_displayed_not_refused() {
    let got = page(
        r#"
const p = await publishPage({ known: [input.far], hash: new URL(link({ kind: 'publish', payload: input.far, signatures: [] })).hash });
out(p.state());
"#,
    );
    let status = got["status"].as_str().unwrap();
    assert!(status.starts_with("checked on chain"), "{status}");
}

/// ATTACK (display): manufacturers are registered permissionlessly with any name and any
/// signer addresses (`registerManufacturer` takes no consent from the signers). An attacker
/// registers a second "Acme" listing a real Acme signer, defines a model, and sends that signer
/// a link: the summary reads "Acme, model N, version …" and "signers of Acme must sign", with no
/// manufacturer id, so it is indistinguishable from the real Acme. The signature is only
/// valid for the attacker's model (modelId is signed), so the gain is limited to a release that
/// appears approved by a well-known signer. IMPACT: low. FIX: name the manufacturer with its
/// id everywhere in the summary and status ("Acme (#2)").
#[test]
fn the_summary_names_the_manufacturer_by_id() {
    let got = page(
        r#"
const p = await publishPage({ manufacturerId: 2, known: [input.good], hash: new URL(link({ kind: 'publish', payload: input.good, signatures: [] })).hash });
out(p.state());
"#,
    );
    let summary = got["summary"].as_str().unwrap();
    assert!(summary.contains("#2"), "{summary}");
}

/// ATTACK: a shared "raise the floor" link for model 7 to 2^64 - 1. Floors only rise and the
/// registry accepts any floor above the current one, so once a threshold signs it the model can
/// never be updated again (devices refuse every version below the floor, and none can be
/// published above it). The page shows "model 7 refuses versions below 18446744073709551615
/// (floor now 0, latest published 42)" like any other floor, with no warning, and offers
/// Sign. RaiseFloor typed data has no nonce or deadline either, so such a signature, once
/// made and carried in a link, stays submittable by anyone until a higher floor is set.
/// IMPACT: medium (irreversible loss of the update channel of a model if signers are
/// careless; the page is where they decide). FIX: refuse (or demand an explicit typed
/// confirmation for) a floor above the latest published version, and say plainly that it
/// cannot be undone.
#[test]
fn a_floor_above_every_published_version_is_refused_or_warned() {
    let got = page(
        r#"
const p = await publishPage({ latest: 42, floor: 0, hash: new URL(link({ kind: 'floor', payload: { modelId: '7', minVersion: '18446744073709551615' }, signatures: [] })).hash });
out(p.state());
"#,
    );
    let status = got["status"].as_str().unwrap();
    let summary = got["summary"].as_str().unwrap();
    assert!(
        status.contains("refused") || summary.contains("above the latest published"),
        "{status} / {summary}"
    );
}

// ------------------------------------------------------------ manifest.json parsing

/// Runs `parseManifestFile` on each text: `{ok: tuple}` or `{err: message}`.
fn parse_all(texts: &[String]) -> Vec<Value> {
    node(
        "out(input.map((t) => { try { return { ok: publish.parseManifestFile(t).tuple }; } catch (e) { if (!(e instanceof Error)) throw e; return { err: e.message }; } }));",
        &json!(texts),
    )
    .as_array()
    .unwrap()
    .clone()
}

/// ATTACK (display one thing, sign another): the page shows `policy` "as the file states it"
/// next to the policyId it cannot recompute. A malicious link's manifest can pair the strict
/// policy text of a release with the policyId of a weaker policy, and the policy text itself
/// is any string up to 4096 characters: not a policy at all (text imitating the page's own
/// explanation, "verified"), with bidirectional overrides (U+202E reverses the rest of the
/// paragraph, including the page's caveat) or control characters. The CLI refuses all of these
/// (`parse_policy`), the page's own `checkReason` refuses controls and format characters in a
/// revocation reason, and `/v1/devices/{i}/label` refuses them in labels; the policy text alone
/// is unrestricted. IMPACT: medium: a signer reading the page sees a policy that is not what
/// they sign and a garbled caveat. FIX: refuse controls, U+2028/9 and Cf characters in
/// `policy` (as `checkReason`), accept only text in the policy grammar (quoted attributes,
/// and/or/of, parentheses), and show the policy visibly as unverified (e.g. not at all unless
/// the page can hash it: a keccak-256 and the policy's byte encoding in JS).
#[test]
fn policy_text_must_be_a_policy_without_controls() {
    let mut texts = Vec::new();
    for policy in [
        "\"model:7\" and \"release:7/42\"\u{202e} (what is signed is its hash",
        "\"model:7\" and \"release:7/42\" (verified by the registry: policyId matches)",
        "\"model:7\"\u{0007}",
    ] {
        let mut f = good();
        f.policy = policy.to_owned();
        // The page does not recompute policyId, releaseId or digest: keep them the CLI's.
        texts.push(f.to_json());
    }
    for t in &texts {
        assert!(
            ManifestFile::from_json(t, std::path::Path::new("m.json")).is_err(),
            "the CLI refuses it: {t}"
        );
    }
    for (t, r) in texts.iter().zip(parse_all(&texts)) {
        assert!(r.get("err").is_some(), "the page accepted {t}");
    }
}

/// Attempt: number forms the CLI would never write and a browser could misread: uint64 above
/// 2^53 (Number rounds), -0, exponent and fraction forms, leading zeros, a price as a number or
/// with non-ASCII digits, values above each field's width, negatives. HELD: every one is
/// refused (none is read as another value); 2^53 - 1 is read exactly.
#[test]
fn number_forms_are_refused_or_read_exactly() {
    let base = good().to_json();
    let swap = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        base.replacen(from, to, 1)
    };
    let bad = vec![
        swap("\"version\": 42", "\"version\": 9007199254740993"),
        swap("\"version\": 42", "\"version\": 9007199254740992"),
        swap("\"version\": 42", "\"version\": 18446744073709551615"),
        swap("\"expiry\": 0", "\"expiry\": -0"),
        swap("\"expiry\": 0", "\"expiry\": 0.0"),
        swap("\"version\": 42", "\"version\": 4.2e1"),
        swap("\"version\": 42", "\"version\": 42.0"),
        swap("\"version\": 42", "\"version\": 042"),
        swap("\"version\": 42", "\"version\": -42"),
        swap("\"version\": 42", "\"version\": \"42\""),
        swap("\"modelId\": 7", "\"modelId\": 4294967296"),
        swap("\"chainId\": 31337", "\"chainId\": 3.1337e4"),
        swap(
            "\"price\": \"10000000000000000\"",
            "\"price\": 10000000000000000",
        ),
        swap(
            "\"price\": \"10000000000000000\"",
            "\"price\": \"010000000000000000\"",
        ),
        swap("\"price\": \"10000000000000000\"", "\"price\": \"1e16\""),
        swap("\"price\": \"10000000000000000\"", "\"price\": \"١٠\""),
        swap("\"price\": \"10000000000000000\"", "\"price\": \"-1\""),
        swap(
            "\"price\": \"10000000000000000\"",
            "\"price\": \"340282366920938463463374607431768211456\"",
        ),
        swap("\"price\": \"10000000000000000\"", "\"price\": \"\""),
    ];
    for (t, r) in bad.iter().zip(parse_all(&bad)) {
        assert!(r.get("err").is_some(), "accepted: {t}");
    }
    let edge = file((1 << 53) - 1, 0, CHAIN, REGISTRY).to_json();
    let r = &parse_all(std::slice::from_ref(&edge))[0];
    assert_eq!(r["ok"][1], "9007199254740991");
}

/// ATTACK (canonical form): the check compares the text with `JSON.stringify(JSON.parse(text),
/// null, 2)`, which keeps the text's own key order, so a file with its keys reordered (and
/// otherwise in the CLI's spacing) is accepted although the page's message and
/// docs/bundle-format.md say the canonical form fixes the key order and the CLI never writes
/// it. Values are read the same, so nothing wrong is signed; but two spellings of one
/// manifest exist, the shared link's payload comparison (`JSON.stringify(payload)`) treats them
/// as different approvals, and the claim "one spelling" is false. IMPACT: low. FIX: build the
/// expected text from the parsed values in the fixed key order (an object literal in the
/// CLI's order) and compare against that.
#[test]
fn canonical_form_fixes_key_order() {
    let text = good().to_json();
    // The CLI's lines with `chainId` and `registry` swapped: same values, same spacing.
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines[2].starts_with("  \"chainId\"") && lines[3].starts_with("  \"registry\""));
    lines.swap(2, 3);
    let reordered = format!("{}\n", lines.join("\n"));
    assert_ne!(reordered, text);
    let r = &parse_all(std::slice::from_ref(&reordered))[0];
    assert!(
        r.get("err").is_some(),
        "accepted reordered keys:\n{reordered}"
    );
}

/// Attempt: prototype pollution and key confusion through JSON keys (`__proto__`,
/// `constructor`, `toString`, duplicate keys) in manifest.json, in a shared link and in its
/// signatures. HELD: every such file or link is refused, `Object.prototype` gains nothing, and
/// an unknown `kind` (`__proto__`, `toString`) is refused by `Object.hasOwn`.
#[test]
fn proto_keys_are_refused_and_pollute_nothing() {
    let base = good().to_json();
    let mut files = vec![
        base.replacen(
            "{\n  \"format\"",
            "{\n  \"__proto__\": {\"polluted\": 1},\n  \"format\"",
            1,
        ),
        base.replacen(
            "\"modelId\": 7,",
            "\"__proto__\": {\"polluted\": 1},\n    \"modelId\": 7,",
            1,
        ),
        base.replacen(
            "\"modelId\": 7,",
            "\"constructor\": 1,\n    \"modelId\": 7,",
            1,
        ),
        base.replacen("\"modelId\": 7,", "\"modelId\": 7,\n    \"modelId\": 8,", 1),
    ];
    files.push(base.replacen(
        "\"version\": 42,",
        "\"version\": 41,\n    \"version\": 42,",
        1,
    ));
    let got = node(
        r#"
const files = input.files.map((t) => { try { publish.parseManifestFile(t); return 'accepted'; } catch (e) { return e.message; } });
const sig = `0x${'11'.repeat(32)}${'22'.repeat(32)}1b`;
const links = [
  `{"__proto__": {"polluted": 1}, "kind": "publish", "payload": "x", "signatures": []}`,
  `{"kind": "__proto__", "payload": {}, "signatures": []}`,
  `{"kind": "toString", "payload": {}, "signatures": []}`,
  `{"kind": "publish", "payload": "x", "signatures": [{"__proto__": {"signer": "0x${'12'.repeat(20)}", "signature": "${sig}"}}]}`,
  `{"kind": "publish", "payload": "x", "signatures": {"length": 1, "0": {}}}`,
].map((t) => { try { const v = publish.parseShared(t); return { kind: v.kind, n: v.signatures.length }; } catch (e) { return e.message; } });
out({ files, links, polluted: ({}).polluted ?? null, signer: ({}).signer ?? null });
"#,
        &json!({"files": files}),
    );
    for (t, r) in files.iter().zip(got["files"].as_array().unwrap()) {
        assert_ne!(r, "accepted", "{t}");
    }
    let links = got["links"].as_array().unwrap();
    // A stray __proto__ key at the top of a link is an own property JSON.parse ignores for
    // lookup: harmless, the link reads as publish with no signatures.
    assert_eq!(links[0], json!({"kind": "publish", "n": 0}));
    for r in &links[1..] {
        assert!(r.is_string(), "accepted: {r}");
    }
    assert_eq!(got["polluted"], Value::Null);
    assert_eq!(got["signer"], Value::Null);
}

/// Attempt: huge and deeply nested input: a manifest.json or link over the size limit, 30,000
/// levels of nesting inside a field (JSON.stringify in the canonical check recurses) and in a
/// link, a link of 257 signatures. HELD: each is refused with an Error (a message the page
/// shows), nothing hangs or escapes as a non-Error.
#[test]
fn huge_and_deeply_nested_input_is_refused_with_an_error() {
    let got = node(
        r#"
const good = input.good;
const deep = (n) => '['.repeat(n) + ']'.repeat(n);
const cases = [
  () => publish.parseManifestFile(good + ' '.repeat(publish.MAX_SHARED)),
  () => publish.parseManifestFile(good.replace(/"policy": ".*",/, `"policy": ${deep(30000)},`)),
  () => publish.parseManifestFile(`{"format": ${deep(32000)}}`),
  () => publish.parseShared('x'.repeat(2 * publish.MAX_SHARED + 1)),
  () => publish.parseShared(`{"kind": "publish", "payload": ${deep(60000)}, "signatures": []}`),
  () => publish.parseShared(JSON.stringify({ kind: 'publish', payload: 'x', signatures: Array(257).fill({ signer: `0x${'12'.repeat(20)}`, signature: `0x${'11'.repeat(32)}${'22'.repeat(32)}1b` }) })),
];
out(cases.map((f) => { try { f(); return 'accepted'; } catch (e) { return e instanceof Error ? `Error: ${e.message.slice(0, 80)}` : 'non-Error'; } }));
"#,
        &json!({"good": good().to_json()}),
    );
    for r in got.as_array().unwrap() {
        assert!(r.as_str().unwrap().starts_with("Error: "), "{got}");
    }
}

// ------------------------------------------------------------ rendering sinks and CSP

/// Attempt: XSS through everything the panel renders from untrusted input (policy text with
/// markup, a manufacturer name from the indexer with markup), and through any HTML sink in the
/// dashboard's scripts; and the page's CSP. HELD: the summary is text nodes only (the fake
/// DOM's innerHTML throws; the markup arrives as text); no script uses innerHTML/outerHTML/
/// insertAdjacentHTML/document.write/eval/Function/javascript: URLs; index.html has no inline
/// script, handler or style; the CSP allows only same-origin scripts, no inline or eval, no
/// framing, no base or form targets.
#[test]
fn untrusted_text_is_rendered_as_text_and_csp_is_strict() {
    let got = page(
        r#"
const p = await publishPage({ name: '<img src=x onerror=alert(1)>', known: [input.good], hash: new URL(link({ kind: 'publish', payload: input.good, signatures: [] })).hash });
out(p.state());
"#,
    );
    assert!(
        got["summary"]
            .as_str()
            .unwrap()
            .starts_with("<img src=x onerror=alert(1)> (#1), model 7"),
        "{got}"
    );
    assert!(
        got["summaryHtml"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_alphabetic())
    );

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_some_and(|e| e == "js") {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "javascript:",
                "srcdoc",
                "setAttribute('href'",
                "setAttribute('on",
                "'style'",
            ] {
                assert!(!text.contains(sink), "{} uses {sink}", path.display());
            }
        }
        if path.extension().is_some_and(|e| e == "html") {
            let lower = text.to_lowercase();
            assert!(!lower.contains("<script>"), "inline script");
            assert_eq!(
                lower.matches("<script").count(),
                lower
                    .matches("<script type=\"module\" src=\"/assets/")
                    .count()
            );
            assert!(!lower.contains(" style="), "inline style");
            assert!(
                !regex_like_handler(&lower),
                "inline event handler in index.html"
            );
        }
    }
    let csp = otaledger_indexer::dashboard::CSP;
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    for bad in ["unsafe", "data:", "blob:", "http:", "https:", "*"] {
        assert!(!csp.contains(bad), "{csp}");
    }
}

/// ` on<letters>=` inside a tag.
fn regex_like_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    })
}

// ------------------------------------------------------------ sign-in (session.js)

/// A sign-in panel: `nonce` is the indexer's answer to GET /v1/auth/nonce; returns what the
/// wallet was asked and the status.
const SESSION: &str = r###"
async function signIn(nonce, account = input.addr[0]) {
  globalThis.location = { hash: '', origin: 'https://fleet.test', pathname: '/', host: 'fleet.test' };
  for (const k of [...els.keys()]) els.delete(k);
  const asked = []; const fetched = [];
  globalThis.fetch = async (url, opts = {}) => {
    fetched.push([opts.method ?? 'GET', url]);
    const reply = (status, body) => ({ ok: status < 300, status, json: async () => body, headers: { get: () => null } });
    if (url === '/v1/auth/session') return reply(401, { error: 'not signed in' });
    if (url.startsWith('/v1/auth/nonce?')) return reply(200, nonce(account));
    if (url === '/v1/auth/login') return reply(200, {});
    return reply(404, {});
  };
  const wallet = { account, wrongChain: false, expected: BigInt(input.deployment.chain_id), checkChain: async () => {},
    request: async (method, params) => { asked.push({ method, params }); return `0x${'11'.repeat(65)}`; } };
  const s = session.initSession({ el, short, map: {}, byIndex: new Map(), onLabelled: () => {} });
  await tick();
  s.walletChanged(wallet);
  await fire('sign-in');
  return { asked, fetched, status: $('session-status').textContent };
}
const siwe = ({ domain = 'fleet.test', address, uri = 'https://fleet.test', chain = 31337 }) =>
  `${domain} wants you to sign in with your Ethereum account:\n${address}\n\nURI: ${uri}\nVersion: 1\nChain ID: ${chain}\nNonce: abcdefgh12345678\nIssued At: 2026-01-01T00:00:00Z`;
"###;

fn session_page(script: &str) -> Value {
    node(&format!("{PAGE}\n{SESSION}\n{script}"), &context())
}

/// Attempt: a malicious indexer answer to GET /v1/auth/nonce that names another account, or a
/// chain id other than the page's; and what the wallet is asked to sign. HELD: both are
/// refused before the wallet is asked; an honest message is signed with personal_sign of its
/// UTF-8 bytes (the wallet's "\x19Ethereum Signed Message" prefix makes it neither a
/// transaction nor EIP-712 typed data, which starts 0x19 0x01), never eth_sign or typed data.
#[test]
fn sign_in_checks_account_and_chain_and_signs_with_personal_sign_only() {
    let got = session_page(
        r#"
const other = `0x${'99'.repeat(20)}`;
const wrongAccount = await signIn((a) => ({ chain_id: 31337, message: siwe({ address: other }) }));
const wrongChain = await signIn((a) => ({ chain_id: 1, message: siwe({ address: a, chain: 1 }) }));
const honest = await signIn((a) => ({ chain_id: 31337, message: siwe({ address: a }) }));
out({ wrongAccount, wrongChain, honest, text: siwe({ address: input.addr[0] }) });
"#,
    );
    for k in ["wrongAccount", "wrongChain"] {
        assert_eq!(got[k]["asked"], json!([]), "{k}: {}", got[k]);
        assert!(
            got[k]["status"]
                .as_str()
                .unwrap()
                .starts_with("sign-in failed"),
            "{k}"
        );
    }
    let asked = got["honest"]["asked"].as_array().unwrap();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["method"], "personal_sign");
    assert_eq!(
        asked[0]["params"][0],
        alloy::hex::encode_prefixed(got["text"].as_str().unwrap().as_bytes())
    );
    assert_eq!(asked[0]["params"][1], context()["addr"][0]);
}

/// ATTACK: a compromised or misconfigured indexer (or anything able to answer
/// /v1/auth/nonce) hands the page a SIWE message for ANOTHER site — `evil.example wants you
/// to sign in…`, `URI: https://evil.example`, `Chain ID: 1` — with the JSON field `chain_id`
/// set to the page's chain. The page checks only the JSON `chain_id` field and that line 2 is
/// the account; it never reads the message's domain, URI or Chain ID lines, so the wallet is
/// asked to sign a login to evil.example (a relayable session for another service, e.g. one
/// holding the user's assets) from this page. Wallets that check SIWE domains against the
/// requesting origin may warn, but not all do, and the page's comment promises it signs
/// "only what names this page's chain and this account". IMPACT: medium (cross-site login
/// phishing from a trusted page). FIX: parse the message in the page and require the first
/// line to be `${location.host} wants you to sign in…` (scheme, if any, = location.protocol),
/// `URI:` to be this origin, `Chain ID:` to be `wallet.expected`, the address line the
/// account, and no `Resources:` the page did not ask for.
#[test]
fn sign_in_refuses_a_message_for_another_domain_or_chain() {
    let got = session_page(
        r#"
const evil = await signIn((a) => ({ chain_id: 31337, message: siwe({ domain: 'evil.example', address: a, uri: 'https://evil.example', chain: 1 }) }));
out(evil);
"#,
    );
    assert_eq!(
        got["asked"],
        json!([]),
        "the wallet was asked to sign a login to evil.example: {got}"
    );
}
