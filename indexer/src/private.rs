//! The endpoints behind sign-in (`docs/auth.md`):
//!
//! - `PUT /v1/devices/{index}/label` `{label, position}`: the device's
//!   current on-chain owner names it and places it on the map (the fleet
//!   shows it while that address owns the device);
//! - `GET /v1/manufacturers/{id}/stats`: the manufacturer's install
//!   statistics and the alerts about its models, for its operator and signers.
//!
//! Writes answer 401 without a session, 403 without the CSRF token, 400 for
//! bad input (naming it), then 403 for another role; roles are read from
//! chain state at request time ([`crate::roles`]).

use std::collections::HashSet;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::{get, put},
};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use sqlx::Row as _;

use crate::{
    Error, alerts,
    api::ApiError,
    auth::{self, AuthState, json_response},
    dashboard::Projection,
    reports,
};

/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Largest label body read.
pub const MAX_LABEL_BODY: usize = 4096;
/// Largest `|x|` or `|y|` of a position on the `xy` plane.
pub const MAX_XY: f64 = 1e6;
/// Newest alerts scanned for a manufacturer's stats.
pub const MAX_STATS_ALERTS: i64 = 5000;

pub(crate) fn routes() -> Router<AuthState> {
    Router::new()
        .route("/v1/devices/{index}/label", put(put_label))
        .route("/v1/manufacturers/{id}/stats", get(stats))
}

fn db(during: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Database { during, source }
}

fn forbidden(message: String) -> ApiError {
    ApiError::Refused(StatusCode::FORBIDDEN, message)
}

/// A character a label may not hold: controls (C0, DEL, C1), line and
/// paragraph separators, and every format character ([`is_format_char`]:
/// the bidirectional ones and the invisible ones) that could make a label
/// read differently from what it is.
pub fn is_refused_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format_char(c)
}

/// Unicode's format characters (general category Cf, Unicode 15.1): the
/// bidirectional controls, and invisible ones a reader cannot see (zero-width
/// space and joiners, word joiner, byte-order mark, soft hyphen, interlinear
/// annotation, tag characters that smuggle hidden text). Zero-width joiner
/// is among them, so emoji sequences built with it are refused too.
pub fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Checks a label: at most [`MAX_LABEL_CHARS`] characters, none refused by
/// [`is_refused_char`].
pub fn check_label(label: &str) -> Result<(), String> {
    let n = label.chars().count();
    if n > MAX_LABEL_CHARS {
        return Err(format!(
            "label has {n} characters, at most {MAX_LABEL_CHARS}"
        ));
    }
    if let Some(c) = label.chars().find(|c| is_refused_char(*c)) {
        return Err(format!(
            "label holds U+{:04X} (control, bidirectional or invisible formatting characters are refused)",
            c as u32
        ));
    }
    Ok(())
}

/// Checks a position `[a, b]` in `projection`: finite; `[lat, lon]` within
/// ±90/±180, `[x, y]` within ±[`MAX_XY`].
pub fn check_position(p: [f64; 2], projection: Projection) -> Result<(), String> {
    if !p.iter().all(|c| c.is_finite()) {
        return Err("position must be two finite numbers".into());
    }
    match projection {
        Projection::Latlon if !(-90.0..=90.0).contains(&p[0]) => {
            Err(format!("latitude {} is outside -90..=90", p[0]))
        }
        Projection::Latlon if !(-180.0..=180.0).contains(&p[1]) => {
            Err(format!("longitude {} is outside -180..=180", p[1]))
        }
        Projection::Xy if p.iter().any(|c| c.abs() > MAX_XY) => {
            Err(format!("position {p:?} is outside ±{MAX_XY}"))
        }
        _ => Ok(()),
    }
}

/// The body of `PUT /v1/devices/{index}/label`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelBody {
    /// The name shown for the device ("" for none).
    label: String,
    /// Where the device is drawn, in the fleet's projection (`null`: its default place).
    position: Option<[f64; 2]>,
}

/// `PUT /v1/devices/{index}/label`: the device's current owner (on chain,
/// now) names and places it; an empty label and no position remove both.
#[utoipa::path(put, path = "/v1/devices/{index}/label", params(("index" = u64, Path, description = "device index")), request_body(content = String, content_type = "application/json", description = "{label: string (≤ 64 characters, no control or bidi characters), position: [a, b] | null}"), responses((status = 200, description = "{device_index, owner, label, position}"), (status = 400, description = "bad index, body, label or position"), (status = 401, description = "not signed in"), (status = 403, description = "missing or wrong X-CSRF-Token, another origin, or not the device's owner"), (status = 413, description = "body over MAX_LABEL_BODY")))]
async fn put_label(
    State(state): State<AuthState>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let session = auth::writer(&state, &headers).await?;
    let index: u64 = index.parse().map_err(|_| {
        ApiError::BadRequest(format!("device index must be a number, got {index:?}"))
    })?;
    let bytes = axum::body::to_bytes(body, MAX_LABEL_BODY)
        .await
        .map_err(|_| {
            ApiError::Refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("label body unreadable or over {MAX_LABEL_BODY} bytes"),
            )
        })?;
    let body: LabelBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("label body: {e}")))?;
    check_label(&body.label).map_err(ApiError::BadRequest)?;
    if let Some(p) = body.position {
        check_position(p, state.projection).map_err(ApiError::BadRequest)?;
    }
    let i = i64::try_from(index)
        .map_err(|_| ApiError::BadRequest(format!("device index {index} is too large")))?;
    let device = state.roles.device(index).await?;
    if device.status == 0 || device.owner != session.address {
        return Err(forbidden(format!(
            "{} does not own device {index} on chain",
            session.address
        )));
    }
    let owner = format!("{:#x}", session.address);
    if body.label.is_empty() && body.position.is_none() {
        sqlx::query("DELETE FROM device_labels WHERE device_index = $1")
            .bind(i)
            .execute(&state.pool)
            .await
            .map_err(db("removing a label"))?;
    } else {
        sqlx::query(
            "INSERT INTO device_labels (device_index, owner, label, position_a, position_b, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_index) DO UPDATE SET \
             owner = excluded.owner, label = excluded.label, position_a = excluded.position_a, \
             position_b = excluded.position_b, updated_at = excluded.updated_at",
        )
        .bind(i)
        .bind(owner.clone())
        .bind(body.label.clone())
        .bind(body.position.map(|p| p[0]))
        .bind(body.position.map(|p| p[1]))
        .bind(auth::now_ms())
        .execute(&state.pool)
        .await
        .map_err(db("storing a label"))?;
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "device_index": index,
            "owner": owner,
            "label": (!body.label.is_empty()).then_some(body.label),
            "position": body.position,
        }),
    ))
}

fn text(r: &sqlx::any::AnyRow, i: usize) -> Result<String, Error> {
    r.try_get(i).map_err(db("reading stats"))
}

fn int(r: &sqlx::any::AnyRow, i: usize) -> Result<i64, Error> {
    r.try_get(i).map_err(db("reading stats"))
}

/// `GET /v1/manufacturers/{id}/stats`: per model its claimed devices and
/// per release its purchases, revocation and install reports; the alerts
/// about the manufacturer, its models, releases or devices. Only for the
/// manufacturer's operator and signers (on chain, now).
#[utoipa::path(get, path = "/v1/manufacturers/{id}/stats", params(("id" = u32, Path, description = "manufacturer id")), responses((status = 200, description = "{manufacturer_id, role: {id, operator, signer}, models: [{model_id, name, devices, releases: [{release_id, version, revoked, purchased_devices, refunded_devices, reports}]}], alerts: [alert]}"), (status = 400, description = "bad id"), (status = 401, description = "not signed in"), (status = 403, description = "neither the manufacturer's operator nor one of its signers")))]
async fn stats(
    State(state): State<AuthState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = auth::session(&state, &headers).await?;
    let id: u32 = id.parse().map_err(|_| {
        ApiError::BadRequest(format!("manufacturer id must be a number, got {id:?}"))
    })?;
    let role = state
        .roles
        .manufacturer(&state.pool, id, session.address)
        .await?;
    if !role.any() {
        return Err(forbidden(format!(
            "{} is neither the operator nor a signer of manufacturer {id}",
            session.address
        )));
    }
    let pool = &state.pool;
    let models = sqlx::query(
        "SELECT m.model_id, m.name, (SELECT COUNT(*) FROM claims c WHERE c.model_id = m.model_id) \
         FROM models m WHERE m.manufacturer_id = $1 ORDER BY m.model_id",
    )
    .bind(i64::from(id))
    .fetch_all(pool)
    .await
    .map_err(db("reading stats"))?;
    let releases = sqlx::query(
        "SELECT r.model_id, r.release_id, r.version, \
         (SELECT COUNT(*) FROM revocations x WHERE x.release_id = r.release_id), \
         (SELECT COUNT(*) FROM purchase_devices p WHERE p.release_id = r.release_id), \
         (SELECT COUNT(*) FROM refund_devices d WHERE d.release_id = r.release_id) \
         FROM releases r JOIN models m ON m.model_id = r.model_id \
         WHERE m.manufacturer_id = $1 ORDER BY r.model_id, r.version",
    )
    .bind(i64::from(id))
    .fetch_all(pool)
    .await
    .map_err(db("reading stats"))?;
    let ids: Vec<String> = releases
        .iter()
        .map(|r| text(r, 1))
        .collect::<Result<_, _>>()?;
    let counts = reports::counts(pool, &ids).await?;
    let mut model_json = Vec::new();
    let mut model_ids = HashSet::new();
    for m in &models {
        let model_id = int(m, 0)?;
        model_ids.insert(model_id);
        let mut list = Vec::new();
        for r in &releases {
            if int(r, 0)? != model_id {
                continue;
            }
            let release_id = text(r, 1)?;
            list.push(json!({
                "release_id": release_id,
                "version": text(r, 2)?,
                "revoked": int(r, 3)? > 0,
                "purchased_devices": int(r, 4)?,
                "refunded_devices": int(r, 5)?,
                "reports": counts.get(&release_id).cloned().unwrap_or(Json::Null),
            }));
        }
        model_json.push(json!({
            "model_id": model_id,
            "name": text(m, 1)?,
            "devices": int(m, 2)?,
            "releases": list,
        }));
    }
    let release_ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let devices: HashSet<i64> = if model_ids.is_empty() {
        HashSet::new()
    } else {
        sqlx::query(
            "SELECT c.device_index FROM claims c JOIN models m ON m.model_id = c.model_id \
             WHERE m.manufacturer_id = $1",
        )
        .bind(i64::from(id))
        .fetch_all(pool)
        .await
        .map_err(db("reading stats"))?
        .iter()
        .map(|r| int(r, 0))
        .collect::<Result<_, _>>()?
    };
    let all = alerts::list(
        pool,
        &alerts::AlertFilter {
            rule: None,
            severity: None,
            source: None,
            after: None,
            limit: MAX_STATS_ALERTS,
        },
    )
    .await?;
    let mine: Vec<Json> = all
        .into_iter()
        .filter(|a| {
            let e = &a["evidence"];
            e["manufacturer_id"].as_i64() == Some(i64::from(id))
                || e["model_id"]
                    .as_i64()
                    .is_some_and(|m| model_ids.contains(&m))
                || e["release_id"]
                    .as_str()
                    .is_some_and(|r| release_ids.contains(r))
                || e["device_index"]
                    .as_i64()
                    .is_some_and(|d| devices.contains(&d))
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "manufacturer_id": id,
            "role": role,
            "models": model_json,
            "alerts": mine,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_refuse_controls_bidi_and_length() {
        assert!(check_label("Kitchen sensor 2 — 東京").is_ok());
        assert!(check_label("").is_ok());
        assert!(check_label(&"é".repeat(MAX_LABEL_CHARS)).is_ok());
        assert!(check_label(&"é".repeat(MAX_LABEL_CHARS + 1)).is_err());
        for bad in [
            "a\nb",
            "a\u{0}",
            "a\u{7f}",
            "a\u{85}",
            "ok\u{202E}gpj.exe",
            "\u{2066}x\u{2069}",
            "a\u{2028}b",
            "\u{061C}",
            // Invisible format characters (review of the sign-in).
            "Kitchen\u{200B}sensor",
            "a\u{200D}b",
            "a\u{2060}b",
            "\u{FEFF}a",
            "soft\u{00AD}hyphen",
            "a\u{FFF9}b",
            "tag\u{E0041}\u{E007F}",
        ] {
            let e = check_label(bad).unwrap_err();
            assert!(e.contains("U+"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn positions_are_bounded_by_projection() {
        assert!(check_position([48.1, 11.5], Projection::Latlon).is_ok());
        assert!(
            check_position([90.5, 0.0], Projection::Latlon)
                .unwrap_err()
                .contains("latitude")
        );
        assert!(
            check_position([0.0, -180.5], Projection::Latlon)
                .unwrap_err()
                .contains("longitude")
        );
        assert!(check_position([f64::NAN, 0.0], Projection::Xy).is_err());
        assert!(check_position([MAX_XY * 2.0, 0.0], Projection::Xy).is_err());
        assert!(check_position([500.0, -3.0], Projection::Xy).is_ok());
    }
}
