//! Parsing a trustless gateway request: the CID, the response format and the CAR parameters.
//!
//! Kept apart from serving so every rule of the Trustless Gateway specification
//! is tested on plain values: `?format=` takes precedence over `Accept`; a
//! missing `Accept` without `format` is a 400; a CAR variant this gateway cannot
//! produce (`version` other than 1, an `order` other than `dfs`/`unk`, `dups=y`)
//! is skipped during negotiation and, when nothing else is acceptable, a 406.

use cid::Cid;

use super::errors::GatewayError;
use crate::traverse::DagScope;

/// The media type of a single raw block.
pub(crate) const MEDIA_RAW: &str = "application/vnd.ipld.raw";
/// The media type of a CAR stream.
pub(crate) const MEDIA_CAR: &str = "application/vnd.ipld.car";

/// `entity-bytes=from:to` as sent: offsets may be negative (from the end), `to` may be `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityBytes {
    /// First byte (inclusive); negative counts from the end.
    pub(crate) from: i64,
    /// Last byte (inclusive); negative counts from the end; `None` is `*` (end of file).
    pub(crate) to: Option<i64>,
}

impl EntityBytes {
    fn parse(value: &str) -> Result<Self, GatewayError> {
        let invalid = |reason| GatewayError::InvalidParam {
            name: "entity-bytes",
            value: value.to_owned(),
            reason,
        };
        let (from, to) = value.split_once(':').ok_or(invalid("expected from:to"))?;
        let from: i64 = parse_offset(from).ok_or(invalid("from is not an integer"))?;
        let to = match to {
            "*" => None,
            t => Some(parse_offset(t).ok_or(invalid("to is not an integer or *"))?),
        };
        if let Some(to) = to
            && from >= 0
            && to >= 0
            && to < from
        {
            return Err(invalid("to is before from"));
        }
        Ok(Self { from, to })
    }

    /// Resolve against a file of `size` bytes: `Ok(None)` for an empty range
    /// (served as `dag-scope=block`), else the inclusive `(first, last)` bytes.
    pub(crate) fn resolve(&self, size: u64) -> Result<Option<(u64, u64)>, GatewayError> {
        let abs = |v: i64| -> i128 {
            if v < 0 {
                i128::from(size) + i128::from(v)
            } else {
                i128::from(v)
            }
        };
        let from = abs(self.from).max(0);
        let to = match self.to {
            None => i128::from(size) - 1,
            Some(t) => abs(t).min(i128::from(size) - 1),
        };
        if from >= i128::from(size) && size > 0 && self.from >= 0 {
            return Err(GatewayError::RangeOutside {
                from: self.from.to_string(),
                to: self.to.map_or("*".into(), |t| t.to_string()),
                size,
            });
        }
        if to < from {
            return Ok(None);
        }
        // Both are within 0..size here, so the casts are lossless.
        Ok(Some((from as u64, to as u64)))
    }

    /// The form used in the Etag, e.g. `0-*` or `-1024-*`.
    pub(crate) fn etag_part(&self) -> String {
        match self.to {
            Some(to) => format!("{}-{}", self.from, to),
            None => format!("{}-*", self.from),
        }
    }
}

/// Digits with an optional leading minus (no `+`, no spaces).
fn parse_offset(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The parameters of a CAR response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CarRequest {
    /// `dag-scope`, `all` when absent (`entity` when `entity-bytes` is given).
    pub(crate) scope: DagScope,
    /// `entity-bytes`, if any.
    pub(crate) range: Option<EntityBytes>,
}

/// The response format asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/vnd.ipld.raw`: one block.
    Raw,
    /// `application/vnd.ipld.car; version=1; order=dfs; dups=n`.
    Car(CarRequest),
}

/// A parsed trustless request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrustlessRequest {
    /// The root CID from the path.
    pub(crate) cid: Cid,
    /// What to send back.
    pub(crate) format: Format,
}

/// Which plain format negotiation chose, before the CAR query parameters are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    Car,
}

/// Known gateway formats that a trustless gateway does not serve (406, not 400).
const KNOWN_UNSUPPORTED_FORMATS: &[&str] =
    &["tar", "json", "cbor", "dag-json", "dag-cbor", "ipns-record"];

/// Parse a request to `/ipfs/{cid}` with its query pairs and `Accept` header.
pub(crate) fn parse(
    cid: &str,
    query: &[(String, String)],
    accept: Option<&str>,
) -> Result<TrustlessRequest, GatewayError> {
    let cid = Cid::try_from(cid).map_err(|e| GatewayError::InvalidCid {
        value: cid.to_owned(),
        reason: e.to_string(),
    })?;
    let param = |name: &'static str| -> Result<Option<&str>, GatewayError> {
        let mut values = query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(GatewayError::InvalidParam {
                name,
                value: first.unwrap_or_default().to_owned(),
                reason: "given more than once",
            });
        }
        Ok(first)
    };

    // `format` takes precedence over `Accept` (trustless gateway spec, "format").
    let kind = match param("format")? {
        Some("raw") => Kind::Raw,
        Some("car") => Kind::Car,
        Some(f) if KNOWN_UNSUPPORTED_FORMATS.contains(&f) => {
            return Err(GatewayError::UnsupportedFormat(f.to_owned()));
        }
        Some(f) => {
            return Err(GatewayError::InvalidParam {
                name: "format",
                value: f.to_owned(),
                reason: "unknown format",
            });
        }
        None => negotiate(accept.ok_or(GatewayError::MissingAccept)?)?,
    };

    // The query's CAR parameters must name a variant we produce, whatever `Accept` said.
    if let Some(v) = param("car-version")?
        && v != "1"
    {
        return Err(GatewayError::NotAcceptable(format!("car-version={v}")));
    }
    if let Some(o) = param("car-order")?
        && o != "dfs"
        && o != "unk"
    {
        return Err(GatewayError::NotAcceptable(format!("car-order={o}")));
    }
    match param("car-dups")? {
        None | Some("n") => {}
        Some(d) => return Err(GatewayError::NotAcceptable(format!("car-dups={d}"))),
    }

    let range = param("entity-bytes")?.map(EntityBytes::parse).transpose()?;
    let scope = match param("dag-scope")? {
        None if range.is_some() => DagScope::Entity,
        None => DagScope::All,
        Some("entity") => DagScope::Entity,
        Some(s @ ("block" | "all")) if range.is_some() => {
            return Err(GatewayError::InvalidParam {
                name: "dag-scope",
                value: s.to_owned(),
                reason: "entity-bytes implies dag-scope=entity",
            });
        }
        Some("block") => DagScope::Block,
        Some("all") => DagScope::All,
        Some(s) => {
            return Err(GatewayError::InvalidParam {
                name: "dag-scope",
                value: s.to_owned(),
                reason: "expected block, entity or all",
            });
        }
    };

    let format = match kind {
        Kind::Raw => {
            for name in ["dag-scope", "entity-bytes"] {
                if let Some(v) = param(name)? {
                    return Err(GatewayError::InvalidParam {
                        name,
                        value: v.to_owned(),
                        reason: "only valid for CAR responses",
                    });
                }
            }
            Format::Raw
        }
        Kind::Car => Format::Car(CarRequest { scope, range }),
    };
    Ok(TrustlessRequest { cid, format })
}

/// Content negotiation over `Accept` (RFC 9110 12.5.1): the acceptable type with the
/// highest `q`, earlier entries winning ties.
fn negotiate(accept: &str) -> Result<Kind, GatewayError> {
    let mut best: Option<(u16, Kind)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut q = 1000u16;
        let mut acceptable = true;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => q = parse_q(v).unwrap_or(0),
                "version" => acceptable &= v == "1",
                "order" => acceptable &= v == "dfs" || v == "unk",
                "dups" => acceptable &= v == "n",
                _ => {}
            }
        }
        let kind = match media.as_str() {
            MEDIA_RAW => Kind::Raw,
            MEDIA_CAR if acceptable => Kind::Car,
            _ => continue,
        };
        if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, kind));
        }
    }
    best.map(|(_, k)| k)
        .ok_or_else(|| GatewayError::NotAcceptable(accept.chars().take(200).collect()))
}

/// `q` as thousandths (`0.5` → 500); `None` if malformed.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    let q = int * 1000 + frac;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn format_param_wins_over_accept() {
        let r = parse(CID, &q(&[("format", "raw")]), Some(MEDIA_CAR)).unwrap();
        assert_eq!(r.format, Format::Raw);
        let r = parse(CID, &q(&[("format", "car")]), Some("text/html")).unwrap();
        assert!(matches!(
            r.format,
            Format::Car(CarRequest {
                scope: DagScope::All,
                range: None
            })
        ));
    }

    #[test]
    fn missing_accept_is_400_and_html_is_406() {
        assert!(matches!(
            parse(CID, &[], None),
            Err(GatewayError::MissingAccept)
        ));
        assert!(matches!(
            parse(CID, &[], Some("text/html,*/*;q=0.8")),
            Err(GatewayError::NotAcceptable(_))
        ));
    }

    #[test]
    fn invalid_cid_is_rejected() {
        assert!(matches!(
            parse("notacid", &[], Some(MEDIA_RAW)),
            Err(GatewayError::InvalidCid { .. })
        ));
    }

    #[test]
    fn unsupported_car_variants_are_skipped_in_negotiation() {
        assert!(matches!(
            parse(CID, &[], Some("application/vnd.ipld.car; version=2")),
            Err(GatewayError::NotAcceptable(_))
        ));
        assert!(matches!(
            parse(CID, &[], Some("application/vnd.ipld.car; dups=y")),
            Err(GatewayError::NotAcceptable(_))
        ));
        let r = parse(
            CID,
            &[],
            Some("application/vnd.ipld.car;dups=y, application/vnd.ipld.car;version=1;order=dfs;dups=n;q=0.5"),
        )
        .unwrap();
        assert!(matches!(r.format, Format::Car(_)));
        let r = parse(
            CID,
            &[],
            Some("application/vnd.ipld.car;q=0.4, application/vnd.ipld.raw;q=0.9"),
        )
        .unwrap();
        assert_eq!(r.format, Format::Raw);
        assert!(matches!(
            parse(CID, &q(&[("format", "car"), ("car-dups", "y")]), None),
            Err(GatewayError::NotAcceptable(_))
        ));
    }

    #[test]
    fn unknown_and_unsupported_formats() {
        assert!(matches!(
            parse(CID, &q(&[("format", "tar")]), None),
            Err(GatewayError::UnsupportedFormat(_))
        ));
        assert!(matches!(
            parse(CID, &q(&[("format", "zip")]), None),
            Err(GatewayError::InvalidParam { name: "format", .. })
        ));
    }

    #[test]
    fn entity_bytes_parse_and_resolve() {
        let r = parse(
            CID,
            &q(&[("format", "car"), ("entity-bytes", "10:*")]),
            None,
        )
        .unwrap();
        let Format::Car(car) = r.format else { panic!() };
        assert_eq!(car.scope, DagScope::Entity);
        let range = car.range.unwrap();
        assert_eq!(range.resolve(100).unwrap(), Some((10, 99)));
        let neg = EntityBytes::parse("-10:*").unwrap();
        assert_eq!(neg.resolve(100).unwrap(), Some((90, 99)));
        let mixed = EntityBytes::parse("5:-10").unwrap();
        assert_eq!(mixed.resolve(100).unwrap(), Some((5, 90)));
        let past = EntityBytes::parse("0:1000").unwrap();
        assert_eq!(past.resolve(100).unwrap(), Some((0, 99)));
        assert!(matches!(
            EntityBytes::parse("100:*").unwrap().resolve(100),
            Err(GatewayError::RangeOutside { .. })
        ));
        assert_eq!(
            EntityBytes::parse("-200:-150")
                .unwrap()
                .resolve(100)
                .unwrap(),
            None
        );
        for bad in ["", "1", "a:b", "5:1", "+1:*", "1:2:3", " 1:2"] {
            assert!(EntityBytes::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_rules() {
        assert!(matches!(
            parse(
                CID,
                &q(&[
                    ("format", "car"),
                    ("dag-scope", "block"),
                    ("entity-bytes", "0:*")
                ]),
                None
            ),
            Err(GatewayError::InvalidParam {
                name: "dag-scope",
                ..
            })
        ));
        assert!(matches!(
            parse(CID, &q(&[("format", "raw"), ("dag-scope", "block")]), None),
            Err(GatewayError::InvalidParam { .. })
        ));
        assert!(matches!(
            parse(CID, &q(&[("format", "car"), ("dag-scope", "deep")]), None),
            Err(GatewayError::InvalidParam { .. })
        ));
        assert!(matches!(
            parse(CID, &q(&[("format", "car"), ("format", "raw")]), None),
            Err(GatewayError::InvalidParam { .. })
        ));
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.125"), Some(125));
        assert_eq!(parse_q("2"), None);
        assert_eq!(parse_q("0.1234"), None);
    }
}
