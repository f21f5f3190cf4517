//! The incremental verifier: checks a UnixFS file DAG block by block and yields its bytes.
//!
//! The verifier walks the DAG depth first, left to right, holding one path of nodes (at most
//! `max_depth` frames of at most `max_links_per_node` links). For every block it is given it
//! checks, in order:
//! 1. the block is the one the walk needs next (the sender's claimed CID equals the link);
//! 2. the block is within `max_block_size` and hashes to that CID (sha2-256);
//! 3. the block decodes as canonical dag-pb + UnixFS (or is a raw leaf) and is a file;
//! 4. the node's sizes add up (`filesize` = data + Σ `blocksizes`), its size equals the size its
//!    parent's `blocksizes` gave it, and its links' `Tsize` add up to the `Tsize` its parent gave;
//! 5. the limits on links, depth and total size hold;
//!
//! and only then emits the bytes the block carries and moves to the next link. A failed check
//! leaves the verifier unchanged, so a caller can fetch the same block elsewhere and resume.

use alloc::{collections::BTreeMap, vec::Vec};

use crate::{
    Cid, DAG_PB, Limits, RAW,
    block::{check_block, check_cid_kind},
    dagpb::decode_dag_pb,
    error::{DecodeError, VerifyError},
    unixfs::{DataType, decode_unixfs},
};

/// How many verified blocks the verifier remembers for duplicate detection and [`Verifier::repeat`].
pub const MAX_REMEMBERED_BLOCKS: usize = 1 << 16;

/// What a verified block contributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed<'b> {
    /// File bytes, in order, starting at the position before the push (a leaf, or a node with
    /// inline data). May be empty (the empty file).
    Data(&'b [u8]),
    /// An interior node without file bytes.
    Node,
}

/// A subtree the walk needs again that was already verified earlier in this walk (a CAR written
/// with `dups=n` sends it once): its bytes are the file's bytes at `offset..offset + len`.
///
/// In a walk resumed at `from` (see [`Verifier::with_range`]), `offset` can be below `from` when
/// the first occurrence straddled the resume point: those bytes came from the earlier attempt,
/// which a resuming caller still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    /// Absolute file offset of the subtree's first occurrence.
    pub offset: u64,
    /// Their length.
    pub len: u64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    cid: Cid,
    offset: u64,
    size: Option<u64>,
    tsize: Option<u64>,
    depth: usize,
}

#[derive(Debug, Clone, Copy)]
struct Child {
    cid: Cid,
    size: u64,
    tsize: u64,
}

#[derive(Debug)]
struct Frame {
    children: Vec<Child>,
    next: usize,
    /// Absolute file offset where the next child's bytes start.
    offset: u64,
    /// Depth of the children.
    depth: usize,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    offset: u64,
    size: u64,
    tsize: u64,
}

/// Whether a child covering `[offset, offset + size)` is needed for bytes `from..=to`.
pub(crate) fn in_range(offset: u64, size: u64, from: u64, to: Option<u64>) -> bool {
    let end = offset.saturating_add(size);
    let after_from = end > from || (size == 0 && offset >= from);
    after_from && to.is_none_or(|to| offset <= to)
}

/// Incremental DFS verifier of a UnixFS file DAG (see the module documentation).
#[derive(Debug)]
pub struct Verifier {
    root: Cid,
    limits: Limits,
    from: u64,
    stack: Vec<Frame>,
    pending: Option<Pending>,
    position: u64,
    expected_size: Option<u64>,
    seen: BTreeMap<Cid, Seen>,
}

impl Verifier {
    /// A verifier for the file under `root`, emitting every byte.
    pub fn new(root: Cid, limits: Limits) -> Result<Self, VerifyError> {
        Self::with_range(root, limits, 0)
    }

    /// A verifier that only needs the blocks for bytes `from..` (plus the path to them) and emits
    /// bytes starting at `from`: used to resume a download at the verified position.
    pub fn with_range(root: Cid, limits: Limits, from: u64) -> Result<Self, VerifyError> {
        check_cid_kind(&root)?;
        Ok(Self {
            root,
            limits,
            from,
            stack: Vec::new(),
            pending: Some(Pending {
                cid: root,
                offset: 0,
                size: None,
                tsize: None,
                depth: 0,
            }),
            position: from,
            expected_size: None,
            seen: BTreeMap::new(),
        })
    }

    /// The root CID.
    pub fn root(&self) -> &Cid {
        &self.root
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The next block the walk needs, or `None` when the file is complete.
    pub fn next_needed(&self) -> Option<&Cid> {
        self.pending.as_ref().map(|p| &p.cid)
    }

    /// Absolute offset of the next byte to be emitted.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Whether every needed block was verified.
    pub fn is_done(&self) -> bool {
        self.pending.is_none()
    }

    /// The file size the root declares, once the root was verified.
    pub fn expected_size(&self) -> Option<u64> {
        self.expected_size
    }

    /// Verifies `block`, which the sender claims is `cid`, and returns the bytes it yields.
    ///
    /// On error the verifier is unchanged: the same block can be tried again from elsewhere.
    pub fn push<'b>(&mut self, cid: &Cid, block: &'b [u8]) -> Result<Pushed<'b>, VerifyError> {
        let Some(p) = self.pending else {
            return Err(VerifyError::Finished { cid: *cid });
        };
        if *cid != p.cid {
            if self.seen.contains_key(cid) {
                return Err(VerifyError::DuplicateBlock { cid: *cid });
            }
            return Err(VerifyError::UnexpectedBlock {
                expected: p.cid,
                got: *cid,
            });
        }
        if block.len() > self.limits.max_block_size {
            return Err(VerifyError::BlockTooLarge {
                cid: *cid,
                size: block.len(),
                max: self.limits.max_block_size,
            });
        }
        check_cid_kind(cid)?;
        check_block(cid, block)?;
        let checked = match cid.codec() {
            RAW => Checked {
                content: block,
                size: block.len() as u64,
                tsize: block.len() as u64,
                children: Vec::new(),
            },
            DAG_PB => self.check_node(&p, block)?,
            codec => return Err(VerifyError::UnsupportedCodec { cid: *cid, codec }),
        };
        check_eq(cid, "file size given by the parent", p.size, checked.size)?;
        check_eq(cid, "tsize given by the parent", p.tsize, checked.tsize)?;
        if p.depth == 0 {
            if checked.size > self.limits.max_total_size {
                return Err(VerifyError::TotalSizeExceeded {
                    size: checked.size,
                    max: self.limits.max_total_size,
                });
            }
            if self.from > checked.size {
                return Err(VerifyError::RangeNotSatisfiable {
                    from: self.from,
                    size: checked.size,
                });
            }
        }

        // Every check passed: commit.
        if p.depth == 0 {
            self.expected_size = Some(checked.size);
        }
        if self.seen.len() < MAX_REMEMBERED_BLOCKS {
            self.seen.insert(
                *cid,
                Seen {
                    offset: p.offset,
                    size: checked.size,
                    tsize: checked.tsize,
                },
            );
        }
        let content_len = checked.content.len() as u64;
        let skip = usize::try_from(self.from.saturating_sub(p.offset))
            .unwrap_or(usize::MAX)
            .min(checked.content.len());
        let emitted = &checked.content[skip..];
        self.position = self.position.max(p.offset.saturating_add(content_len));
        let has_children = !checked.children.is_empty();
        if has_children {
            self.stack.push(Frame {
                children: checked.children,
                next: 0,
                offset: p.offset.saturating_add(content_len),
                depth: p.depth + 1,
            });
        }
        self.advance();
        if has_children && checked.content.is_empty() {
            Ok(Pushed::Node)
        } else {
            Ok(Pushed::Data(emitted))
        }
    }

    /// Whether the next needed block is the root of a subtree verified earlier in this walk:
    /// what [`Verifier::repeat`] would skip. A caller that keeps no bytes to copy the repeat
    /// from does not call `repeat` and pushes the subtree's blocks again instead (a `dups=n` CAR
    /// does not send them a second time, so it asks for them one by one).
    pub fn next_is_repeat(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| self.seen.contains_key(&p.cid))
    }

    /// If the next needed block is the root of a subtree verified earlier in this walk, skips
    /// the whole subtree and says where its bytes are, so the caller can copy them (for CARs
    /// without duplicate blocks, which never send a block twice). Returns `Ok(None)` otherwise.
    /// Call it before each [`Verifier::push`].
    pub fn repeat(&mut self) -> Result<Option<Repeat>, VerifyError> {
        let Some(p) = self.pending else {
            return Ok(None);
        };
        let Some(seen) = self.seen.get(&p.cid).copied() else {
            return Ok(None);
        };
        check_eq(&p.cid, "file size given by the parent", p.size, seen.size)?;
        check_eq(&p.cid, "tsize given by the parent", p.tsize, seen.tsize)?;
        self.position = self.position.max(p.offset.saturating_add(seen.size));
        self.advance();
        Ok(Some(Repeat {
            offset: seen.offset,
            len: seen.size,
        }))
    }

    fn check_node<'b>(&self, p: &Pending, block: &'b [u8]) -> Result<Checked<'b>, VerifyError> {
        let cid = p.cid;
        let max_links = self.limits.max_links_per_node;
        let decode_err = |source| VerifyError::Decode { cid, source };
        let node = decode_dag_pb(block, max_links).map_err(|e| match e {
            DecodeError::TooManyLinks { max } => VerifyError::TooManyLinks { cid, max },
            e => decode_err(e),
        })?;
        let data = node.data.ok_or(decode_err(DecodeError::MissingField {
            message: "PBNode",
            field: "Data",
        }))?;
        let fs = decode_unixfs(data, node.links.len()).map_err(|e| match e {
            DecodeError::TooManyLinks { .. } => VerifyError::SizeMismatch {
                cid,
                what: "number of blocksizes",
                expected: node.links.len() as u64,
                actual: node.links.len() as u64 + 1,
            },
            e => decode_err(e),
        })?;
        match fs.kind {
            DataType::File | DataType::Raw => {}
            kind => {
                return Err(VerifyError::NotAFile {
                    cid,
                    kind: kind.name(),
                });
            }
        }
        let content = fs.data.unwrap_or(&[]);
        let block_len = block.len() as u64;
        if node.links.is_empty() {
            check_eq(
                &cid,
                "number of blocksizes",
                Some(0),
                fs.blocksizes.len() as u64,
            )?;
            let size = content.len() as u64;
            check_eq(&cid, "filesize", fs.filesize, size)?;
            return Ok(Checked {
                content,
                size,
                tsize: block_len,
                children: Vec::new(),
            });
        }
        let child_depth = p.depth + 1;
        if child_depth > self.limits.max_depth {
            return Err(VerifyError::TooDeep {
                cid,
                depth: child_depth,
                max: self.limits.max_depth,
            });
        }
        check_eq(
            &cid,
            "number of blocksizes",
            Some(node.links.len() as u64),
            fs.blocksizes.len() as u64,
        )?;
        let filesize = fs.filesize.ok_or(decode_err(DecodeError::MissingField {
            message: "UnixFS Data",
            field: "filesize",
        }))?;
        let overflow = VerifyError::SizeMismatch {
            cid,
            what: "sum of sizes (overflow)",
            expected: filesize,
            actual: u64::MAX,
        };
        let mut size = content.len() as u64;
        let mut tsize = block_len;
        let mut children = Vec::with_capacity(node.links.len());
        for (link, &child_size) in node.links.iter().zip(&fs.blocksizes) {
            check_cid_kind(&link.hash)?;
            let child_tsize = link.tsize.ok_or(decode_err(DecodeError::MissingField {
                message: "PBLink",
                field: "Tsize",
            }))?;
            size = size.checked_add(child_size).ok_or(overflow.clone())?;
            tsize = tsize.checked_add(child_tsize).ok_or(overflow.clone())?;
            children.push(Child {
                cid: link.hash,
                size: child_size,
                tsize: child_tsize,
            });
        }
        check_eq(&cid, "filesize", Some(filesize), size)?;
        Ok(Checked {
            content,
            size,
            tsize,
            children,
        })
    }

    fn advance(&mut self) {
        let from = self.from;
        while let Some(frame) = self.stack.last_mut() {
            while let Some(child) = frame.children.get(frame.next).copied() {
                frame.next += 1;
                let offset = frame.offset;
                frame.offset = offset.saturating_add(child.size);
                if in_range(offset, child.size, from, None) {
                    self.pending = Some(Pending {
                        cid: child.cid,
                        offset,
                        size: Some(child.size),
                        tsize: Some(child.tsize),
                        depth: frame.depth,
                    });
                    return;
                }
            }
            self.stack.pop();
        }
        self.pending = None;
    }
}

/// A block that passed its own checks, before it is compared with its parent's link.
struct Checked<'b> {
    content: &'b [u8],
    size: u64,
    tsize: u64,
    children: Vec<Child>,
}

fn check_eq(
    cid: &Cid,
    what: &'static str,
    expected: Option<u64>,
    actual: u64,
) -> Result<(), VerifyError> {
    match expected {
        Some(expected) if expected != actual => Err(VerifyError::SizeMismatch {
            cid: *cid,
            what,
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PbLink, block_cid, dagpb::encode_dag_pb, unixfs::encode_unixfs_file};

    fn raw(data: &[u8]) -> (Cid, Vec<u8>) {
        (block_cid(cid::Version::V1, RAW, data), data.to_vec())
    }

    fn parent(children: &[(Cid, u64, u64)]) -> (Cid, Vec<u8>) {
        let sizes: Vec<u64> = children.iter().map(|c| c.1).collect();
        let total = sizes.iter().sum();
        let links: Vec<PbLink<'_>> = children
            .iter()
            .map(|c| PbLink {
                hash: c.0,
                name: Some(""),
                tsize: Some(c.2),
            })
            .collect();
        let block = encode_dag_pb(&links, Some(&encode_unixfs_file(b"", total, &sizes)));
        (block_cid(cid::Version::V1, DAG_PB, &block), block)
    }

    #[test]
    fn in_range_rules() {
        assert!(in_range(0, 10, 0, None));
        assert!(!in_range(0, 10, 10, None));
        assert!(in_range(0, 10, 9, None));
        assert!(in_range(0, 0, 0, None));
        assert!(!in_range(20, 10, 0, Some(19)));
        assert!(in_range(20, 10, 0, Some(20)));
    }

    #[test]
    fn two_leaves_in_order() {
        let (a, ab) = raw(b"hello ");
        let (b, bb) = raw(b"world");
        let (root, rb) = parent(&[(a, 6, 6), (b, 5, 5)]);
        let mut v = Verifier::new(root, Limits::default()).unwrap();
        assert_eq!(v.push(&root, &rb).unwrap(), Pushed::Node);
        assert_eq!(v.expected_size(), Some(11));
        assert_eq!(
            v.push(&b, &bb),
            Err(VerifyError::UnexpectedBlock {
                expected: a,
                got: b
            })
        );
        assert_eq!(v.push(&a, &ab).unwrap(), Pushed::Data(b"hello "));
        assert_eq!(
            v.push(&root, &rb),
            Err(VerifyError::DuplicateBlock { cid: root })
        );
        assert_eq!(v.push(&b, &bb).unwrap(), Pushed::Data(b"world"));
        assert!(v.is_done());
        assert_eq!(v.position(), 11);
        assert_eq!(v.push(&b, &bb), Err(VerifyError::Finished { cid: b }));
    }

    #[test]
    fn tampered_block_leaves_state_unchanged() {
        let (a, _) = raw(b"abc");
        let mut v = Verifier::new(a, Limits::default()).unwrap();
        assert_eq!(
            v.push(&a, b"abd"),
            Err(VerifyError::HashMismatch { cid: a })
        );
        assert_eq!(v.next_needed(), Some(&a));
        assert_eq!(v.push(&a, b"abc").unwrap(), Pushed::Data(b"abc"));
    }

    #[test]
    fn lying_sizes_rejected() {
        let (a, ab) = raw(b"hello ");
        // parent claims 7 bytes under a 6-byte leaf
        let (root, rb) = parent(&[(a, 7, 6)]);
        let mut v = Verifier::new(root, Limits::default()).unwrap();
        v.push(&root, &rb).unwrap();
        assert!(matches!(
            v.push(&a, &ab),
            Err(VerifyError::SizeMismatch { .. })
        ));
        // wrong tsize
        let (root, rb) = parent(&[(a, 6, 99)]);
        let mut v = Verifier::new(root, Limits::default()).unwrap();
        v.push(&root, &rb).unwrap();
        assert!(matches!(
            v.push(&a, &ab),
            Err(VerifyError::SizeMismatch {
                what: "tsize given by the parent",
                ..
            })
        ));
    }

    #[test]
    fn limits_enforced() {
        let (a, ab) = raw(b"hello ");
        let (root, rb) = parent(&[(a, 6, 6), (a, 6, 6)]);
        let lim = Limits {
            max_links_per_node: 1,
            ..Limits::default()
        };
        let mut v = Verifier::new(root, lim).unwrap();
        assert!(matches!(
            v.push(&root, &rb),
            Err(VerifyError::TooManyLinks { .. })
        ));
        let mut v = Verifier::new(root, Limits::for_size(11)).unwrap();
        assert!(matches!(
            v.push(&root, &rb),
            Err(VerifyError::TotalSizeExceeded { size: 12, max: 11 })
        ));
        let lim = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        let mut v = Verifier::new(root, lim).unwrap();
        assert!(matches!(
            v.push(&root, &rb),
            Err(VerifyError::TooDeep { .. })
        ));
        let lim = Limits {
            max_block_size: 3,
            ..Limits::default()
        };
        let mut v = Verifier::new(a, lim).unwrap();
        assert!(matches!(
            v.push(&a, &ab),
            Err(VerifyError::BlockTooLarge { .. })
        ));
    }

    #[test]
    fn repeated_subtree_and_range() {
        let (a, ab) = raw(b"xyz");
        let (root, rb) = parent(&[(a, 3, 3), (a, 3, 3)]);
        let mut v = Verifier::new(root, Limits::default()).unwrap();
        v.push(&root, &rb).unwrap();
        assert_eq!(v.repeat().unwrap(), None);
        v.push(&a, &ab).unwrap();
        assert_eq!(v.repeat().unwrap(), Some(Repeat { offset: 0, len: 3 }));
        assert!(v.is_done());

        let mut v = Verifier::with_range(root, Limits::default(), 4).unwrap();
        v.push(&root, &rb).unwrap();
        assert_eq!(v.position(), 4);
        assert_eq!(v.push(&a, &ab).unwrap(), Pushed::Data(b"yz"));
        assert!(v.is_done());

        // Resumed inside the first of two equal leaves: the second is a repeat of bytes 0..3,
        // partly from before the resume point.
        let mut v = Verifier::with_range(root, Limits::default(), 1).unwrap();
        v.push(&root, &rb).unwrap();
        assert_eq!(v.push(&a, &ab).unwrap(), Pushed::Data(b"yz"));
        assert_eq!(v.repeat().unwrap(), Some(Repeat { offset: 0, len: 3 }));
        assert!(v.is_done());
        assert_eq!(v.position(), 6);
        let mut v = Verifier::with_range(root, Limits::default(), 7).unwrap();
        assert!(matches!(
            v.push(&root, &rb),
            Err(VerifyError::RangeNotSatisfiable { from: 7, size: 6 })
        ));
    }

    #[test]
    fn directory_refused() {
        let mut fs = Vec::new();
        crate::proto::put_key(&mut fs, 1, crate::proto::VARINT);
        crate::proto::put_varint(&mut fs, 1);
        let block = encode_dag_pb(&[], Some(&fs));
        let cid = block_cid(cid::Version::V1, DAG_PB, &block);
        let mut v = Verifier::new(cid, Limits::default()).unwrap();
        assert!(matches!(
            v.push(&cid, &block),
            Err(VerifyError::NotAFile {
                kind: "directory",
                ..
            })
        ));
    }
}
