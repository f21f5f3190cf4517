//! Response headers the Trustless Gateway specification makes mandatory, and Etags.

use axum::http::{HeaderMap, HeaderValue, header};
use cid::Cid;

use super::request::{CarRequest, MEDIA_CAR, MEDIA_RAW};
use crate::traverse::DagScope;

/// `Content-Type` of every CAR response: the only variant this gateway produces.
pub(crate) const CAR_CONTENT_TYPE: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";
/// `Cache-Control` of every successful response: content addressed data never changes.
pub(crate) const IMMUTABLE: &str = "public, max-age=29030400, immutable";

/// The Etag of a raw block response.
pub(crate) fn raw_etag(cid: &Cid) -> String {
    format!("\"{cid}.raw\"")
}

/// The Etag of a CAR response: varies with the scope and the byte range (spec: `dag-scope`, `entity-bytes`).
pub(crate) fn car_etag(cid: &Cid, car: &CarRequest) -> String {
    let scope = match car.scope {
        DagScope::Block => "block",
        DagScope::Entity => "entity",
        DagScope::All => "all",
    };
    match &car.range {
        Some(range) => format!("\"{cid}.car.v1.dfs.n.{scope}.{}\"", range.etag_part()),
        None => format!("\"{cid}.car.v1.dfs.n.{scope}\""),
    }
}

/// Whether `If-None-Match` names `etag` (or `*`): the client's copy is current (304).
pub(crate) fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// Headers every successful (200/304) response carries.
pub(crate) fn insert_common(headers: &mut HeaderMap, cid: &Cid, etag: &str) {
    let path = format!("/ipfs/{cid}");
    let set = |h: &mut HeaderMap, name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(headers, header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    set(
        headers,
        header::HeaderName::from_static("x-ipfs-path"),
        &path,
    );
    set(
        headers,
        header::HeaderName::from_static("x-ipfs-roots"),
        &cid.to_string(),
    );
}

/// `Content-Type` and `Content-Disposition: attachment` for a raw block.
pub(crate) fn insert_raw(headers: &mut HeaderMap, cid: &Cid) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_RAW));
    insert_disposition(headers, &format!("{cid}.bin"));
}

/// `Content-Type` and `Content-Disposition: attachment` for a CAR stream.
pub(crate) fn insert_car(headers: &mut HeaderMap, cid: &Cid) {
    debug_assert!(CAR_CONTENT_TYPE.starts_with(MEDIA_CAR));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(CAR_CONTENT_TYPE),
    );
    insert_disposition(headers, &format!("{cid}.car"));
}

fn insert_disposition(headers: &mut HeaderMap, filename: &str) {
    // CIDs are base32/base58 text: always a valid quoted header value.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::request::EntityBytes;

    #[test]
    fn etag_varies_with_scope_and_range() {
        let cid: Cid = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
            .parse()
            .unwrap();
        let all = car_etag(
            &cid,
            &CarRequest {
                scope: DagScope::All,
                range: None,
            },
        );
        let entity = car_etag(
            &cid,
            &CarRequest {
                scope: DagScope::Entity,
                range: None,
            },
        );
        let ranged = car_etag(
            &cid,
            &CarRequest {
                scope: DagScope::Entity,
                range: Some(EntityBytes {
                    from: 0,
                    to: Some(9),
                }),
            },
        );
        assert_ne!(all, entity);
        assert_ne!(entity, ranged);
        assert_ne!(raw_etag(&cid), all);
    }

    #[test]
    fn if_none_match_lists() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(not_modified(&h, "\"b\""));
        assert!(!not_modified(&h, "\"c\""));
    }
}
