//! Sign-In with Ethereum (EIP-4361) messages: a strict parser of the
//! untrusted message text and the checks of a login (domain, URI, chain id,
//! times, EIP-191 signature). The nonce is checked by the caller against the
//! nonces it issued ([`crate::auth`]).
//!
//! The parser accepts only the canonical text of the EIP's ABNF: printable
//! ASCII and line feeds, at most [`MAX_MESSAGE`] bytes, the fields in the
//! EIP's order, each at most once, no unknown line, no trailing line break.
//! Whatever it accepts prints back to the same bytes
//! (its `Display`, `SiweMessage::to_string`), so no two texts carry the same fields
//! (`siwe::tests::mutations_never_panic_and_never_change_a_field`).

use std::fmt;

use alloy::primitives::{Address, Signature};

/// Longest message accepted, in bytes.
pub const MAX_MESSAGE: usize = 4096;
/// Longest domain (authority).
pub const MAX_DOMAIN: usize = 255;
/// Longest statement.
pub const MAX_STATEMENT: usize = 1024;
/// Longest URI (the `URI:` field and each resource).
pub const MAX_URI: usize = 1024;
/// Longest nonce (the EIP's minimum is 8).
pub const MAX_NONCE: usize = 64;
/// Longest request id.
pub const MAX_REQUEST_ID: usize = 200;
/// Most resources.
pub const MAX_RESOURCES: usize = 16;
/// How far in the future `Issued At` may be (clock skew between wallet and server), in seconds.
pub const MAX_SKEW_SECS: i64 = 60;

const PREAMBLE: &str = " wants you to sign in with your Ethereum account:";

/// Why a message or its signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiweError {
    /// The message is longer than [`MAX_MESSAGE`].
    #[error("message of {len} bytes, at most {MAX_MESSAGE}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The message is not an EIP-4361 message.
    #[error("malformed message, line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The domain is not this server's.
    #[error("domain {found:?} is not {expected:?}")]
    WrongDomain {
        /// The configured domain.
        expected: String,
        /// The message's.
        found: String,
    },
    /// The URI is not this server's.
    #[error("uri {found:?} is not {expected:?}")]
    WrongUri {
        /// The configured URI.
        expected: String,
        /// The message's.
        found: String,
    },
    /// The chain id is not the indexer's chain.
    #[error("chain id {found} is not {expected}")]
    WrongChain {
        /// The indexer's chain.
        expected: u64,
        /// The message's.
        found: u64,
    },
    /// `Expiration Time` has passed.
    #[error("message expired at {expired_at} (now {now})")]
    Expired {
        /// Unix seconds.
        expired_at: i64,
        /// Unix seconds.
        now: i64,
    },
    /// `Not Before` is in the future.
    #[error("message not valid before {not_before} (now {now})")]
    NotYetValid {
        /// Unix seconds.
        not_before: i64,
        /// Unix seconds.
        now: i64,
    },
    /// `Issued At` is further in the future than [`MAX_SKEW_SECS`].
    #[error("message issued at {issued_at}, in the future (now {now})")]
    IssuedInFuture {
        /// Unix seconds.
        issued_at: i64,
        /// Unix seconds.
        now: i64,
    },
    /// The signature is not 65 bytes of hex with v in {0, 1, 27, 28}, or recovers no key.
    #[error("invalid signature: {0}")]
    BadSignature(String),
    /// The signature's s is above secp256k1n/2 (its malleable twin).
    #[error("signature has a high s (malleable), refused")]
    HighS,
    /// The signature recovers to another address than the message's.
    #[error("signature is by {recovered}, not by {address}")]
    WrongSigner {
        /// The message's address.
        address: Address,
        /// The recovered one.
        recovered: Address,
    },
}

/// A parsed EIP-4361 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweMessage {
    /// The optional `scheme://` before the domain.
    pub scheme: Option<String>,
    /// The domain (RFC 3986 authority).
    pub domain: String,
    /// The signing account (EIP-55 checksummed in the text).
    pub address: Address,
    /// The optional human-readable statement.
    pub statement: Option<String>,
    /// `URI:`.
    pub uri: String,
    /// `Chain ID:`.
    pub chain_id: u64,
    /// `Nonce:`.
    pub nonce: String,
    /// `Issued At:` as written, and in unix seconds.
    pub issued_at: (String, i64),
    /// `Expiration Time:` as written, and in unix seconds.
    pub expiration_time: Option<(String, i64)>,
    /// `Not Before:` as written, and in unix seconds.
    pub not_before: Option<(String, i64)>,
    /// `Request ID:`.
    pub request_id: Option<String>,
    /// `Resources:` (absent and empty are different texts: `None` and `Some(vec![])`).
    pub resources: Option<Vec<String>>,
}

impl fmt::Display for SiweMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s}://")?;
        }
        write!(f, "{}{PREAMBLE}\n{}\n\n", self.domain, self.address)?;
        if let Some(s) = &self.statement {
            writeln!(f, "{s}")?;
        }
        write!(
            f,
            "\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.uri, self.chain_id, self.nonce, self.issued_at.0
        )?;
        if let Some((t, _)) = &self.expiration_time {
            write!(f, "\nExpiration Time: {t}")?;
        }
        if let Some((t, _)) = &self.not_before {
            write!(f, "\nNot Before: {t}")?;
        }
        if let Some(r) = &self.request_id {
            write!(f, "\nRequest ID: {r}")?;
        }
        if let Some(resources) = &self.resources {
            write!(f, "\nResources:")?;
            for r in resources {
                write!(f, "\n- {r}")?;
            }
        }
        Ok(())
    }
}

fn malformed(line: usize, reason: impl Into<String>) -> SiweError {
    SiweError::Malformed {
        line,
        reason: reason.into(),
    }
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

fn is_sub_delim(c: char) -> bool {
    matches!(
        c,
        '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '='
    )
}

fn is_reserved(c: char) -> bool {
    is_sub_delim(c) || matches!(c, ':' | '/' | '?' | '#' | '[' | ']' | '@')
}

/// `[ scheme "://" ] domain " wants you to sign in with your Ethereum account:"`.
fn parse_first(line: &str) -> Result<(Option<String>, String), SiweError> {
    let head = line.strip_suffix(PREAMBLE).ok_or_else(|| {
        malformed(
            1,
            "expected \"<domain> wants you to sign in with your Ethereum account:\"",
        )
    })?;
    let (scheme, domain) = match head.split_once("://") {
        Some((s, d)) => (Some(s), d),
        None => (None, head),
    };
    if let Some(s) = scheme {
        let ok = s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !ok {
            return Err(malformed(1, format!("invalid scheme {s:?}")));
        }
    }
    let ok = !domain.is_empty()
        && domain.len() <= MAX_DOMAIN
        && domain.chars().all(|c| {
            is_unreserved(c) || is_sub_delim(c) || matches!(c, ':' | '[' | ']' | '@' | '%')
        });
    if !ok {
        return Err(malformed(1, format!("invalid domain {domain:?}")));
    }
    Ok((scheme.map(str::to_owned), domain.to_owned()))
}

fn parse_address(line: &str) -> Result<Address, SiweError> {
    let ok = line.len() == 42
        && line.starts_with("0x")
        && line[2..].chars().all(|c| c.is_ascii_hexdigit());
    if !ok {
        return Err(malformed(2, "expected a 0x address of 40 hex digits"));
    }
    Address::parse_checksummed(line, None)
        .map_err(|_| malformed(2, "address is not EIP-55 checksummed"))
}

fn parse_uri(value: &str, line: usize, what: &str) -> Result<String, SiweError> {
    if value.is_empty() || value.len() > MAX_URI {
        return Err(malformed(
            line,
            format!("{what} must be 1..={MAX_URI} bytes"),
        ));
    }
    url::Url::parse(value).map_err(|e| malformed(line, format!("{what} is no URI: {e}")))?;
    Ok(value.to_owned())
}

fn parse_chain_id(value: &str, line: usize) -> Result<u64, SiweError> {
    let canonical = !value.is_empty()
        && value.len() <= 20
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    if !canonical {
        return Err(malformed(line, format!("invalid chain id {value:?}")));
    }
    value
        .parse()
        .map_err(|_| malformed(line, format!("chain id {value:?} out of range")))
}

fn digits(s: &str, at: usize, n: usize) -> Option<i64> {
    let part = s.get(at..at + n)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Unix seconds as RFC 3339 in UTC (`YYYY-MM-DDTHH:MM:SSZ`), the form
/// [`parse_rfc3339`] reads back; years outside 0000–9999 are clamped to them
/// (no message time is that far away).
pub fn format_rfc3339(secs: i64) -> String {
    // 0000-01-01 and 9999-12-31T23:59:59.
    let t = secs.clamp(-62_167_219_200, 253_402_300_799);
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the
/// inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 `date-time` (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, upper
/// case `T` and `Z`) in unix seconds (fraction dropped).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    let (hour, minute, second) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=9).contains(&n) {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let (h, m) = (digits(rest, 1, 2)?, digits(rest, 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn parse_time(value: &str, line: usize, what: &str) -> Result<(String, i64), SiweError> {
    parse_rfc3339(value)
        .map(|t| (value.to_owned(), t))
        .ok_or_else(|| malformed(line, format!("{what} is no RFC 3339 date-time: {value:?}")))
}

/// The lines of a message after the statement, consumed in the EIP's order.
struct Fields<'a> {
    lines: &'a [&'a str],
    at: usize,
    /// 1-based line number of `lines[0]`.
    first_line: usize,
}

impl<'a> Fields<'a> {
    fn line_no(&self) -> usize {
        self.first_line + self.at
    }

    fn required(&mut self, tag: &str) -> Result<&'a str, SiweError> {
        let line = self.line_no();
        let value = self
            .lines
            .get(self.at)
            .and_then(|l| l.strip_prefix(tag))
            .ok_or_else(|| malformed(line, format!("expected {tag:?}")))?;
        self.at += 1;
        Ok(value)
    }

    fn optional(&mut self, tag: &str) -> Option<&'a str> {
        let value = self.lines.get(self.at)?.strip_prefix(tag)?;
        self.at += 1;
        Some(value)
    }
}

impl SiweMessage {
    /// Parses `text` strictly (see the module's documentation).
    pub fn parse(text: &str) -> Result<Self, SiweError> {
        if text.len() > MAX_MESSAGE {
            return Err(SiweError::TooLong { len: text.len() });
        }
        let mut line = 1;
        for c in text.chars() {
            match c {
                '\n' => line += 1,
                ' '..='~' => {}
                other => {
                    return Err(malformed(
                        line,
                        format!(
                            "character U+{:04X} (only printable ASCII and line feeds)",
                            other as u32
                        ),
                    ));
                }
            }
        }
        if text.ends_with('\n') {
            return Err(malformed(line, "the message ends with a line break"));
        }
        let lines: Vec<&str> = text.split('\n').collect();
        let get = |i: usize| {
            lines
                .get(i)
                .copied()
                .ok_or_else(|| malformed(i + 1, "message ends early"))
        };
        let (scheme, domain) = parse_first(get(0)?)?;
        let address = parse_address(get(1)?)?;
        if !get(2)?.is_empty() {
            return Err(malformed(3, "expected an empty line after the address"));
        }
        // `[ statement LF ] LF`: an empty line right away means no statement.
        let (statement, next) = if get(3)?.is_empty() {
            (None, 4)
        } else {
            let s = get(3)?;
            let ok = s.len() <= MAX_STATEMENT
                && s.chars()
                    .all(|c| is_reserved(c) || is_unreserved(c) || c == ' ');
            if !ok {
                return Err(malformed(
                    4,
                    format!("statement must be at most {MAX_STATEMENT} of the EIP's characters"),
                ));
            }
            if !get(4)?.is_empty() {
                return Err(malformed(5, "expected an empty line after the statement"));
            }
            (Some(s.to_owned()), 5)
        };
        let mut f = Fields {
            lines: &lines[next.min(lines.len())..],
            at: 0,
            first_line: next + 1,
        };
        let n = f.line_no();
        let uri = parse_uri(f.required("URI: ")?, n, "uri")?;
        let n = f.line_no();
        if f.required("Version: ")? != "1" {
            return Err(malformed(n, "version must be 1"));
        }
        let n = f.line_no();
        let chain_id = parse_chain_id(f.required("Chain ID: ")?, n)?;
        let n = f.line_no();
        let nonce = f.required("Nonce: ")?;
        if !(8..=MAX_NONCE).contains(&nonce.len())
            || !nonce.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(malformed(
                n,
                format!("nonce must be 8..={MAX_NONCE} letters or digits"),
            ));
        }
        let n = f.line_no();
        let issued_at = parse_time(f.required("Issued At: ")?, n, "issued at")?;
        let n = f.line_no();
        let expiration_time = f
            .optional("Expiration Time: ")
            .map(|v| parse_time(v, n, "expiration time"))
            .transpose()?;
        let n = f.line_no();
        let not_before = f
            .optional("Not Before: ")
            .map(|v| parse_time(v, n, "not before"))
            .transpose()?;
        let n = f.line_no();
        let request_id = f
            .optional("Request ID: ")
            .map(|v| {
                let ok = v.len() <= MAX_REQUEST_ID
                    && v.chars().all(|c| {
                        is_unreserved(c) || is_sub_delim(c) || matches!(c, ':' | '@' | '%')
                    });
                ok.then(|| v.to_owned())
                    .ok_or_else(|| malformed(n, "invalid request id"))
            })
            .transpose()?;
        let resources = if f.lines.get(f.at) == Some(&"Resources:") {
            f.at += 1;
            let mut list = Vec::new();
            while let Some(l) = f.lines.get(f.at) {
                let n = f.line_no();
                let r = l
                    .strip_prefix("- ")
                    .ok_or_else(|| malformed(n, "expected \"- <uri>\" in the resources"))?;
                if list.len() == MAX_RESOURCES {
                    return Err(malformed(n, format!("more than {MAX_RESOURCES} resources")));
                }
                list.push(parse_uri(r, n, "resource")?);
                f.at += 1;
            }
            Some(list)
        } else {
            None
        };
        if f.at < f.lines.len() {
            return Err(malformed(
                f.line_no(),
                "unexpected line (unknown, duplicate or out of order)",
            ));
        }
        Ok(Self {
            scheme,
            domain,
            address,
            statement,
            uri,
            chain_id,
            nonce: nonce.to_owned(),
            issued_at,
            expiration_time,
            not_before,
            request_id,
            resources,
        })
    }
}

/// What a login message must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The domain (authority) the dashboard is served at.
    pub domain: String,
    /// The URI the dashboard is served at (compared byte for byte).
    pub uri: String,
    /// The indexer's chain.
    pub chain_id: u64,
}

/// The 65-byte `personal_sign` signature in 0x hex: r ‖ s ‖ v.
fn parse_signature(hex: &str) -> Result<Signature, SiweError> {
    let bytes = hex
        .strip_prefix("0x")
        .filter(|h| h.len() == 130)
        .and_then(|h| alloy::hex::decode(h).ok())
        .ok_or_else(|| SiweError::BadSignature("expected 0x and 130 hex digits".into()))?;
    if !matches!(bytes[64], 0 | 1 | 27 | 28) {
        return Err(SiweError::BadSignature(format!(
            "v must be 0, 1, 27 or 28, got {}",
            bytes[64]
        )));
    }
    Signature::from_raw(&bytes).map_err(|e| SiweError::BadSignature(e.to_string()))
}

/// Parses `text` and checks everything but the nonce: the domain (and scheme,
/// if given) and URI are the expected ones, the chain id is the indexer's,
/// `now` (unix seconds) is before `Expiration Time`, not before `Not Before`
/// and at most [`MAX_SKEW_SECS`] before `Issued At`; `signature` is an
/// EIP-191 (`personal_sign`) signature of exactly `text` by the message's
/// address, with a low s (the high-s twin is refused as
/// `otaledger_core::signing::recover_compact` refuses it).
pub fn verify(
    text: &str,
    signature: &str,
    expected: &Expected,
    now: i64,
) -> Result<SiweMessage, SiweError> {
    let m = SiweMessage::parse(text)?;
    if m.domain != expected.domain {
        return Err(SiweError::WrongDomain {
            expected: expected.domain.clone(),
            found: m.domain,
        });
    }
    if let Some(scheme) = &m.scheme {
        let configured = expected.uri.split_once("://").map(|(s, _)| s);
        if configured != Some(scheme.as_str()) {
            return Err(SiweError::WrongDomain {
                expected: expected.domain.clone(),
                found: format!("{scheme}://{}", m.domain),
            });
        }
    }
    if m.uri != expected.uri {
        return Err(SiweError::WrongUri {
            expected: expected.uri.clone(),
            found: m.uri,
        });
    }
    if m.chain_id != expected.chain_id {
        return Err(SiweError::WrongChain {
            expected: expected.chain_id,
            found: m.chain_id,
        });
    }
    if let Some((_, expired_at)) = m.expiration_time
        && now >= expired_at
    {
        return Err(SiweError::Expired { expired_at, now });
    }
    if let Some((_, not_before)) = m.not_before
        && now < not_before
    {
        return Err(SiweError::NotYetValid { not_before, now });
    }
    if m.issued_at.1 > now + MAX_SKEW_SECS {
        return Err(SiweError::IssuedInFuture {
            issued_at: m.issued_at.1,
            now,
        });
    }
    let signature = parse_signature(signature)?;
    if signature.normalize_s().is_some() {
        return Err(SiweError::HighS);
    }
    let recovered = signature
        .recover_address_from_msg(text.as_bytes())
        .map_err(|e| SiweError::BadSignature(format!("recovers no key: {e}")))?;
    if recovered != m.address {
        return Err(SiweError::WrongSigner {
            address: m.address,
            recovered,
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{SignerSync, local::PrivateKeySigner};

    const NOW: i64 = 1_765_000_000;

    fn expected() -> Expected {
        Expected {
            domain: "127.0.0.1:8088".into(),
            uri: "http://127.0.0.1:8088/".into(),
            chain_id: 31337,
        }
    }

    fn message(address: Address, statement: bool) -> String {
        let statement = if statement {
            "Sign in to label your devices.\n"
        } else {
            ""
        };
        format!(
            "127.0.0.1:8088 wants you to sign in with your Ethereum account:\n{address}\n\n{statement}\nURI: http://127.0.0.1:8088/\nVersion: 1\nChain ID: 31337\nNonce: abcdef0123456789\nIssued At: 2025-12-06T05:46:40Z\nExpiration Time: 2025-12-06T06:46:40.123Z\nNot Before: 2025-12-06T05:40:00+00:00\nRequest ID: req-1\nResources:\n- https://example.org/a\n- ipfs://bafy"
        )
    }

    fn sign(key: &PrivateKeySigner, text: &str) -> String {
        let s = key.sign_message_sync(text.as_bytes()).unwrap();
        format!("0x{}", alloy::hex::encode(s.as_bytes()))
    }

    #[test]
    fn rfc3339_formats_what_it_parses() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(NOW), "2025-12-06T05:46:40Z");
        assert_eq!(format_rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
        // Every day over four centuries (leap rules included), at a
        // changing second.
        for day in -73_000..73_000_i64 {
            let t = day * 86_400 + (day * 7_919).rem_euclid(86_400);
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t), "{t}");
        }
    }

    #[test]
    fn rfc3339_examples() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-12-06T05:46:40Z"), Some(NOW));
        assert_eq!(parse_rfc3339("2025-12-06T06:46:40.5+01:00"), Some(NOW));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for bad in [
            "2025-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-12-06t05:46:40Z",
            "2025-12-06T05:46:40z",
            "2025-12-06T24:00:00Z",
            "2025-12-06T05:46:60Z",
            "2025-12-06T05:46:40",
            "2025-12-06T05:46:40.Z",
            "2025-12-06T05:46:40+0100",
            "2025-12-06T05:46:40+01:00:00",
            "+025-12-06T05:46:40Z",
            "2025-12-06T05:46:40.1234567890Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_valid_message_parses_prints_back_and_verifies() {
        let key = PrivateKeySigner::random();
        for statement in [true, false] {
            let text = message(key.address(), statement);
            let m = SiweMessage::parse(&text).unwrap();
            assert_eq!(m.to_string(), text);
            assert_eq!(m.chain_id, 31337);
            assert_eq!(m.resources.as_ref().map(Vec::len), Some(2));
            let v = verify(&text, &sign(&key, &text), &expected(), NOW).unwrap();
            assert_eq!(v.address, key.address());
        }
    }

    #[test]
    fn each_check_refuses_with_its_variant() {
        let key = PrivateKeySigner::random();
        let text = message(key.address(), true);
        let sig = sign(&key, &text);
        let e = |x: Expected, now| verify(&text, &sig, &x, now).unwrap_err();
        let mut x = expected();
        x.domain = "evil.example".into();
        assert!(matches!(e(x, NOW), SiweError::WrongDomain { .. }));
        let mut x = expected();
        x.uri = "http://127.0.0.1:8088/other".into();
        assert!(matches!(e(x, NOW), SiweError::WrongUri { .. }));
        let mut x = expected();
        x.chain_id = 1;
        assert!(matches!(e(x, NOW), SiweError::WrongChain { .. }));
        assert!(matches!(
            e(expected(), NOW + 3600),
            SiweError::Expired { .. }
        ));
        assert!(matches!(
            e(expected(), NOW - 401),
            SiweError::NotYetValid { .. }
        ));
        // Signed by another key.
        let other = PrivateKeySigner::random();
        let wrong = sign(&other, &text);
        assert!(matches!(
            verify(&text, &wrong, &expected(), NOW),
            Err(SiweError::WrongSigner { .. })
        ));
        // The high-s twin of a valid signature.
        let s = key.sign_message_sync(text.as_bytes()).unwrap();
        let n = alloy::primitives::U256::from_str_radix(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
            16,
        )
        .unwrap();
        let twin = Signature::new(s.r(), n - s.s(), !s.v());
        let twin_hex = format!("0x{}", alloy::hex::encode(twin.as_bytes()));
        assert_eq!(
            verify(&text, &twin_hex, &expected(), NOW),
            Err(SiweError::HighS)
        );
        for bad in [
            "",
            "0x",
            "0x00",
            &sig[..sig.len() - 2],
            &format!("{}1d", &sig[..sig.len() - 2]),
        ] {
            assert!(
                matches!(
                    verify(&text, bad, &expected(), NOW),
                    Err(SiweError::BadSignature(_))
                ),
                "{bad}"
            );
        }
        // Issued in the future.
        let future = text.replace(
            "Issued At: 2025-12-06T05:46:40Z",
            "Issued At: 2025-12-06T06:00:00Z",
        );
        assert!(matches!(
            verify(&future, &sign(&key, &future), &expected(), NOW),
            Err(SiweError::IssuedInFuture { .. })
        ));
        // A scheme other than the URI's.
        let https = format!("https://{text}");
        assert!(matches!(
            verify(&https, &sign(&key, &https), &expected(), NOW),
            Err(SiweError::WrongDomain { .. })
        ));
        let http = format!("http://{text}");
        assert!(verify(&http, &sign(&key, &http), &expected(), NOW).is_ok());
    }

    #[test]
    fn structural_refusals() {
        let key = PrivateKeySigner::random();
        let text = message(key.address(), true);
        let lower = text.replace(
            &key.address().to_string(),
            &key.address().to_string().to_lowercase(),
        );
        let cases = [
            text.replace("Version: 1", "Version: 2"),
            text.replace("Chain ID: 31337", "Chain ID: 031337"),
            text.replace("Nonce: abcdef0123456789", "Nonce: abc"),
            text.replace("Nonce: abcdef0123456789", "Nonce: abcdef01-3456789"),
            text.replace("URI: http://", "URI: http://\u{202E}"),
            text.replace(
                "Request ID: req-1\n",
                "Request ID: req-1\nRequest ID: req-2\n",
            ),
            text.replace("Not Before: ", "Not Before: \t"),
            text.replace("\nNot Before: 2025-12-06T05:40:00+00:00", "")
                .replace(
                    "Request ID: req-1",
                    "Request ID: req-1\nNot Before: 2025-12-06T05:40:00+00:00",
                ),
            text.replace("Resources:", "Resources:\nFoo: bar"),
            text.replace("Sign in", "Sign\rin"),
            format!("{text}\n"),
            format!("{text}\nExtra: 1"),
            text.replace("\nURI:", "\n\nURI:"),
            text.replace("Issued At:", "Issued-At:"),
            "x".repeat(MAX_MESSAGE + 1),
            String::new(),
        ];
        for c in &cases {
            assert!(SiweMessage::parse(c).is_err(), "{c:?}");
        }
        if key.address().to_string() != key.address().to_string().to_lowercase() {
            assert!(SiweMessage::parse(&lower).is_err());
        }
        let many: String = (0..=MAX_RESOURCES)
            .map(|i| format!("\n- https://e.org/{i}"))
            .collect();
        let too_many = text.replace("\n- https://example.org/a\n- ipfs://bafy", &many);
        assert!(SiweMessage::parse(&too_many).is_err());
    }

    /// A small deterministic generator (xorshift64*), so the test repeats.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn mutations_never_panic_and_never_change_a_field() {
        let key = PrivateKeySigner::random();
        let text = message(key.address(), true);
        let sig = sign(&key, &text);
        let alphabet: Vec<char> = "\n :-./0123456789abcdefABCDEFxyzXYZT+#?@\u{0}\r\t\u{202E}é"
            .chars()
            .collect();
        let tags = [
            "URI: http://127.0.0.1:8088/",
            "Version: 1",
            "Chain ID: 1",
            "Nonce: 0000000000000000",
            "Issued At: 2025-12-06T05:46:40Z",
            "Expiration Time: 2099-01-01T00:00:00Z",
            "Not Before: 2000-01-01T00:00:00Z",
            "Request ID: x",
            "Resources:",
            "- https://evil.example",
            "",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut chars: Vec<char> = text.chars().collect();
            for _ in 0..=rng.below(3) {
                let at = rng.below(chars.len() + 1);
                match rng.below(5) {
                    0 if at < chars.len() => chars[at] = alphabet[rng.below(alphabet.len())],
                    1 => chars.insert(at, alphabet[rng.below(alphabet.len())]),
                    2 if at < chars.len() => {
                        chars.remove(at);
                    }
                    3 => {
                        // Insert a whole line (a duplicate, unknown or reordered field).
                        let line = tags[rng.below(tags.len())];
                        let nl = chars[..at]
                            .iter()
                            .rposition(|c| *c == '\n')
                            .map_or(0, |p| p + 1);
                        let mut ins: Vec<char> = line.chars().collect();
                        ins.push('\n');
                        chars.splice(nl..nl, ins);
                    }
                    _ => {
                        // Swap two lines.
                        let s: String = chars.iter().collect();
                        let mut lines: Vec<&str> = s.split('\n').collect();
                        let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                        lines.swap(a, b);
                        chars = lines.join("\n").chars().collect();
                    }
                }
            }
            let mutated: String = chars.into_iter().collect();
            if mutated == text {
                continue;
            }
            if let Ok(m) = SiweMessage::parse(&mutated) {
                accepted += 1;
                // Canonical: what is accepted prints back to the same bytes,
                // so the change is a change of some field …
                assert_eq!(m.to_string(), mutated);
                assert_ne!(m, SiweMessage::parse(&text).unwrap());
            }
            // … and the original signature never covers it.
            assert!(
                verify(&mutated, &sig, &expected(), NOW).is_err(),
                "{mutated:?}"
            );
        }
        // Some mutations stay well-formed (e.g. another nonce digit): the
        // signature check is what refuses them.
        assert!(accepted > 0);
    }
}
