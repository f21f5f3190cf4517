//! An attacker's review of the indexer's Sign-In with Ethereum (commit
//! 1f8168b: stateless HMAC nonces bound to a sign-in cookie, login and
//! session rate limits, session caps). Each test is one attempt (or a few
//! clearly commented steps) against a real anvil and a real indexer over
//! HTTP. A passing test means the defence held. Attempts marked
//! `FINDING (fixed)` found a weakness: each asserted the secure behaviour
//! and failed until the fix named in its comment (docs/auth.md, "Limits").

mod common;
mod signin;

use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use common::Kind;
use otaledger_core::bindings::registry::UpdateRegistry;
use otaledger_indexer::{
    auth::{CookieSecurity, MAX_LIMITED_KEYS},
    limit::{Limiter, Rate},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signin::{
    Client, Msg, captured_logs, error, key, live_sessions, now, serve, serve_unlimited, setup, sign,
};

// ---------------------------------------------------------------- replays

/// Replays of one nonce under changed message fields, another address,
/// other spellings of the nonce, and after the used-nonce row is forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_nonce_spellings() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let attacker = PrivateKeySigner::random();
    let base = s.msg(&owner).await;
    let text = base.text();
    let (status, body, _) = s.login_raw(&text, &sign(&owner, &text)).await;
    assert_eq!(status, 200, "{body}");

    // 1. The same nonce in a message with other fields (another Issued At,
    // statement, expiry, Not Before), freshly signed by the same key: used.
    let mut variants = Vec::new();
    let mut m = base.clone();
    m.issued_at -= 1;
    variants.push(m);
    let mut m = base.clone();
    m.statement = "Another statement".into();
    variants.push(m);
    let mut m = base.clone();
    m.expiration = None;
    variants.push(m);
    let mut m = base.clone();
    m.not_before = Some(now() - 5);
    variants.push(m);
    for m in &variants {
        let t = m.text();
        let (status, body, _) = s.login_raw(&t, &sign(&owner, &t)).await;
        assert_eq!(status, 401, "{body}");
        assert!(error(&body).contains("already used"), "{body}");
    }
    // 2. The same nonce signed by another address: used (nonces are per
    // server, not per address).
    let t = base.by(&attacker).text();
    let (status, body, _) = s.login_raw(&t, &sign(&attacker, &t)).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("already used"), "{body}");

    // 3. Other spellings of the used nonce: upper case, `0x` instead of the
    // first byte, half upper: unknown (one nonce, one text).
    let n = base.nonce.clone();
    for spelling in [
        n.to_uppercase(),
        format!("0x{}", &n[2..]),
        format!("{}{}", &n[..32], n[32..].to_uppercase()),
    ] {
        let mut m = base.clone();
        m.nonce = spelling.clone();
        let t = m.text();
        let (status, body, _) = s.login_raw(&t, &sign(&owner, &t)).await;
        assert_ne!(status, 200, "{spelling}: {body}");
        assert!(error(&body).contains("unknown nonce"), "{spelling}: {body}");
    }
    // Whitespace or other characters around it do not parse at all (400).
    for spelling in [format!(" {n}"), format!("{n} "), format!("{n}\t")] {
        let t = base.text().replace(&n, &spelling);
        let (status, body, _) = s.login_raw(&t, &sign(&owner, &t)).await;
        assert_eq!(status, 400, "{spelling:?}: {body}");
    }

    // 4. A fresh nonce presented with the sign-in cookie in another spelling
    // (upper-case hex: still 32 hex digits, so it is read as a cookie) or
    // with a second, different sign-in cookie in front of the right one.
    let m = s.msg(&owner).await;
    let t = m.text();
    let sig = sign(&owner, &t);
    let right = s.signin_cookie().unwrap();
    let (name, value) = right.split_once('=').unwrap();
    for cookie in [
        format!("{name}={}", value.to_uppercase()),
        format!("{name}={}; {right}", "0".repeat(32)),
        format!("{name}=0x{}", &value[2..]),
        format!("{name}=\"{value}\""),
    ] {
        let (status, body, _) = s.login_with(&t, &sig, Some(cookie.clone())).await;
        assert_eq!(status, 401, "{cookie}: {body}");
    }
    // (The nonce itself is still good once, from its own browser.)
    let (status, body, _) = s.login_raw(&t, &sig).await;
    assert_eq!(status, 200, "{body}");

    // 5. After its expiry the used-nonce row is deleted (at the next
    // login); a replay then meets the expired tag, not a fresh nonce.
    let short = serve_unlimited(&s.indexer, |a| a.nonce_ttl = Duration::from_secs(2)).await;
    let m = short.msg(&owner).await;
    let t = m.text();
    let sig = sign(&owner, &t);
    let (status, body, _) = short.login_raw(&t, &sig).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    short.login(&PrivateKeySigner::random()).await; // forgets expired rows
    let (status, body, _) = short.login_raw(&t, &sig).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("nonce expired"), "{body}");
}

/// Eight different messages (different keys and times) carrying one nonce,
/// posted at once: exactly one session, on both databases.
async fn one_nonce_many_messages_race(kind: Kind) {
    let s = setup(kind).await;
    let base = s.msg(&key(&s.chain, 1)).await;
    let logins: Vec<(String, String)> = (0..8)
        .map(|i| {
            let k = PrivateKeySigner::random();
            let mut m = base.by(&k);
            m.issued_at -= i;
            let t = m.text();
            let sig = sign(&k, &t);
            (t, sig)
        })
        .collect();
    let before = live_sessions(&s.indexer).await;
    let attempts =
        futures_util::future::join_all(logins.iter().map(|(t, sig)| s.login_raw(t, sig))).await;
    let won = attempts.iter().filter(|a| a.0 == 200).count();
    assert_eq!(
        won,
        1,
        "{:?}",
        attempts.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert_eq!(live_sessions(&s.indexer).await, before + 1);
    s.db.remove().await;
}

// ---------------------------------------------------------------- times

/// Expired or not-yet-valid messages, within or beyond a wallet's clock
/// skew; a session ending with its message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_times() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    // Expiration Time a few seconds past (inside the 60 s Issued At skew):
    // refused, no skew on expiry.
    let mut m = s.msg(&owner).await;
    m.issued_at = now() - 30;
    m.expiration = Some(now() - 2);
    let t = m.text();
    let (status, body, _) = s.login_raw(&t, &sign(&owner, &t)).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("expired"), "{body}");
    // Not Before a few seconds ahead: refused.
    let mut m = s.msg(&owner).await;
    m.not_before = Some(now() + 20);
    let t = m.text();
    let (status, body, _) = s.login_raw(&t, &sign(&owner, &t)).await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("not valid before"), "{body}");
    // Expiration before Issued At (a nonsensical message): refused as expired.
    let mut m = s.msg(&owner).await;
    m.issued_at = now() + 30;
    m.expiration = Some(now() - 1);
    let t = m.text();
    let (status, _, _) = s.login_raw(&t, &sign(&owner, &t)).await;
    assert_eq!(status, 401);
    // Far-away times (year 0000 expiry, year 9999 issue): refused, no overflow.
    for (issued, exp) in [(now(), Some(-62_167_219_200)), (253_402_300_799, None)] {
        let mut m = s.msg(&owner).await;
        m.issued_at = issued;
        m.expiration = exp;
        let t = m.text();
        let (status, body, _) = s.login_raw(&t, &sign(&owner, &t)).await;
        assert_eq!(status, 401, "{body}");
    }
    // A message expiring in 3 s gives a session that ends with it, and a
    // cookie that says so.
    let mut m = s.msg(&owner).await;
    m.expiration = Some(now() + 3);
    let t = m.text();
    let (status, body, cookie) = s.login_raw(&t, &sign(&owner, &t)).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap();
    let c = Client {
        cookie: cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    assert!(body["expires_at"].as_i64().unwrap() <= (now() + 3) * 1000);
    let (status, _) = s
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body) = s
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = s
        .label(
            &c,
            s.scenario.devices[0].0,
            json!({"label": "x", "position": null}),
        )
        .await;
    assert_eq!(status, 401);
}

// ---------------------------------------------------------------- cookies

/// Cookie header tricks against the session lookup: other spellings of a
/// valid id, the other cookie name, duplicates, odd and oversized headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_header_tricks() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let c = s.login(&owner).await;
    let id = c.id().to_owned();
    assert_eq!(s.session_with_cookie(&c.cookie).await, 200);
    // Other spellings of the same id, or the id under another name: no session.
    for cookie in [
        format!("otaledger_session={}", id.to_uppercase()),
        format!("otaledger_session=0x{}", &id[2..]),
        format!("otaledger_session=\"{id}\""),
        format!("otaledger_session={id}0"),
        format!("otaledger_session= {id}x"),
        format!("__Host-otaledger_session={id}"),
        format!("OTALEDGER_SESSION={id}"),
        format!("otaledger_signin={id}"),
    ] {
        assert_eq!(s.session_with_cookie(&cookie).await, 401, "{cookie}");
    }
    // A malformed cookie of the right name in front is skipped; a
    // well-formed unknown one in front wins (and gets 401): either way no
    // session but the presented one is ever used.
    let junk = format!("otaledger_session=short; otaledger_session={id}");
    assert_eq!(s.session_with_cookie(&junk).await, 200);
    let other = format!(
        "otaledger_session={}; otaledger_session={id}",
        "a".repeat(64)
    );
    assert_eq!(s.session_with_cookie(&other).await, 401);
    // Two Cookie headers: both are read.
    let r = s
        .http
        .get(format!("{}/v1/auth/session", s.url))
        .header("cookie", "a=b")
        .header("cookie", &c.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A 60 KB cookie header of junk pairs before the session: no 500.
    let junk: String = (0..6000).map(|i| format!("k{i}=v; ")).collect();
    let status = s.session_with_cookie(&format!("{junk}{}", c.cookie)).await;
    assert!(status == 200 || status == 431 || status == 400, "{status}");
    // Non-UTF-8 bytes in the header are skipped, not fatal.
    let r = s
        .http
        .get(format!("{}/v1/auth/session", s.url))
        .header(
            "cookie",
            reqwest::header::HeaderValue::from_bytes(b"x=\xff\xfe; ").unwrap(),
        )
        .header("cookie", &c.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A server with `Secure` cookies reads only the `__Host-` names: a
    // plain-named cookie (which a sibling host or a network attacker can
    // plant over http) is ignored, for the session and the sign-in cookie.
    let secure = serve_unlimited(&s.indexer, |a| a.cookie = CookieSecurity::Secure).await;
    let r = secure
        .http
        .get(format!("{}/v1/auth/nonce", secure.url))
        .send()
        .await
        .unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.starts_with("__Host-otaledger_signin=") && set.ends_with("; Secure"),
        "{set}"
    );
    let nonce = r.json::<Value>().await.unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let binding = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let m = Msg {
        nonce,
        ..secure.msg(&owner).await
    };
    let t = m.text();
    let sig = sign(&owner, &t);
    let (status, body, _) = secure
        .login_with(&t, &sig, Some(format!("otaledger_signin={binding}")))
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(error(&body).contains("no sign-in cookie"), "{body}");
    let (status, body, cookie) = secure
        .login_with(&t, &sig, Some(format!("__Host-otaledger_signin={binding}")))
        .await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap();
    assert!(cookie.starts_with("__Host-otaledger_session="), "{cookie}");
    let sid = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(
        secure
            .session_with_cookie(&format!("otaledger_session={sid}"))
            .await,
        401
    );
    assert_eq!(
        secure
            .session_with_cookie(&format!("__Host-otaledger_session={sid}"))
            .await,
        200
    );
    // The plain server does not read the secure name either (checked above).
}

// ---------------------------------------------------------------- CSRF, origin

/// `Origin` look-alikes on the login and on a write; the CSRF token of
/// another session, a duplicated header, a case-changed token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_and_csrf_bypasses() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let d0 = s.scenario.devices[0].0;
    let c = s.login(&owner).await;
    let port = s.url.rsplit_once(':').unwrap().1.to_owned();
    let good = json!({"label": "x", "position": null});
    let path = format!("{}/v1/devices/{d0}/label", s.url);
    let origins = [
        "null".to_owned(),
        format!("{}/", s.url),
        format!("http://127.0.0.1:{}", port.parse::<u16>().unwrap() + 1),
        format!("https://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("HTTP://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}.evil.example"),
        format!("http://evil.example#{}", s.url),
        String::new(),
    ];
    for origin in &origins {
        let r = s
            .http
            .put(&path)
            .header("cookie", &c.cookie)
            .header("x-csrf-token", &c.csrf)
            .header("origin", origin)
            .json(&good)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "write from {origin:?}");
        let m = s.msg(&owner).await;
        let t = m.text();
        let r = s
            .http
            .post(format!("{}/v1/auth/login", s.url))
            .header("cookie", s.signin_cookie().unwrap())
            .header("origin", origin)
            .json(&json!({"message": t, "signature": sign(&owner, &t)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "login from {origin:?}");
    }
    // Two Origin headers, the right one second: the first is what counts.
    let r = s
        .http
        .put(&path)
        .header("cookie", &c.cookie)
        .header("x-csrf-token", &c.csrf)
        .header("origin", "http://evil.example")
        .header("origin", &s.url)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The exact origin works.
    let r = s
        .http
        .put(&path)
        .header("cookie", &c.cookie)
        .header("x-csrf-token", &c.csrf)
        .header("origin", &s.url)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The CSRF token of another session (an attacker's own), a case change,
    // a prefix, the token twice with the wrong one first.
    let other = s.another_browser().login(&PrivateKeySigner::random()).await;
    for token in [
        other.csrf.clone(),
        c.csrf.to_uppercase(),
        c.csrf[..32].to_owned(),
        format!("{},{}", other.csrf, c.csrf),
    ] {
        let (status, body) = s
            .call(
                Method::PUT,
                &format!("/v1/devices/{d0}/label"),
                Some(&c),
                Some(&token),
                Some(good.clone()),
            )
            .await;
        assert_eq!(status, 403, "{token}: {body}");
    }
    let r = s
        .http
        .put(&path)
        .header("cookie", &c.cookie)
        .header("x-csrf-token", &other.csrf)
        .header("x-csrf-token", &c.csrf)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Logout is a write too: no token, 403; GET is not routed.
    let (status, _) = s
        .call(
            Method::POST,
            "/v1/auth/logout",
            Some(&c),
            Some(&other.csrf),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = s
        .call(Method::GET, "/v1/auth/logout", Some(&c), None, None)
        .await;
    assert_eq!(status, 405);
    assert_eq!(s.session_with_cookie(&c.cookie).await, 200);
    // A login presenting another's session cookie ends it (F6): a planted
    // session does not survive; the attacker's own cannot be re-used after.
    let (status, body, _) = {
        let t = s.msg(&owner).await.text();
        let cookies = format!("{}; {}", s.signin_cookie().unwrap(), other.cookie);
        s.login_with(&t, &sign(&owner, &t), Some(cookies)).await
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.session_with_cookie(&other.cookie).await, 401);
}

/// The shape of a cross-site login: a form post (`text/plain`, no
/// preflight) carries a foreign `Origin` and none of the `SameSite=Strict`
/// cookies, so it is refused twice over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_form_login_is_refused() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let t = s.msg(&owner).await.text();
    let body = json!({"message": t, "signature": sign(&owner, &t)}).to_string();
    let post = |origin: Option<&str>, cookie: Option<String>| {
        let mut r = s
            .http
            .post(format!("{}/v1/auth/login", s.url))
            .header("content-type", "text/plain")
            .body(body.clone());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(post(Some("http://evil.example"), None).await, 403);
    assert_eq!(post(Some("null"), None).await, 403);
    // Without an Origin the content type refuses it (415) before anything
    // else is read.
    assert_eq!(post(None, None).await, 415);
    // The nonce is still usable by its own browser.
    let (status, body, _) = s.login_raw(&t, &sign(&owner, &t)).await;
    assert_eq!(status, 200, "{body}");
}

/// FINDING (fixed; low, defence in depth): the login reads its body as JSON
/// whatever its `Content-Type`. A `text/plain` form post is a "simple"
/// cross-site request (no CORS preflight), and a form can produce a JSON
/// body (`<input name='{"message":"…","signature":"0x…","x":"' value='"}'>`
/// does not work because of `deny_unknown_fields`, but the signer picks the
/// message, so the `=` the form inserts can sit inside the signed statement
/// or request id). Today only the `Origin` check and the `SameSite=Strict`
/// sign-in cookie stop a login CSRF (logging the victim into the attacker's
/// account); a browser that omits `Origin` on such a post, or a sign-in cookie
/// planted without `SameSite` by a sibling host over plain http, would let it
/// through. Fix: refuse a login (and every write) whose `Content-Type` is not
/// `application/json` (415), which forces a preflight cross-site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_non_json_content_type() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let t = s.msg(&owner).await.text();
    let r = s
        .http
        .post(format!("{}/v1/auth/login", s.url))
        .header("content-type", "text/plain")
        .header("cookie", s.signin_cookie().unwrap())
        .body(json!({"message": t, "signature": sign(&owner, &t)}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415, "a text/plain login was accepted");
}

// ---------------------------------------------------------------- bodies

/// Input bounds: the login body limit, label bodies that are huge, deep,
/// duplicated, out of range or of the wrong type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_bounds() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let d0 = s.scenario.devices[0].0;
    // Login: 8 KiB + 1 is 413 (with and without Content-Length); a body of
    // junk inside the limit is 400; neither uses a nonce.
    let m = s.msg(&owner).await;
    let t = m.text();
    let big = json!({"message": t, "signature": "0x", "pad": "x".repeat(8 * 1024)}).to_string();
    let r = s
        .http
        .post(format!("{}/v1/auth/login", s.url))
        .header("cookie", s.signin_cookie().unwrap())
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(512)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = s
        .http
        .post(format!("{}/v1/auth/login", s.url))
        .header("cookie", s.signin_cookie().unwrap())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    for junk in [
        "[]".to_owned(),
        "{\"message\": 1, \"signature\": 2}".to_owned(),
        format!("{}{}", "[".repeat(4000), "]".repeat(4000)),
    ] {
        let r = s
            .http
            .post(format!("{}/v1/auth/login", s.url))
            .header("cookie", s.signin_cookie().unwrap())
            .header("content-type", "application/json")
            .body(junk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
    // Duplicate keys in one JSON object (serde_json keeps the last; the
    // derive refuses duplicates): 400, not "the first one is checked, the
    // second one is used".
    let dup = format!(
        "{{\"message\": {}, \"signature\": {}, \"message\": {}}}",
        Value::from(t.clone()),
        Value::from(sign(&owner, &t)),
        Value::from(t.replace("Sign in", "Sign on"))
    );
    let r = s
        .http
        .post(format!("{}/v1/auth/login", s.url))
        .header("cookie", s.signin_cookie().unwrap())
        .header("content-type", "application/json")
        .body(dup)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, body, _) = s.login_raw(&t, &sign(&owner, &t)).await;
    assert_eq!(status, 200, "the nonce survived all that: {body}");
    let c = s.login(&owner).await;

    // Labels.
    let (status, _) = s.label_raw(&c, d0, vec![b' '; 5000]).await;
    assert_eq!(status, 413);
    for (raw, what) in [
        (
            r#"{"label":"x","position":[1e400,0]}"#.to_owned(),
            "overflow",
        ),
        (r#"{"label":"x","position":[NaN,0]}"#.to_owned(), "NaN"),
        (
            r#"{"label":"x","position":[Infinity,0]}"#.to_owned(),
            "Infinity",
        ),
        (r#"{"label":"x","position":["1",0]}"#.to_owned(), "string"),
        (r#"{"label":"x","position":[1,2,3]}"#.to_owned(), "three"),
        (
            r#"{"label":"x","position":{"0":1,"1":2}}"#.to_owned(),
            "object",
        ),
        (
            r#"{"label":"x","label":"y","position":null}"#.to_owned(),
            "duplicate",
        ),
        (r#"{"label":null,"position":null}"#.to_owned(), "null label"),
        (
            r#"{"label":"\ud800","position":null}"#.to_owned(),
            "lone surrogate",
        ),
        (format!("{}{}", "[".repeat(1000), "]".repeat(1000)), "deep"),
        (
            r#"{"label":"x","position":null}trailing"#.to_owned(),
            "trailing",
        ),
        (
            r#"{"label":"x","position":[91,0]}"#.to_owned(),
            "xy plane is default, so 91 is fine",
        ),
    ] {
        let (status, body) = s.label_raw(&c, d0, raw.into_bytes()).await;
        if what.starts_with("xy") {
            assert_eq!(status, 200, "{what}: {body}");
        } else {
            assert_eq!(status, 400, "{what}: {body}");
        }
    }
    // The bounds themselves are accepted; 64 four-byte characters too.
    for body in [
        json!({"label": "x", "position": [1e6, -1e6]}),
        json!({"label": "𝕏".repeat(64), "position": null}),
    ] {
        let (status, b) = s.label(&c, d0, body.clone()).await;
        assert_eq!(status, 200, "{body}: {b}");
    }
    let (status, _) = s
        .label(&c, d0, json!({"label": "x", "position": [1e6 + 1.0, 0]}))
        .await;
    assert_eq!(status, 400);
    // The device index path: signs, leading zeros, spaces, overflow.
    for index in ["-1", "%20 1", "1e3", "18446744073709551616", "0x1"] {
        let (status, body) = s
            .call(
                Method::PUT,
                &format!("/v1/devices/{index}/label"),
                Some(&c),
                Some(&c.csrf),
                Some(json!({"label": "x", "position": null})),
            )
            .await;
        assert_eq!(status, 400, "{index}: {body}");
    }
}

/// FINDING (fixed; low): labels keep invisible format characters. The docs say
/// "a label must read as what it is" and refuse controls, separators and
/// bidi formatting, but other `Cf` (format) characters pass: zero-width
/// space/joiner/non-joiner (U+200B–U+200D), word joiner (U+2060), BOM
/// (U+FEFF), soft hyphen (U+00AD), interlinear annotation (U+FFF9–FFFB) and
/// the invisible tag characters (U+E0000 block, used for "ASCII smuggling"
/// of hidden text). A label can then look identical to another while being
/// different text, or carry hidden text into anything that later reads it.
/// Impact: low (labels are the owner's own, display-only). Fix: refuse
/// general category Cf (and perhaps noncharacters/private use) in
/// `private::is_refused_char`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_refuse_invisible_format_characters() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    let c = s.login(&owner).await;
    let d0 = s.scenario.devices[0].0;
    let mut accepted = Vec::new();
    for ch in [
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{2060}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{FFF9}',
        '\u{E0041}',
    ] {
        let (status, _) = s
            .label(
                &c,
                d0,
                json!({"label": format!("Kitchen{ch}sensor"), "position": null}),
            )
            .await;
        if status == 200 {
            accepted.push(format!("U+{:04X}", ch as u32));
        }
    }
    assert!(
        accepted.is_empty(),
        "accepted invisible characters: {accepted:?}"
    );
}

// ---------------------------------------------------------------- roles

/// Labels of devices one does not own, statistics of manufacturers one is
/// not operator or signer of, a tampered mirror, a transfer not yet indexed.
async fn roles_cannot_be_borrowed(kind: Kind) {
    let s = setup(kind).await;
    let owner = key(&s.chain, 1);
    let attacker = PrivateKeySigner::random();
    let a = s.scenario.manufacturer;
    let b = s.other_manufacturer;
    let (d0, d2) = (s.scenario.devices[0].0, s.scenario.devices[2].0);
    let evil = s.another_browser().login(&attacker).await;
    let label = json!({"label": "pwned", "position": null});
    // Another's device, an unclaimed / nonexistent one: 403, nothing stored.
    for index in [d0, d2, 999_999, i64::MAX as u64] {
        let (status, body) = s.label(&evil, index, label.clone()).await;
        assert_eq!(status, 403, "{index}: {body}");
    }
    // Statistics of A, B, and of a manufacturer that does not exist (its
    // zero operator must not match anything): 403.
    for id in [a, b, 0, 77, u32::MAX] {
        let (status, body) = s
            .call(
                Method::GET,
                &format!("/v1/manufacturers/{id}/stats"),
                Some(&evil),
                None,
                None,
            )
            .await;
        assert_eq!(status, 403, "{id}: {body}");
    }
    // A tampered (or wrongly synced) mirror: a newer signer set of B that
    // lists the attacker. Its hash is not B's signersHash on chain, so it
    // grants nothing (and B's real signer loses the role while it is the
    // newest: fail closed).
    let pool = s.indexer.api_state(2).pool;
    sqlx::query(
        "INSERT INTO signer_sets (block_number, block_hash, tx_hash, log_index, manufacturer_id, nonce, threshold) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(1_000_000_i64)
    .bind(format!("0x{}", "11".repeat(32)))
    .bind(format!("0x{}", "22".repeat(32)))
    .bind(0_i64)
    .bind(i64::from(b))
    .bind(1_i64)
    .bind(1_i64)
    .execute(&pool)
    .await
    .unwrap();
    for (position, who) in [attacker.address(), key(&s.chain, 3).address()]
        .iter()
        .enumerate()
    {
        sqlx::query(
            "INSERT INTO signer_set_members (block_number, block_hash, tx_hash, log_index, position, manufacturer_id, signer) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(1_000_000_i64)
        .bind(format!("0x{}", "11".repeat(32)))
        .bind(format!("0x{}", "22".repeat(32)))
        .bind(0_i64)
        .bind(position as i64)
        .bind(i64::from(b))
        .bind(format!("{who:#x}"))
        .execute(&pool)
        .await
        .unwrap();
    }
    let (status, body) = s
        .call(
            Method::GET,
            &format!("/v1/manufacturers/{b}/stats"),
            Some(&evil),
            None,
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, session) = s
        .call(Method::GET, "/v1/auth/session", Some(&evil), None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(session["roles"]["signer"], false, "{session}");
    assert_eq!(session["manufacturers"], json!([]), "{session}");

    // A transfer on chain the indexer has not synced: the new owner may
    // write at once, the old one may not.
    let newcomer = key(&s.chain, 4);
    let r = UpdateRegistry::new(s.chain.deployment.registry, &s.chain.owner)
        .transferDevice(d0, newcomer.address())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(r.status());
    let old = s.login(&owner).await;
    let (status, body) = s.label(&old, d0, label.clone()).await;
    assert_eq!(status, 403, "{body}");
    let new = s.another_browser().login(&newcomer).await;
    let (status, body) = s
        .label(&new, d0, json!({"label": "mine", "position": null}))
        .await;
    assert_eq!(status, 200, "{body}");
    s.db.remove().await;
}

// ---------------------------------------------------------------- limits

/// FINDING (fixed; medium, availability): the global session cap is a lock-out
/// anyone can trigger. `max_sessions` (50,000) is global and a login
/// beyond it is refused with 503, while sessions cost only a fresh key and
/// the only limit on creating them is the per-network login bucket (20 at
/// once, then one per 3 s). One IPv4 address therefore holds ~9,600 live
/// sessions over their 8 h lifetime, so six addresses fill the cap; an
/// IPv6 /56 (256 /64 buckets, a normal home allocation) fills it in ~10
/// minutes, a /48 at once. From then on nobody else can sign in for up to
/// 8 hours, and the attacker keeps it full. The per-address cap (16) does
/// nothing against fresh keys. Shown here with the cap scaled down to 60
/// and three attacker "networks" (127.0.0.2–4) at the default login rate:
/// a user from 127.0.0.1 who never logged in before gets 503. Fix: cap
/// live sessions per client network (store it with the session; beyond the
/// cap end that network's oldest session, like the per-address cap), with
/// IPv6 aggregated wider (/56 or /48) for this purpose, so one network can
/// never hold more than a small share of `max_sessions`; or when full, end
/// the oldest session of the network holding the most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_session_cap_cannot_be_filled_by_one_party() {
    let s = setup(Kind::Sqlite).await;
    let live = live_sessions(&s.indexer).await;
    let server = serve(&s.indexer, |a| {
        a.max_sessions = live + 60;
        a.session_rate = Rate::new(10_000, Duration::from_millis(1));
    })
    .await;
    // The attacker: three networks, each its burst of 20 logins with fresh keys.
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let browser = server.browser_from(ip);
        for _ in 0..20 {
            let (status, body, _) = browser.try_login(&PrivateKeySigner::random()).await;
            assert_eq!(status, 200, "{ip}: {body}");
        }
    }
    // A legitimate user on another network, first login of the day.
    let (status, body, _) = server.try_login(&key(&s.chain, 1)).await;
    assert_eq!(
        status, 200,
        "locked out by another party's sessions: {status} {body}"
    );
}

/// The attacker's first step in the finding above, as a held claim: one
/// network cannot exceed its login burst, whatever keys it uses, and the
/// 503 at the cap ends nobody else's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_network_is_held_to_its_login_burst() {
    let s = setup(Kind::Sqlite).await;
    let victim = s.login(&key(&s.chain, 1)).await;
    let server = serve(&s.indexer, |_| {}).await;
    let attacker = server.browser_from("127.0.0.9");
    let mut ok = 0;
    for _ in 0..25 {
        let (status, _, _) = attacker.try_login(&PrivateKeySigner::random()).await;
        if status == 200 {
            ok += 1;
        } else {
            assert_eq!(status, 429);
        }
    }
    assert_eq!(ok, 20);
    // Another network is not affected by the attacker's bucket.
    let (status, body, _) = server
        .browser_from("127.0.0.10")
        .try_login(&key(&s.chain, 1))
        .await;
    assert_eq!(status, 200, "{body}");
    // At the global cap, a login succeeds and the network holding the most
    // sessions (the attacker's 20) gives up its oldest: the victim's
    // session, on another network, stays.
    let live = live_sessions(&s.indexer).await;
    let full = serve_unlimited(&s.indexer, |a| a.max_sessions = live).await;
    let (status, body, _) = full
        .browser_from("127.0.0.11")
        .try_login(&PrivateKeySigner::random())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.session_with_cookie(&victim.cookie).await, 200);
    assert_eq!(live_sessions(&s.indexer).await, live);
}

/// FINDING (fixed; medium, availability and RPC cost): the per-session rate limit
/// does not bound what one client can make the server read from chain,
/// because one client network may hold any number of sessions. Every
/// `GET /v1/manufacturers/{id}/stats` (any id, any session) costs an
/// `eth_call` before its 403; each session may send 30 at once and two a
/// second. One network logs in 20 sessions at once (its login burst), so
/// it sends 600 chain-reading requests at once; over a session's 8 hours
/// it accumulates ~9,600 sessions, i.e. ~19,000 allowed requests per second
/// from one IPv4 address. The 16-call semaphore bounds concurrency, not
/// demand: the rest queue without limit or timeout, and every legitimate
/// role check (label writes, stats, the session answer) waits behind them,
/// while a metered RPC provider bills each call. Shown at the default
/// rates: one network's burst, counted. Secure behaviour asserted: a
/// network gets no more than two sessions' bursts (60) of requests at once.
/// Fix: also rate-limit signed-in requests per client network (a second
/// bucket keyed like the login one), and/or cap live sessions per network
/// (see `global_session_cap_cannot_be_filled_by_one_party`); give role
/// calls a queue bound or timeout (503 when full).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_network_cannot_multiply_its_chain_reads() {
    let s = setup(Kind::Sqlite).await;
    // The default network burst (60), refilled slowly enough that the count
    // does not depend on how long the run takes.
    let server = serve(&s.indexer, |a| {
        a.network_rate = Rate::new(60, Duration::from_secs(60));
    })
    .await;
    let attacker = server.browser_from("127.0.0.6");
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(attacker.login(&PrivateKeySigner::random()).await);
    }
    use futures_util::StreamExt as _;
    let path = format!("/v1/manufacturers/{}/stats", s.scenario.manufacturer);
    let requests: Vec<&Client> = sessions
        .iter()
        .flat_map(|c| std::iter::repeat_n(c, 30))
        .collect();
    let statuses: Vec<StatusCode> = futures_util::stream::iter(requests)
        .map(|c| {
            let path = path.clone();
            let attacker = &attacker;
            async move {
                attacker
                    .call(Method::GET, &path, Some(c), None, None)
                    .await
                    .0
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let served = statuses.iter().filter(|s| **s != 429).count();
    assert!(
        statuses.iter().all(|s| *s == 403 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(
        served, 60,
        "one client network had {served} chain-reading requests served at once"
    );
}

/// FINDING (fixed; low): a refused login still ends the session it presented.
/// `login` deletes the presented session before the global cap check, so
/// a signed-in user who signs in again (switching account, or the page
/// re-running its sign-in) while the cap is full gets 503 *and* loses the
/// session it had; with the lock-out above, an attacker turns every such
/// re-login into a logout. Fix: check the cap (or do the whole login) in
/// one transaction and delete the presented session only once the new one
/// is stored (the check should also count the presented session as freed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_login_keeps_the_presented_session() {
    let s = setup(Kind::Sqlite).await;
    let owner = key(&s.chain, 1);
    s.another_browser().login(&PrivateKeySigner::random()).await;
    let c = s.login(&owner).await;
    // The table is full: the login is not refused (the network holding the
    // most gives up its oldest), and the session it presented ends only
    // because the new one replaced it.
    let live = live_sessions(&s.indexer).await;
    let full = serve_unlimited(&s.indexer, |a| a.max_sessions = live - 1).await;
    let t = full.msg(&owner).await.text();
    let cookies = format!("{}; {}", full.signin_cookie().unwrap(), c.cookie);
    let (status, body, _) = full
        .login_with(&t, &sign(&owner, &t), Some(cookies.clone()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(live_sessions(&s.indexer).await < live);
    // A login refused (a bad signature) keeps the session it presented.
    let d = s.login(&owner).await;
    let t = full.msg(&owner).await.text();
    let cookies = format!("{}; {}", full.signin_cookie().unwrap(), d.cookie);
    let (status, body, _) = full
        .login_with(&t, &sign(&PrivateKeySigner::random(), &t), Some(cookies))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        s.session_with_cookie(&d.cookie).await,
        200,
        "the refused login ended the session it presented"
    );
}

/// FINDING (fixed; low): the global session cap is not atomic. `login` counts
/// live sessions, then inserts, in separate statements outside a
/// transaction, so logins racing at the cap all see room: with one free
/// slot, up to 7 of 8 simultaneous logins won on SQLite and up to 8 of 8 on
/// PostgreSQL (a race: some runs win only one, so this ignored test may
/// pass on a given run). The overshoot is bounded only by how many logins are in flight
/// at once (login buckets × networks, the pool size), so `max_sessions` is
/// a soft bound. Fix: make the check and the insert one statement
/// (`INSERT … SELECT … WHERE (SELECT COUNT(*) …) < $max`) or serialise
/// logins (a transaction with a lock on a counter row / advisory lock).
async fn concurrent_logins_respect_the_cap(kind: Kind) {
    let s = setup(kind).await;
    let live = live_sessions(&s.indexer).await;
    let server = serve_unlimited(&s.indexer, |a| a.max_sessions = live + 1).await;
    let mut prepared = Vec::new();
    for _ in 0..8 {
        let b = server.another_browser();
        let k = PrivateKeySigner::random();
        let t = b.msg(&k).await.text();
        let sig = sign(&k, &t);
        prepared.push((b, t, sig));
    }
    let attempts =
        futures_util::future::join_all(prepared.iter().map(|(b, t, sig)| b.login_raw(t, sig)))
            .await;
    let won = attempts.iter().filter(|a| a.0 == 200).count();
    let statuses: Vec<_> = attempts.iter().map(|a| a.0).collect();
    assert!(won >= 1, "{statuses:?}");
    assert!(
        live_sessions(&s.indexer).await <= live + 1,
        "{won} logins won at a cap of one free slot: {statuses:?}"
    );
    s.db.remove().await;
}

// FINDING (fixed; low): the limiter's eviction scanned the whole map under
// its mutex for every new key once MAX_LIMITED_KEYS busy keys were held
// (~9 ms per new key in a debug build). It now drops the fullest sixteenth
// per pass, one pass per MAX_LIMITED_KEYS / 16 new keys; the count of
// passes is asserted by `limit::tests::a_full_map_is_swept_once_per_sixteenth`
// (a count, not a timing: timings belong in benchmarks).

/// The limiter's promise at the real size: a flood of other keys never
/// resets an exhausted bucket (it is the emptiest, so never the one dropped).
#[test]
fn an_exhausted_bucket_survives_a_key_flood() {
    let l = Limiter::new(Rate::new(30, Duration::from_millis(500)), MAX_LIMITED_KEYS);
    let t = Instant::now();
    let victim = u64::MAX;
    for _ in 0..30 {
        l.check_at(&victim, t).unwrap();
    }
    assert!(l.check_at(&victim, t).is_err());
    for k in 0..(MAX_LIMITED_KEYS as u64 + 200) {
        // Each flood key takes a token (so none is forgotten as full).
        l.check_at(&k, t).unwrap();
    }
    assert!(l.len() <= MAX_LIMITED_KEYS);
    assert!(
        l.check_at(&victim, t).is_err(),
        "the flood reset the bucket"
    );
}

// ---------------------------------------------------------------- logs

/// No secret (nonce, session id, CSRF token, sign-in cookie) reaches the
/// logs on PostgreSQL, through every path: session info, a label, stats,
/// refused logins of each kind, a replay, a rate-limited request, logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_on_any_path() {
    let logs = captured_logs();
    let s = setup(Kind::Postgres).await;
    let owner = key(&s.chain, 1);
    let m = s.msg(&owner).await;
    let t = m.text();
    let (status, body, cookie) = s.login_raw(&t, &sign(&owner, &t)).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap();
    let c = Client {
        cookie: cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    let (status, _) = s
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .label(
            &c,
            s.scenario.devices[0].0,
            json!({"label": "k", "position": null}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .call(
            Method::GET,
            &format!("/v1/manufacturers/{}/stats", s.scenario.manufacturer),
            Some(&c),
            None,
            None,
        )
        .await;
    assert_eq!(status, 403);
    // Refusals: a replay, a wrong signer, a nonce from another browser, a
    // malformed message naming the nonce, a wrong CSRF token.
    let (status, _, _) = s.login_raw(&t, &sign(&owner, &t)).await;
    assert_eq!(status, 401);
    let m2 = s.msg(&owner).await;
    let t2 = m2.text();
    let (status, _, _) = s
        .login_raw(&t2, &sign(&PrivateKeySigner::random(), &t2))
        .await;
    assert_eq!(status, 401);
    let (status, _, _) = s
        .another_browser()
        .login_with(
            &t2,
            &sign(&owner, &t2),
            Some(format!("otaledger_signin={}", "b".repeat(32))),
        )
        .await;
    assert_eq!(status, 401);
    let bad = format!("{t2}\nNonce: {}", m2.nonce);
    let (status, _, _) = s.login_raw(&bad, &sign(&owner, &bad)).await;
    assert_eq!(status, 400);
    let (status, _) = s
        .call(Method::POST, "/v1/auth/logout", Some(&c), Some("00"), None)
        .await;
    assert_eq!(status, 403);
    // Rate-limited on a slow server sharing the database.
    let slow = serve(&s.indexer, |a| {
        a.session_rate = Rate::new(1, Duration::from_secs(60))
    })
    .await;
    let (status, _) = slow
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = slow
        .call(Method::GET, "/v1/auth/session", Some(&c), None, None)
        .await;
    assert_eq!(status, 429);
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
    for secret in [&m.nonce, &m2.nonce, &c.id().to_owned(), &c.csrf, &signin] {
        assert!(!text.contains(secret.as_str()), "{secret} was logged");
    }
    s.db.remove().await;
}

both_databases!(
    one_nonce_many_messages_race,
    roles_cannot_be_borrowed,
    concurrent_logins_respect_the_cap,
);
