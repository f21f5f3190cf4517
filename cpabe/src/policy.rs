//! Access policies: monotone boolean formulas over attributes with AND, OR
//! and k-of-n threshold gates, their validation, evaluation, canonical
//! binary encoding and display in the human syntax.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::limits::{MAX_ATTRIBUTE_LEN, MAX_POLICY_DEPTH, MAX_POLICY_LEAVES};

/// One node of a policy formula. This is also the JSON form:
/// `{"attr": "region:eu"}`, `{"and": [..]}`, `{"or": [..]}`,
/// `{"threshold": {"k": 2, "of": [..]}}`. Deserialization is depth-bounded
/// (see `policy_serde.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PolicyNode {
    /// A leaf: the attribute must be held.
    Attr(String),
    /// All children must be satisfied.
    And(Vec<PolicyNode>),
    /// At least one child must be satisfied.
    Or(Vec<PolicyNode>),
    /// At least `k` of the children must be satisfied.
    Threshold {
        /// How many children must be satisfied.
        k: usize,
        /// The children.
        of: Vec<PolicyNode>,
    },
}

impl PolicyNode {
    /// A leaf for `attribute`.
    pub fn attr(attribute: impl Into<String>) -> Self {
        Self::Attr(attribute.into())
    }

    /// Children of a gate (none for a leaf).
    pub(crate) fn children(&self) -> &[PolicyNode] {
        match self {
            Self::Attr(_) => &[],
            Self::And(c) | Self::Or(c) | Self::Threshold { of: c, .. } => c,
        }
    }

    /// How many children must be satisfied (0 for a leaf).
    pub(crate) fn required(&self) -> usize {
        match self {
            Self::Attr(_) => 0,
            Self::And(c) => c.len(),
            Self::Or(_) => 1,
            Self::Threshold { k, .. } => *k,
        }
    }

    fn is_satisfied(&self, attrs: &BTreeSet<&str>) -> bool {
        match self {
            Self::Attr(a) => attrs.contains(a.as_str()),
            gate => {
                let need = gate.required();
                gate.children()
                    .iter()
                    .filter(|c| c.is_satisfied(attrs))
                    .take(need)
                    .count()
                    == need
            }
        }
    }
}

/// Checks an attribute name against [`MAX_ATTRIBUTE_LEN`].
pub(crate) fn check_attribute(attribute: &str) -> Result<()> {
    if attribute.is_empty() || attribute.len() > MAX_ATTRIBUTE_LEN {
        return Err(Error::InvalidAttribute {
            len: attribute.len(),
            max: MAX_ATTRIBUTE_LEN,
        });
    }
    Ok(())
}

/// A validated policy: non-empty gates, `1 <= k <= n` thresholds, attributes
/// of 1..=[`MAX_ATTRIBUTE_LEN`] bytes, each occurring at most once, at most
/// [`MAX_POLICY_LEAVES`] leaves and [`MAX_POLICY_DEPTH`] levels.
///
/// The one-use rule is FAME's (its policy map π is injective): ciphertext
/// rows of the same attribute share the attribute's hash points, so their
/// difference is attribute-free and a key lacking the attribute can use it.
/// For example a key for `{a}` would open `y and (y or a)`.
///
/// Serde uses the JSON node form ([`PolicyNode`]), validated on the way in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicyNode", into = "PolicyNode")]
pub struct Policy {
    root: PolicyNode,
    leaves: usize,
}

impl Policy {
    /// Validates a formula.
    pub fn new(root: PolicyNode) -> Result<Self> {
        let leaves = validate(&root, 1, &mut BTreeSet::new())?;
        Ok(Self { root, leaves })
    }

    /// Parses the human syntax, e.g.
    /// `"model:thermo-x" and ("region:eu" or "region:in") and 2 of (a, b, c)`.
    pub fn parse(text: &str) -> Result<Self> {
        Self::new(crate::parse::parse(text)?)
    }

    /// Parses the JSON form (see [`PolicyNode`]).
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::Json {
            message: e.to_string(),
        })
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        // Serializing a tree of strings, vectors and integers cannot fail.
        serde_json::to_string(&self.root).unwrap_or_default()
    }

    /// The formula.
    pub fn root(&self) -> &PolicyNode {
        &self.root
    }

    /// Number of leaves (attribute occurrences), i.e. LSSS rows.
    pub fn leaf_count(&self) -> usize {
        self.leaves
    }

    /// The distinct attributes the policy mentions.
    pub fn attributes(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        collect(&self.root, &mut out);
        out
    }

    /// Plain boolean evaluation: does holding exactly `attributes` satisfy the policy?
    pub fn is_satisfied_by<S: AsRef<str>>(&self, attributes: &[S]) -> bool {
        let set: BTreeSet<&str> = attributes.iter().map(AsRef::as_ref).collect();
        self.root.is_satisfied(&set)
    }

    /// The canonical binary encoding (with header); see `docs/cpabe.md`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_header(crate::codec::Kind::Policy);
        write_node(&mut w, &self.root);
        w.into_bytes()
    }

    /// Decodes [`Policy::to_bytes`] output, rejecting anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::with_header(bytes, crate::codec::Kind::Policy)?;
        let p = Self::read_body(&mut r)?;
        r.finish()?;
        Ok(p)
    }

    /// The canonical body (no header), as embedded in capsules and bound into the KEM key.
    pub(crate) fn body_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        write_node(&mut w, &self.root);
        w.into_bytes()
    }

    pub(crate) fn read_body(r: &mut Reader<'_>) -> Result<Self> {
        let mut leaves = 0;
        let root = read_node(r, 1, &mut leaves)?;
        Self::new(root)
    }
}

impl TryFrom<PolicyNode> for Policy {
    type Error = Error;
    fn try_from(root: PolicyNode) -> Result<Self> {
        Self::new(root)
    }
}

impl From<Policy> for PolicyNode {
    fn from(p: Policy) -> Self {
        p.root
    }
}

impl core::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Returns the number of leaves; `seen` collects the attributes met so far.
fn validate<'a>(node: &'a PolicyNode, depth: usize, seen: &mut BTreeSet<&'a str>) -> Result<usize> {
    if depth > MAX_POLICY_DEPTH {
        return Err(Error::LimitExceeded {
            what: "policy depth",
            actual: depth,
            max: MAX_POLICY_DEPTH,
        });
    }
    let leaves = match node {
        PolicyNode::Attr(a) => {
            check_attribute(a)?;
            if !seen.insert(a) {
                return Err(Error::RepeatedAttribute {
                    attribute: a.clone(),
                });
            }
            1
        }
        gate => {
            let children = gate.children();
            if children.is_empty() {
                return Err(Error::EmptyGate);
            }
            if let PolicyNode::Threshold { k, of } = gate
                && (*k == 0 || *k > of.len())
            {
                return Err(Error::InvalidThreshold { k: *k, n: of.len() });
            }
            let mut sum = 0usize;
            for c in children {
                sum += validate(c, depth + 1, seen)?;
                if sum > MAX_POLICY_LEAVES {
                    break;
                }
            }
            sum
        }
    };
    if leaves > MAX_POLICY_LEAVES {
        return Err(Error::LimitExceeded {
            what: "policy leaves",
            actual: leaves,
            max: MAX_POLICY_LEAVES,
        });
    }
    Ok(leaves)
}

fn collect<'a>(node: &'a PolicyNode, out: &mut BTreeSet<&'a str>) {
    match node {
        PolicyNode::Attr(a) => {
            out.insert(a);
        }
        gate => gate.children().iter().for_each(|c| collect(c, out)),
    }
}

const TAG_ATTR: u8 = 0x01;
const TAG_AND: u8 = 0x02;
const TAG_OR: u8 = 0x03;
const TAG_THRESHOLD: u8 = 0x04;

fn write_node(w: &mut Writer, node: &PolicyNode) {
    // Validation bounds every length by MAX_POLICY_LEAVES / MAX_ATTRIBUTE_LEN < u16::MAX.
    match node {
        PolicyNode::Attr(a) => {
            w.u8(TAG_ATTR);
            w.str16(a);
        }
        PolicyNode::And(c) => {
            w.u8(TAG_AND);
            w.u16(c.len() as u16);
            c.iter().for_each(|c| write_node(w, c));
        }
        PolicyNode::Or(c) => {
            w.u8(TAG_OR);
            w.u16(c.len() as u16);
            c.iter().for_each(|c| write_node(w, c));
        }
        PolicyNode::Threshold { k, of } => {
            w.u8(TAG_THRESHOLD);
            w.u16(*k as u16);
            w.u16(of.len() as u16);
            of.iter().for_each(|c| write_node(w, c));
        }
    }
}

/// Smallest encoded node (a one-byte attribute): tag, u16 length, one byte.
const MIN_NODE_LEN: usize = 4;

fn read_node(r: &mut Reader<'_>, depth: usize, leaves: &mut usize) -> Result<PolicyNode> {
    if depth > MAX_POLICY_DEPTH {
        return Err(Error::LimitExceeded {
            what: "policy depth",
            actual: depth,
            max: MAX_POLICY_DEPTH,
        });
    }
    let at = r.offset();
    let tag = r.u8()?;
    let read_children =
        |r: &mut Reader<'_>, n: usize, leaves: &mut usize| -> Result<Vec<PolicyNode>> {
            if n == 0 {
                return Err(Error::EmptyGate);
            }
            // Each child takes at least MIN_NODE_LEN bytes: this bounds the allocation by the input.
            let mut out = Vec::with_capacity(n.min(r.remaining() / MIN_NODE_LEN));
            for _ in 0..n {
                out.push(read_node(r, depth + 1, leaves)?);
            }
            Ok(out)
        };
    match tag {
        TAG_ATTR => {
            *leaves += 1;
            if *leaves > MAX_POLICY_LEAVES {
                return Err(Error::LimitExceeded {
                    what: "policy leaves",
                    actual: *leaves,
                    max: MAX_POLICY_LEAVES,
                });
            }
            let a = r.str16()?;
            check_attribute(&a)?;
            Ok(PolicyNode::Attr(a))
        }
        TAG_AND => {
            let n = r.u16()? as usize;
            Ok(PolicyNode::And(read_children(r, n, leaves)?))
        }
        TAG_OR => {
            let n = r.u16()? as usize;
            Ok(PolicyNode::Or(read_children(r, n, leaves)?))
        }
        TAG_THRESHOLD => {
            let k = r.u16()? as usize;
            let n = r.u16()? as usize;
            if k == 0 || k > n {
                return Err(Error::InvalidThreshold { k, n });
            }
            Ok(PolicyNode::Threshold {
                k,
                of: read_children(r, n, leaves)?,
            })
        }
        tag => Err(Error::InvalidTag { tag, offset: at }),
    }
}

/// Displays the canonical human syntax: every attribute quoted, every gate
/// with more than one child parenthesized; `Policy::parse` reads it back.
impl fmt::Display for PolicyNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Single-child AND / OR gates have no text form of their own: show the child.
        fn unwrap(mut n: &PolicyNode) -> &PolicyNode {
            while let PolicyNode::And(c) | PolicyNode::Or(c) = n
                && let [only] = c.as_slice()
            {
                n = only;
            }
            n
        }
        fn child(f: &mut fmt::Formatter<'_>, c: &PolicyNode) -> fmt::Result {
            match unwrap(c) {
                c @ (PolicyNode::Attr(_) | PolicyNode::Threshold { .. }) => write!(f, "{c}"),
                c => write!(f, "({c})"),
            }
        }
        let this = unwrap(self);
        if !core::ptr::eq(this, self) {
            return this.fmt(f);
        }
        match self {
            Self::Attr(a) => {
                f.write_str("\"")?;
                for ch in a.chars() {
                    match ch {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        '\r' => f.write_str("\\r")?,
                        c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Self::And(c) | Self::Or(c) => {
                let op = if matches!(self, Self::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, c) in c.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    child(f, c)?;
                }
                Ok(())
            }
            Self::Threshold { k, of } => {
                write!(f, "{k} of (")?;
                for (i, c) in of.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_thresholds() {
        let p = Policy::parse(r#""m" and 2 of ("a", "b", "c")"#).unwrap();
        assert!(p.is_satisfied_by(&["m", "a", "c"]));
        assert!(!p.is_satisfied_by(&["m", "a"]));
        assert!(!p.is_satisfied_by(&["a", "b", "c"]));
    }

    #[test]
    fn binary_round_trip_and_display_round_trip() {
        let p =
            Policy::parse(r#""x\"y" and ("b" or 2 of ("c", "d", "e")) and ("f" and "g")"#).unwrap();
        assert_eq!(Policy::from_bytes(&p.to_bytes()).unwrap(), p);
        assert_eq!(Policy::parse(&p.to_string()).unwrap(), p);
        assert_eq!(Policy::from_json(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn rejects_invalid_trees() {
        assert_eq!(Policy::new(PolicyNode::And(vec![])), Err(Error::EmptyGate));
        assert_eq!(
            Policy::new(PolicyNode::Threshold {
                k: 3,
                of: vec![PolicyNode::attr("a"), PolicyNode::attr("b")]
            }),
            Err(Error::InvalidThreshold { k: 3, n: 2 })
        );
        assert!(matches!(
            Policy::new(PolicyNode::attr("")),
            Err(Error::InvalidAttribute { len: 0, .. })
        ));
        let wide = PolicyNode::Or(
            (0..=MAX_POLICY_LEAVES)
                .map(|i| PolicyNode::attr(format!("a{i}")))
                .collect(),
        );
        assert!(matches!(
            Policy::new(wide),
            Err(Error::LimitExceeded {
                what: "policy leaves",
                ..
            })
        ));
        let mut deep = PolicyNode::attr("a");
        for _ in 0..MAX_POLICY_DEPTH {
            deep = PolicyNode::And(vec![deep]);
        }
        assert!(matches!(
            Policy::new(deep),
            Err(Error::LimitExceeded {
                what: "policy depth",
                ..
            })
        ));
    }

    #[test]
    fn rejects_repeated_attributes_in_every_form() {
        let repeated = || {
            Err(Error::RepeatedAttribute {
                attribute: "y".into(),
            })
        };
        let tree = PolicyNode::And(vec![
            PolicyNode::attr("y"),
            PolicyNode::Or(vec![PolicyNode::attr("y"), PolicyNode::attr("a")]),
        ]);
        assert_eq!(Policy::new(tree.clone()), repeated());
        assert!(matches!(
            Policy::from_json(&serde_json::to_string(&tree).unwrap()),
            Err(Error::Json { message }) if message.contains("more than once")
        ));
        let mut w = Writer::with_header(crate::codec::Kind::Policy);
        write_node(&mut w, &tree);
        assert_eq!(Policy::from_bytes(&w.into_bytes()), repeated());
        assert!(matches!(
            Policy::parse(r#"2 of ("y", "y", "a")"#),
            Err(Error::Parse {
                position: 11,
                problem: crate::ParseProblem::RepeatedAttribute(_)
            })
        ));
    }

    #[test]
    fn json_form() {
        let p = Policy::from_json(
            r#"{"and":[{"attr":"a"},{"threshold":{"k":1,"of":[{"attr":"b"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(p.to_string(), r#""a" and 1 of ("b")"#);
        assert!(matches!(
            Policy::from_json(r#"{"threshold":{"k":0,"of":[{"attr":"b"}]}}"#),
            Err(Error::Json { .. })
        ));
        for bad in [
            r#"{"threshold":{"k":1,"of":[{"attr":"b"}],"x":0}}"#,
            r#"{"threshold":{"k":1,"k":1,"of":[{"attr":"b"}]}}"#,
            r#"{"threshold":{"of":[{"attr":"b"}]}}"#,
            r#"{"xor":[{"attr":"b"}]}"#,
            r#"{"and":{"attr":"b"}}"#,
            r#"{"attr":"b","or":[]}"#,
        ] {
            assert!(
                matches!(Policy::from_json(bad), Err(Error::Json { .. })),
                "{bad}"
            );
        }
    }
}
