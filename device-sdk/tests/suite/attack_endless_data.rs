//! Attack: endless data. A gateway that streams a block without end (no `Content-Length`), and a
//! key service that does the same. Both are read only up to their bounds (the block-size limit;
//! `MAX_KEY_RESPONSE`), then refused; nothing is installed.

use std::convert::Infallible;

use axum::{
    Router,
    body::Body,
    extract::RawQuery,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use otaledger_device_sdk::{
    Error,
    client::{HttpKeyService, Updater},
};
use otaledger_ipfs::{FetchError, fetch::AttemptError};

use crate::fleet::{Fleet, nothing_installed, serve};

fn endless() -> Body {
    Body::from_stream(futures_util::stream::repeat_with(|| {
        Ok::<_, Infallible>(vec![0x5a_u8; 64 * 1024])
    }))
}

/// CAR requests get 406 (so the client asks block by block), raw blocks never end.
async fn flood(RawQuery(query): RawQuery) -> Response {
    if query.unwrap_or_default().contains("format=car") {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/vnd.ipld.raw")],
        endless(),
    )
        .into_response()
}

#[tokio::test]
async fn an_endless_block_and_an_endless_key_are_refused() {
    let f = Fleet::new().await;
    let release = f.publish(1, 50_000).await;
    f.issue(release.release_id, release.release_id);

    let gateway = serve(Router::new().route("/ipfs/{cid}", get(flood))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.gateways = vec![gateway];
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    let Error::Download { source } = &err else {
        panic!("{err}");
    };
    let FetchError::AllGatewaysFailed { failures, .. } = &**source else {
        panic!("{source}");
    };
    assert!(
        matches!(failures[0].error, AttemptError::BlockTooLarge { .. }),
        "{}",
        failures[0]
    );
    // Read no more than the block limit plus one network read.
    assert!(failures[0].received <= otaledger_ipfs::MAX_BLOCK_SIZE as u64 + (1 << 20));
    nothing_installed(dir.path(), &updater, 0);

    let keys =
        serve(Router::new().route("/v1/keys/{release}/{device}", get(|| async { endless() })))
            .await;
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.key_services = vec![Box::new(HttpKeyService::new(keys).unwrap())];
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    assert!(
        matches!(&err, Error::KeyServiceUnavailable { reasons }
            if reasons[0].contains("exceeds")),
        "{err}"
    );
    nothing_installed(dir.path(), &updater, 0);
}
