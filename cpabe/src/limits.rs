//! Size limits. Every decoder and the parser enforce them before allocating,
//! so no input can make this crate allocate without bound or recurse deeply.

/// Longest attribute name, in UTF-8 bytes.
pub const MAX_ATTRIBUTE_LEN: usize = 256;
/// Most attributes in one secret key.
pub const MAX_KEY_ATTRIBUTES: usize = 512;
/// Most leaves (attribute occurrences) in one policy; this is also the most
/// rows of its LSSS matrix and of a capsule.
pub const MAX_POLICY_LEAVES: usize = 512;
/// Deepest nesting of gates in a policy.
pub const MAX_POLICY_DEPTH: usize = 32;
/// Longest policy text accepted by the parser, in bytes.
pub const MAX_POLICY_TEXT: usize = 64 * 1024;
