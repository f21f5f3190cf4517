//! Sign-In with Ethereum and the endpoints behind it, over HTTP against a
//! real anvil and a real indexer (no browser): login and logout, each
//! refusal of a login, the CSRF and role checks of every write, roles read
//! from chain state at request time (a transfer takes effect before the
//! indexer syncs), on SQLite and PostgreSQL.

mod common;
mod signin;

use std::time::Duration;

use alloy::{
    primitives::{Signature, U256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use common::Kind;
use otaledger_core::bindings::registry::UpdateRegistry;
use otaledger_indexer::limit::Rate;
use reqwest::Method;
use serde_json::{Value, json};
use signin::{
    Client, Msg, captured_logs, error, key, live_sessions, now, serve, serve_unlimited, setup, sign,
};

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
    let short = serve_unlimited(&s.indexer, |a| a.nonce_ttl = Duration::ZERO).await;
    let text = short.msg(&owner).await.text();
    let (status, body, _) = short.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("nonce expired"), "{body}");
    let short = serve_unlimited(&s.indexer, |a| a.session_ttl = Duration::ZERO).await;
    let c = short.login(&owner).await;
    let (status, body) = short
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("expired"), "{body}");
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
    let signin = s.signin_cookie().unwrap();
    let signin = signin.split_once('=').unwrap().1.to_owned();
    for secret in [&m.nonce, &id, &c.csrf, &signin] {
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

/// What an anonymous client can make the server do is bounded (review of
/// the sign-in, findings F1–F6 in docs/auth.md): nonces cost nothing and
/// bind to one browser, logins are rate-limited per client network, live
/// sessions are capped in all and per address, a session ends when its
/// message expires or its browser logs in again, and every session is
/// rate-limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_work_is_bounded() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let pool = s.indexer.api_state(2).pool;
    let used_nonces = || {
        let pool = pool.clone();
        async move {
            use sqlx::Row as _;
            let n: i64 = sqlx::query("SELECT COUNT(*) FROM auth_nonces")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get(0);
            n
        }
    };

    // F1: a nonce flood (more than the 10,000 pending nonces the first
    // design allowed) writes nothing and locks nobody out.
    let nonces_before = used_nonces().await;
    let flood = s.another_browser();
    let url = format!("{}/v1/auth/nonce", s.url);
    use futures_util::StreamExt as _;
    futures_util::stream::iter(0..12_000)
        .map(|_| {
            let (http, url) = (flood.http.clone(), url.clone());
            async move {
                let r = http.get(url).send().await.unwrap();
                assert_eq!(r.status(), 200);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(used_nonces().await, nonces_before);
    let c = s.login(&owner).await;

    // F4: a nonce is bound to the browser that asked for it.
    let m = s.msg(&owner).await;
    let text = m.text();
    let sig = sign(&owner, &text);
    let elsewhere = s.another_browser();
    elsewhere.nonce().await; // that browser's own sign-in cookie
    let (status, body, _) = elsewhere.login_raw(&text, &sig).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("unknown nonce"), "{body}");
    let (status, body, _) = s.another_browser().login_raw(&text, &sig).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("no sign-in cookie"), "{body}");

    // F6: logging in again ends the session the browser presented.
    let (status, body, cookie) = s.login_presenting(&text, &sig, Some(&c)).await;
    assert_eq!(status, 200, "{body}");
    assert!(cookie.is_some());
    let (status, _) = s
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 401, "the presented session ended");

    // F5: a session ends when the signed message expires, if sooner.
    let mut m = s.msg(&owner).await;
    m.expiration = Some(now() + 30);
    let text = m.text();
    let (status, body, cookie) = s.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["expires_at"].as_i64().unwrap() <= (now() + 30) * 1000,
        "{body}"
    );
    let cookie = cookie.unwrap();
    let max_age: u64 = cookie
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age <= 30, "{cookie}");

    // F2: sessions per address are capped (the oldest end) …
    let capped = serve_unlimited(&s.indexer, |a| a.max_sessions_per_address = 2).await;
    let first = capped.login(&owner).await;
    let second = capped.another_browser().login(&owner).await;
    let third = capped.another_browser().login(&owner).await;
    for (c, live) in [(&first, false), (&second, true), (&third, true)] {
        let (status, _) = capped
            .call(Method::GET, "/v1/auth/session", Some(c), None, None)
            .await;
        assert_eq!(status == 200, live, "{status}");
    }
    // … and so are sessions in all: fresh keys cost nothing, so a login
    // beyond the cap is not refused (that would lock everyone out) but the
    // network holding the most sessions gives up its oldest.
    let live = live_sessions(&s.indexer).await;
    let full = serve_unlimited(&s.indexer, |a| a.max_sessions = live + 1).await;
    full.login(&PrivateKeySigner::random()).await;
    let stranger = PrivateKeySigner::random();
    let newest = full.login(&stranger).await;
    assert_eq!(live_sessions(&s.indexer).await, live + 1);
    let (status, body) = full
        .call(Method::GET, "/v1/auth/session", Some(&newest), None, None)
        .await;
    assert_eq!(status, 200, "{body}");

    // F2: a login loop from one network gets 429 after the default burst
    // (20), failed attempts included; Retry-After says when to come back.
    let limited = serve(&s.indexer, |_| {}).await;
    let mut accepted = 0;
    let mut last = None;
    for i in 0..25 {
        let k = PrivateKeySigner::random();
        let text = limited.msg(&k).await.text();
        let sig = if i % 2 == 0 {
            sign(&k, &text)
        } else {
            "0x12".into()
        };
        let r = limited
            .http
            .post(format!("{}/v1/auth/login", limited.url))
            .header("cookie", limited.signin_cookie().unwrap())
            .json(&json!({ "message": text, "signature": sig }))
            .send()
            .await
            .unwrap();
        if r.status() != 429 {
            accepted += 1;
        } else {
            last = Some(r);
        }
    }
    assert_eq!(accepted, 20);
    let r = last.unwrap();
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert!(error(&body).contains("too many login attempts"), "{body}");

    // F3: a session's requests are rate-limited (each may read the chain);
    // another session keeps its own budget.
    let slow = serve_unlimited(&s.indexer, |a| {
        a.session_rate = Rate::new(3, Duration::from_secs(60));
    })
    .await;
    let a = slow.login(&owner).await;
    let b = slow.another_browser().login(&owner).await;
    for _ in 0..3 {
        let (status, body) = slow
            .call(Method::GET, "/v1/auth/session", Some(&a), None, None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = slow
        .call(Method::GET, "/v1/auth/session", Some(&a), None, None)
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(error(&body).contains("requests in this session"), "{body}");
    let (status, body) = slow
        .label(
            &a,
            s.scenario.devices[0].0,
            json!({"label": "x", "position": null}),
        )
        .await;
    assert_eq!(status, 429, "writes share the budget: {body}");
    let (status, body) = slow
        .call(Method::GET, "/v1/auth/session", Some(&b), None, None)
        .await;
    assert_eq!(status, 200, "{body}");
}

/// `GET /v1/auth/nonce?address=` writes the message to sign (pages have no
/// keccak-256 for the EIP-55 address): it names this server, the address in
/// EIP-55 form and a statement, expires with the session lifetime, and logs
/// in once signed; malformed addresses and unknown parameters are 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_writes_the_message_to_sign() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let lower = format!("{:#x}", owner.address());
    let get = |query: String| {
        let (http, url, jar) = (s.http.clone(), s.url.clone(), s.jar.clone());
        async move {
            let mut r = http.get(format!("{url}/v1/auth/nonce{query}"));
            if let Some(c) = jar.lock().unwrap().clone() {
                r = r.header("cookie", c);
            }
            let r = r.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    s.nonce().await; // the browser's sign-in cookie
    let (status, body) = get(format!(
        "?address={}",
        lower.to_uppercase().replace("0X", "0x")
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body["message"].as_str().unwrap().to_owned();
    let m = otaledger_indexer::siwe::SiweMessage::parse(&text).unwrap();
    assert_eq!(m.address, owner.address());
    assert!(text.contains(&owner.address().to_checksum(None)), "{text}");
    assert_eq!(m.domain, s.domain);
    assert_eq!(m.uri, format!("{}/", s.url));
    assert_eq!(m.chain_id, s.chain_id);
    assert_eq!(m.nonce, body["nonce"].as_str().unwrap());
    assert_eq!(
        m.statement.as_deref(),
        Some(otaledger_indexer::auth::SIGN_IN_STATEMENT)
    );
    assert!((m.issued_at.1 - now()).abs() <= 2, "{text}");
    assert_eq!(m.expiration_time.unwrap().1, m.issued_at.1 + 8 * 3600);
    let (status, body, cookie) = s.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 200, "{body}");
    assert!(cookie.is_some());
    // Signed once, it logs in once.
    let (status, body, _) = s.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 401, "{body}");
    for bad in [
        "?address=0x12",
        "?address=12345678901234567890123456789012345678901234",
        "?address=0xg234567890123456789012345678901234567890",
        "?address=%200x1234567890123456789012345678901234567890",
        "?address=0x1234567890123456789012345678901234567890&x=1",
    ] {
        let (status, body) = get(bad.to_owned()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

both_databases!(sign_in_labels_and_roles);
