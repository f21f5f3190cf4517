//! DAG traversal over the blockstore for the trustless gateway and CAR export.
//!
//! Blocks come in depth-first, left-to-right order without duplicates, as the trustless
//! gateway specification requires for `order=dfs&dups=n`. The walk is lazy: it holds one path of
//! nodes' links (plus the set of CIDs already sent, to skip duplicates). A repeated subtree is
//! sent once, at its first occurrence; with an `entity-bytes` range whose start falls inside that
//! first occurrence, its leaves before the start are not sent at all, so a receiver must hold the
//! file's bytes before the range start to rebuild the repeat (a resuming download does).

use std::{collections::HashSet, io::Write, str::FromStr};

use crate::{
    Cid, DAG_PB, Error,
    blockstore::Blockstore,
    car::CarWriter,
    dagpb::decode_dag_pb,
    unixfs::{DataType, decode_unixfs},
    verify::in_range,
};

/// Which blocks of a DAG to send (`dag-scope` of the trustless gateway specification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DagScope {
    /// Only the root block.
    Block,
    /// The blocks needed to read the entity: for a UnixFS file every block of the file (or, with
    /// `entity-bytes`, the blocks for that byte range and the path to them); for anything else
    /// the root block.
    Entity,
    /// Every block reachable from the root.
    #[default]
    All,
}

impl FromStr for DagScope {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(Self::Block),
            "entity" => Ok(Self::Entity),
            "all" => Ok(Self::All),
            _ => Err("dag-scope must be block, entity or all"),
        }
    }
}

#[derive(Debug)]
struct Frame {
    /// (cid, absolute offset, file bytes) of each child still to visit, in reverse order.
    children: Vec<(Cid, u64, u64)>,
}

/// The lazy block iterator [`blocks_for`] returns.
#[derive(Debug)]
pub struct Blocks<'s> {
    store: &'s Blockstore,
    scope: DagScope,
    range: Option<(u64, Option<u64>)>,
    stack: Vec<Frame>,
    emitted: HashSet<Cid>,
    failed: bool,
}

/// The blocks of the DAG under `root` for `scope`, in DFS order without duplicates.
///
/// `range` is `entity-bytes=from:to` with `to` inclusive (`None` = to the end); it applies only to
/// [`DagScope::Entity`] on a UnixFS file. A missing block yields [`crate::BlockstoreError::NotFound`].
pub fn blocks_for<'s>(
    store: &'s Blockstore,
    root: &Cid,
    scope: DagScope,
    range: Option<(u64, Option<u64>)>,
) -> Blocks<'s> {
    Blocks {
        store,
        scope,
        range,
        stack: vec![Frame {
            children: vec![(*root, 0, u64::MAX)],
        }],
        emitted: HashSet::new(),
        failed: false,
    }
}

impl Blocks<'_> {
    fn step(&mut self) -> Result<Option<(Cid, Vec<u8>)>, Error> {
        loop {
            let Some(frame) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some((cid, offset, _size)) = frame.children.pop() else {
                self.stack.pop();
                continue;
            };
            // A block already sent is skipped with its whole subtree, even when a byte range
            // would select other leaves of it this time: the receiver reuses the bytes of the
            // first occurrence (`Verifier::repeat`), as `dups=n` requires.
            if !self.emitted.insert(cid) {
                continue;
            }
            let block = self.store.require(&cid)?;
            let children = self.children(&cid, &block, offset)?;
            if !children.is_empty() {
                self.stack.push(Frame { children });
            }
            return Ok(Some((cid, block)));
        }
    }

    /// The children to visit after `block`, in reverse order (for popping).
    fn children(
        &self,
        cid: &Cid,
        block: &[u8],
        offset: u64,
    ) -> Result<Vec<(Cid, u64, u64)>, Error> {
        if cid.codec() != DAG_PB || self.scope == DagScope::Block {
            return Ok(Vec::new());
        }
        let node = decode_dag_pb(block, usize::MAX)
            .map_err(|source| crate::VerifyError::Decode { cid: *cid, source })?;
        let mut out = Vec::with_capacity(node.links.len());
        match self.scope {
            DagScope::Block => {}
            DagScope::All => {
                out.extend(node.links.iter().map(|l| (l.hash, 0, 0)));
            }
            DagScope::Entity => {
                let Some(fs) = node
                    .data
                    .and_then(|d| decode_unixfs(d, node.links.len()).ok())
                else {
                    return Ok(Vec::new());
                };
                if !matches!(fs.kind, DataType::File | DataType::Raw)
                    || fs.blocksizes.len() != node.links.len()
                {
                    return Ok(Vec::new());
                }
                let mut child_offset = offset.saturating_add(fs.data.map_or(0, |d| d.len() as u64));
                for (link, &size) in node.links.iter().zip(&fs.blocksizes) {
                    let needed = match self.range {
                        Some((from, to)) => in_range(child_offset, size, from, to),
                        None => true,
                    };
                    if needed {
                        out.push((link.hash, child_offset, size));
                    }
                    child_offset = child_offset.saturating_add(size);
                }
            }
        }
        out.reverse();
        Ok(out)
    }
}

impl Iterator for Blocks<'_> {
    type Item = Result<(Cid, Vec<u8>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.step().transpose();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

/// Writes the DAG under `root` for `scope` as a CAR v1 with `root` as its only root; returns
/// the number of blocks written.
pub fn export_car<W: Write>(
    store: &Blockstore,
    root: &Cid,
    scope: DagScope,
    w: W,
) -> Result<u64, Error> {
    export_car_range(store, root, scope, None, w)
}

/// [`export_car`] with an `entity-bytes` range (see [`blocks_for`]).
pub fn export_car_range<W: Write>(
    store: &Blockstore,
    root: &Cid,
    scope: DagScope,
    range: Option<(u64, Option<u64>)>,
    w: W,
) -> Result<u64, Error> {
    let mut car = CarWriter::new(w, &[*root])?;
    let mut n = 0;
    for item in blocks_for(store, root, scope, range) {
        let (cid, block) = item?;
        if car.write_block(&cid, &block)? {
            n += 1;
        }
    }
    car.finish()?;
    Ok(n)
}
