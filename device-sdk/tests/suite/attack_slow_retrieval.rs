//! Attack: slow retrieval. A gateway that trickles the bundle to hold the device (TUF's slow
//! retrieval attack) is abandoned once its rate stays below the minimum for the grace period;
//! alone the download fails, followed by an honest gateway the update completes.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{Path as UrlPath, RawQuery, State},
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use otaledger_device_sdk::{
    Error,
    client::{Outcome, Updater},
};
use otaledger_ipfs::{FetchError, FetchOptions, fetch::AttemptError};

use crate::fleet::{Fleet, nothing_installed, serve};

/// Proxies the real gateway at 512 bytes per 100 ms (5 KiB/s).
async fn trickle(
    State(upstream): State<Arc<url::Url>>,
    UrlPath(cid): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let url = format!("{upstream}ipfs/{cid}?{}", query.unwrap_or_default());
    let response = reqwest::Client::new()
        .get(url)
        .header(
            header::ACCEPT,
            "application/vnd.ipld.car; version=1; order=dfs; dups=n",
        )
        .send()
        .await
        .unwrap();
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.bytes().await.unwrap().to_vec();
    let chunks: Vec<Vec<u8>> = body.chunks(512).map(<[u8]>::to_vec).collect();
    let stream = futures_util::stream::unfold(chunks.into_iter(), |mut rest| async move {
        let next = rest.next()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((Ok::<_, std::convert::Infallible>(next), rest))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

#[tokio::test]
async fn a_gateway_below_the_minimum_rate_is_abandoned() {
    let f = Fleet::new().await;
    let release = f.publish(1, 200_000).await;
    f.issue(release.release_id, release.release_id);
    let slow = serve(
        Router::new()
            .route("/ipfs/{cid}", get(trickle))
            .with_state(Arc::new(f.gateway.clone())),
    )
    .await;
    let fetch = FetchOptions {
        min_rate: 64 * 1024,
        rate_grace: Duration::from_secs(1),
        ..FetchOptions::default()
    };

    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.gateways = vec![slow.clone()];
    parts.fetch = fetch.clone();
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    let Error::Download { source } = &err else {
        panic!("{err}");
    };
    let FetchError::AllGatewaysFailed { failures, .. } = &**source else {
        panic!("{source}");
    };
    assert!(
        matches!(failures[0].error, AttemptError::TooSlow { .. }),
        "{}",
        failures[0]
    );
    nothing_installed(dir.path(), &updater, 0);

    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.gateways = vec![slow, f.gateway.clone()];
    parts.fetch = fetch;
    let mut updater = Updater::new(parts);
    assert!(matches!(
        updater.run_once().await.unwrap(),
        Outcome::Updated { version: 1, .. }
    ));
}
