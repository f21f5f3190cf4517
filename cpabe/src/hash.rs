//! Hashing into G1 with RFC 9380 hash-to-curve under the project's DST.
//!
//! FAME needs random-oracle points `H(y, l, t)` for each attribute `y` and
//! `H(0, j, l, t)` for each LSSS column `j` (`l ∈ 1..=3`, `t ∈ 1..=2`). Their
//! discrete logarithms must be unknown to everyone: RFC 9380's
//! `hash_to_curve` gives exactly that. Inputs are length-prefixed and tagged
//! so no two (kind, attribute, index) tuples share an encoding.

use blstrs::G1Projective;

/// The hash-to-curve domain separation tag of this scheme (version 1).
pub const HASH_DST: &[u8] = b"OTALEDGER-CPABE-V1_BLS12381G1_XMD:SHA-256_SSWU_RO_";

const TAG_ATTRIBUTE: u8 = 0x01;
const TAG_COLUMN: u8 = 0x02;

/// `H(y, l, t)`: `0x01 || u32be(len y) || y || l || t`.
pub(crate) fn attribute_point(attribute: &str, l: u8, t: u8) -> G1Projective {
    let mut msg = Vec::with_capacity(attribute.len() + 7);
    msg.push(TAG_ATTRIBUTE);
    msg.extend_from_slice(&(attribute.len() as u32).to_be_bytes());
    msg.extend_from_slice(attribute.as_bytes());
    msg.extend_from_slice(&[l, t]);
    G1Projective::hash_to_curve(&msg, HASH_DST, &[])
}

/// `H(0, j, l, t)` for LSSS column `j` (0-based): `0x02 || u32be(j) || l || t`.
/// Keys use column 0's points for their `sk'` component.
pub(crate) fn column_point(column: usize, l: u8, t: u8) -> G1Projective {
    let mut msg = [0u8; 7];
    msg[0] = TAG_COLUMN;
    msg[1..5].copy_from_slice(&(column as u32).to_be_bytes());
    msg[5] = l;
    msg[6] = t;
    G1Projective::hash_to_curve(&msg, HASH_DST, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_separated() {
        assert_ne!(attribute_point("a", 1, 1), attribute_point("a", 1, 2));
        assert_ne!(attribute_point("a", 1, 1), attribute_point("a", 2, 1));
        assert_ne!(attribute_point("a", 1, 1), attribute_point("b", 1, 1));
        assert_ne!(column_point(0, 1, 1), column_point(1, 1, 1));
        // Same bytes after the tag, different tag.
        assert_ne!(attribute_point("", 1, 1), column_point(0, 1, 1));
    }
}
