//! Parsing the hints providers put in `eth_getLogs` range-limit errors.
//!
//! Messages seen from common providers (the parser is tested on each):
//! - Alchemy: `Log response size exceeded. ... this block range should work: [0x0, 0x4b7]`
//! - Infura / geth-style: `query returned more than 10000 results. Try with this block range [0x1, 0x2].`
//! - QuickNode: `eth_getLogs is limited to a 10,000 range`
//! - Ankr, BlastAPI and others: `exceed maximum block range: 5000`,
//!   `block range is too wide (maximum 3000)`
//! - Alchemy (range form): `You can make eth_getLogs requests with up to a 2K block range`

/// What a provider suggested instead of the refused range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeHint {
    /// A concrete range that should work (`[from, to]`, inclusive).
    Range {
        /// First block suggested.
        from: u64,
        /// Last block suggested.
        to: u64,
    },
    /// The largest number of blocks per request.
    MaxBlocks(u64),
}

/// The hint in a range-limit error message, if there is one.
pub fn parse_range_hint(message: &str) -> Option<RangeHint> {
    bracket_range(message).or_else(|| max_blocks(message).map(RangeHint::MaxBlocks))
}

/// `[0x1a, 0x2b]` (hex or decimal, any spacing).
fn bracket_range(message: &str) -> Option<RangeHint> {
    let open = message.find('[')?;
    let close = open + message[open..].find(']')?;
    let inner = &message[open + 1..close];
    let (a, b) = inner.split_once(',')?;
    let from = parse_number(a.trim())?;
    let to = parse_number(b.trim())?;
    (from <= to).then_some(RangeHint::Range { from, to })
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A block count: a number (`10,000`, `5000`, `2K`) next to the words
/// "range"/"block" or after "maximum"/"max"/"range:".
fn max_blocks(message: &str) -> Option<u64> {
    let lower = message.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let mut best: Option<u64> = None;
    for (i, word) in words.iter().enumerate() {
        let Some(n) = block_count(word) else {
            continue;
        };
        let next = words.get(i + 1).copied().unwrap_or("");
        let prev = if i > 0 { words[i - 1] } else { "" };
        let prev = prev.trim_start_matches('(');
        let about_blocks = next.starts_with("range")
            || next.starts_with("block")
            || prev.ends_with("range:")
            || prev == "maximum"
            || prev == "max"
            || prev == "(maximum"
            || prev == "(max";
        if about_blocks && n > 0 {
            best = Some(best.map_or(n, |b| b.min(n)));
        }
    }
    best
}

/// `10,000` / `5000` / `2k` / `(3000)` / `5000.` as a number.
fn block_count(word: &str) -> Option<u64> {
    let w = word.trim_matches(|c: char| matches!(c, '(' | ')' | '.' | ',' | ';' | ':'));
    let (digits, scale) = match w.strip_suffix('k') {
        Some(d) => (d, 1000),
        None => (w, 1),
    };
    let digits: String = digits.chars().filter(|c| *c != ',' && *c != '_').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_hints() {
        let cases = [
            (
                "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [0x0, 0x4b7]",
                Some(RangeHint::Range { from: 0, to: 0x4b7 }),
            ),
            (
                "query returned more than 10000 results. Try with this block range [0x1E8480, 0x1E8A9F].",
                Some(RangeHint::Range {
                    from: 0x1E8480,
                    to: 0x1E8A9F,
                }),
            ),
            (
                "eth_getLogs is limited to a 10,000 range",
                Some(RangeHint::MaxBlocks(10_000)),
            ),
            (
                "exceed maximum block range: 5000",
                Some(RangeHint::MaxBlocks(5000)),
            ),
            (
                "block range is too wide (maximum 3000)",
                Some(RangeHint::MaxBlocks(3000)),
            ),
            (
                "You can make eth_getLogs requests with up to a 2K block range",
                Some(RangeHint::MaxBlocks(2000)),
            ),
            ("query returned more than 10000 results", None),
            ("log response size exceeded", None),
        ];
        for (message, expected) in cases {
            assert_eq!(parse_range_hint(message), expected, "{message}");
        }
    }

    #[test]
    fn malformed_hints_are_ignored() {
        for message in [
            "[0x10, 0x01]",
            "[0xzz, 0x1]",
            "[1,",
            "]",
            "[18446744073709551616, 1]",
            "limited to a 0 range",
            "limited to a 99999999999999999999999k range",
        ] {
            assert_eq!(parse_range_hint(message), None, "{message}");
        }
    }
}
