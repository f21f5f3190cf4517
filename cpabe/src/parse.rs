//! The human policy syntax.
//!
//! ```text
//! policy  = or
//! or      = and { "or" and }
//! and     = primary { "and" primary }
//! primary = attribute | "(" policy ")" | number "of" "(" policy { "," policy } ")"
//! attribute = quoted string with escapes \" \\ \n \t \r \u{hex}
//!           | bare word of ASCII letters, digits and _ : - . / @ + = (not a keyword)
//! ```
//! Every attribute may occur once (FAME is one-use; see [`ParseProblem::RepeatedAttribute`]).
//! Keywords (`and`, `or`, `of`) are case-insensitive; `and` binds tighter than
//! `or`. A chain `a and b and c` is one n-ary gate; parentheses keep a group
//! as its own node.

use core::fmt;
use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::limits::{MAX_ATTRIBUTE_LEN, MAX_POLICY_DEPTH, MAX_POLICY_LEAVES, MAX_POLICY_TEXT};
use crate::policy::PolicyNode;

/// What is wrong at the reported position of a policy text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseProblem {
    /// The text ended where more was expected.
    UnexpectedEnd,
    /// A character that cannot start or continue anything here.
    UnexpectedChar(char),
    /// Expected an attribute, `(` or a threshold.
    ExpectedOperand,
    /// Expected `and`, `or`, `,` or `)`; found something else.
    ExpectedOperator,
    /// Expected the keyword `of` after a threshold count.
    ExpectedOf,
    /// Expected `(` after `k of`.
    ExpectedOpenParen,
    /// Expected `)`.
    ExpectedCloseParen,
    /// A quoted string is not closed.
    UnterminatedString,
    /// An unknown or malformed escape in a quoted string.
    InvalidEscape,
    /// An attribute is empty or too long.
    InvalidAttribute {
        /// Its length in bytes.
        len: usize,
    },
    /// The attribute already occurs earlier in the policy (policies are
    /// one-use: see [`crate::Error::RepeatedAttribute`]).
    RepeatedAttribute(String),
    /// A bare word is a keyword; quote it to use it as an attribute.
    KeywordAsAttribute(String),
    /// A threshold count is not a number in range.
    InvalidNumber,
    /// A threshold `k of (n children)` with `k == 0` or `k > n`.
    InvalidThreshold {
        /// Required.
        k: usize,
        /// Children.
        n: usize,
    },
    /// Nesting deeper than [`crate::limits::MAX_POLICY_DEPTH`].
    TooDeep,
    /// More leaves than [`crate::limits::MAX_POLICY_LEAVES`].
    TooManyLeaves,
    /// The text is longer than [`crate::limits::MAX_POLICY_TEXT`].
    TooLong,
    /// A complete policy is followed by more text.
    TrailingInput,
}

impl fmt::Display for ParseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd => f.write_str("unexpected end of policy"),
            Self::UnexpectedChar(c) => write!(f, "unexpected character {c:?}"),
            Self::ExpectedOperand => f.write_str("expected an attribute, '(' or 'k of (...)'"),
            Self::ExpectedOperator => f.write_str("expected 'and', 'or', ',' or ')'"),
            Self::ExpectedOf => f.write_str("expected 'of' after a threshold count"),
            Self::ExpectedOpenParen => f.write_str("expected '(' after 'of'"),
            Self::ExpectedCloseParen => f.write_str("expected ')'"),
            Self::UnterminatedString => f.write_str("unterminated string"),
            Self::InvalidEscape => f.write_str("invalid escape sequence"),
            Self::InvalidAttribute { len } => {
                write!(
                    f,
                    "attribute of {len} bytes (must be 1..={MAX_ATTRIBUTE_LEN})"
                )
            }
            Self::RepeatedAttribute(a) => {
                write!(f, "attribute {a:?} occurs more than once")
            }
            Self::KeywordAsAttribute(w) => {
                write!(f, "keyword {w:?} used as an attribute (quote it)")
            }
            Self::InvalidNumber => f.write_str("invalid threshold count"),
            Self::InvalidThreshold { k, n } => write!(f, "threshold {k} of {n} (need 1 <= k <= n)"),
            Self::TooDeep => write!(f, "nesting deeper than {MAX_POLICY_DEPTH}"),
            Self::TooManyLeaves => write!(f, "more than {MAX_POLICY_LEAVES} attributes"),
            Self::TooLong => write!(f, "policy text longer than {MAX_POLICY_TEXT} bytes"),
            Self::TrailingInput => f.write_str("unexpected text after the policy"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Str(String),
    Word(String),
    Open,
    Close,
    Comma,
}

/// A parsed subtree, its height in nodes (a leaf is 1) and the position of
/// its deepest leaf (where a too-deep policy is reported).
struct Parsed {
    node: PolicyNode,
    height: usize,
    deepest: usize,
}

/// A gate over `items`, checking its height against [`MAX_POLICY_DEPTH`]
/// as `Policy::new` counts it, so a too-deep policy is reported with a position.
fn gate(items: Vec<Parsed>, make: impl FnOnce(Vec<PolicyNode>) -> PolicyNode) -> Result<Parsed> {
    let (height, deepest) = items
        .iter()
        .map(|p| (p.height, p.deepest))
        .max_by_key(|&(h, _)| h)
        .unwrap_or((0, 0));
    if height + 1 > MAX_POLICY_DEPTH {
        return Err(err(deepest, ParseProblem::TooDeep));
    }
    Ok(Parsed {
        node: make(items.into_iter().map(|p| p.node).collect()),
        height: height + 1,
        deepest,
    })
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    leaves: usize,
    /// Attributes met so far (each may occur once).
    seen: BTreeSet<String>,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_:-./@+=".contains(c)
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "of"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

/// Parses a policy text into a node tree (validated by the caller).
pub(crate) fn parse(text: &str) -> Result<PolicyNode> {
    if text.len() > MAX_POLICY_TEXT {
        return Err(Error::Parse {
            position: 0,
            problem: ParseProblem::TooLong,
        });
    }
    let mut p = Parser {
        text,
        pos: 0,
        leaves: 0,
        seen: BTreeSet::new(),
    };
    let parsed = p.or(1)?;
    match p.peek()? {
        None => Ok(parsed.node),
        Some((at, _)) => Err(err(at, ParseProblem::TrailingInput)),
    }
}

fn err(position: usize, problem: ParseProblem) -> Error {
    Error::Parse { position, problem }
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The next token and its start, without consuming it.
    fn peek(&mut self) -> Result<Option<(usize, Token)>> {
        let save = self.pos;
        let t = self.next()?;
        self.pos = save;
        Ok(t)
    }

    fn next(&mut self) -> Result<Option<(usize, Token)>> {
        self.skip_ws();
        let start = self.pos;
        let Some(c) = self.text[start..].chars().next() else {
            return Ok(None);
        };
        let tok = match c {
            '(' => {
                self.pos += 1;
                Token::Open
            }
            ')' => {
                self.pos += 1;
                Token::Close
            }
            ',' => {
                self.pos += 1;
                Token::Comma
            }
            '"' => Token::Str(self.string()?),
            c if is_word_char(c) => {
                let rest = &self.text[start..];
                let len = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
                self.pos += len;
                Token::Word(rest[..len].to_owned())
            }
            c => return Err(err(start, ParseProblem::UnexpectedChar(c))),
        };
        Ok(Some((start, tok)))
    }

    /// A quoted string starting at `self.pos` (on the opening quote).
    fn string(&mut self) -> Result<String> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.text[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            let at = start + 1 + i;
            match c {
                '"' => {
                    self.pos = at + 1;
                    return Ok(out);
                }
                '\\' => {
                    let escaped = match chars.next() {
                        Some((_, '"')) => '"',
                        Some((_, '\\')) => '\\',
                        Some((_, 'n')) => '\n',
                        Some((_, 't')) => '\t',
                        Some((_, 'r')) => '\r',
                        Some((_, 'u')) => {
                            if !matches!(chars.next(), Some((_, '{'))) {
                                return Err(err(at, ParseProblem::InvalidEscape));
                            }
                            let mut hex = String::new();
                            loop {
                                match chars.next() {
                                    Some((_, '}')) => break,
                                    Some((_, h)) if h.is_ascii_hexdigit() && hex.len() < 6 => {
                                        hex.push(h)
                                    }
                                    _ => return Err(err(at, ParseProblem::InvalidEscape)),
                                }
                            }
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| err(at, ParseProblem::InvalidEscape))?
                        }
                        _ => return Err(err(at, ParseProblem::InvalidEscape)),
                    };
                    out.push(escaped);
                }
                c => out.push(c),
            }
            if out.len() > MAX_ATTRIBUTE_LEN {
                return Err(err(
                    start,
                    ParseProblem::InvalidAttribute { len: out.len() },
                ));
            }
        }
        Err(err(start, ParseProblem::UnterminatedString))
    }

    fn keyword(&mut self, kw: &str) -> Result<bool> {
        match self.peek()? {
            Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(kw) => {
                self.next()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `depth` counts open groups (parentheses and thresholds), which bounds
    /// the recursion; node heights are checked by [`gate`].
    fn or(&mut self, depth: usize) -> Result<Parsed> {
        let first = self.and(depth)?;
        let mut items = Vec::new();
        while self.keyword("or")? {
            items.push(self.and(depth)?);
        }
        if items.is_empty() {
            return Ok(first);
        }
        items.insert(0, first);
        gate(items, PolicyNode::Or)
    }

    fn and(&mut self, depth: usize) -> Result<Parsed> {
        let first = self.primary(depth)?;
        let mut items = Vec::new();
        while self.keyword("and")? {
            items.push(self.primary(depth)?);
        }
        if items.is_empty() {
            return Ok(first);
        }
        items.insert(0, first);
        gate(items, PolicyNode::And)
    }

    fn leaf(&mut self, at: usize, attribute: String) -> Result<Parsed> {
        if attribute.is_empty() || attribute.len() > MAX_ATTRIBUTE_LEN {
            return Err(err(
                at,
                ParseProblem::InvalidAttribute {
                    len: attribute.len(),
                },
            ));
        }
        self.leaves += 1;
        if self.leaves > MAX_POLICY_LEAVES {
            return Err(err(at, ParseProblem::TooManyLeaves));
        }
        if !self.seen.insert(attribute.clone()) {
            return Err(err(at, ParseProblem::RepeatedAttribute(attribute)));
        }
        Ok(Parsed {
            node: PolicyNode::Attr(attribute),
            height: 1,
            deepest: at,
        })
    }

    fn primary(&mut self, depth: usize) -> Result<Parsed> {
        let end = self.text.len();
        let Some((at, tok)) = self.next()? else {
            return Err(err(end, ParseProblem::UnexpectedEnd));
        };
        match tok {
            Token::Str(s) => self.leaf(at, s),
            Token::Open => {
                if depth + 1 > MAX_POLICY_DEPTH {
                    return Err(err(at, ParseProblem::TooDeep));
                }
                let inner = self.or(depth + 1)?;
                self.close()?;
                Ok(inner)
            }
            Token::Word(w) => {
                // `k of (...)` when a number is followed by the keyword `of`.
                let is_threshold = w.bytes().all(|b| b.is_ascii_digit())
                    && matches!(self.peek()?, Some((_, Token::Word(ref o))) if o.eq_ignore_ascii_case("of"));
                if is_threshold {
                    self.threshold(at, &w, depth)
                } else if is_keyword(&w) {
                    Err(err(at, ParseProblem::KeywordAsAttribute(w)))
                } else {
                    self.leaf(at, w)
                }
            }
            Token::Close | Token::Comma => Err(err(at, ParseProblem::ExpectedOperand)),
        }
    }

    fn threshold(&mut self, at: usize, count: &str, depth: usize) -> Result<Parsed> {
        let k: usize = count
            .parse()
            .map_err(|_| err(at, ParseProblem::InvalidNumber))?;
        if !self.keyword("of")? {
            return Err(err(self.pos, ParseProblem::ExpectedOf));
        }
        match self.next()? {
            Some((_, Token::Open)) => {}
            Some((p, _)) => return Err(err(p, ParseProblem::ExpectedOpenParen)),
            None => return Err(err(self.text.len(), ParseProblem::UnexpectedEnd)),
        }
        if depth + 1 > MAX_POLICY_DEPTH {
            return Err(err(at, ParseProblem::TooDeep));
        }
        let mut of = vec![self.or(depth + 1)?];
        loop {
            match self.next()? {
                Some((_, Token::Comma)) => of.push(self.or(depth + 1)?),
                Some((_, Token::Close)) => break,
                Some((p, _)) => return Err(err(p, ParseProblem::ExpectedOperator)),
                None => return Err(err(self.text.len(), ParseProblem::ExpectedCloseParen)),
            }
        }
        if k == 0 || k > of.len() {
            return Err(err(at, ParseProblem::InvalidThreshold { k, n: of.len() }));
        }
        gate(of, |of| PolicyNode::Threshold { k, of })
    }

    fn close(&mut self) -> Result<()> {
        match self.next()? {
            Some((_, Token::Close)) => Ok(()),
            Some((p, _)) => Err(err(p, ParseProblem::ExpectedCloseParen)),
            None => Err(err(self.text.len(), ParseProblem::ExpectedCloseParen)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> (usize, ParseProblem) {
        match parse(text) {
            Err(Error::Parse { position, problem }) => (position, problem),
            other => panic!("expected a parse error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_issue_example() {
        let n =
            parse(r#""model:thermo-x" and ("region:eu" or "region:in") and 2 of ("a", "b", "c")"#)
                .unwrap();
        let PolicyNode::And(items) = n else {
            panic!("not an and")
        };
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], PolicyNode::attr("model:thermo-x"));
        assert!(matches!(&items[1], PolicyNode::Or(o) if o.len() == 2));
        assert!(matches!(&items[2], PolicyNode::Threshold { k: 2, of } if of.len() == 3));
    }

    #[test]
    fn the_deepest_valid_policy_prints_and_parses_back() {
        // Alternating AND / OR gates down to depth MAX_POLICY_DEPTH (leaves included).
        let mut node = PolicyNode::attr("leaf");
        for i in 0..crate::limits::MAX_POLICY_DEPTH - 1 {
            let pair = vec![PolicyNode::attr(format!("a{i}")), node];
            node = if i % 2 == 0 {
                PolicyNode::And(pair)
            } else {
                PolicyNode::Or(pair)
            };
        }
        let policy = crate::Policy::new(node.clone()).unwrap();
        assert_eq!(crate::Policy::parse(&policy.to_string()).unwrap(), policy);
        let too_deep = PolicyNode::And(vec![PolicyNode::attr("top"), node]);
        assert!(crate::Policy::new(too_deep.clone()).is_err());
        assert!(matches!(
            parse(&too_deep.to_string()),
            Err(Error::Parse {
                problem: ParseProblem::TooDeep,
                ..
            })
        ));
    }

    #[test]
    fn precedence_bare_words_and_escapes() {
        assert_eq!(
            parse("a OR b and c").unwrap(),
            PolicyNode::Or(vec![
                PolicyNode::attr("a"),
                PolicyNode::And(vec![PolicyNode::attr("b"), PolicyNode::attr("c")])
            ])
        );
        assert_eq!(
            parse(r#""q\"\\\u{e9}\n""#).unwrap(),
            PolicyNode::attr("q\"\\é\n")
        );
        assert_eq!(
            parse("\"Ünïcødé 🔑\"").unwrap(),
            PolicyNode::attr("Ünïcødé 🔑")
        );
        assert_eq!(parse("release:42").unwrap(), PolicyNode::attr("release:42"));
        assert_eq!(parse("42").unwrap(), PolicyNode::attr("42"));
    }

    #[test]
    fn reports_position_and_problem() {
        assert_eq!(problem(""), (0, ParseProblem::UnexpectedEnd));
        assert_eq!(problem("a and"), (5, ParseProblem::UnexpectedEnd));
        assert_eq!(problem("a and )"), (6, ParseProblem::ExpectedOperand));
        assert_eq!(problem("(a or b"), (7, ParseProblem::ExpectedCloseParen));
        assert_eq!(problem("a b"), (2, ParseProblem::TrailingInput));
        assert_eq!(problem("\"abc"), (0, ParseProblem::UnterminatedString));
        assert_eq!(problem(r#""a\q""#), (2, ParseProblem::InvalidEscape));
        assert_eq!(problem("a and !b"), (6, ParseProblem::UnexpectedChar('!')));
        assert_eq!(
            problem("3 of (a, b)"),
            (0, ParseProblem::InvalidThreshold { k: 3, n: 2 })
        );
        assert_eq!(
            problem("0 of (a)"),
            (0, ParseProblem::InvalidThreshold { k: 0, n: 1 })
        );
        assert_eq!(problem("2 of a"), (5, ParseProblem::ExpectedOpenParen));
        assert_eq!(
            problem("a and or"),
            (6, ParseProblem::KeywordAsAttribute("or".into()))
        );
        assert_eq!(
            problem("\"\""),
            (0, ParseProblem::InvalidAttribute { len: 0 })
        );
        assert_eq!(
            problem("99999999999999999999999 of (a)"),
            (0, ParseProblem::InvalidNumber)
        );
        assert_eq!(
            problem(r#""y" and ("y" or a)"#),
            (9, ParseProblem::RepeatedAttribute("y".into()))
        );
        assert_eq!(
            problem(r#"2 of (y, "\u{79}", a)"#),
            (9, ParseProblem::RepeatedAttribute("y".into()))
        );
        // Each group adds an OR and an AND level: 16 groups are too deep for
        // Policy::new although only 16 parentheses are open; the parser says
        // so, with the position of the deepest attribute.
        let mut text = String::from("x16 or y16 and z16");
        for i in (0..16).rev() {
            text = format!("x{i} or y{i} and ({text})");
        }
        let (at, what) = problem(&text);
        assert_eq!(what, ParseProblem::TooDeep);
        assert_eq!(&text[at..at + 3], "z16");
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(problem(&deep).1, ParseProblem::TooDeep);
    }
}
