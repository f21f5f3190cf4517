//! Second-engineer review of paying in an ERC-20 with an EIP-2612 permit from the dashboard
//! (`dashboard/permit.js`, the purchase handler of `dashboard/dapp.js`), as an attacker would
//! try it: a malicious or lying token, a lying indexer, a wallet that signs other data or
//! returns odd signature shapes, odd blocks, and the fallbacks to `approve`.
//!
//! The page-level tests run the real `initDapp` in node over a small fake DOM, with the page's
//! own `Wallet` class over an EIP-1193 provider that forwards to a real anvil (both contracts
//! deployed, two real `DemoToken`s A and B, both named "Demo USD", held by the owner): anvil
//! signs the typed data (its dev accounts are unlocked) and runs ecrecover, the tokens are
//! real. Only what a lie needs is intercepted: the registry's `release(id)` and
//! `checkDevices` (the release is not published on this anvil, its id is the real
//! `releaseId` of the manifest), the market (its simulation is emulated from the calldata:
//! `purchaseWithPermit` applies the permit on the token by `eth_call` and reverts
//! `UpdateMarketPermitFailed` when that fails and the allowance is short, as `_permit` does;
//! its transactions are recorded, not mined) and, per test, a token's answers or the
//! wallet's signature. Every permit the page sends is then tried on the real tokens A and B
//! (`permit(...)` by `eth_call`) to see which would accept it. Each scenario runs between
//! `evm_snapshot` and `evm_revert`.
//!
//! A test whose comment says "Found by this review" documents a weakness this review found (and
//! how it was fixed).

mod pagejs;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::SolCall as _,
};
use otaledger_core::{
    bindings::{
        demo_token::DemoToken,
        registry::{IUpdateRegistry::Manifest, UpdateRegistry},
    },
    signing::release_id,
    test_support::Chain,
};
use pagejs::{hex, node};
use serde_json::{Value, json};

/// One dUSD in its smallest unit (6 decimals).
const DUSD: u64 = 1_000_000;
/// The release's price: 10 dUSD a device; four devices.
const PRICE: u64 = 10 * DUSD;
const DEVICES: [u64; 4] = [11, 12, 13, 14];
const TOTAL: u64 = PRICE * 4;

/// The fake page: DOM, indexer, wallet over anvil; `buy(options)` plays connect → select all
/// → buy and returns what happened.
const HARNESS: &str = r###"
const F = abi.FUNCTIONS;
const lower = (a) => String(a ?? '').toLowerCase();
class T { constructor(t) { this.data = String(t); } get textContent() { return this.data; } }
class E {
  constructor(tag, id = null) {
    Object.assign(this, { tag, id, attrs: {}, kids: [], listeners: {}, hidden: false, disabled: false, value: '', dataset: {}, style: {}, title: '' });
    this.classList = { toggle() {}, add() {}, remove() {} };
  }
  setAttribute(k, v) {
    this.attrs[k] = String(v);
    if (k.startsWith('data-')) this.dataset[k.slice(5).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = String(v);
  }
  getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; }
  addEventListener(t, f) { (this.listeners[t] ||= []).push(f); }
  set textContent(t) { this.kids = [new T(t)]; }
  get textContent() { return this.kids.map((k) => k.textContent).join(''); }
  replaceChildren(...c) { this.kids = c; }
  append(...c) { for (const x of c) this.kids.push(x instanceof E || x instanceof T ? x : new T(x)); }
  prepend(...c) { this.kids.unshift(...c); }
  set innerHTML(v) { throw new Error(`innerHTML set to ${v}`); }
  get children() { return this.kids.filter((k) => k instanceof E); }
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
const dapp = await import(input.dapp);

const { owner, attacker, A, B } = input;
const { market, registry } = input.deployment;
const ECRECOVER = '0x0000000000000000000000000000000000000001';
const FAKE = `0x${'77'.repeat(32)}`;
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const PERMIT = { signature: 'permit(address,address,uint256,uint256,uint8,bytes32,bytes32)', selector: '0xd505accf', returns: '()' };
const names = Object.fromEntries(Object.entries(F).map(([k, f]) => [f.selector, k]));
names[PERMIT.selector] = 'permit';
const decodeCall = (data) => {
  const name = names[data.slice(0, 10)];
  const sig = (name === 'permit' ? PERMIT : F[name]).signature;
  return { name, args: abi.decode(sig.slice(sig.indexOf('(')), `0x${data.slice(10)}`) };
};
let rpcId = 0;
async function anvil(method, params = []) {
  const r = await fetch(input.rpc, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }) });
  const j = await r.json();
  if (j.error) throw Object.assign(new Error(j.error.message), { code: j.error.code, data: j.error.data });
  return j.result;
}
const reverted = (selector = '0x', types = '()', values = []) => ({ code: 3, message: 'execution reverted', data: selector === '0x' ? '0x' : `${selector}${abi.encode(types, values).slice(2)}` });
const until = async (what, cond) => {
  for (let i = 0; i < 4000; i++) { if (cond()) return; await new Promise((r) => setTimeout(r, 5)); }
  throw new Error(`never: ${what} (roles ${$('roles').textContent}; price ${$('price').textContent})`);
};
const rawCall = (to, f, args = []) => anvil('eth_call', [{ to, data: abi.encodeCall(f, args) }, 'latest']);
const allowanceOf = async (t) => abi.decodeResult(F.allowance, await rawCall(t, F.allowance, [owner, market]))[0];
/** Whether token `t` accepts `permit` `[value, deadline, v, r, s]` from `owner` for the market right now. */
async function accepts(t, [value, deadline, v, r, s]) {
  try { await anvil('eth_call', [{ from: attacker, to: t, data: abi.encodeCall(PERMIT, [owner, market, value, deadline, v, r, s]) }, 'latest']); return true; } catch { return false; }
}
/** The real domain data of token `t` (eip712Domain return, DOMAIN_SEPARATOR). */
const realDomain = async (t) => ({ raw: await rawCall(t, F.eip712Domain), separator: abi.decodeResult(F.DOMAIN_SEPARATOR, await rawCall(t, F.DOMAIN_SEPARATOR))[0] });
const ret = (f, values) => abi.encode(f.returns, values);
const approveFromOwner = (t, amount) => anvil('eth_sendTransaction', [{ from: owner, to: t, data: abi.encodeCall(F.approve, [market, amount]) }]);

/**
 * One purchase of the four devices. Options: `row` (the indexer's manifest), `hooks`
 * (`'<address>:<function>'` → (data, n) => return data, or throw; undefined falls through),
 * `sign(typedJson, account)` (the wallet's signature; default anvil's), `onRequest(method,
 * params, n)` (→ `{ value }` to answer instead), `before()` (state set up in the snapshot).
 */
async function buy(o = {}) {
  const snap = await anvil('evm_snapshot');
  try {
    els.clear();
    const seen = []; const reads = {}; const typed = []; const sent = [];
    const hooks = o.hooks || {};
    async function call(tx, block) {
      const to = lower(tx.to); const name = names[tx.data.slice(0, 10)] ?? tx.data.slice(0, 10);
      const key = `${to}:${name}`; reads[key] = (reads[key] || 0) + 1;
      if (hooks[key]) { const r = await hooks[key](tx.data, reads[key]); if (r !== undefined) return r; }
      if (to === registry && name === 'release') {
        const [id] = abi.decode('(bytes32)', `0x${tx.data.slice(10)}`);
        return ret(F.release, [[lower(id) === lower(input.id) ? 3 : 0, 7, 1, 0, 0]]);
      }
      if (to === registry && name === 'checkDevices') return '0x';
      if (to === market) return simulate(tx);
      return anvil('eth_call', [tx, block ?? 'latest']);
    }
    // UpdateMarket's checks that matter here, from the calldata (the contract uses the manifest it is given).
    async function simulate(tx) {
      const { name, args } = decodeCall(tx.data);
      const [manifest, devices] = args;
      const token = lower(manifest[7]); const total = BigInt(manifest[6]) * BigInt(devices.length);
      const allowance = async () => abi.decodeResult(F.allowance, await call({ to: token, data: abi.encodeCall(F.allowance, [tx.from, market]) }))[0];
      if (name === 'purchaseWithPermit') {
        const [value, deadline, v, r, s] = args[2];
        try { await call({ from: market, to: token, data: abi.encodeCall(PERMIT, [tx.from, market, value, deadline, v, r, s]) }); return '0x'; } catch { /* _permit: the allowance must cover */ }
        const have = await allowance();
        if (have < total) throw reverted('0x3bfaf68d', '(address,uint256,uint256)', [token, total, have]);
        return '0x';
      }
      if (name === 'purchase') {
        if (BigInt(tx.value ?? 0) !== 0n) throw reverted('0xba467898', '(uint256,uint256)', [0, BigInt(tx.value)]);
        if ((await allowance()) < total) throw reverted('0xc0fb8fb0', '(address)', [token]);
        return '0x';
      }
      throw new Error(`unexpected market call ${name}`);
    }
    const provider = {
      async request({ method, params = [] }) {
        seen.push(method);
        if (o.onRequest) { const r = await o.onRequest(method, params, seen.filter((m) => m === method).length); if (r !== undefined) return r.value; }
        switch (method) {
          case 'eth_requestAccounts': return [owner];
          case 'eth_call': return call(params[0], params[1]);
          case 'eth_signTypedData_v4':
            typed.push({ account: lower(params[0]), data: JSON.parse(params[1]) });
            return o.sign ? o.sign(params[1], params[0]) : anvil(method, params);
          case 'eth_sendTransaction': {
            const tx = params[0];
            sent.push({ to: lower(tx.to), from: lower(tx.from), value: BigInt(tx.value ?? 0), ...decodeCall(tx.data) });
            return lower(tx.to) === market ? FAKE : anvil(method, params);
          }
          case 'eth_getTransactionReceipt':
            return params[0] === FAKE ? { status: '0x1', blockNumber: '0x1', gasUsed: '0x1', logs: [] } : anvil(method, params);
          default: return anvil(method, params);
        }
      },
    };
    if (o.before) await o.before();
    const block = await anvil('eth_getBlockByNumber', ['latest', false]);
    globalThis.window = { ethereum: provider };
    const byIndex = new Map(input.devices.map((i) => [i, { index: i, model: 7, owner, status: 'red', chain_status: 1, latest_release: input.id }]));
    const map = { setSelected() {}, schedule() {}, canvas: { dataset: {} }, selectMode: false };
    const row = o.row ?? input.row;
    const getJson = async (url) => {
      if (url === '/v1/deployment') return input.deployment;
      if (url === `/v1/releases/${input.id}`) return row;
      throw new Error(`unexpected ${url}`);
    };
    const allPages = async (url) => { if (url === '/v1/manufacturers') return []; throw new Error(`unexpected ${url}`); };
    dapp.initDapp({ byIndex, map, fleetEvents: new EventTarget(), el, getJson, allPages, short });
    await fire('connect');
    await until('roles', () => /owner of|unavailable/.test($('roles').textContent));
    map.onBox([...byIndex.values()]);
    await until('price', () => /^(total|cannot)/.test($('price').textContent));
    const price = $('price').textContent;
    await fire('buy');
    await until('price settles', () => !/reading the chain/.test($('price').textContent));
    const log = [...$('tx-log').kids].reverse().map((li) => ({ state: li.dataset.state, text: li.textContent }));
    const withPermit = sent.find((s) => s.name === 'purchaseWithPermit');
    const acceptedBy = withPermit ? { A: await accepts(A, withPermit.args[2]), B: await accepts(B, withPermit.args[2]) } : null;
    const allowance = { A: await allowanceOf(A), B: await allowanceOf(B) };
    return { price, log, typed, sent, acceptedBy, allowance, reads, seen, timestamp: BigInt(block.timestamp) };
  } finally {
    await anvil('evm_revert', [snap]);
  }
}
"###;

struct Env {
    _chain: Chain,
    input: Value,
}

fn manifest(token: Address) -> Manifest {
    Manifest {
        modelId: 7,
        version: 3,
        bundleSha256: B256::repeat_byte(0x5a),
        bundleSize: 1142,
        bundleCid: Bytes::from(vec![1, 0x55, 0x12, 0x20, 9, 9]),
        imageSha256: B256::repeat_byte(0x6b),
        price: PRICE.into(),
        paymentToken: token,
        policyId: keccak256("policy"),
        expiry: 4_000_000_000,
        metadataHash: B256::repeat_byte(0x7c),
    }
}

/// `/v1/releases/{id}` as the indexer answers it.
fn row(m: &Manifest) -> Value {
    json!({
        "model_id": m.modelId.to_string(), "version": m.version.to_string(),
        "bundle_sha256": hex(m.bundleSha256), "bundle_size": m.bundleSize.to_string(),
        "bundle_cid": hex(&m.bundleCid), "image_sha256": hex(m.imageSha256),
        "price": m.price.to_string(), "payment_token": format!("{:#x}", m.paymentToken),
        "policy_id": hex(m.policyId), "expiry": m.expiry.to_string(), "metadata_hash": hex(m.metadataHash),
    })
}

/// anvil with both contracts, tokens A and B (the owner holds both), a release priced at
/// 10 dUSD in A whose id is the registry's `releaseId`.
async fn setup() -> Env {
    let chain = Chain::start(&[]).await.unwrap();
    let owner = chain.anvil.addresses()[1];
    let attacker = chain.anvil.addresses()[2];
    let supply = U256::from(1_000_000 * DUSD);
    let a = *DemoToken::deploy(chain.provider.clone(), owner, supply)
        .await
        .unwrap()
        .address();
    let b = *DemoToken::deploy(chain.provider.clone(), owner, supply)
        .await
        .unwrap()
        .address();
    let m = manifest(a);
    let id = release_id(&m);
    let on_chain = UpdateRegistry::new(chain.deployment.registry, &chain.provider)
        .releaseId(m.clone())
        .call()
        .await
        .unwrap();
    assert_eq!(
        on_chain, id,
        "the registry hashes the manifest as core does"
    );
    let dapp = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dashboard/dapp.js")
        .canonicalize()
        .unwrap();
    let input = json!({
        "dapp": format!("file://{}", dapp.display()),
        "rpc": chain.url(),
        "deployment": {
            "chain_id": chain.deployment.chain_id,
            "registry": format!("{:#x}", chain.deployment.registry),
            "market": format!("{:#x}", chain.deployment.market),
        },
        "owner": format!("{owner:#x}"),
        "attacker": format!("{attacker:#x}"),
        "A": format!("{a:#x}"),
        "B": format!("{b:#x}"),
        "id": hex(id),
        "row": row(&m),
        "rowB": row(&manifest(b)),
        "devices": DEVICES,
    });
    Env {
        _chain: chain,
        input,
    }
}

fn page(env: &Env, script: &str) -> Value {
    node(&format!("{HARNESS}\n{script}"), &env.input)
}

fn texts(g: &Value) -> Vec<String> {
    g["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{}: {}",
                l["state"].as_str().unwrap(),
                l["text"].as_str().unwrap()
            )
        })
        .collect()
}

fn sent_names(g: &Value) -> Vec<String> {
    g["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The permit of the page's `purchaseWithPermit`: `[value, deadline, v, r, s]`.
fn sent_permit(g: &Value) -> &Value {
    &g["sent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "purchaseWithPermit")
        .unwrap_or_else(|| panic!("no purchaseWithPermit: {g}"))["args"][2]
}

/// Nothing signed and nothing sent; the permit line says why it failed.
fn assert_refused(g: &Value, why: &str, case: &str) {
    assert!(
        g["sent"].as_array().unwrap().is_empty(),
        "{case}: sent {:?}",
        sent_names(g)
    );
    let log = texts(g);
    assert!(
        log.iter()
            .any(|l| l.starts_with("failed: permit for 40 dUSD: failed: ") && l.contains(why)),
        "{case}: {log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("approv")), "{case}: {log:?}");
    assert_eq!(g["allowance"]["A"], "0", "{case}");
    assert_eq!(g["allowance"]["B"], "0", "{case}");
}

/// Positive control: on the honest path the wallet is asked once to sign a permit over token
/// A's own domain (its address, the wallet's chain) for exactly the total to the market, at
/// the owner's nonce, until the latest block's time + 1200 s; the page then sends one
/// `purchaseWithPermit` of the verified manifest with that permit and approves nothing.
/// The permit it sent is accepted by token A and refused by token B (same name, same
/// version, another address): it cannot be replayed on another token. The log says what was
/// signed in the same amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_permit_is_exactly_the_total_for_the_market_on_the_release_token() {
    let env = setup().await;
    let g = page(&env, "out(await buy());");
    let i = &env.input;
    assert!(
        g["price"]
            .as_str()
            .unwrap()
            .starts_with("total: 4 × 10 = 40 dUSD"),
        "{g}"
    );
    let typed = g["typed"].as_array().unwrap();
    assert_eq!(typed.len(), 1, "{g}");
    assert_eq!(typed[0]["account"], i["owner"]);
    let t = &typed[0]["data"];
    assert_eq!(t["primaryType"], "Permit");
    assert_eq!(
        t["domain"],
        json!({ "name": "Demo USD", "version": "1", "chainId": "31337", "verifyingContract": i["A"] })
    );
    let deadline = (g["timestamp"].as_str().unwrap().parse::<u64>().unwrap() + 1200).to_string();
    assert_eq!(
        t["message"],
        json!({ "owner": i["owner"], "spender": i["deployment"]["market"], "value": TOTAL.to_string(), "nonce": "0", "deadline": deadline })
    );
    assert_eq!(sent_names(&g), ["purchaseWithPermit"], "{g}");
    let sent = &g["sent"][0];
    assert_eq!(sent["to"], i["deployment"]["market"]);
    assert_eq!(sent["value"], "0");
    assert_eq!(sent["args"][0][6], PRICE.to_string());
    assert_eq!(sent["args"][0][7], i["A"]);
    assert_eq!(sent["args"][1], json!(DEVICES.map(|d| d.to_string())));
    let p = sent_permit(&g);
    assert_eq!(p[0], TOTAL.to_string());
    assert_eq!(p[1], deadline);
    assert_eq!(g["acceptedBy"], json!({ "A": true, "B": false }));
    let log = texts(&g);
    assert_eq!(
        log[0],
        "signed: permit for 40 dUSD: signed: the market may take up to 40 dUSD, in this purchase"
    );
    assert!(
        log[1].starts_with(
            "mined: purchase of #11, #12, #13, #14 for 40 dUSD with the permit: mined in block 1"
        ),
        "{log:?}"
    );
    assert_eq!(log.len(), 2, "{log:?}");
}

/// A lying indexer: the release's manifest with another price (1 unit, or a thousand times
/// more), or priced in token B (which the owner also holds), or both. The page checks
/// `releaseId(manifest)` on chain, refuses to price it and signs and sends nothing. The same
/// manifest spelled differently (the price as 0x hex, as a JSON number) hashes the same and
/// is bought for exactly the total in token A (so is token A's address in upper-case hex): the permit's value and token come only from
/// the verified manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexer_manifest_with_another_price_or_token_is_refused_before_any_signature() {
    let env = setup().await;
    let g = page(
        &env,
        "const tamper = (k) => ({ ...input.row, ...k });
         const refused = [];
         for (const k of [{ price: '1' }, { price: '10000000000' }, { payment_token: input.B }, { ...input.rowB, price: '1' }, input.rowB])
           refused.push(await buy({ row: tamper(k) }));
         const same = [];
         for (const k of [{ price: '0x989680' }, { price: 10000000 }, { payment_token: `0x${input.A.slice(2).toUpperCase()}` }]) same.push(await buy({ row: tamper(k) }));
         out({ refused, same });",
    );
    for (n, r) in g["refused"].as_array().unwrap().iter().enumerate() {
        let case = format!("tampered manifest {n}");
        assert!(
            r["price"]
                .as_str()
                .unwrap()
                .starts_with("cannot price the selection: the indexer's manifest hashes to"),
            "{case}: {r}"
        );
        assert!(r["typed"].as_array().unwrap().is_empty(), "{case}: {r}");
        assert!(r["sent"].as_array().unwrap().is_empty(), "{case}: {r}");
        let log = texts(r);
        assert_eq!(log.len(), 1, "{case}: {log:?}");
        assert!(
            log[0].starts_with(
                "failed: purchase of 4 devices: failed: the indexer's manifest hashes to"
            ),
            "{case}: {log:?}"
        );
    }
    for (n, r) in g["same"].as_array().unwrap().iter().enumerate() {
        assert_eq!(sent_names(r), ["purchaseWithPermit"], "spelling {n}: {r}");
        assert_eq!(r["typed"][0]["data"]["message"]["value"], TOTAL.to_string());
        assert_eq!(
            r["typed"][0]["data"]["domain"]["verifyingContract"],
            env.input["A"]
        );
        assert_eq!(sent_permit(r)[0], TOTAL.to_string());
        assert_eq!(r["acceptedBy"], json!({ "A": true, "B": false }));
    }
}

/// A malicious token A answering with another contract's domain: B's own `eip712Domain()`
/// and B's real `DOMAIN_SEPARATOR` (so the pair is consistent and would give a signature
/// valid on B), B's domain with A's separator, or a domain of chain 1 at A's address with a
/// separator crafted to match it. The page signs no permit (the domain must name the token
/// and the wallet's chain) and falls back to `approve(market, total)` on A only, then a plain
/// `purchase`; B's allowance stays 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_naming_another_contract_or_chain_gets_no_permit_and_only_an_exact_approve() {
    let env = setup().await;
    let g = page(
        &env,
        "const b = await realDomain(B); const a = await realDomain(A);
         const chain1 = { name: 'Demo USD', version: '1', chainId: 1n, verifyingContract: A };
         const cases = [
           { [`${A}:eip712Domain`]: () => b.raw, [`${A}:DOMAIN_SEPARATOR`]: () => ret(F.DOMAIN_SEPARATOR, [b.separator]) },
           { [`${A}:eip712Domain`]: () => b.raw },
           { [`${A}:eip712Domain`]: () => ret(F.eip712Domain, ['0x0f', 'Demo USD', '1', 1n, A, `0x${'00'.repeat(32)}`, []]),
             [`${A}:DOMAIN_SEPARATOR`]: () => ret(F.DOMAIN_SEPARATOR, [permit.domainSeparator(chain1)]) },
           { [`${A}:eip712Domain`]: () => { throw reverted(); }, [`${A}:DOMAIN_SEPARATOR`]: () => ret(F.DOMAIN_SEPARATOR, [b.separator]) },
         ];
         const results = [];
         for (const hooks of cases) results.push(await buy({ hooks }));
         out(results);",
    );
    for (n, r) in g.as_array().unwrap().iter().enumerate() {
        let case = format!("domain case {n}");
        assert!(r["typed"].as_array().unwrap().is_empty(), "{case}: {r}");
        assert_eq!(sent_names(r), ["approve", "purchase"], "{case}: {r}");
        let approve = &r["sent"][0];
        assert_eq!(approve["to"], env.input["A"], "{case}");
        assert_eq!(
            approve["args"],
            json!([env.input["deployment"]["market"], TOTAL.to_string()]),
            "{case}"
        );
        assert_eq!(r["sent"][1]["value"], "0", "{case}");
        assert_eq!(r["allowance"]["A"], TOTAL.to_string(), "{case}");
        assert_eq!(r["allowance"]["B"], "0", "{case}");
        let log = texts(r);
        assert!(
            log[0].starts_with(&format!(
                "skipped: permit for 40 dUSD: not offered: token {}",
                env.input["A"].as_str().unwrap()
            )) && log[0].ends_with("; approving first"),
            "{case}: {log:?}"
        );
        assert!(
            log[1].starts_with("mined: approve 40 dUSD for the market: mined"),
            "{case}: {log:?}"
        );
        assert!(
            log[2].starts_with("mined: purchase of #11, #12, #13, #14 for 40 dUSD: mined"),
            "{case}: {log:?}"
        );
    }
}

/// A token whose `DOMAIN_SEPARATOR` changes between reads: A's real one first, then B's; and
/// B's first, then A's. The page reads it once (no second read to race), signs over the
/// domain it computed itself, so the first case gives a permit only A accepts, and the second
/// is no permit (approve exactly the total on A).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_whose_separator_changes_between_reads_cannot_steer_the_signature() {
    let env = setup().await;
    let g = page(
        &env,
        "const a = await realDomain(A); const b = await realDomain(B);
         const flip = (first, then) => ({ [`${A}:DOMAIN_SEPARATOR`]: (_, n) => ret(F.DOMAIN_SEPARATOR, [n === 1 ? first : then]) });
         out([await buy({ hooks: flip(a.separator, b.separator) }), await buy({ hooks: flip(b.separator, a.separator) })]);",
    );
    let key = format!("{}:DOMAIN_SEPARATOR", env.input["A"].as_str().unwrap());
    let first = &g[0];
    assert_eq!(first["reads"][&key], 1, "{first}");
    assert_eq!(sent_names(first), ["purchaseWithPermit"], "{first}");
    assert_eq!(
        first["typed"][0]["data"]["domain"]["verifyingContract"],
        env.input["A"]
    );
    assert_eq!(first["acceptedBy"], json!({ "A": true, "B": false }));
    let second = &g[1];
    assert_eq!(second["reads"][&key], 1, "{second}");
    assert!(second["typed"].as_array().unwrap().is_empty(), "{second}");
    assert_eq!(sent_names(second), ["approve", "purchase"], "{second}");
    assert_eq!(second["sent"][0]["args"][1], TOTAL.to_string());
    assert_eq!(second["allowance"]["B"], "0");
}

/// A token lying about its own domain at its own address (version "2" with a separator
/// crafted to match, while the real A uses version "1"): the page can only reproduce what the
/// token claims, so it signs, but the signature names A and the wallet's chain, so no token
/// accepts it (not A, not B). The page tries the signed permit on the token before using it
/// (after this review): A refuses it, so the page approves exactly the total instead and
/// buys; the useless signature is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_token_domain_only_yields_a_signature_no_token_accepts() {
    let env = setup().await;
    let g = page(
        &env,
        "const lie = { name: 'Demo USD', version: '2', chainId: 31337n, verifyingContract: A };
         const r = await buy({ hooks: {
           [`${A}:eip712Domain`]: () => ret(F.eip712Domain, ['0x0f', lie.name, lie.version, lie.chainId, A, `0x${'00'.repeat(32)}`, []]),
           [`${A}:DOMAIN_SEPARATOR`]: () => ret(F.DOMAIN_SEPARATOR, [permit.domainSeparator(lie)]) } });
         // Would A or B take the signature the wallet made?
         const t = r.typed[0].data; const p = { owner, spender: market, value: BigInt(t.message.value), nonce: 0n, deadline: BigInt(t.message.deadline) };
         const sig = await anvil('eth_signTypedData_v4', [owner, JSON.stringify(t)]);
         const { v, r: rr, s } = permit.splitSignature(sig);
         out({ ...r, acceptedBy: { A: await accepts(A, [p.value, p.deadline, v, rr, s]), B: await accepts(B, [p.value, p.deadline, v, rr, s]) } });",
    );
    assert_eq!(
        g["typed"][0]["data"]["domain"]["verifyingContract"],
        env.input["A"]
    );
    assert_eq!(g["typed"][0]["data"]["domain"]["version"], "2");
    assert_eq!(g["acceptedBy"], json!({ "A": false, "B": false }));
    assert_approved_instead(&env, &g, "refused the signed permit");
}

/// The permit was not offered (`NoPermit`, for `why`): the page approved exactly the total on
/// token A, then bought without a permit, and said why in the log.
fn assert_approved_instead(env: &Env, g: &Value, why: &str) {
    assert_eq!(sent_names(g), ["approve", "purchase"], "{g}");
    assert_eq!(
        g["sent"][0]["args"],
        json!([env.input["deployment"]["market"], TOTAL.to_string()])
    );
    assert_eq!(g["allowance"], json!({ "A": TOTAL.to_string(), "B": "0" }));
    let log = texts(g);
    assert!(
        log.iter().any(
            |l| l.starts_with("skipped: permit for 40 dUSD: not offered: ") && l.contains(why)
        ),
        "{log:?}"
    );
}

/// A wallet that signs other typed data than the page asked for (it is anvil underneath, so
/// each is a real signature of the owner): an unlimited value, the attacker as spender, token
/// B's domain (same name and version, so B would accept it), chain 1, the next nonce, a
/// far deadline; and one that signs the right data with another account. Each is refused
/// before anything is sent (the signature must recover to the account over the page's own
/// digest), and the page does not fall back to approving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_signing_other_data_is_refused_before_anything_is_sent() {
    let env = setup().await;
    let g = page(
        &env,
        "const MAX = ((1n << 256n) - 1n).toString();
         const edits = [
           (t) => { t.message.value = MAX; },
           (t) => { t.message.spender = attacker; },
           (t) => { t.domain.verifyingContract = B; },
           (t) => { t.domain.chainId = '1'; },
           (t) => { t.message.nonce = '1'; },
           (t) => { t.message.deadline = '99999999999'; },
         ];
         const results = [];
         for (const edit of edits) results.push(await buy({ sign: (json, account) => { const t = JSON.parse(json); edit(t); return anvil('eth_signTypedData_v4', [account, JSON.stringify(t)]); } }));
         results.push(await buy({ sign: (json) => anvil('eth_signTypedData_v4', [attacker, json]) }));
         out(results);",
    );
    let cases = [
        "unlimited value",
        "attacker spender",
        "token B",
        "chain 1",
        "next nonce",
        "far deadline",
        "another account",
    ];
    for (case, r) in cases.iter().zip(g.as_array().unwrap()) {
        assert_eq!(r["typed"].as_array().unwrap().len(), 1, "{case}");
        let want = if *case == "another account" {
            format!(
                "recovers to {}, not {}",
                env.input["attacker"].as_str().unwrap(),
                env.input["owner"].as_str().unwrap()
            )
        } else {
            "recovers to 0x".to_owned()
        };
        assert_refused(r, &want, case);
    }
}

/// Signature shapes a wallet may return for the honest typed data. v as 0/1 and upper-case
/// hex are the same signature: normalised (v 27/28) and accepted by token A. Refused by name
/// before anything is sent: v flipped (recovers to someone else), the 64-byte EIP-2098
/// compact form, an extra byte, the high-s twin (same signer, malleable), a `0X` prefix,
/// an object `{ r, s, v }`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_shapes_from_the_wallet_are_normalised_or_refused() {
    let env = setup().await;
    let g = page(
        &env,
        "const hx = (n, w = 64) => n.toString(16).padStart(w, '0');
         const shape = (f) => ({ sign: async (json) => f(await anvil('eth_signTypedData_v4', [owner, json])) });
         const parts = (sig) => ({ r: BigInt(`0x${sig.slice(2, 66)}`), s: BigInt(`0x${sig.slice(66, 130)}`), v: parseInt(sig.slice(130), 16) });
         const shapes = {
           v01: (sig) => `${sig.slice(0, 130)}${hx(parts(sig).v - 27, 2)}`,
           upper: (sig) => `0x${sig.slice(2).toUpperCase()}`,
           flipped: (sig) => `${sig.slice(0, 130)}${hx(parts(sig).v ^ 7, 2)}`,
           compact: (sig) => { const { r, s, v } = parts(sig); return `0x${hx(r)}${hx(s | (BigInt(v - 27) << 255n))}`; },
           extra: (sig) => `${sig}00`,
           highS: (sig) => { const { r, s, v } = parts(sig); return `0x${hx(r)}${hx(N - s)}${hx(v ^ 7, 2)}`; },
           prefix: (sig) => `0X${sig.slice(2)}`,
           object: (sig) => parts(sig),
         };
         const results = {};
         for (const [k, f] of Object.entries(shapes)) results[k] = await buy(shape(f));
         out(results);",
    );
    for case in ["v01", "upper"] {
        let r = &g[case];
        assert_eq!(sent_names(r), ["purchaseWithPermit"], "{case}: {r}");
        let v = sent_permit(r)[2].as_str().unwrap();
        assert!(v == "27" || v == "28", "{case}: v = {v}");
        assert_eq!(r["acceptedBy"], json!({ "A": true, "B": false }), "{case}");
    }
    for (case, why) in [
        ("flipped", "recovers to"),
        ("compact", "not 65 bytes"),
        ("extra", "not 65 bytes"),
        ("highS", "malleable"),
        ("prefix", "not 65 bytes"),
        ("object", "not 65 bytes"),
    ] {
        assert_refused(&g[case], why, case);
    }
}

/// FINDING (fixed): the deadline is the wallet's latest block time + 1200 s (checked on the
/// honest path in `honest_permit_is_exactly_the_total_for_the_market_on_the_release_token`).
/// A block the page cannot read (null, a timestamp that is no number, none, or one near
/// 2^256 so the deadline overflows uint256) stops the purchase: nothing is sent, nothing
/// approved, and the wallet is not asked to sign. Before the fix the overflowing deadline
/// was handed to the wallet in the typed data (anvil refused it; the page's own encoder only
/// ran after the signature); `signPermit` now computes the digest, which range-checks every
/// field, before asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_latest_blocks_stop_the_purchase_without_approving() {
    let env = setup().await;
    let g = page(
        &env,
        "const odd = [null, { timestamp: 'soon' }, { timestamp: `0x${'f'.repeat(64)}` }, {}];
         const results = [];
         for (const block of odd) results.push(await buy({ onRequest: (m, p) => (m === 'eth_getBlockByNumber' && p[0] === 'latest' && p[1] === false ? { value: block } : undefined) }));
         out(results);",
    );
    for (n, r) in g.as_array().unwrap().iter().enumerate() {
        let case = format!("odd block {n}");
        assert!(r["sent"].as_array().unwrap().is_empty(), "{case}: {r}");
        let log = texts(r);
        assert!(
            log.iter()
                .any(|l| l.starts_with("failed: permit for 40 dUSD: failed: ")),
            "{case}: {log:?}"
        );
        assert!(!log.iter().any(|l| l.contains("approv")), "{case}: {log:?}");
        assert!(
            r["typed"].as_array().unwrap().is_empty(),
            "{case}: the wallet was asked to sign {} ({log:?})",
            r["typed"]
        );
    }
}

/// The fallbacks never give the market more than the total: a token without
/// `DOMAIN_SEPARATOR` gets `approve(market, 40 dUSD)` exactly; an allowance already there
/// but short (5 dUSD) gets a permit for the total (a permit sets the allowance, it does not
/// add: 40, not 45 or 35); an allowance that covers (100 dUSD) gets neither permit nor
/// approve. A refused signature (the user rejects it in the wallet) or a wallet that moved to
/// another chain before signing is a failure, not a reason to approve instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_permit_fallbacks_never_approve_more_than_the_total() {
    let env = setup().await;
    let g = page(
        &env,
        "out({
           noSeparator: await buy({ hooks: { [`${A}:DOMAIN_SEPARATOR`]: () => { throw reverted(); } } }),
           noNonces: await buy({ hooks: { [`${A}:nonces`]: () => { throw reverted(); } } }),
           short: await buy({ before: () => approveFromOwner(A, 5000000n) }),
           covered: await buy({ before: () => approveFromOwner(A, 100000000n) }),
           rejected: await buy({ sign: () => { throw Object.assign(new Error('User rejected the request.'), { code: 4001 }); } }),
           otherChain: await buy({ onRequest: (m, p, n) => (m === 'eth_chainId' && n > 1 ? { value: '0x1' } : undefined) }),
         });",
    );
    let market = &env.input["deployment"]["market"];
    for case in ["noSeparator", "noNonces"] {
        let r = &g[case];
        assert!(r["typed"].as_array().unwrap().is_empty(), "{case}: {r}");
        assert_eq!(sent_names(r), ["approve", "purchase"], "{case}: {r}");
        assert_eq!(
            r["sent"][0]["args"],
            json!([market, TOTAL.to_string()]),
            "{case}"
        );
        assert_eq!(r["allowance"]["A"], TOTAL.to_string(), "{case}");
    }
    let short = &g["short"];
    assert_eq!(sent_names(short), ["purchaseWithPermit"], "{short}");
    assert_eq!(
        short["typed"][0]["data"]["message"]["value"],
        TOTAL.to_string()
    );
    assert_eq!(sent_permit(short)[0], TOTAL.to_string());
    assert_eq!(short["acceptedBy"]["A"], true);
    let covered = &g["covered"];
    assert!(covered["typed"].as_array().unwrap().is_empty(), "{covered}");
    assert_eq!(sent_names(covered), ["purchase"], "{covered}");
    assert_eq!(covered["sent"][0]["value"], "0");
    assert_eq!(covered["allowance"]["A"], (100 * DUSD).to_string());
    let rejected = &g["rejected"];
    assert_eq!(rejected["typed"].as_array().unwrap().len(), 1);
    assert_refused(rejected, "User rejected the request.", "rejected");
    let other = &g["otherChain"];
    assert!(other["typed"].as_array().unwrap().is_empty(), "{other}");
    assert_refused(other, "the wallet is on chain 1", "otherChain");
}

/// Found by this review and fixed (functional, no loss of funds): a DAI-style token — `DOMAIN_SEPARATOR()`,
/// `nonces(address)` and `name()` with version "1" like EIP-2612, but a different `permit`
/// (DAI's `permit(holder, spender, nonce, expiry, allowed, v, r, s)`, so no `0xd505accf`) —
/// passes every check of `tokenDomain`. The page had the wallet sign an EIP-2612 permit the
/// token cannot use and `purchaseWithPermit` then failed its simulation with
/// `UpdateMarketPermitFailed`, with no `approve` fallback: such a token could not be paid from
/// the page at all. Now the page tries the signed permit on the token (`eth_call` of
/// `permit`) and, refused, approves exactly the total instead; the useless signature is never
/// sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dai_style_permit_token_is_approved_instead() {
    let env = setup().await;
    let g = page(
        &env,
        "const dai = { name: 'Dai Stablecoin', version: '1', chainId: 31337n, verifyingContract: A };
         out(await buy({ hooks: {
           [`${A}:eip712Domain`]: () => { throw reverted(); },
           [`${A}:name`]: () => ret(F.name, [dai.name]),
           [`${A}:DOMAIN_SEPARATOR`]: () => ret(F.DOMAIN_SEPARATOR, [permit.domainSeparator(dai)]),
           [`${A}:permit`]: () => { throw reverted(); },
         } }));",
    );
    assert_eq!(g["typed"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["typed"][0]["data"]["domain"]["name"], "Dai Stablecoin");
    assert_approved_instead(&env, &g, "refused the signed permit");
}

/// `eip712Domain()` data a token may return, malformed (from alloy's encoding of A's real
/// answer): dirty `bytes1` padding, dirty address padding, an extensions length of 2^255 or
/// of 1 with no element, an extensions or name offset past the end, a name length past the
/// end, invalid UTF-8 in the name, the data cut short. The decoder refuses each. Through the
/// page's `Wallet` and `tokenDomain`, a token answering any of them is read with `name()` and
/// version "1" (still checked against `DOMAIN_SEPARATOR`), or is `NoPermit` when it has no
/// `name()`: never a domain at another address or chain.
#[test]
fn eip712_domain_decoder_refuses_malformed_returns() {
    let token: Address = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
        .parse()
        .unwrap();
    let good = DemoToken::eip712DomainCall::abi_encode_returns(&DemoToken::eip712DomainReturn {
        fields: alloy::primitives::FixedBytes([0x0f]),
        name: "Demo USD".into(),
        version: "1".into(),
        chainId: U256::from(31_337u64),
        verifyingContract: token,
        salt: B256::ZERO,
        extensions: vec![],
    });
    // Head: 7 words; name at 224 (length, 1 word), version at 288, extensions at 352.
    assert_eq!(good.len(), 384);
    let word = |v: U256| v.to_be_bytes::<32>();
    let with = |at: usize, bytes: &[u8]| {
        let mut d = good.clone();
        d[at..at + bytes.len()].copy_from_slice(bytes);
        d
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dirty bytes1", with(1, &[1])),
        ("dirty address", with(4 * 32, &[1])),
        (
            "extensions length 2^255",
            with(352, &word(U256::from(1) << 255)),
        ),
        (
            "extensions length 1, no element",
            with(352, &word(U256::from(1))),
        ),
        (
            "extensions offset past the end",
            with(6 * 32, &word(U256::from(0x1000))),
        ),
        ("name offset 2^256-1", with(32, &word(U256::MAX))),
        (
            "name length past the end",
            with(224, &word(U256::from(1000))),
        ),
        ("invalid utf-8 name", with(256, &[0xff])),
        ("cut short", good[..352].to_vec()),
    ];
    let sep = hex(alloy::sol_types::Eip712Domain::new(
        Some("Demo USD".into()),
        Some("1".into()),
        Some(U256::from(31_337u64)),
        Some(token),
        None,
    )
    .separator());
    let got = node(
        &format!(
            "const F = abi.FUNCTIONS; const token = '{token:#x}';
             const results = [];
             for (const [what, data] of input.cases) {{
               let decoded = null, error = null;
               try {{ decoded = abi.decodeResult(F.eip712Domain, data); }} catch (e) {{ error = `${{e.name}}: ${{e.message}}`; }}
               const domains = [];
               for (const hasName of [true, false]) {{
                 const provider = {{ async request({{ method, params }}) {{
                   if (method === 'eth_chainId') return '0x7a69';
                   if (method === 'eth_requestAccounts') return ['0x' + '11'.repeat(20)];
                   const sel = params[0].data.slice(0, 10);
                   if (sel === F.eip712Domain.selector) return data;
                   if (sel === F.DOMAIN_SEPARATOR.selector) return abi.encode('(bytes32)', [input.sep]);
                   if (sel === F.nonces.selector) return abi.encode('(uint256)', [0n]);
                   if (sel === F.name.selector && hasName) return abi.encode('(string)', ['Demo USD']);
                   throw {{ code: 3, message: 'execution reverted', data: '0x' }};
                 }} }};
                 const w = new walletjs.Wallet(provider, {{ chain_id: 31337 }}); await w.connect();
                 try {{ domains.push(await permit.tokenDomain(w, token, 31337n)); }} catch (e) {{ domains.push({{ noPermit: e instanceof permit.NoPermit }}); }}
               }}
               results.push({{ what, decoded, error, domains }});
             }}
             out(results);"
        ),
        &json!({ "sep": sep, "cases": cases.iter().map(|(w, d)| json!([w, hex(d)])).collect::<Vec<_>>() }),
    );
    for r in got.as_array().unwrap() {
        let what = r["what"].as_str().unwrap();
        assert!(r["decoded"].is_null(), "{what}: decoded {}", r["decoded"]);
        let error = r["error"].as_str().unwrap();
        if what == "invalid utf-8 name" {
            assert!(error.starts_with("TypeError"), "{what}: {error}");
        } else {
            assert!(error.starts_with("AbiError"), "{what}: {error}");
        }
        assert_eq!(
            r["domains"][0],
            json!({ "name": "Demo USD", "version": "1", "chainId": "31337", "verifyingContract": format!("{token:#x}") }),
            "{what}"
        );
        assert_eq!(r["domains"][1], json!({ "noPermit": true }), "{what}");
    }
}

/// `tokenDomain` / `signPermit` over a wallet object (not the page's `Wallet`) answering odd
/// JS values where the decoder would give strings and BigInts: the domain's contract as an
/// array or an object whose text is the token, its chain as a fraction, as text, as a
/// Number; the fields as upper-case hex. None gets a signature for another contract or
/// chain: the odd contract values throw (not `NoPermit`, so the page would not approve
/// either); the chain as text or Number is the same chain and is signed for the token.
#[test]
fn odd_values_from_a_wallet_object_never_sign_another_domain() {
    let token: Address = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
        .parse()
        .unwrap();
    let sep = hex(alloy::sol_types::Eip712Domain::new(
        Some("Demo USD".into()),
        Some("1".into()),
        Some(U256::from(31_337u64)),
        Some(token),
        None,
    )
    .separator());
    let got = node(
        &format!(
            "const F = abi.FUNCTIONS; const token = '{token:#x}';
             const domain = (o) => ['0x0f', 'Demo USD', '1', 31337n, token, `0x${{'00'.repeat(32)}}`, []].map((v, i) => (i in o ? o[i] : v));
             const cases = {{
               contractArray: domain({{ 4: [token] }}),
               contractObject: domain({{ 4: {{ toString: () => token }} }}),
               chainFraction: domain({{ 3: 31337.5 }}),
               chainText: domain({{ 3: '31337' }}),
               chainNumber: domain({{ 3: 31337 }}),
               fieldsUpper: domain({{ 0: '0x0F' }}),
             }};
             const results = {{}};
             for (const [k, d] of Object.entries(cases)) {{
               const asked = [];
               const wallet = {{
                 account: '0x' + '11'.repeat(20), chainId: 31337n,
                 async checkChain() {{}},
                 async call(to, f) {{
                   if (f === F.eip712Domain) return d;
                   if (f === F.DOMAIN_SEPARATOR) return [input];
                   if (f === F.nonces) return [0n];
                   if (f === F.name) return ['Demo USD'];
                   throw new Error('execution reverted');
                 }},
                 async request(method, params) {{ if (method === 'eth_getCode') return '0x'; asked.push(JSON.parse(params[1]).domain); return `0x${{'11'.repeat(32)}}${{'22'.repeat(32)}}1b`; }},
                 async recover() {{ return null; }},
               }};
               let error = null;
               try {{ await permit.signPermit(wallet, token, '0x' + '33'.repeat(20), 40n, 2000n); }} catch (e) {{ error = {{ noPermit: e instanceof permit.NoPermit, message: e.message }}; }}
               results[k] = {{ asked, error }};
             }}
             out(results);"
        ),
        &json!(sep),
    );
    for case in ["contractArray", "contractObject", "chainFraction"] {
        assert!(
            got[case]["asked"].as_array().unwrap().is_empty(),
            "{case}: {}",
            got[case]
        );
        assert_eq!(
            got[case]["error"]["noPermit"], false,
            "{case}: {}",
            got[case]
        );
    }
    for case in ["chainText", "chainNumber", "fieldsUpper"] {
        // Signed (the fake signature then recovers to nothing and is refused), for the token
        // on chain 31337; upper-case fields are not 0x0f as decoded, so the name() fallback.
        let asked = got[case]["asked"].as_array().unwrap();
        assert_eq!(asked.len(), 1, "{case}: {}", got[case]);
        assert_eq!(
            asked[0],
            json!({ "name": "Demo USD", "version": "1", "chainId": "31337", "verifyingContract": format!("{token:#x}") }),
            "{case}"
        );
        assert!(
            got[case]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("recovers to nothing"),
            "{case}: {}",
            got[case]
        );
    }
}

/// Accounts and wallets that cannot make a permit a token takes get an exact approve instead:
/// a contract account (its signatures are ERC-1271, which EIP-2612 tokens do not check) is not
/// asked to sign at all; a wallet without `eth_signTypedData_v4` (EIP-1193 4200, JSON-RPC
/// -32601) is asked once. An EIP-7702 account (code `0xef0100 ‖ delegate`) still signs with
/// its key and pays with the permit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_wallets_without_usable_permits_approve_exactly_the_total() {
    let env = setup().await;
    let g = page(
        &env,
        "const code = (c) => (m) => (m === 'eth_getCode' ? { value: c } : undefined);
         out({
           contract: await buy({ onRequest: code('0x6080604052') }),
           unsupported: await buy({ sign: () => { throw Object.assign(new Error('Method not supported'), { code: 4200 }); } }),
           notFound: await buy({ sign: () => { throw Object.assign(new Error('the method eth_signTypedData_v4 does not exist'), { code: -32601 }); } }),
           delegated: await buy({ onRequest: code(`0xef0100${'ab'.repeat(20)}`) }),
         });",
    );
    let contract = &g["contract"];
    assert!(
        contract["typed"].as_array().unwrap().is_empty(),
        "{contract}"
    );
    assert_approved_instead(&env, contract, "is a contract");
    for case in ["unsupported", "notFound"] {
        assert_eq!(g[case]["typed"].as_array().unwrap().len(), 1, "{case}");
        assert_approved_instead(&env, &g[case], "cannot sign typed data");
    }
    let delegated = &g["delegated"];
    assert_eq!(sent_names(delegated), ["purchaseWithPermit"], "{delegated}");
    assert_eq!(sent_permit(delegated)[0], TOTAL.to_string());
}
