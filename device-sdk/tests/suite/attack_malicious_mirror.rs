//! Attack: a malicious mirror (gateway) in front of the real one, serving a tampered block, the
//! blocks of another file, or a truncated CAR. Step 6's verified fetch refuses each (every block
//! is checked against the CID that named it); alone, the download fails and nothing is
//! installed; followed by an honest gateway, the update completes from the verified position.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path as UrlPath, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use otaledger_device_sdk::{
    Error,
    client::{Outcome, Updater},
};
use otaledger_ipfs::{Cid, FetchError, fetch::AttemptError};

use crate::fleet::{Fleet, nothing_installed, serve};

#[derive(Clone, Copy)]
pub(crate) enum Mirror {
    /// Flips a byte in the middle of the response.
    TamperBlock,
    /// Serves another file's CAR.
    WrongBlock(Cid),
    /// Cuts the response in half.
    Truncate,
    /// Sends the first half of the response, then breaks the connection.
    DieHalfway,
}

struct Proxy {
    upstream: url::Url,
    mode: Mirror,
}

async fn proxy(
    State(p): State<Arc<Proxy>>,
    UrlPath(cid): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let cid = match p.mode {
        Mirror::WrongBlock(other) => other.to_string(),
        _ => cid,
    };
    let url = format!("{}ipfs/{cid}?{}", p.upstream, query.unwrap_or_default());
    let mut request = reqwest::Client::new().get(url);
    if let Some(accept) = headers.get(header::ACCEPT) {
        request = request.header(header::ACCEPT, accept.to_str().unwrap());
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut body = response.bytes().await.unwrap().to_vec();
    match p.mode {
        Mirror::TamperBlock => {
            let at = body.len() / 2;
            body[at] ^= 1;
        }
        Mirror::Truncate => body.truncate(body.len() / 2),
        Mirror::DieHalfway => {
            let half = body.split_off(body.len() / 2);
            let pieces: [Result<Vec<u8>, std::io::Error>; 2] = [
                Ok(body),
                Err(std::io::Error::other(format!(
                    "the mirror dies, {} bytes unsent",
                    half.len()
                ))),
            ];
            let stream = futures_util::stream::iter(pieces);
            return (
                status,
                [(header::CONTENT_TYPE, content_type)],
                axum::body::Body::from_stream(stream),
            )
                .into_response();
        }
        Mirror::WrongBlock(_) => {}
    }
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub(crate) async fn mirror(upstream: &url::Url, mode: Mirror) -> url::Url {
    serve(
        Router::new()
            .route("/ipfs/{cid}", get(proxy))
            .with_state(Arc::new(Proxy {
                upstream: upstream.clone(),
                mode,
            })),
    )
    .await
}

#[tokio::test]
async fn tampered_wrong_and_truncated_blocks_are_refused() {
    let f = Fleet::new().await;
    let release = f.publish(1, 600_000).await;
    f.issue(release.release_id, release.release_id);
    let other = f.add(&crate::fleet::image(99, 600_000));
    for mode in [
        Mirror::TamperBlock,
        Mirror::WrongBlock(other),
        Mirror::Truncate,
    ] {
        let bad = mirror(&f.gateway, mode).await;
        let dir = tempfile::tempdir().unwrap();
        let mut parts = f.parts(dir.path());
        parts.gateways = vec![bad.clone()];
        let mut updater = Updater::new(parts);
        let err = updater.run_once().await.unwrap_err();
        let Error::Download { source } = &err else {
            panic!("expected a download refusal, got {err}");
        };
        let FetchError::AllGatewaysFailed { failures, .. } = &**source else {
            panic!("{source}");
        };
        let attempt = &failures[0].error;
        let refused_as_expected = match mode {
            Mirror::TamperBlock => {
                matches!(attempt, AttemptError::Car(_) | AttemptError::Verify(_))
            }
            Mirror::WrongBlock(_) => {
                matches!(attempt, AttemptError::Car(_) | AttemptError::Verify(_))
            }
            Mirror::Truncate => matches!(
                attempt,
                AttemptError::Truncated { .. } | AttemptError::Car(_)
            ),
            Mirror::DieHalfway => {
                matches!(attempt, AttemptError::Transport(_) | AttemptError::Car(_))
            }
        };
        assert!(refused_as_expected, "{attempt}");
        nothing_installed(dir.path(), &updater, 0);

        // The same mirror followed by the honest gateway: the update completes.
        let dir = tempfile::tempdir().unwrap();
        let mut parts = f.parts(dir.path());
        parts.gateways = vec![bad, f.gateway.clone()];
        let mut updater = Updater::new(parts);
        assert!(matches!(
            updater.run_once().await.unwrap(),
            Outcome::Updated { version: 1, .. }
        ));
        assert_eq!(
            std::fs::read(dir.path().join("slots/slot-b.img")).unwrap(),
            release.image
        );
    }
}
