//! Depth-bounded deserialization of [`PolicyNode`], the policy's serde form.
//!
//! A derived `Deserialize` recurses once per nesting level of its input, and
//! formats without a recursion limit of their own (bincode, postcard, …)
//! would let a crafted input overflow the stack. This one refuses, while
//! reading, a node deeper than [`MAX_POLICY_DEPTH`], more than
//! [`MAX_POLICY_LEAVES`] leaves, and more nodes than a valid policy can have
//! (every leaf under at most `MAX_POLICY_DEPTH - 1` gates), so neither the
//! stack nor the heap grows with the input beyond those limits. The accepted forms are
//! those the derived `Serialize` writes: `{"attr": ..}`, `{"and": [..]}`,
//! `{"or": [..]}`, `{"threshold": {"k": .., "of": [..]}}`.

use core::cell::Cell;
use core::fmt;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use crate::limits::{MAX_POLICY_DEPTH, MAX_POLICY_LEAVES};
use crate::policy::PolicyNode;

const VARIANTS: &[&str] = &["attr", "and", "or", "threshold"];
const THRESHOLD_FIELDS: &[&str] = &["k", "of"];

/// Most nodes (gates and leaves) of a valid policy.
const MAX_NODES: usize = MAX_POLICY_LEAVES * MAX_POLICY_DEPTH;

impl<'de> Deserialize<'de> for PolicyNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let counts = Counts::default();
        Node {
            depth: 1,
            counts: &counts,
        }
        .deserialize(d)
    }
}

/// Nodes and leaves read so far.
#[derive(Default)]
struct Counts {
    nodes: Cell<usize>,
    leaves: Cell<usize>,
}

fn bump<E: de::Error>(counter: &Cell<usize>, max: usize, what: &str) -> Result<(), E> {
    let n = counter.get() + 1;
    if n > max {
        return Err(E::custom(format_args!("policy has more than {max} {what}")));
    }
    counter.set(n);
    Ok(())
}

/// A node at `depth` (the root is 1).
#[derive(Clone, Copy)]
struct Node<'c> {
    depth: usize,
    counts: &'c Counts,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = PolicyNode;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PolicyNode, D::Error> {
        if self.depth > MAX_POLICY_DEPTH {
            return Err(de::Error::custom(format_args!(
                "policy depth exceeds the limit of {MAX_POLICY_DEPTH}"
            )));
        }
        bump(&self.counts.nodes, MAX_NODES, "nodes")?;
        d.deserialize_enum("PolicyNode", VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = PolicyNode;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a policy node (attr, and, or or threshold)")
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<PolicyNode, A::Error> {
        let (tag, variant) = data.variant::<Tag>()?;
        let children = Children(self);
        match tag {
            Tag::Attr => {
                bump(&self.counts.leaves, MAX_POLICY_LEAVES, "leaves")?;
                variant.newtype_variant().map(PolicyNode::Attr)
            }
            Tag::And => variant.newtype_variant_seed(children).map(PolicyNode::And),
            Tag::Or => variant.newtype_variant_seed(children).map(PolicyNode::Or),
            Tag::Threshold => variant.struct_variant(THRESHOLD_FIELDS, Threshold(children)),
        }
    }
}

enum Tag {
    Attr,
    And,
    Or,
    Threshold,
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Tag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a policy node kind")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tag, E> {
                match v {
                    0 => Ok(Tag::Attr),
                    1 => Ok(Tag::And),
                    2 => Ok(Tag::Or),
                    3 => Ok(Tag::Threshold),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tag, E> {
                match v {
                    "attr" => Ok(Tag::Attr),
                    "and" => Ok(Tag::And),
                    "or" => Ok(Tag::Or),
                    "threshold" => Ok(Tag::Threshold),
                    _ => Err(E::unknown_variant(v, VARIANTS)),
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The children of the gate `.0`.
#[derive(Clone, Copy)]
struct Children<'c>(Node<'c>);

impl<'de> DeserializeSeed<'de> for Children<'_> {
    type Value = Vec<PolicyNode>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<PolicyNode>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Children<'_> {
    type Value = Vec<PolicyNode>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of policy nodes")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<PolicyNode>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        let child = Node {
            depth: self.0.depth + 1,
            counts: self.0.counts,
        };
        while let Some(c) = seq.next_element_seed(child)? {
            out.push(c);
        }
        Ok(out)
    }
}

/// `{"k": .., "of": [..]}` of a threshold gate.
struct Threshold<'c>(Children<'c>);

enum Field {
    K,
    Of,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`k` or `of`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field, E> {
                match v {
                    0 => Ok(Field::K),
                    1 => Ok(Field::Of),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                match v {
                    "k" => Ok(Field::K),
                    "of" => Ok(Field::Of),
                    _ => Err(E::unknown_field(v, THRESHOLD_FIELDS)),
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Visitor<'de> for Threshold<'_> {
    type Value = PolicyNode;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a threshold gate {k, of}")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PolicyNode, A::Error> {
        let k = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let of = seq
            .next_element_seed(self.0)?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok(PolicyNode::Threshold { k, of })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyNode, A::Error> {
        let (mut k, mut of) = (None, None);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::K if k.is_none() => k = Some(map.next_value()?),
                Field::Of if of.is_none() => of = Some(map.next_value_seed(self.0)?),
                Field::K => return Err(de::Error::duplicate_field("k")),
                Field::Of => return Err(de::Error::duplicate_field("of")),
            }
        }
        Ok(PolicyNode::Threshold {
            k: k.ok_or_else(|| de::Error::missing_field("k"))?,
            of: of.ok_or_else(|| de::Error::missing_field("of"))?,
        })
    }
}
