//! The crate's one error type.

use crate::parse::ParseProblem;

/// Which group an encoded element belongs to (for error reports).
///
/// The public enums (this one, [`Error`], [`crate::ParseProblem`],
/// [`crate::PolicyNode`]) are `#[non_exhaustive]`: outside the crate a
/// `match` needs a wildcard arm (these examples are tests).
/// ```
/// # use otaledger_cpabe::GroupKind;
/// fn name(g: GroupKind) -> &'static str {
///     match g { GroupKind::G1 => "g1", GroupKind::G2 => "g2", GroupKind::Gt => "gt", _ => "?" }
/// }
/// ```
/// ```compile_fail
/// # use otaledger_cpabe::GroupKind;
/// fn name(g: GroupKind) -> &'static str {
///     match g { GroupKind::G1 => "g1", GroupKind::G2 => "g2", GroupKind::Gt => "gt" }
/// }
/// ```
/// ```compile_fail
/// # use otaledger_cpabe::PolicyNode;
/// fn leaf(n: &PolicyNode) -> bool {
///     match n { PolicyNode::Attr(_) => true, PolicyNode::And(_) | PolicyNode::Or(_) => false,
///         PolicyNode::Threshold { .. } => false }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupKind {
    /// BLS12-381 G1 (48-byte compressed points).
    G1,
    /// BLS12-381 G2 (96-byte compressed points).
    G2,
    /// The pairing target group (288-byte torus-compressed elements).
    Gt,
}

impl core::fmt::Display for GroupKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::G1 => "G1",
            Self::G2 => "G2",
            Self::Gt => "GT",
        })
    }
}

/// Everything that can go wrong in this crate.
///
/// Decoding errors carry the byte offset at which the problem was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The human policy syntax could not be parsed.
    #[error("policy syntax error at byte {position}: {problem}")]
    Parse {
        /// Byte offset into the policy text.
        position: usize,
        /// What is wrong there.
        problem: ParseProblem,
    },
    /// The JSON form of a policy is malformed.
    #[error("policy json: {message}")]
    Json {
        /// serde_json's description, with line and column.
        message: String,
    },
    /// A gate has no children.
    #[error("a policy gate has no children")]
    EmptyGate,
    /// A threshold gate asks for `k` of `n` with `k == 0` or `k > n`.
    #[error("threshold {k} of {n} is invalid (need 1 <= k <= n)")]
    InvalidThreshold {
        /// Required number of children.
        k: usize,
        /// Number of children.
        n: usize,
    },
    /// An attribute is empty or longer than [`crate::limits::MAX_ATTRIBUTE_LEN`].
    #[error("invalid attribute of {len} bytes (must be 1..={max})")]
    InvalidAttribute {
        /// Length of the offending attribute in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A key was requested with the same attribute twice.
    #[error("duplicate attribute {attribute:?}")]
    DuplicateAttribute {
        /// The repeated attribute.
        attribute: String,
    },
    /// An attribute occurs more than once in a policy. FAME's ciphertext rows
    /// for one attribute share their hash points, so a repeated attribute
    /// would let a key that does not hold it cancel it out (see `docs/cpabe.md`).
    #[error("attribute {attribute:?} occurs more than once in the policy")]
    RepeatedAttribute {
        /// The repeated attribute.
        attribute: String,
    },
    /// A key was requested for no attributes.
    #[error("a key needs at least one attribute")]
    NoAttributes,
    /// A documented size limit was exceeded.
    #[error("{what} is {actual}, limit {max}")]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// The count found.
        actual: usize,
        /// The limit.
        max: usize,
    },
    /// The key's attributes do not satisfy the capsule's policy.
    #[error("the key's attributes do not satisfy the capsule's policy")]
    PolicyNotSatisfied,
    /// Decapsulation produced the identity in GT (only a forged capsule can do this).
    #[error("degenerate capsule: the pairing product is the identity")]
    DegenerateCapsule,
    /// The input ended before the structure did.
    #[error("truncated input: {needed} more bytes needed at offset {offset}")]
    Truncated {
        /// Offset at which the read started.
        offset: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// The encoding does not start with the format's magic bytes.
    #[error("bad magic {found:02x?}")]
    BadMagic {
        /// The first two bytes found.
        found: [u8; 2],
    },
    /// The format version is not one this build reads.
    #[error("unsupported format version {found}")]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
    },
    /// The encoding is of another object kind (e.g. a key where a capsule was expected).
    #[error("wrong object kind {found:#04x}, expected {expected:#04x}")]
    WrongKind {
        /// Kind byte expected.
        expected: u8,
        /// Kind byte found.
        found: u8,
    },
    /// Bytes follow a complete structure.
    #[error("{trailing} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Offset of the first trailing byte.
        offset: usize,
        /// How many bytes follow.
        trailing: usize,
    },
    /// A group element is not canonical, not on the curve or not in the prime-order subgroup.
    #[error(
        "invalid {group} element at offset {offset} (off-curve, outside the subgroup or non-canonical)"
    )]
    InvalidPoint {
        /// The group.
        group: GroupKind,
        /// Offset of the element.
        offset: usize,
    },
    /// A group element is the identity where that is never valid.
    #[error("identity {group} element at offset {offset}")]
    IdentityPoint {
        /// The group.
        group: GroupKind,
        /// Offset of the element.
        offset: usize,
    },
    /// A scalar is not the canonical encoding of an element of the scalar field, or is zero where that is invalid.
    #[error("invalid scalar at offset {offset}")]
    InvalidScalar {
        /// Offset of the scalar.
        offset: usize,
    },
    /// An attribute name is not UTF-8.
    #[error("attribute at offset {offset} is not utf-8")]
    InvalidUtf8 {
        /// Offset of the attribute bytes.
        offset: usize,
    },
    /// An unknown policy node tag.
    #[error("unknown policy node tag {tag:#04x} at offset {offset}")]
    InvalidTag {
        /// The tag byte.
        tag: u8,
        /// Its offset.
        offset: usize,
    },
    /// A key's attributes are not in strictly increasing byte order.
    #[error("key attributes are not sorted and unique at offset {offset}")]
    UnsortedAttributes {
        /// Offset of the out-of-order attribute.
        offset: usize,
    },
    /// A capsule's row count does not match its policy.
    #[error("capsule has {found} rows but its policy has {expected} leaves")]
    RowCountMismatch {
        /// Leaves of the policy.
        expected: usize,
        /// Rows in the capsule.
        found: usize,
    },
    /// A hex string (serde's human-readable form) is malformed.
    #[error("invalid hex: {message}")]
    Hex {
        /// What is wrong.
        message: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
