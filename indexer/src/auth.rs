//! Sign-In with Ethereum for what is not on chain (design and the test of
//! each claim in `docs/auth.md`):
//!
//! - `GET /v1/auth/nonce`: a nonce that costs the server nothing to hand out
//!   (no row is written, so a flood of requests locks nobody out): its issue
//!   time, random bits and an HMAC-SHA256 tag under a per-process key over
//!   both and the requesting browser's sign-in cookie (set `HttpOnly`,
//!   `SameSite=Strict` on first request), so only that browser can log in
//!   with it, only until it expires;
//! - `POST /v1/auth/login` `{message, signature}`: rate-limited per client
//!   network ([`crate::limit`]); the EIP-4361 message is checked by
//!   [`crate::siwe::verify`] (domain, URI, chain id, times, signature), its
//!   nonce's tag against the request's sign-in cookie, then the nonce is
//!   recorded as used by one `INSERT … ON CONFLICT DO NOTHING` (a replay
//!   fails even when two logins race); a session (random id in an
//!   `HttpOnly`, `SameSite=Strict` cookie, `Secure` when configured) and a
//!   CSRF token are issued, lasting until the message's `Expiration Time` if
//!   that comes first; the session the request presented, if any, ends
//!   once the new one is stored; live sessions are capped per address, per
//!   client network and in all (where the network holding the most gives
//!   up its oldest, so nobody can lock others out by filling the table);
//! - `GET /v1/auth/session`: the address, the CSRF token and the roles, read
//!   from chain state now ([`crate::roles`]);
//! - `POST /v1/auth/logout`: ends the session.
//!
//! Sessions are stored by the keccak256 of their id; ids and nonces never
//! reach the logs. Every request with a session is rate-limited per session
//! and per the client network it logged in from, and role reads share a bounded number of concurrent RPC calls
//! ([`crate::roles`]), so sessions, which anyone can create with a fresh
//! key, cannot drive unbounded work. Every write (`POST`/`PUT` with a session) must echo the
//! session's CSRF token in `X-CSRF-Token` (compared in constant time) and, if
//! the browser sends an `Origin`, come from the configured origin.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use alloy::primitives::{Address, keccak256};
use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::{StreamExt as _, TryStreamExt as _};
use hmac::{Hmac, Mac as _};
use rand_core::{OsRng, RngCore as _};
use serde_json::{Value as Json, json};
use sqlx::{AnyPool, Row as _};
use subtle::ConstantTimeEq as _;

use crate::error::db;
use crate::{
    Error,
    api::ApiError,
    dashboard::Projection,
    limit::{Limiter, Rate, client_network, session_network},
    roles::{self, ChainRoles},
    siwe,
};

/// Name of the session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "otaledger_session";
/// Name of the session cookie when it is `Secure` (the `__Host-` prefix: the
/// browser keeps it only with `Secure`, `Path=/` and no `Domain`).
pub const SECURE_SESSION_COOKIE: &str = "__Host-otaledger_session";
/// Name of the sign-in cookie (what nonces are bound to) over plain HTTP.
pub const SIGNIN_COOKIE: &str = "otaledger_signin";
/// Name of the sign-in cookie when it is `Secure`.
pub const SECURE_SIGNIN_COOKIE: &str = "__Host-otaledger_signin";
/// The header every write echoes the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest login body read.
pub const MAX_LOGIN_BODY: usize = 8 * 1024;
/// Most owned devices `GET /v1/auth/session` checks on chain (more: `devices_truncated`).
pub const MAX_SESSION_DEVICES: i64 = 256;
/// Most manufacturers `GET /v1/auth/session` checks on chain (more: `manufacturers_truncated`).
pub const MAX_SESSION_MANUFACTURERS: i64 = 64;
/// Most client networks and sessions whose rate limits are remembered at once.
pub const MAX_LIMITED_KEYS: usize = 65_536;
/// Bytes of a nonce: issue time (8, unix ms), random (8), tag (16); hex-encoded it is 64 characters.
const NONCE_BYTES: usize = 32;
/// Domain separation of the nonce tag.
const NONCE_TAG_DOMAIN: &[u8] = b"otaledger siwe nonce v1\0";

/// Whether the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecurity {
    /// `Secure` (and the `__Host-` name): the browser sends it over HTTPS only.
    Secure,
    /// No `Secure`: for a dashboard served over plain HTTP on a trusted host
    /// (the local demo). Never for a dashboard reachable over a network.
    PlainHttp,
}

/// The sign-in settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// The domain (authority, `host[:port]`) login messages must name.
    pub domain: String,
    /// The URI login messages must name, byte for byte; its origin is the
    /// only one writes are accepted from.
    pub uri: String,
    /// The session cookie's `Secure`.
    pub cookie: CookieSecurity,
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// How long a nonce may wait for its login.
    pub nonce_ttl: Duration,
    /// Login attempts per client network (IPv4 address, IPv6 /64).
    pub login_rate: Rate,
    /// Requests per session (each may read chain state).
    pub session_rate: Rate,
    /// Signed-in requests per client network, all its sessions together (a
    /// client can hold many sessions: fresh keys cost nothing).
    pub network_rate: Rate,
    /// Most live sessions in all; a login beyond ends the oldest session of
    /// the client network holding the most (never refused: a party filling
    /// the table locks nobody else out).
    pub max_sessions: i64,
    /// Most live sessions of one address; a login beyond ends its oldest.
    pub max_sessions_per_address: i64,
    /// Most live sessions logged in from one client network (an IPv4
    /// address, an IPv6 /48: [`crate::limit::session_network`]); a login
    /// beyond ends that network's oldest.
    pub max_sessions_per_network: i64,
}

impl AuthConfig {
    /// Domain and URI of a dashboard served at `uri` (`http://host:port/`):
    /// the domain is its authority, the cookie `Secure` for `https`; sessions
    /// last 8 hours, nonces 10 minutes; 20 login attempts at once per client
    /// network then one every 3 s; 30 requests at once per session then two
    /// a second, 60 at once per client network then five a second; at most
    /// 50,000 live sessions, 16 per address, 64 per client network.
    pub fn for_uri(uri: &url::Url) -> Result<Self, String> {
        let host = uri
            .host_str()
            .ok_or_else(|| format!("{uri} names no host"))?;
        let domain = match uri.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let cookie = if uri.scheme() == "https" {
            CookieSecurity::Secure
        } else {
            CookieSecurity::PlainHttp
        };
        Ok(Self {
            domain,
            uri: uri.to_string(),
            cookie,
            session_ttl: Duration::from_secs(8 * 3600),
            nonce_ttl: Duration::from_secs(600),
            login_rate: Rate::new(20, Duration::from_secs(3)),
            session_rate: Rate::new(30, Duration::from_millis(500)),
            network_rate: Rate::new(60, Duration::from_millis(200)),
            max_sessions: 50_000,
            max_sessions_per_address: 16,
            max_sessions_per_network: 64,
        })
    }

    fn cookie_name(&self) -> &'static str {
        match self.cookie {
            CookieSecurity::Secure => SECURE_SESSION_COOKIE,
            CookieSecurity::PlainHttp => SESSION_COOKIE,
        }
    }

    fn signin_cookie_name(&self) -> &'static str {
        match self.cookie {
            CookieSecurity::Secure => SECURE_SIGNIN_COOKIE,
            CookieSecurity::PlainHttp => SIGNIN_COOKIE,
        }
    }

    /// `scheme://authority` of [`Self::uri`].
    fn origin(&self) -> Option<String> {
        url::Url::parse(&self.uri)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    }
}

/// What the sign-in and private endpoints share.
#[derive(Debug, Clone)]
pub struct AuthState {
    /// The indexer's database.
    pub pool: AnyPool,
    /// Roles from chain state.
    pub roles: ChainRoles,
    /// The indexer's chain.
    pub chain_id: u64,
    /// The settings.
    pub config: Arc<AuthConfig>,
    /// How map positions are read (bounds of a device's position).
    pub projection: Projection,
    nonce_key: Arc<NonceKey>,
    login_limit: Arc<Limiter<IpAddr>>,
    session_limit: Arc<Limiter<String>>,
    network_limit: Arc<Limiter<String>>,
}

/// The per-process key of the nonce tags (never printed: `Debug` redacts it).
/// A restart forgets it, so nonces handed out before are refused as unknown
/// (a browser asks for a new one; sessions, in the database, stay valid).
struct NonceKey([u8; 32]);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

impl NonceKey {
    fn random() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// The tag of a nonce issued at `issued_ms` with `random` to the
    /// browser holding sign-in cookie `binding`.
    fn tag(&self, issued_ms: &[u8; 8], random: &[u8; 8], binding: &str) -> [u8; 16] {
        let mut mac =
            <Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(NONCE_TAG_DOMAIN);
        mac.update(issued_ms);
        mac.update(random);
        mac.update(binding.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }

    /// A nonce issued at `now_ms` to `binding`: 64 hex digits.
    fn issue(&self, now_ms: i64, binding: &str) -> String {
        let issued = now_ms.to_be_bytes();
        let mut random = [0u8; 8];
        OsRng.fill_bytes(&mut random);
        let mut bytes = Vec::with_capacity(NONCE_BYTES);
        bytes.extend_from_slice(&issued);
        bytes.extend_from_slice(&random);
        bytes.extend_from_slice(&self.tag(&issued, &random, binding));
        alloy::hex::encode(bytes)
    }

    /// When `nonce` was issued, if this key issued it to `binding`.
    /// Only the form `issue` writes is accepted (64 lowercase hex digits, no
    /// `0x`): nonces are recorded as used by their text, so one nonce must
    /// have one spelling.
    fn issued_at(&self, nonce: &str, binding: &str) -> Option<i64> {
        if nonce.len() != 2 * NONCE_BYTES
            || !nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let bytes = alloy::hex::decode(nonce).ok()?;
        if bytes.len() != NONCE_BYTES {
            return None;
        }
        let issued: [u8; 8] = bytes[..8].try_into().ok()?;
        let random: [u8; 8] = bytes[8..16].try_into().ok()?;
        let tag = self.tag(&issued, &random, binding);
        bool::from(tag.ct_eq(&bytes[16..])).then(|| i64::from_be_bytes(issued))
    }
}

impl AuthState {
    /// Sign-in over `pool` with roles read through `roles`, on `chain_id`:
    /// a fresh nonce key and empty rate limits.
    pub fn new(
        pool: AnyPool,
        roles: ChainRoles,
        chain_id: u64,
        config: AuthConfig,
        projection: Projection,
    ) -> Self {
        Self {
            pool,
            roles,
            chain_id,
            nonce_key: Arc::new(NonceKey::random()),
            login_limit: Arc::new(Limiter::new(config.login_rate, MAX_LIMITED_KEYS)),
            session_limit: Arc::new(Limiter::new(config.session_rate, MAX_LIMITED_KEYS)),
            network_limit: Arc::new(Limiter::new(config.network_rate, MAX_LIMITED_KEYS)),
            config: Arc::new(config),
            projection,
        }
    }
}

fn rate_limited(what: &str, wait: Duration) -> ApiError {
    let secs = wait.as_secs_f64().ceil() as u64;
    ApiError::RateLimited(
        format!("too many {what}; try again in {} s", secs.max(1)),
        secs,
    )
}

/// A signed-in request's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who signed in.
    pub address: Address,
    /// The token writes must echo.
    pub csrf_token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
    hash: String,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    alloy::hex::encode(b)
}

fn refused(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::Refused(status, message.into())
}

/// `body` as JSON that no cache keeps (answers about a session).
pub(crate) fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The sign-in routes and the private endpoints over `state`.
pub fn routes(state: AuthState) -> Router {
    Router::new()
        .route("/v1/auth/nonce", get(nonce))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/session", get(session_info))
        .merge(crate::private::routes())
        .with_state(state)
}

/// The statement of the messages `GET /v1/auth/nonce?address=` writes.
pub const SIGN_IN_STATEMENT: &str = "Sign in to the OTA Ledger dashboard to label your devices and see your models' statistics. This signs no transaction and costs nothing.";

/// `GET /v1/auth/nonce` query.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NonceQuery {
    /// With an address, the answer also carries the whole message to sign.
    address: Option<String>,
}

/// `GET /v1/auth/nonce[?address=0x…]`: a fresh nonce bound to this
/// browser's sign-in cookie (set when the request has none), and what the
/// message must name; with `address`, the EIP-4361 message itself (EIP-55
/// address, [`SIGN_IN_STATEMENT`], issued now, expiring with the session
/// lifetime), so a page needs no keccak-256 to write one. The login checks
/// it like any other message. Writes nothing.
#[utoipa::path(get, path = "/v1/auth/nonce", params(("address" = Option<String>, Query, description = "0x and 40 hex digits, any case: also return the message to sign")), responses((status = 200, description = "{nonce, expires_at (unix ms), domain, uri, chain_id[, message]}; sets the sign-in cookie the nonce is bound to"), (status = 400, description = "malformed address or unknown parameter")))]
pub(crate) async fn nonce(
    State(state): State<AuthState>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<NonceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|e| ApiError::BadRequest(format!("nonce query: {}", e.body_text())))?;
    let address = query
        .address
        .map(|a| {
            let hex = a.strip_prefix("0x").unwrap_or_default();
            if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::BadRequest(
                    "address: expected 0x and 40 hex digits".into(),
                ));
            }
            // Lower case: any spelling names the same account, and the
            // message writes it in EIP-55 form.
            format!("0x{}", hex.to_ascii_lowercase())
                .parse::<Address>()
                .map_err(|e| ApiError::BadRequest(format!("address: {e}")))
        })
        .transpose()?;
    let now = now_ms();
    let binding = cookie(&headers, state.config.signin_cookie_name(), 32)
        .map(str::to_owned)
        .unwrap_or_else(|| random_hex(16));
    let nonce = state.nonce_key.issue(now, &binding);
    let expires_at = now + state.config.nonce_ttl.as_millis() as i64;
    let mut body = json!({
        "nonce": nonce,
        "expires_at": expires_at,
        "domain": state.config.domain,
        "uri": state.config.uri,
        "chain_id": state.chain_id,
    });
    if let Some(address) = address {
        let (issued, until) = (
            now / 1000,
            (now / 1000).saturating_add(state.config.session_ttl.as_secs() as i64),
        );
        let message = siwe::SiweMessage {
            scheme: None,
            domain: state.config.domain.clone(),
            address,
            statement: Some(SIGN_IN_STATEMENT.to_owned()),
            uri: state.config.uri.clone(),
            chain_id: state.chain_id,
            nonce,
            issued_at: (siwe::format_rfc3339(issued), issued),
            expiration_time: Some((siwe::format_rfc3339(until), until)),
            not_before: None,
            request_id: None,
            resources: None,
        };
        body["message"] = json!(message.to_string());
    }
    let mut response = json_response(StatusCode::OK, &body);
    // Refreshed with every nonce, so it outlives the newest one.
    let max_age = state.config.nonce_ttl.as_secs() + 60;
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            &state.config,
            state.config.signin_cookie_name(),
            &binding,
            max_age,
        )?,
    );
    Ok(response)
}

/// Consumes `nonce`: it must carry our tag for the request's sign-in
/// cookie, be unexpired, and not be recorded as used; recording it is one
/// `INSERT … ON CONFLICT DO NOTHING`, so of two concurrent logins with it
/// only one wins. Used nonces are kept until they expire (then their tag
/// alone refuses them).
async fn consume_nonce(
    state: &AuthState,
    headers: &HeaderMap,
    nonce: &str,
    now: i64,
) -> Result<(), ApiError> {
    let unauthorized = |m: &str| refused(StatusCode::UNAUTHORIZED, m);
    let binding = cookie(headers, state.config.signin_cookie_name(), 32).ok_or_else(|| {
        unauthorized("no sign-in cookie: ask for the nonce from this browser (GET /v1/auth/nonce)")
    })?;
    let issued = state.nonce_key.issued_at(nonce, binding).ok_or_else(|| {
        unauthorized(
            "unknown nonce (not issued by this server to this browser, or before a restart)",
        )
    })?;
    let expires_at = issued.saturating_add(state.config.nonce_ttl.as_millis() as i64);
    if now >= expires_at {
        return Err(unauthorized("nonce expired"));
    }
    sqlx::query("DELETE FROM auth_nonces WHERE expires_at < $1")
        .bind(now)
        .execute(&state.pool)
        .await
        .map_err(db("forgetting old nonces"))?;
    let done = sqlx::query(
        "INSERT INTO auth_nonces (nonce, issued_at, expires_at, used_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (nonce) DO NOTHING",
    )
    .bind(nonce.to_owned())
    .bind(issued)
    .bind(expires_at)
    .bind(now)
    .execute(&state.pool)
    .await
    .map_err(db("consuming a nonce"))?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(unauthorized("nonce already used (replayed message)"))
    }
}

fn set_cookie(
    config: &AuthConfig,
    name: &str,
    value: &str,
    max_age: u64,
) -> Result<HeaderValue, ApiError> {
    let secure = match config.cookie {
        CookieSecurity::Secure => "; Secure",
        CookieSecurity::PlainHttp => "",
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .map_err(|_| ApiError::BadRequest("cookie value".into()))
}

/// Refuses a request whose `Origin` (sent by browsers on every POST/PUT) is
/// not the configured one.
fn check_origin(config: &AuthConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let ok = origin
        .to_str()
        .ok()
        .zip(config.origin())
        .is_some_and(|(got, want)| got == want);
    if ok {
        Ok(())
    } else {
        Err(refused(
            StatusCode::FORBIDDEN,
            "request from another origin than the dashboard's",
        ))
    }
}

/// `POST /v1/auth/login` `{ "message": EIP-4361 text, "signature": 0x… (65 bytes) }`.
#[utoipa::path(post, path = "/v1/auth/login", request_body(content = String, content_type = "application/json", description = "{message, signature}"), responses((status = 200, description = "{address, csrf_token, expires_at}; sets the session cookie"), (status = 400, description = "malformed body or message"), (status = 401, description = "wrong domain, uri or chain, expired or not yet valid, unknown, used or expired nonce, bad signature"), (status = 403, description = "another origin"), (status = 413, description = "body over MAX_LOGIN_BODY"), (status = 415, description = "not Content-Type: application/json"), (status = 429, description = "too many attempts from this client network (Retry-After)")))]
pub(crate) async fn login(
    State(state): State<AuthState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    check_origin(&state.config, &headers)?;
    // A login is JSON: a cross-site form can send text/plain without a
    // CORS preflight, so anything else is refused before it is read.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a login is sent as Content-Type: application/json",
        ));
    }
    // Served without connect info (a router called in-process), every
    // client shares one bucket.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let client = client_network(peer);
    let network = session_network(peer);
    state
        .login_limit
        .check(&client)
        .map_err(|wait| rate_limited("login attempts from this network", wait))?;
    let bytes = axum::body::to_bytes(request.into_body(), MAX_LOGIN_BODY)
        .await
        .map_err(|_| {
            refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("login body unreadable or over {MAX_LOGIN_BODY} bytes"),
            )
        })?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        message: String,
        signature: String,
    }
    let login: Login = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("login body: {e}")))?;
    let now = now_ms();
    let expected = siwe::Expected {
        domain: state.config.domain.clone(),
        uri: state.config.uri.clone(),
        chain_id: state.chain_id,
    };
    let message = siwe::verify(&login.message, &login.signature, &expected, now / 1000).map_err(
        |e| match e {
            siwe::SiweError::TooLong { .. } | siwe::SiweError::Malformed { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            e => refused(StatusCode::UNAUTHORIZED, e.to_string()),
        },
    )?;
    consume_nonce(&state, &headers, &message.nonce, now).await?;
    let pool = &state.pool;
    sqlx::query("DELETE FROM auth_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await
        .map_err(db("forgetting old sessions"))?;
    let id = random_hex(32);
    let csrf = random_hex(32);
    // Until the message's Expiration Time if that comes first.
    let expires_at = (now + state.config.session_ttl.as_millis() as i64).min(
        message
            .expiration_time
            .as_ref()
            .map_or(i64::MAX, |(_, t)| t.saturating_mul(1000)),
    );
    let address = format!("{:#x}", message.address);
    sqlx::query(
        "INSERT INTO auth_sessions (session_hash, address, csrf_token, created_at, expires_at, client_network) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(format!("{:x}", keccak256(id.as_bytes())))
    .bind(address.clone())
    .bind(csrf.clone())
    .bind(now)
    .bind(expires_at)
    .bind(network.clone())
    .execute(pool)
    .await
    .map_err(db("storing a session"))?;
    // Only now, with the new session stored, does the one this browser
    // presented end: a login never leaves an older (possibly planted)
    // session behind it, and a failed login never ends one.
    if let Some(old) = session_id(&state.config, &headers) {
        sqlx::query("DELETE FROM auth_sessions WHERE session_hash = $1")
            .bind(format!("{:x}", keccak256(old.as_bytes())))
            .execute(pool)
            .await
            .map_err(db("ending the presented session"))?;
    }
    enforce_session_caps(&state, &address, &network).await?;
    tracing::info!(address = %message.address, "signed in");
    let mut response = json_response(
        StatusCode::OK,
        &json!({ "address": message.address, "csrf_token": csrf, "expires_at": expires_at }),
    );
    let max_age = u64::try_from((expires_at - now) / 1000).unwrap_or(0);
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&state.config, state.config.cookie_name(), &id, max_age)?,
    );
    Ok(response)
}

/// Keeps the session table within its caps after a login stored one: the
/// address's and the network's sessions beyond their caps end, oldest
/// first, and while the table holds more than [`AuthConfig::max_sessions`]
/// the network holding the most sessions gives up its oldest. Concurrent
/// logins may each trim, so the table can briefly hold a few more than the
/// cap (at most the logins in flight) and never stays above it.
async fn enforce_session_caps(
    state: &AuthState,
    address: &str,
    network: &str,
) -> Result<(), ApiError> {
    let pool = &state.pool;
    let config = &state.config;
    for (column, value, cap, during) in [
        (
            "address",
            address,
            config.max_sessions_per_address,
            "capping an address's sessions",
        ),
        (
            "client_network",
            network,
            config.max_sessions_per_network,
            "capping a network's sessions",
        ),
    ] {
        // `column` is one of two fixed names above, never input.
        let sql = format!(
            "DELETE FROM auth_sessions WHERE {column} = $1 AND session_hash NOT IN \
             (SELECT session_hash FROM auth_sessions WHERE {column} = $2 \
              ORDER BY created_at DESC, session_hash LIMIT $3)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value.to_owned())
            .bind(value.to_owned())
            .bind(cap.max(1))
            .execute(pool)
            .await
            .map_err(db(during))?;
    }
    let live: i64 = sqlx::query("SELECT COUNT(*) FROM auth_sessions")
        .fetch_one(pool)
        .await
        .map_err(db("counting sessions"))?
        .try_get(0)
        .map_err(db("counting sessions"))?;
    let over = live - config.max_sessions.max(1);
    if over > 0 {
        let largest: String = sqlx::query(
            "SELECT client_network FROM auth_sessions GROUP BY client_network \
             ORDER BY COUNT(*) DESC, client_network LIMIT 1",
        )
        .fetch_one(pool)
        .await
        .map_err(db("finding the largest network"))?
        .try_get(0)
        .map_err(db("finding the largest network"))?;
        sqlx::query(
            "DELETE FROM auth_sessions WHERE session_hash IN \
             (SELECT session_hash FROM auth_sessions WHERE client_network = $1 \
              ORDER BY created_at, session_hash LIMIT $2)",
        )
        .bind(largest.clone())
        .bind(over)
        .execute(pool)
        .await
        .map_err(db("ending the largest network's oldest sessions"))?;
        tracing::warn!(network = %largest, ended = over, "session table full: the network holding the most sessions gave up its oldest");
    }
    Ok(())
}

/// The value of cookie `name` in the request if it is `len` hex digits.
fn cookie<'h>(headers: &'h HeaderMap, name: &str, len: usize) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, v)| *n == name && v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(_, v)| v)
}

/// The session id in the request's cookies, if any (64 hex digits).
fn session_id<'h>(config: &AuthConfig, headers: &'h HeaderMap) -> Option<&'h str> {
    cookie(headers, config.cookie_name(), 64)
}

/// The request's live session, or 401; 429 when the session has used its
/// rate ([`AuthConfig::session_rate`]).
pub async fn session(state: &AuthState, headers: &HeaderMap) -> Result<Session, ApiError> {
    let anonymous = || refused(StatusCode::UNAUTHORIZED, "not signed in");
    let id = session_id(&state.config, headers).ok_or_else(anonymous)?;
    let hash = format!("{:x}", keccak256(id.as_bytes()));
    let row = sqlx::query(
        "SELECT address, csrf_token, expires_at, client_network FROM auth_sessions \
         WHERE session_hash = $1",
    )
    .bind(hash.clone())
    .fetch_optional(&state.pool)
    .await
    .map_err(db("reading a session"))?
    .ok_or_else(anonymous)?;
    let e = db("reading a session");
    let address: String = row.try_get(0).map_err(&e)?;
    let csrf_token: String = row.try_get(1).map_err(&e)?;
    let expires_at: i64 = row.try_get(2).map_err(&e)?;
    let network: String = row.try_get(3).map_err(&e)?;
    if expires_at <= now_ms() {
        return Err(refused(StatusCode::UNAUTHORIZED, "session expired"));
    }
    // Per network first (all its sessions together), then per session.
    state
        .network_limit
        .check(&network)
        .map_err(|wait| rate_limited("signed-in requests from this network", wait))?;
    state
        .session_limit
        .check(&hash)
        .map_err(|wait| rate_limited("requests in this session", wait))?;
    Ok(Session {
        address: address.parse().map_err(|_| anonymous())?,
        csrf_token,
        expires_at,
        hash,
    })
}

/// The request's live session whose CSRF token the request echoes in
/// `X-CSRF-Token` (constant-time comparison), from the configured origin:
/// 401 without a session, 403 without the token or from another origin.
pub async fn writer(state: &AuthState, headers: &HeaderMap) -> Result<Session, ApiError> {
    let s = session(state, headers).await?;
    check_origin(&state.config, headers)?;
    let sent = headers
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if !bool::from(sent.ct_eq(s.csrf_token.as_bytes())) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "missing or wrong X-CSRF-Token header",
        ));
    }
    Ok(s)
}

/// `POST /v1/auth/logout` (with `X-CSRF-Token`): ends the session, clears the cookie.
#[utoipa::path(post, path = "/v1/auth/logout", responses((status = 200, description = "{signed_out: true}; clears the cookie"), (status = 401, description = "not signed in"), (status = 403, description = "missing or wrong X-CSRF-Token, or another origin")))]
pub(crate) async fn logout(
    State(state): State<AuthState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = writer(&state, &headers).await?;
    sqlx::query("DELETE FROM auth_sessions WHERE session_hash = $1")
        .bind(s.hash)
        .execute(&state.pool)
        .await
        .map_err(db("ending a session"))?;
    let mut response = json_response(StatusCode::OK, &json!({ "signed_out": true }));
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&state.config, state.config.cookie_name(), "", 0)?,
    );
    Ok(response)
}

/// `GET /v1/auth/session`: who is signed in, the CSRF token, and the roles
/// read from chain state now.
#[utoipa::path(get, path = "/v1/auth/session", responses((status = 200, description = "{address, csrf_token, expires_at, roles: {auditor, owner, operator, signer}, manufacturers: [{id, operator, signer}], manufacturers_truncated, devices: [index], devices_truncated}"), (status = 401, description = "not signed in"), (status = 429, description = "the session's rate is used up (Retry-After)"), (status = 500, description = "database or RPC failure")))]
pub(crate) async fn session_info(
    State(state): State<AuthState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = session(&state, &headers).await?;
    let who = s.address;
    let mut manufacturers = Vec::new();
    let candidates =
        roles::candidate_manufacturers(&state.pool, who, MAX_SESSION_MANUFACTURERS + 1).await?;
    let manufacturers_truncated = candidates.len() as i64 > MAX_SESSION_MANUFACTURERS;
    for id in candidates
        .into_iter()
        .take(MAX_SESSION_MANUFACTURERS as usize)
    {
        let role = state.roles.manufacturer(&state.pool, id, who).await?;
        if role.any() {
            manufacturers.push(role);
        }
    }
    let candidates = roles::candidate_devices(&state.pool, who, MAX_SESSION_DEVICES + 1).await?;
    let truncated = candidates.len() as i64 > MAX_SESSION_DEVICES;
    let roles_ref = &state.roles;
    let mut devices: Vec<u64> = futures_util::stream::iter(
        candidates
            .into_iter()
            .take(MAX_SESSION_DEVICES as usize)
            .map(|i| async move {
                let d = roles_ref.device(i).await?;
                Ok::<_, Error>((d.owner == who && d.status != 0).then_some(i))
            }),
    )
    .buffer_unordered(8)
    .try_filter_map(|x| async move { Ok(x) })
    .try_collect()
    .await?;
    devices.sort_unstable();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "address": who,
            "csrf_token": s.csrf_token,
            "expires_at": s.expires_at,
            "roles": {
                "auditor": true,
                "owner": !devices.is_empty(),
                "operator": manufacturers.iter().any(|m| m.operator),
                "signer": manufacturers.iter().any(|m| m.signer),
            },
            "manufacturers": manufacturers,
            "manufacturers_truncated": manufacturers_truncated,
            "devices": devices,
            "devices_truncated": truncated,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(uri: &str) -> AuthConfig {
        AuthConfig::for_uri(&url::Url::parse(uri).unwrap()).unwrap()
    }

    #[test]
    fn config_follows_the_uri() {
        let c = config("http://127.0.0.1:8088/");
        assert_eq!(c.domain, "127.0.0.1:8088");
        assert_eq!(c.uri, "http://127.0.0.1:8088/");
        assert_eq!(c.cookie, CookieSecurity::PlainHttp);
        let c = config("https://fleet.example/");
        assert_eq!(c.domain, "fleet.example");
        assert_eq!(c.cookie, CookieSecurity::Secure);
        assert_eq!(c.origin().as_deref(), Some("https://fleet.example"));
    }

    #[test]
    fn cookies_carry_httponly_samesite_and_secure_when_asked() {
        let c = config("http://127.0.0.1:1/");
        let plain = set_cookie(&c, c.cookie_name(), "ab", 60).unwrap();
        assert_eq!(
            plain.to_str().unwrap(),
            "otaledger_session=ab; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let c = config("https://x.example/");
        let secure = set_cookie(&c, c.cookie_name(), "ab", 60).unwrap();
        assert_eq!(
            secure.to_str().unwrap(),
            "__Host-otaledger_session=ab; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
    }

    #[test]
    fn session_id_is_read_from_its_cookie_only() {
        let c = config("http://127.0.0.1:1/");
        let id = "a".repeat(64);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("other=1; otaledger_session={id}; x=y")
                .parse()
                .unwrap(),
        );
        assert_eq!(session_id(&c, &h), Some(id.as_str()));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "otaledger_session=short".parse().unwrap());
        assert_eq!(session_id(&c, &h), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("__Host-otaledger_session={id}").parse().unwrap(),
        );
        assert_eq!(session_id(&c, &h), None);
    }

    #[test]
    fn nonces_carry_their_time_and_are_bound_to_one_browser_and_key() {
        let key = NonceKey::random();
        let browser = "0123456789abcdef0123456789abcdef";
        let n = key.issue(1_700_000_000_123, browser);
        assert_eq!(n.len(), 64);
        assert!(n.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(key.issued_at(&n, browser), Some(1_700_000_000_123));
        // Another browser, another server (or a restart), a changed issue
        // time, a flipped tag bit, wrong lengths, non-hex: unknown.
        assert_eq!(key.issued_at(&n, &browser.replace('0', "f")), None);
        assert_eq!(NonceKey::random().issued_at(&n, browser), None);
        let mut later = alloy::hex::decode(&n).unwrap();
        later[7] ^= 1;
        assert_eq!(key.issued_at(&alloy::hex::encode(&later), browser), None);
        let mut flipped = alloy::hex::decode(&n).unwrap();
        flipped[31] ^= 0x80;
        assert_eq!(key.issued_at(&alloy::hex::encode(&flipped), browser), None);
        assert_eq!(key.issued_at(&n[..62], browser), None);
        assert_eq!(key.issued_at(&format!("{n}00"), browser), None);
        assert_eq!(key.issued_at(&n.replace(&n[..2], "zz"), browser), None);
        assert_eq!(key.issued_at("", browser), None);
        // One nonce, one spelling: the same bytes in upper case or behind a
        // `0x` (the message parser allows both characters) are another
        // text, which the used-nonce record would not recognise.
        assert_eq!(key.issued_at(&n.to_uppercase(), browser), None);
        assert_eq!(key.issued_at(&format!("0x{}", &n[2..]), browser), None);
        // Two nonces at the same millisecond differ.
        assert_ne!(n, key.issue(1_700_000_000_123, browser));
        assert_eq!(format!("{key:?}"), "NonceKey(<redacted>)");
    }
}
