//! The Kubo RPC client does not follow redirects: an RPC endpoint (or something in front of it)
//! answering 3xx cannot send the client, with its `Authorization`, to another host.
#![cfg(all(feature = "server", feature = "client"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use otaledger_ipfs::{KuboClient, KuboError};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    let elsewhere = serve(Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            r#"{"Version":"0.38.1","Commit":"","Repo":"16","System":"amd64/linux","Golang":"go1.24"}"#
        }
    }))
    .await;
    let target = format!("{elsewhere}/api/v0/version");
    let kubo =
        serve(
            Router::new().fallback(move || {
                let target = target.clone();
                async move {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response()
                }
            }),
        )
        .await;
    let client = KuboClient::new(&kubo)
        .unwrap()
        .with_authorization("Bearer secret");
    let err = client.version().await.unwrap_err();
    assert!(
        matches!(err, KuboError::UnexpectedStatus { status: 307, .. }),
        "{err:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
