//! `application/vnd.ipld.raw` responses: one block, read from the store (hash checked on read).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use cid::Cid;

use super::Ctx;
use super::errors::GatewayError;
use super::headers::{insert_common, insert_raw, not_modified, raw_etag};
use crate::Blockstore;

/// Multihash code of the identity "hash": the digest is the data (the `bafkqaaa` probe).
const IDENTITY: u64 = 0x00;

/// Answer a raw block request.
pub(super) async fn serve(ctx: &Ctx<'_>, cid: Cid) -> Result<Response, GatewayError> {
    let etag = raw_etag(&cid);
    if not_modified(ctx.headers, &etag) {
        return Ok(not_modified_response(&cid, &etag));
    }
    let data = load(&ctx.store, cid, ctx.only_if_cached).await?;
    let len = data.len();
    let mut resp = if ctx.head_only {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(data))
    };
    let headers = resp.headers_mut();
    insert_common(headers, &cid, &etag);
    insert_raw(headers, &cid);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(resp)
}

/// A `304 Not Modified` carrying the validators.
pub(super) fn not_modified_response(cid: &Cid, etag: &str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NOT_MODIFIED;
    insert_common(resp.headers_mut(), cid, etag);
    resp
}

/// Read one block: identity CIDs carry their data; others come from the store on a blocking thread.
pub(super) async fn load(
    store: &Blockstore,
    cid: Cid,
    only_if_cached: bool,
) -> Result<Vec<u8>, GatewayError> {
    if cid.hash().code() == IDENTITY {
        return Ok(cid.hash().digest().to_vec());
    }
    let store = store.clone();
    let got = tokio::task::spawn_blocking(move || store.get(&cid))
        .await
        .map_err(|e| GatewayError::Internal(format!("block reader task: {e}")))?;
    match got {
        Ok(Some(data)) => Ok(data),
        Ok(None) if only_if_cached => Err(GatewayError::NotCached(cid)),
        Ok(None) => Err(GatewayError::NotFound(cid)),
        Err(e) => Err(GatewayError::Internal(format!("reading {cid}: {e}"))),
    }
}
