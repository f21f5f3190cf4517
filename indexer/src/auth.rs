//! Sign-In with Ethereum for what is not on chain (design and the test of
//! each claim in `docs/auth.md`):
//!
//! - `GET /v1/auth/nonce`: a random nonce, stored with its expiry, single use;
//! - `POST /v1/auth/login` `{message, signature}`: the EIP-4361 message is
//!   checked by [`crate::siwe::verify`] (domain, URI, chain id, times,
//!   signature), then its nonce is consumed by one conditional `UPDATE` (a
//!   replay fails even when two logins race); a session (random id in an
//!   `HttpOnly`, `SameSite=Strict` cookie, `Secure` when configured) and a
//!   CSRF token are issued;
//! - `GET /v1/auth/session`: the address, the CSRF token and the roles, read
//!   from chain state now ([`crate::roles`]);
//! - `POST /v1/auth/logout`: ends the session.
//!
//! Sessions are stored by the keccak256 of their id; ids and nonces never
//! reach the logs. Every write (`POST`/`PUT` with a session) must echo the
//! session's CSRF token in `X-CSRF-Token` (compared in constant time) and, if
//! the browser sends an `Origin`, come from the configured origin.

use std::{sync::Arc, time::Duration};

use alloy::primitives::{Address, keccak256};
use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::{StreamExt as _, TryStreamExt as _};
use rand_core::{OsRng, RngCore as _};
use serde_json::{Value as Json, json};
use sqlx::{AnyPool, Row as _};
use subtle::ConstantTimeEq as _;

use crate::{
    Error,
    api::ApiError,
    dashboard::Projection,
    roles::{self, ChainRoles},
    siwe,
};

/// Name of the session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "otaledger_session";
/// Name of the session cookie when it is `Secure` (the `__Host-` prefix: the
/// browser keeps it only with `Secure`, `Path=/` and no `Domain`).
pub const SECURE_SESSION_COOKIE: &str = "__Host-otaledger_session";
/// The header every write echoes the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest login body read.
pub const MAX_LOGIN_BODY: usize = 8 * 1024;
/// Most nonces pending (issued, unused, unexpired) at once; more get 503.
pub const MAX_PENDING_NONCES: i64 = 10_000;
/// Most owned devices `GET /v1/auth/session` checks on chain (more: `devices_truncated`).
pub const MAX_SESSION_DEVICES: i64 = 256;
/// Expired nonces are kept this long (so a late login hears "expired", not "unknown").
const NONCE_GRACE_MS: i64 = 3_600_000;

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl AuthConfig {
    /// Domain and URI of a dashboard served at `uri` (`http://host:port/`):
    /// the domain is its authority, the cookie `Secure` for `https`; sessions
    /// last 8 hours, nonces 10 minutes.
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
        })
    }

    fn cookie_name(&self) -> &'static str {
        match self.cookie {
            CookieSecurity::Secure => SECURE_SESSION_COOKIE,
            CookieSecurity::PlainHttp => SESSION_COOKIE,
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

fn db(during: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Database { during, source }
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

/// `GET /v1/auth/nonce`: a fresh nonce and what the message must name.
#[utoipa::path(get, path = "/v1/auth/nonce", responses((status = 200, description = "{nonce, expires_at (unix ms), domain, uri, chain_id}"), (status = 503, description = "too many sign-ins pending"), (status = 500, description = "database failure")))]
pub(crate) async fn nonce(State(state): State<AuthState>) -> Result<Response, ApiError> {
    let now = now_ms();
    let pool = &state.pool;
    sqlx::query("DELETE FROM auth_nonces WHERE expires_at < $1")
        .bind(now - NONCE_GRACE_MS)
        .execute(pool)
        .await
        .map_err(db("forgetting old nonces"))?;
    let pending: i64 =
        sqlx::query("SELECT COUNT(*) FROM auth_nonces WHERE used_at IS NULL AND expires_at > $1")
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(db("counting nonces"))?
            .try_get(0)
            .map_err(db("counting nonces"))?;
    if pending >= MAX_PENDING_NONCES {
        return Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many sign-ins pending (at most {MAX_PENDING_NONCES}); try again later"),
        ));
    }
    let nonce = random_hex(16);
    let expires_at = now + state.config.nonce_ttl.as_millis() as i64;
    sqlx::query("INSERT INTO auth_nonces (nonce, issued_at, expires_at) VALUES ($1, $2, $3)")
        .bind(nonce.clone())
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await
        .map_err(db("storing a nonce"))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "nonce": nonce,
            "expires_at": expires_at,
            "domain": state.config.domain,
            "uri": state.config.uri,
            "chain_id": state.chain_id,
        }),
    ))
}

/// Consumes `nonce` if we issued it, it is unused and unexpired: one
/// conditional `UPDATE`, so of two concurrent logins with it only one wins.
async fn consume_nonce(pool: &AnyPool, nonce: &str, now: i64) -> Result<(), ApiError> {
    let done = sqlx::query(
        "UPDATE auth_nonces SET used_at = $1 WHERE nonce = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(now)
    .bind(nonce.to_owned())
    .bind(now)
    .execute(pool)
    .await
    .map_err(db("consuming a nonce"))?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    let row = sqlx::query("SELECT used_at, expires_at FROM auth_nonces WHERE nonce = $1")
        .bind(nonce.to_owned())
        .fetch_optional(pool)
        .await
        .map_err(db("reading a nonce"))?;
    let reason = match row {
        None => "unknown nonce (not issued by this server)",
        Some(r) if r.try_get::<Option<i64>, _>(0).ok().flatten().is_some() => {
            "nonce already used (replayed message)"
        }
        Some(_) => "nonce expired",
    };
    Err(refused(StatusCode::UNAUTHORIZED, reason))
}

fn set_cookie(config: &AuthConfig, value: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    let secure = match config.cookie {
        CookieSecurity::Secure => "; Secure",
        CookieSecurity::PlainHttp => "",
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        config.cookie_name()
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
#[utoipa::path(post, path = "/v1/auth/login", request_body(content = String, content_type = "application/json", description = "{message, signature}"), responses((status = 200, description = "{address, csrf_token, expires_at}; sets the session cookie"), (status = 400, description = "malformed body or message"), (status = 401, description = "wrong domain, uri or chain, expired or not yet valid, unknown, used or expired nonce, bad signature"), (status = 403, description = "another origin"), (status = 413, description = "body over MAX_LOGIN_BODY")))]
pub(crate) async fn login(
    State(state): State<AuthState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    check_origin(&state.config, &headers)?;
    let bytes = axum::body::to_bytes(body, MAX_LOGIN_BODY)
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
    consume_nonce(&state.pool, &message.nonce, now).await?;
    sqlx::query("DELETE FROM auth_sessions WHERE expires_at < $1")
        .bind(now)
        .execute(&state.pool)
        .await
        .map_err(db("forgetting old sessions"))?;
    let id = random_hex(32);
    let csrf = random_hex(32);
    let ttl = state.config.session_ttl;
    let expires_at = now + ttl.as_millis() as i64;
    sqlx::query(
        "INSERT INTO auth_sessions (session_hash, address, csrf_token, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(format!("{:x}", keccak256(id.as_bytes())))
    .bind(format!("{:#x}", message.address))
    .bind(csrf.clone())
    .bind(now)
    .bind(expires_at)
    .execute(&state.pool)
    .await
    .map_err(db("storing a session"))?;
    tracing::info!(address = %message.address, "signed in");
    let mut response = json_response(
        StatusCode::OK,
        &json!({ "address": message.address, "csrf_token": csrf, "expires_at": expires_at }),
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&state.config, &id, ttl.as_secs())?,
    );
    Ok(response)
}

/// The session id in the request's cookies, if any (64 hex digits).
fn session_id<'h>(config: &AuthConfig, headers: &'h HeaderMap) -> Option<&'h str> {
    let name = config.cookie_name();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, v)| *n == name && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(_, v)| v)
}

/// The request's live session, or 401.
pub async fn session(state: &AuthState, headers: &HeaderMap) -> Result<Session, ApiError> {
    let anonymous = || refused(StatusCode::UNAUTHORIZED, "not signed in");
    let id = session_id(&state.config, headers).ok_or_else(anonymous)?;
    let hash = format!("{:x}", keccak256(id.as_bytes()));
    let row = sqlx::query(
        "SELECT address, csrf_token, expires_at FROM auth_sessions WHERE session_hash = $1",
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
    if expires_at <= now_ms() {
        return Err(refused(StatusCode::UNAUTHORIZED, "session expired"));
    }
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
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state.config, "", 0)?);
    Ok(response)
}

/// `GET /v1/auth/session`: who is signed in, the CSRF token, and the roles
/// read from chain state now.
#[utoipa::path(get, path = "/v1/auth/session", responses((status = 200, description = "{address, csrf_token, expires_at, roles: {auditor, owner, operator, signer}, manufacturers: [{id, operator, signer}], devices: [index], devices_truncated}"), (status = 401, description = "not signed in"), (status = 500, description = "database or RPC failure")))]
pub(crate) async fn session_info(
    State(state): State<AuthState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = session(&state, &headers).await?;
    let who = s.address;
    let mut manufacturers = Vec::new();
    for id in roles::candidate_manufacturers(&state.pool, who).await? {
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
        let plain = set_cookie(&config("http://127.0.0.1:1/"), "ab", 60).unwrap();
        assert_eq!(
            plain.to_str().unwrap(),
            "otaledger_session=ab; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let secure = set_cookie(&config("https://x.example/"), "ab", 60).unwrap();
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
}
