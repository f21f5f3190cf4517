//! Shared by the sign-in tests (`auth.rs`, `review_auth.rs`): a real anvil
//! with a second manufacturer and a synced indexer, the dashboard served
//! with sign-in, and a browser of it that asks for nonces, signs login
//! messages and calls the endpoints with a session.

#![allow(dead_code, unreachable_pub)] // each test binary uses part of it

use std::{
    net::IpAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::ProviderBuilder,
    signers::{SignerSync, local::PrivateKeySigner},
};
use otaledger_core::{
    bindings::registry::UpdateRegistry,
    signing::SignerSet,
    test_support::{Chain, Scenario},
};
use otaledger_indexer::{
    Indexer,
    auth::{AuthConfig, CookieSecurity},
    dashboard::{self, DashboardConfig},
    limit::Rate,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::common::{Kind, TestDb, config};

/// A chain with a registered scenario and a second manufacturer, an
/// indexer synced to it, and its dashboard served (see [`setup`]).
pub struct Setup {
    /// The anvil chain.
    pub chain: Chain,
    /// The indexer, synced once.
    pub indexer: Indexer,
    /// The indexer's database.
    pub db: TestDb,
    /// Manufacturer A (operator anvil key 0) and its devices (owner anvil key 1).
    pub scenario: Scenario,
    /// Manufacturer B: operator anvil key 2, signers anvil key 3 and a stranger (1 of 2).
    pub other_manufacturer: u32,
    /// The dashboard with sign-in, without login or session rate limits.
    pub server: Server,
}

impl std::ops::Deref for Setup {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// A served dashboard with sign-in, and a client of it: one browser, whose
/// sign-in cookie (what nonces are bound to) `jar` holds.
pub struct Server {
    /// Its base URL, without a trailing slash.
    pub url: String,
    /// The domain login messages must name.
    pub domain: String,
    /// The chain id login messages must name.
    pub chain_id: u64,
    /// This browser's HTTP client.
    pub http: reqwest::Client,
    /// This browser's sign-in cookie (`name=value`), once a nonce was asked for.
    pub jar: Arc<Mutex<Option<String>>>,
    /// The name the server gives its sign-in cookie (`__Host-` when `Secure`).
    pub signin_cookie_name: &'static str,
}

impl Server {
    /// The same server seen from another browser (no sign-in cookie yet).
    pub fn another_browser(&self) -> Server {
        Server {
            url: self.url.clone(),
            domain: self.domain.clone(),
            chain_id: self.chain_id,
            http: reqwest::Client::new(),
            jar: Arc::default(),
            signin_cookie_name: self.signin_cookie_name,
        }
    }

    /// Another browser connecting from `ip` (a loopback address): another
    /// client network as far as the login rate limit is concerned.
    pub fn browser_from(&self, ip: &str) -> Server {
        Server {
            http: reqwest::Client::builder()
                .local_address(ip.parse::<IpAddr>().unwrap())
                .build()
                .unwrap(),
            ..self.another_browser()
        }
    }

    /// This browser's sign-in cookie (`name=value`), if it has one.
    pub fn signin_cookie(&self) -> Option<String> {
        self.jar.lock().unwrap().clone()
    }

    /// `GET /v1/auth/nonce`: a fresh nonce, checking the sign-in cookie the
    /// server sets (and that it stays the same for this browser).
    pub async fn nonce(&self) -> String {
        let mut r = self.http.get(format!("{}/v1/auth/nonce", self.url));
        if let Some(c) = self.signin_cookie() {
            r = r.header("cookie", c);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            set.contains("; HttpOnly; SameSite=Strict")
                && set.starts_with(&format!("{}=", self.signin_cookie_name)),
            "{set}"
        );
        let pair = set.split(';').next().unwrap().to_owned();
        if let Some(kept) = self.jar.lock().unwrap().replace(pair.clone()) {
            assert_eq!(kept, pair, "the browser keeps its sign-in cookie");
        }
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["chain_id"], self.chain_id);
        assert_eq!(body["domain"], self.domain);
        body["nonce"].as_str().unwrap().to_owned()
    }

    /// A valid login message for `key` with a fresh nonce of this browser.
    pub async fn msg(&self, key: &PrivateKeySigner) -> Msg {
        Msg {
            domain: self.domain.clone(),
            address: key.address(),
            statement: "Sign in to the OTA Ledger dashboard.".into(),
            uri: format!("{}/", self.url),
            chain_id: self.chain_id,
            nonce: self.nonce().await,
            issued_at: now(),
            expiration: Some(now() + 600),
            not_before: None,
        }
    }

    /// `POST /v1/auth/login` with this browser's sign-in cookie, or `cookie`
    /// (a whole `Cookie` header) instead of it: status, body and `Set-Cookie`.
    pub async fn login_with(
        &self,
        text: &str,
        signature: &str,
        cookie: Option<String>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut r = self
            .http
            .post(format!("{}/v1/auth/login", self.url))
            .json(&json!({ "message": text, "signature": signature }));
        if let Some(c) = cookie.or_else(|| self.signin_cookie()) {
            r = r.header("cookie", c);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, r.json().await.unwrap(), cookie)
    }

    /// A login from this browser, with its sign-in cookie.
    pub async fn login_raw(
        &self,
        text: &str,
        signature: &str,
    ) -> (StatusCode, Value, Option<String>) {
        self.login_with(text, signature, None).await
    }

    /// A login from this browser that also presents `session`'s cookie.
    pub async fn login_presenting(
        &self,
        text: &str,
        signature: &str,
        session: Option<&Client>,
    ) -> (StatusCode, Value, Option<String>) {
        let cookies: Vec<String> = self
            .signin_cookie()
            .into_iter()
            .chain(session.map(|c| c.cookie.clone()))
            .collect();
        let cookie = (!cookies.is_empty()).then(|| cookies.join("; "));
        self.login_with(text, signature, cookie).await
    }

    /// Signs a fresh message by `key` and logs in: status, body, and the
    /// session if it succeeded.
    pub async fn try_login(&self, key: &PrivateKeySigner) -> (StatusCode, Value, Option<Client>) {
        let text = self.msg(key).await.text();
        let (status, body, cookie) = self.login_raw(&text, &sign(key, &text)).await;
        let client = cookie.filter(|_| status == 200).map(|c| Client {
            cookie: c.split(';').next().unwrap().to_owned(),
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        });
        (status, body, client)
    }

    /// A session of `key`, which must be granted.
    pub async fn login(&self, key: &PrivateKeySigner) -> Client {
        let (status, body, client) = self.try_login(key).await;
        assert_eq!(status, 200, "{body}");
        client.unwrap()
    }

    /// A request with `client`'s session cookie, a CSRF token and a JSON
    /// body, each if given: status and JSON body (`null` if none).
    pub async fn call(
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

    /// `GET /v1/auth/session` with a raw `Cookie` header.
    pub async fn session_with_cookie(&self, cookie: &str) -> StatusCode {
        self.http
            .get(format!("{}/v1/auth/session", self.url))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `PUT /v1/devices/{index}/label` in session `c`, with its CSRF token.
    pub async fn label(&self, c: &Client, index: u64, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/v1/devices/{index}/label"),
            Some(c),
            Some(&c.csrf),
            Some(body),
        )
        .await
    }

    /// `PUT /v1/devices/{index}/label` with a raw body.
    pub async fn label_raw(&self, c: &Client, index: u64, body: Vec<u8>) -> (StatusCode, Value) {
        let r = self
            .http
            .put(format!("{}/v1/devices/{index}/label", self.url))
            .header("cookie", &c.cookie)
            .header("x-csrf-token", &c.csrf)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// Anvil's key `i`.
pub fn key(chain: &Chain, i: usize) -> PrivateKeySigner {
    chain.anvil.keys()[i].clone().into()
}

/// Serves the dashboard with sign-in on a fresh port, `tweak`ing its settings.
pub async fn serve(indexer: &Indexer, tweak: impl FnOnce(&mut AuthConfig)) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let mut auth = AuthConfig::for_uri(&url.parse().unwrap()).unwrap();
    tweak(&mut auth);
    let domain = auth.domain.clone();
    let signin_cookie_name = match auth.cookie {
        CookieSecurity::Secure => "__Host-otaledger_signin",
        CookieSecurity::PlainHttp => "otaledger_signin",
    };
    let app = dashboard::app_with_auth(indexer.api_state(2), DashboardConfig::default(), auth);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    Server {
        url: url.trim_end_matches('/').to_owned(),
        domain,
        chain_id: indexer.api_state(2).monitor.chain_id,
        http: reqwest::Client::new(),
        jar: Arc::default(),
        signin_cookie_name,
    }
}

/// A server whose login and session rates no test reaches (the limits have
/// their own tests).
pub async fn serve_unlimited(indexer: &Indexer, tweak: impl FnOnce(&mut AuthConfig)) -> Server {
    serve(indexer, |a| {
        a.login_rate = Rate::new(10_000, Duration::from_millis(1));
        a.session_rate = Rate::new(10_000, Duration::from_millis(1));
        tweak(a);
    })
    .await
}

/// A fresh chain (scenario registered, one round, manufacturer B), an
/// indexer on a `kind` database synced to it, and [`serve_unlimited`].
pub async fn setup(kind: Kind) -> Setup {
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
    let server = serve_unlimited(&indexer, |_| {}).await;
    Setup {
        chain,
        indexer,
        db,
        scenario,
        other_manufacturer,
        server,
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Unix seconds as RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn rfc3339(t: i64) -> String {
    otaledger_indexer::siwe::format_rfc3339(t)
}

/// The fields of a login message, valid by default.
#[derive(Clone)]
pub struct Msg {
    /// The domain asking for the sign-in.
    pub domain: String,
    /// The signing address.
    pub address: Address,
    /// The statement line.
    pub statement: String,
    /// The URI line.
    pub uri: String,
    /// The chain id line.
    pub chain_id: u64,
    /// The nonce line.
    pub nonce: String,
    /// Issued At, unix seconds.
    pub issued_at: i64,
    /// Expiration Time, unix seconds, if any.
    pub expiration: Option<i64>,
    /// Not Before, unix seconds, if any.
    pub not_before: Option<i64>,
}

impl Msg {
    /// The message as text, to sign and post.
    pub fn text(&self) -> String {
        let mut t = format!(
            "{} wants you to sign in with your Ethereum account:\n{}\n\n{}\n\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.domain,
            self.address,
            self.statement,
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

    /// The same fields for `key`'s address.
    pub fn by(&self, key: &PrivateKeySigner) -> Msg {
        Msg {
            address: key.address(),
            ..self.clone()
        }
    }
}

/// `key`'s EIP-191 signature of `text`, as 0x-prefixed hex.
pub fn sign(key: &PrivateKeySigner, text: &str) -> String {
    let s = key.sign_message_sync(text.as_bytes()).unwrap();
    format!("0x{}", alloy::hex::encode(s.as_bytes()))
}

/// A session: its cookie header and CSRF token.
#[derive(Clone)]
pub struct Client {
    /// The session cookie, `name=id`.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Client {
    /// The session id (the cookie's value).
    pub fn id(&self) -> &str {
        self.cookie.split_once('=').unwrap().1
    }
}

/// The `error` of an error body (empty if none).
pub fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// Live sessions in the indexer's database.
pub async fn live_sessions(indexer: &Indexer) -> i64 {
    use sqlx::Row as _;
    sqlx::query("SELECT COUNT(*) FROM auth_sessions")
        .fetch_one(&indexer.api_state(2).pool)
        .await
        .unwrap()
        .get(0)
}

/// Log lines of every test in this binary, at TRACE.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
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

/// Where [`captured_logs`] writes: a shared buffer.
pub struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
