//! Sign-In with Ethereum and the endpoints behind it, over HTTP against a
//! real anvil and a real indexer (no browser): login and logout, each
//! refusal of a login, the CSRF and role checks of every write, roles read
//! from chain state at request time (a transfer takes effect before the
//! indexer syncs), on SQLite and PostgreSQL.

mod common;

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use alloy::{
    network::EthereumWallet,
    primitives::{Address, Signature, U256},
    providers::ProviderBuilder,
    signers::{SignerSync, local::PrivateKeySigner},
};
use common::{Kind, TestDb, config};
use otaledger_core::{
    bindings::registry::UpdateRegistry,
    signing::SignerSet,
    test_support::{Chain, Scenario},
};
use otaledger_indexer::{
    Indexer,
    auth::AuthConfig,
    dashboard::{self, DashboardConfig},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Setup {
    chain: Chain,
    indexer: Indexer,
    db: TestDb,
    scenario: Scenario,
    /// Manufacturer B: operator anvil key 2, signers anvil key 3 and a stranger (1 of 2).
    other_manufacturer: u32,
    server: Server,
}

/// A served dashboard with sign-in, and a client of it.
struct Server {
    url: String,
    domain: String,
    chain_id: u64,
    http: reqwest::Client,
}

impl std::ops::Deref for Setup {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

fn key(chain: &Chain, i: usize) -> PrivateKeySigner {
    chain.anvil.keys()[i].clone().into()
}

/// Serves the dashboard with sign-in on a fresh port, `tweak`ing its settings.
async fn serve(indexer: &Indexer, tweak: impl FnOnce(&mut AuthConfig)) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let mut auth = AuthConfig::for_uri(&url.parse().unwrap()).unwrap();
    tweak(&mut auth);
    let domain = auth.domain.clone();
    let app = dashboard::app_with_auth(indexer.api_state(2), DashboardConfig::default(), auth);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        url: url.trim_end_matches('/').to_owned(),
        domain,
        chain_id: indexer.api_state(2).monitor.chain_id,
        http: reqwest::Client::new(),
    }
}

async fn setup(kind: Kind) -> Setup {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    scenario.round(&chain).await.unwrap();
    // Manufacturer B, registered by anvil key 2 (its operator).
    let operator = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key(&chain, 2)))
        .connect_http(chain.anvil.endpoint_url());
    let set = SignerSet::new(
        vec![
            key(&chain, 3).address(),
            PrivateKeySigner::random().address(),
        ],
        1,
    )
    .unwrap();
    let receipt = UpdateRegistry::new(chain.deployment.registry, &operator)
        .registerManufacturer(
            "Other".into(),
            Address::ZERO,
            Address::ZERO,
            set.signers().to_vec(),
            1,
            "bafy-other".into(),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let other_manufacturer = receipt
        .decoded_log::<UpdateRegistry::ManufacturerRegistered>()
        .unwrap()
        .manufacturerId;
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 0)).await.unwrap();
    indexer.sync().await.unwrap();
    let server = serve(&indexer, |_| {}).await;
    Setup {
        chain,
        indexer,
        db,
        scenario,
        other_manufacturer,
        server,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Unix seconds as RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`).
fn rfc3339(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The fields of a login message, valid by default.
#[derive(Clone)]
struct Msg {
    domain: String,
    address: Address,
    uri: String,
    chain_id: u64,
    nonce: String,
    issued_at: i64,
    expiration: Option<i64>,
    not_before: Option<i64>,
}

impl Msg {
    fn text(&self) -> String {
        let mut t = format!(
            "{} wants you to sign in with your Ethereum account:\n{}\n\nSign in to the OTA Ledger dashboard.\n\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.domain,
            self.address,
            self.uri,
            self.chain_id,
            self.nonce,
            rfc3339(self.issued_at)
        );
        if let Some(e) = self.expiration {
            t.push_str(&format!("\nExpiration Time: {}", rfc3339(e)));
        }
        if let Some(n) = self.not_before {
            t.push_str(&format!("\nNot Before: {}", rfc3339(n)));
        }
        t
    }
}

fn sign(key: &PrivateKeySigner, text: &str) -> String {
    let s = key.sign_message_sync(text.as_bytes()).unwrap();
    format!("0x{}", alloy::hex::encode(s.as_bytes()))
}

/// A session: its cookie header and CSRF token.
#[derive(Clone)]
struct Client {
    cookie: String,
    csrf: String,
}

impl Server {
    async fn nonce(&self) -> String {
        let r = self
            .http
            .get(format!("{}/v1/auth/nonce", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["chain_id"], self.chain_id);
        assert_eq!(body["domain"], self.domain);
        body["nonce"].as_str().unwrap().to_owned()
    }

    async fn msg(&self, key: &PrivateKeySigner) -> Msg {
        Msg {
            domain: self.domain.clone(),
            address: key.address(),
            uri: format!("{}/", self.url),
            chain_id: self.chain_id,
            nonce: self.nonce().await,
            issued_at: now(),
            expiration: Some(now() + 600),
            not_before: None,
        }
    }

    async fn login_raw(&self, text: &str, signature: &str) -> (StatusCode, Value, Option<String>) {
        let r = self
            .http
            .post(format!("{}/v1/auth/login", self.url))
            .json(&json!({ "message": text, "signature": signature }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, r.json().await.unwrap(), cookie)
    }

    async fn login(&self, key: &PrivateKeySigner) -> Client {
        let text = self.msg(key).await.text();
        let (status, body, cookie) = self.login_raw(&text, &sign(key, &text)).await;
        assert_eq!(status, 200, "{body}");
        let cookie = cookie.unwrap();
        Client {
            cookie: cookie.split(';').next().unwrap().to_owned(),
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        client: Option<&Client>,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(c) = client {
            r = r.header("cookie", &c.cookie);
        }
        if let Some(t) = csrf {
            r = r.header("x-csrf-token", t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn label(&self, c: &Client, index: u64, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/v1/devices/{index}/label"),
            Some(c),
            Some(&c.csrf),
            Some(body),
        )
        .await
    }
}

fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

async fn sign_in_labels_and_roles(kind: Kind) {
    let mut s = setup(kind).await;
    let owner = key(&s.chain, 1);
    let (d0, d1, d2) = (
        s.scenario.devices[0].0,
        s.scenario.devices[1].0,
        s.scenario.devices[2].0,
    );

    // Anonymous: no session, no write.
    let (status, body) = s
        .call(Method::GET, "/v1/auth/session", None, None, None)
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = s
        .call(
            Method::PUT,
            &format!("/v1/devices/{d0}/label"),
            None,
            None,
            Some(json!({"label": "x", "position": null})),
        )
        .await;
    assert_eq!(status, 401);

    // Login: the cookie is HttpOnly, SameSite=Strict, not Secure over http.
    let text = s.msg(&owner).await.text();
    let (status, body, cookie) = s.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap();
    assert!(cookie.starts_with("otaledger_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    let c = Client {
        cookie: cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    assert_eq!(body["address"], format!("{:#x}", owner.address()));

    // Roles from chain state: the owner owns d0 and d1 (d2 was transferred away).
    let (status, session) = s
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["csrf_token"], c.csrf.as_str());
    assert_eq!(session["roles"]["auditor"], true);
    assert_eq!(session["roles"]["owner"], true);
    assert_eq!(session["roles"]["operator"], false);
    assert_eq!(session["devices"], json!([d0, d1]));

    // Writes: the CSRF token is required, and must be this session's.
    let good = json!({"label": "Kitchen sensor", "position": [12.5, -3.0]});
    let path = format!("/v1/devices/{d0}/label");
    let (status, body) = s
        .call(Method::PUT, &path, Some(&c), None, Some(good.clone()))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(error(&body).contains("X-CSRF-Token"), "{body}");
    let wrong = "0".repeat(c.csrf.len());
    let (status, _) = s
        .call(
            Method::PUT,
            &path,
            Some(&c),
            Some(&wrong),
            Some(good.clone()),
        )
        .await;
    assert_eq!(status, 403);
    // Another origin.
    let r = s
        .http
        .put(format!("{}{path}", s.url))
        .header("cookie", &c.cookie)
        .header("x-csrf-token", &c.csrf)
        .header("origin", "http://evil.example")
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Bad input: 400 naming the problem.
    for (bad, says) in [
        (
            json!({"label": "ok\u{202E}gpj.exe", "position": null}),
            "U+202E",
        ),
        (json!({"label": "a\u{0007}", "position": null}), "U+0007"),
        (
            json!({"label": "x".repeat(65), "position": null}),
            "at most 64",
        ),
        (json!({"label": "x", "position": [2e6, 0]}), "outside"),
        (json!({"label": "x", "position": [1]}), "label body"),
        (
            json!({"label": "x", "position": null, "owner": "me"}),
            "unknown field",
        ),
        (json!({"position": null}), "missing field"),
    ] {
        let (status, body) = s.label(&c, d0, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(error(&body).contains(says), "{bad}: {body}");
    }
    let (status, body) = s
        .call(
            Method::PUT,
            &format!("/v1/devices/{}/label", u64::MAX),
            Some(&c),
            Some(&c.csrf),
            Some(good.clone()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(error(&body).contains("too large"), "{body}");
    let (status, body) = s
        .call(
            Method::PUT,
            "/v1/devices/x/label",
            Some(&c),
            Some(&c.csrf),
            Some(good.clone()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Another owner's device: 403.
    let (status, body) = s.label(&c, d2, good.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(error(&body).contains("does not own"), "{body}");
    // Its own device: stored, and shown by the fleet.
    let (status, body) = s.label(&c, d0, good.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["label"], "Kitchen sensor");
    let fleet: Value = reqwest::get(format!("{}/v1/fleet", s.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = |fleet: &Value, i: u64| {
        fleet["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["index"] == i)
            .cloned()
            .unwrap()
    };
    assert_eq!(shown(&fleet, d0)["label"], "Kitchen sensor");
    assert_eq!(shown(&fleet, d0)["position"], json!([12.5, -3.0]));
    assert!(shown(&fleet, d1)["label"].is_null());

    // Statistics: only the manufacturer's operator and signers.
    let a = s.scenario.manufacturer;
    let b = s.other_manufacturer;
    let stats = |m: u32| format!("/v1/manufacturers/{m}/stats");
    let (status, _) = s.call(Method::GET, &stats(a), None, None, None).await;
    assert_eq!(status, 401);
    let (status, body) = s.call(Method::GET, &stats(a), Some(&c), None, None).await;
    assert_eq!(status, 403, "{body}");
    let operator_a = s.login(&key(&s.chain, 0)).await;
    let (status, body) = s
        .call(Method::GET, &stats(a), Some(&operator_a), None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"]["operator"], true);
    let model = &body["models"][0];
    assert_eq!(model["devices"], 3, "{body}");
    assert_eq!(model["releases"].as_array().unwrap().len(), 3, "{body}");
    assert!(
        body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|al| al["rule"] == "emergency_revocation"),
        "{body}"
    );
    let (status, _) = s
        .call(Method::GET, &stats(b), Some(&operator_a), None, None)
        .await;
    assert_eq!(status, 403);
    let signer_b = s.login(&key(&s.chain, 3)).await;
    let (status, body) = s
        .call(Method::GET, &stats(b), Some(&signer_b), None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["role"],
        json!({"id": b, "operator": false, "signer": true})
    );
    let (status, _) = s
        .call(Method::GET, &stats(a), Some(&signer_b), None, None)
        .await;
    assert_eq!(status, 403);
    let (status, session) = s
        .call(Method::GET, "/v1/auth/session", Some(&signer_b), None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(session["roles"]["signer"], true);
    assert_eq!(session["roles"]["owner"], false);
    assert_eq!(
        session["manufacturers"],
        json!([{"id": b, "operator": false, "signer": true}])
    );

    // Roles at request time: the owner transfers d0 on chain; before the
    // indexer has seen it, the old owner's write is already refused.
    let new_owner = key(&s.chain, 4);
    let r = UpdateRegistry::new(s.chain.deployment.registry, &s.chain.owner)
        .transferDevice(d0, new_owner.address())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(r.status());
    let (status, body) = s.label(&c, d0, good.clone()).await;
    assert_eq!(status, 403, "{body}");
    let newcomer = s.login(&new_owner).await;
    let (status, body) = s
        .label(&newcomer, d0, json!({"label": "", "position": null}))
        .await;
    assert_eq!(status, 200, "{body}");
    // Once the indexer follows, the old owner's label is no longer shown.
    s.indexer.sync().await.unwrap();
    let fleet: Value = reqwest::get(format!("{}/v1/fleet", s.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(shown(&fleet, d0)["label"].is_null(), "{fleet}");

    // A replayed message races itself: exactly one login wins.
    let text = s.msg(&owner).await.text();
    let sig = sign(&owner, &text);
    let attempts = futures_util::future::join_all((0..8).map(|_| s.login_raw(&text, &sig))).await;
    let won = attempts.iter().filter(|(st, _, _)| *st == 200).count();
    assert_eq!(
        won,
        1,
        "{:?}",
        attempts.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(
        attempts
            .iter()
            .filter(|a| a.0 != 200)
            .all(|(st, b, _)| *st == 401 && error(b).contains("already used"))
    );

    // Logout ends the session: the cookie is cleared and no longer works.
    let (status, _) = s
        .call(Method::POST, "/v1/auth/logout", Some(&c), None, None)
        .await;
    assert_eq!(status, 403);
    let r = s
        .http
        .post(format!("{}/v1/auth/logout", s.url))
        .header("cookie", &c.cookie)
        .header("x-csrf-token", &c.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cleared = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cleared.starts_with("otaledger_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, _) = s
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = s.label(&c, d1, good.clone()).await;
    assert_eq!(status, 401);
    // The other sessions live on.
    let (status, _) = s
        .call(
            Method::GET,
            "/v1/auth/session",
            Some(&operator_a),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    s.db.remove().await;
}

/// Every refusal of a login; none of them uses up the nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refusals() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let base = s.msg(&owner).await;
    let refused = |m: &Msg, says: &'static str| {
        let text = m.text();
        let sig = sign(&owner, &text);
        let s = &s;
        async move {
            let (status, body, cookie) = s.login_raw(&text, &sig).await;
            assert_eq!(status, 401, "{says}: {body}");
            assert!(error(&body).contains(says), "{says}: {body}");
            assert!(cookie.is_none());
        }
    };
    let mut m = base.clone();
    m.domain = "evil.example".into();
    refused(&m, "domain").await;
    let mut m = base.clone();
    m.uri = format!("{}/other", s.url);
    refused(&m, "uri").await;
    let mut m = base.clone();
    m.chain_id = 1;
    refused(&m, "chain id").await;
    let mut m = base.clone();
    m.expiration = Some(now() - 10);
    refused(&m, "expired").await;
    let mut m = base.clone();
    m.not_before = Some(now() + 3600);
    refused(&m, "not valid before").await;
    let mut m = base.clone();
    m.issued_at = now() + 3600;
    refused(&m, "in the future").await;
    let mut m = base.clone();
    m.nonce = "0123456789abcdef0123456789abcdef".into();
    refused(&m, "unknown nonce").await;

    let text = base.text();
    // Signed by another key.
    let other = PrivateKeySigner::random();
    let (status, body, _) = s.login_raw(&text, &sign(&other, &text)).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("signature is by"), "{body}");
    // The high-s twin of the owner's own signature.
    let sig = owner.sign_message_sync(text.as_bytes()).unwrap();
    let n = U256::from_str_radix(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
        16,
    )
    .unwrap();
    let twin = Signature::new(sig.r(), n - sig.s(), !sig.v());
    let (status, body, _) = s
        .login_raw(&text, &format!("0x{}", alloy::hex::encode(twin.as_bytes())))
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("high s"), "{body}");
    // Malformed messages (each signed, so only the parser refuses them): 400.
    let lower = owner.address().to_string().to_lowercase();
    for bad in [
        format!("{text}\n"),
        format!("{text}\nNonce: {}", base.nonce),
        text.replace("Version: 1", "Version: 2"),
        text.replace(&owner.address().to_string(), &lower),
        text.replace("Sign in", "Sign\u{202E}in"),
        text.replace("\nURI:", "\nFoo: bar\nURI:"),
        "x".repeat(5000),
    ] {
        let (status, body, _) = s.login_raw(&bad, &sign(&owner, &bad)).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(error(&body).contains("message"), "{body}");
    }
    // A login posted from another origin.
    let r = s
        .http
        .post(format!("{}/v1/auth/login", s.url))
        .header("origin", "http://evil.example")
        .json(&json!({ "message": text, "signature": sign(&owner, &text) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, body, _) = s.login_raw(&text, "0x1234").await;
    assert_eq!(status, 401, "{body}");
    let r = s
        .http
        .post(format!("{}/v1/auth/login", s.url))
        .json(&json!({ "message": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // After all that, the nonce is still good once …
    let (status, body, _) = s.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 200, "{body}");
    // … and only once.
    let (status, body, _) = s.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("already used"), "{body}");

    // An expired nonce, and an expired session (servers with zero lifetimes
    // over the same database).
    let short = serve(&s.indexer, |a| a.nonce_ttl = Duration::ZERO).await;
    let text = short.msg(&owner).await.text();
    let (status, body, _) = short.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("nonce expired"), "{body}");
    let short = serve(&s.indexer, |a| a.session_ttl = Duration::ZERO).await;
    let c = short.login(&owner).await;
    let (status, body) = short
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("expired"), "{body}");
}

/// Log lines of every test in this binary, at TRACE.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Sink(sink.clone()))
            .init();
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Nonces, session ids and CSRF tokens never reach the logs, at any level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs() {
    let logs = captured_logs();
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let m = s.msg(&owner).await;
    let text = m.text();
    let (status, body, cookie) = s.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 200, "{body}");
    let id = cookie
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let c = Client {
        cookie: format!("otaledger_session={id}"),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    // A replay and a bad CSRF token: refusals are logged no more than successes.
    let (status, _, _) = s.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 401);
    let (status, _) = s
        .call(Method::POST, "/v1/auth/logout", Some(&c), Some("00"), None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = s
        .call(
            Method::POST,
            "/v1/auth/logout",
            Some(&c),
            Some(&c.csrf),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("signed in"), "the capture works");
    for secret in [&m.nonce, &id, &c.csrf] {
        assert!(!text.contains(secret.as_str()), "{secret} was logged");
    }
}

/// The OpenAPI document lists the sign-in routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_the_sign_in_routes() {
    let s = setup(Kind::Sqlite).await;
    let doc: Value = reqwest::get(format!("{}/v1/openapi.json", s.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/auth/nonce",
        "/v1/auth/login",
        "/v1/auth/logout",
        "/v1/auth/session",
        "/v1/devices/{index}/label",
        "/v1/manufacturers/{id}/stats",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

both_databases!(sign_in_labels_and_roles);
