//! The importer: a file's bytes to a UnixFS DAG with the same CID Kubo computes.
//!
//! Fixed-size chunks become leaves (raw blocks, or dag-pb UnixFS `File` nodes with the data), and
//! the leaves are arranged in Kubo's balanced layout: all leaves at the same depth, every node
//! full (`max_links` children) except along the right edge. The builder keeps one list of at most
//! `max_links` pending links per level, so memory stays constant whatever the file size.

use std::{fs::File, io::Read, path::Path, str::FromStr};

use cid::Version;

use crate::{
    Cid, DAG_PB, Error, PbLink, RAW, block_cid, encode_dag_pb, encode_unixfs_file,
    error::ImportError,
};

/// Largest chunk Kubo accepts (`size-1048576`).
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;

/// A named set of import parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// `ipfs add` defaults: CIDv0, dag-pb leaves, 256 KiB chunks, 174 links per node.
    Kubo,
    /// `ipfs add --cid-version=1`: CIDv1, raw leaves, 256 KiB chunks, 174 links (the project default).
    #[default]
    KuboV1,
    /// IPIP-499 `unixfs-v1-2025`: CIDv1, raw leaves, 1 MiB chunks, 1024 links.
    UnixfsV1_2025,
}

impl Profile {
    /// The profile's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kubo => "kubo",
            Self::KuboV1 => "kubo-v1",
            Self::UnixfsV1_2025 => "unixfs-v1-2025",
        }
    }

    fn params(self) -> (Version, bool, usize, usize) {
        match self {
            Self::Kubo => (Version::V0, false, 256 * 1024, 174),
            Self::KuboV1 => (Version::V1, true, 256 * 1024, 174),
            Self::UnixfsV1_2025 => (Version::V1, true, 1024 * 1024, 1024),
        }
    }
}

impl FromStr for Profile {
    type Err = ImportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kubo" | "unixfs-v0-2015" => Ok(Self::Kubo),
            "kubo-v1" => Ok(Self::KuboV1),
            "unixfs-v1-2025" => Ok(Self::UnixfsV1_2025),
            other => Err(ImportError::UnknownProfile(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Import options: a profile plus Kubo-style overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOptions {
    /// The base profile.
    pub profile: Profile,
    /// `--cid-version`: as in Kubo, choosing 1 also turns raw leaves on unless set explicitly.
    pub cid_version: Option<u8>,
    /// `--raw-leaves`.
    pub raw_leaves: Option<bool>,
    /// `--chunker size-N`: chunk size in bytes (1..=1 MiB).
    pub chunk_size: Option<usize>,
}

impl ImportOptions {
    /// Options for a profile without overrides.
    pub fn profile(profile: Profile) -> Self {
        Self {
            profile,
            ..Self::default()
        }
    }

    fn resolve(&self) -> Result<Params, ImportError> {
        let (mut version, mut raw_leaves, chunk_size, max_links) = self.profile.params();
        if let Some(v) = self.cid_version {
            version = match v {
                0 => Version::V0,
                1 => Version::V1,
                other => return Err(ImportError::CidVersion(other)),
            };
            raw_leaves = v == 1;
        }
        if let Some(raw) = self.raw_leaves {
            raw_leaves = raw;
        }
        let chunk_size = self.chunk_size.unwrap_or(chunk_size);
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(ImportError::ChunkSize {
                size: chunk_size,
                max: MAX_CHUNK_SIZE,
            });
        }
        Ok(Params {
            version,
            raw_leaves,
            chunk_size,
            max_links,
        })
    }
}

/// Parses Kubo's `--chunker size-N`.
pub fn parse_chunker(s: &str) -> Result<usize, ImportError> {
    let size = s
        .strip_prefix("size-")
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| ImportError::BadChunker(s.to_owned()))?;
    if size == 0 || size > MAX_CHUNK_SIZE {
        return Err(ImportError::ChunkSize {
            size,
            max: MAX_CHUNK_SIZE,
        });
    }
    Ok(size)
}

#[derive(Debug, Clone, Copy)]
struct Params {
    version: Version,
    raw_leaves: bool,
    chunk_size: usize,
    max_links: usize,
}

/// Where the importer puts the blocks it makes.
pub trait BlockSink {
    /// Stores one block.
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), Error>;
}

/// A sink that drops every block (`--only-hash`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl BlockSink for NullSink {
    fn put_block(&mut self, _cid: &Cid, _data: &[u8]) -> Result<(), Error> {
        Ok(())
    }
}

/// The result of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// The root CID.
    pub root: Cid,
    /// File bytes read.
    pub size: u64,
    /// Blocks produced (sent to the sink).
    pub blocks: u64,
}

#[derive(Debug, Clone, Copy)]
struct Link {
    cid: Cid,
    size: u64,
    tsize: u64,
}

/// Imports the file at `path`, refusing directories and other non-files.
pub fn import_path(
    path: &Path,
    opts: &ImportOptions,
    sink: &mut dyn BlockSink,
    progress: &mut dyn FnMut(u64),
) -> Result<Imported, Error> {
    let not_a_file = || ImportError::NotAFile {
        path: path.to_owned(),
    };
    let meta = std::fs::metadata(path).map_err(ImportError::Read)?;
    if !meta.is_file() {
        return Err(not_a_file().into());
    }
    let file = File::open(path).map_err(ImportError::Read)?;
    import(file, opts, sink, progress)
}

/// Imports the bytes of `reader` as a UnixFS file, sending every block to `sink` (leaves first,
/// the root last) and calling `progress` with the bytes read so far after each chunk.
pub fn import<R: Read>(
    reader: R,
    opts: &ImportOptions,
    sink: &mut dyn BlockSink,
    progress: &mut dyn FnMut(u64),
) -> Result<Imported, Error> {
    import_with_threads(reader, opts, sink, progress, 1)
}

/// Bytes of input read per batch when leaves are hashed on several threads.
const PARALLEL_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// [`import`] hashing leaves on `threads` threads (1 = the calling thread only). The result is
/// identical; memory grows to about `max(threads × chunk, 2 MiB)` of input buffers.
pub fn import_with_threads<R: Read>(
    mut reader: R,
    opts: &ImportOptions,
    sink: &mut dyn BlockSink,
    progress: &mut dyn FnMut(u64),
    threads: usize,
) -> Result<Imported, Error> {
    let params = opts.resolve()?;
    let threads = threads.max(1);
    let per_batch = if threads == 1 {
        1
    } else {
        (PARALLEL_BATCH_BYTES / params.chunk_size).max(threads)
    };
    let mut builder = Builder {
        params,
        levels: Vec::new(),
        blocks: 0,
        sink,
    };
    let mut bufs: Vec<Vec<u8>> = (0..per_batch)
        .map(|_| vec![0u8; params.chunk_size])
        .collect();
    let mut size = 0u64;
    let mut chunks = 0u64;
    loop {
        let mut filled = 0;
        let mut eof = false;
        for buf in bufs.iter_mut() {
            let n = read_full(&mut reader, buf).map_err(ImportError::Read)?;
            // The empty file is one empty leaf, as in Kubo; otherwise an empty read ends it.
            if n > 0 || (chunks == 0 && filled == 0) {
                buf.truncate(n);
                filled += 1;
            }
            if n < params.chunk_size {
                eof = true;
                break;
            }
        }
        let batch = &bufs[..filled];
        let leaves = if threads == 1 || filled <= 1 {
            batch.iter().map(|d| make_leaf(&params, d)).collect()
        } else {
            hash_parallel(&params, batch, threads)
        };
        for (data, (link, block)) in batch.iter().zip(leaves) {
            builder.put(link.cid, block.as_deref().unwrap_or(data))?;
            builder.push(0, link)?;
            chunks += 1;
            size += data.len() as u64;
            progress(size);
        }
        if eof {
            break;
        }
        for buf in bufs.iter_mut().take(filled) {
            buf.resize(params.chunk_size, 0);
        }
    }
    let root = builder.finish()?;
    Ok(Imported {
        root: root.cid,
        size,
        blocks: builder.blocks,
    })
}

/// Makes the leaves of `batch` on `threads` scoped threads, keeping their order.
fn hash_parallel(
    params: &Params,
    batch: &[Vec<u8>],
    threads: usize,
) -> Vec<(Link, Option<Vec<u8>>)> {
    let per_thread = batch.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let mut groups = batch.chunks(per_thread);
        let first = groups.next().unwrap_or_default();
        let handles: Vec<_> = groups
            .map(|group| {
                scope.spawn(move || {
                    group
                        .iter()
                        .map(|d| make_leaf(params, d))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out: Vec<_> = first.iter().map(|d| make_leaf(params, d)).collect();
        for handle in handles {
            match handle.join() {
                Ok(leaves) => out.extend(leaves),
                // make_leaf does not panic; should it ever, re-raise it here.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// The link of one chunk, and its block when it is not the chunk itself (dag-pb leaves).
fn make_leaf(params: &Params, data: &[u8]) -> (Link, Option<Vec<u8>>) {
    let size = data.len() as u64;
    if params.raw_leaves {
        let cid = block_cid(Version::V1, RAW, data);
        (
            Link {
                cid,
                size,
                tsize: size,
            },
            None,
        )
    } else {
        let block = encode_dag_pb(&[], Some(&encode_unixfs_file(data, size, &[])));
        let cid = block_cid(params.version, DAG_PB, &block);
        let tsize = block.len() as u64;
        (Link { cid, size, tsize }, Some(block))
    }
}

fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

struct Builder<'s> {
    params: Params,
    /// `levels[0]` holds pending leaves, `levels[i]` pending nodes of height `i`.
    levels: Vec<Vec<Link>>,
    blocks: u64,
    sink: &'s mut dyn BlockSink,
}

impl Builder<'_> {
    fn put(&mut self, cid: Cid, data: &[u8]) -> Result<(), Error> {
        self.sink
            .put_block(&cid, data)
            .map_err(|e| ImportError::Sink {
                cid,
                source: Box::new(e),
            })?;
        self.blocks += 1;
        Ok(())
    }

    #[cfg(test)]
    fn leaf(&mut self, data: &[u8]) -> Result<Link, Error> {
        let (link, block) = make_leaf(&self.params, data);
        self.put(link.cid, block.as_deref().unwrap_or(data))?;
        Ok(link)
    }

    /// Adds a link at `level`, first turning a full level into a parent one level up.
    fn push(&mut self, level: usize, link: Link) -> Result<(), Error> {
        if self.levels.len() <= level {
            self.levels.push(Vec::with_capacity(self.params.max_links));
        }
        if self.levels[level].len() == self.params.max_links {
            let parent = self.parent(level)?;
            self.push(level + 1, parent)?;
        }
        self.levels[level].push(link);
        Ok(())
    }

    /// Builds the node over the pending links of `level` and clears them.
    fn parent(&mut self, level: usize) -> Result<Link, Error> {
        let children = std::mem::take(&mut self.levels[level]);
        let sizes: Vec<u64> = children.iter().map(|c| c.size).collect();
        let size = sizes.iter().sum();
        let links: Vec<PbLink<'_>> = children
            .iter()
            .map(|c| PbLink {
                hash: c.cid,
                name: Some(""),
                tsize: Some(c.tsize),
            })
            .collect();
        let block = encode_dag_pb(&links, Some(&encode_unixfs_file(&[], size, &sizes)));
        let cid = block_cid(self.params.version, DAG_PB, &block);
        self.put(cid, &block)?;
        let tsize = block.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
        self.levels[level] = children;
        self.levels[level].clear();
        Ok(Link { cid, size, tsize })
    }

    /// Closes every level bottom-up; a single link at the top is the root.
    fn finish(&mut self) -> Result<Link, Error> {
        let mut level = 0;
        // Every pass either returns the root or moves pending links up; the levels only grow
        // by one per pass, so this ends (and `import` always pushes at least one leaf).
        while level < self.levels.len() {
            let is_top = self.levels.iter().skip(level + 1).all(Vec::is_empty);
            let pending = self.levels.get(level).map_or(0, Vec::len);
            if is_top
                && pending == 1
                && let Some(root) = self.levels[level].pop()
            {
                return Ok(root);
            }
            if pending > 0 {
                let parent = self.parent(level)?;
                self.push(level + 1, parent)?;
            }
            level += 1;
        }
        Err(ImportError::Options("no blocks to build a root from").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid_of(data: &[u8], profile: Profile) -> String {
        import(
            data,
            &ImportOptions::profile(profile),
            &mut NullSink,
            &mut |_| {},
        )
        .unwrap()
        .root
        .to_string()
    }

    #[test]
    fn hello_world_vectors() {
        // Kubo's own test vectors.
        assert_eq!(
            cid_of(b"hello world", Profile::Kubo),
            "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
        );
        assert_eq!(
            cid_of(b"hello world", Profile::UnixfsV1_2025),
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        );
    }

    #[test]
    fn empty_file() {
        assert_eq!(
            cid_of(b"", Profile::Kubo),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        assert_eq!(
            cid_of(b"", Profile::KuboV1),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn overrides() {
        let mut o = ImportOptions::profile(Profile::Kubo);
        o.cid_version = Some(1);
        assert!(o.resolve().unwrap().raw_leaves);
        o.raw_leaves = Some(false);
        assert!(!o.resolve().unwrap().raw_leaves);
        o.chunk_size = Some(0);
        assert!(matches!(o.resolve(), Err(ImportError::ChunkSize { .. })));
        o.cid_version = Some(2);
        assert!(matches!(o.resolve(), Err(ImportError::CidVersion(2))));
        assert_eq!(parse_chunker("size-1024").unwrap(), 1024);
        assert!(matches!(
            parse_chunker("rabin"),
            Err(ImportError::BadChunker(_))
        ));
        assert!(matches!(
            parse_chunker("size-2000000"),
            Err(ImportError::ChunkSize { .. })
        ));
        assert_eq!("kubo-v1".parse::<Profile>().unwrap(), Profile::KuboV1);
        assert!("x".parse::<Profile>().is_err());
    }

    #[test]
    fn threads_give_the_same_dag() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 / 3) as u8).collect();
        for len in [0, 1, 999, 1000, 1001, 8000, 70_000] {
            for profile in [Profile::Kubo, Profile::KuboV1] {
                let opts = ImportOptions {
                    chunk_size: Some(1000),
                    ..ImportOptions::profile(profile)
                };
                let one = import(&data[..len], &opts, &mut NullSink, &mut |_| {}).unwrap();
                for threads in [2, 3] {
                    let mut last = 0;
                    let many = import_with_threads(
                        &data[..len],
                        &opts,
                        &mut NullSink,
                        &mut |p| last = p,
                        threads,
                    )
                    .unwrap();
                    assert_eq!(many, one, "len {len} threads {threads}");
                    assert_eq!(last, len as u64);
                }
            }
        }
    }

    #[test]
    fn threads_with_input_ending_on_a_batch_boundary() {
        // 1 MiB chunks make batches of two chunks: 2 MiB ends exactly on a batch.
        let data = vec![7u8; 2 << 20];
        let opts = ImportOptions {
            chunk_size: Some(1 << 20),
            ..ImportOptions::default()
        };
        let one = import(&data[..], &opts, &mut NullSink, &mut |_| {}).unwrap();
        let two = import_with_threads(&data[..], &opts, &mut NullSink, &mut |_| {}, 2).unwrap();
        assert_eq!(one, two);
        assert_eq!(two.blocks, 3);
    }

    #[test]
    fn directory_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = import_path(
            dir.path(),
            &ImportOptions::default(),
            &mut NullSink,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, Error::Import(ImportError::NotAFile { .. })));
    }

    #[test]
    fn tree_shape_small_links() {
        // 5 one-byte chunks, 2 links per node: levels 5 -> 3 -> 2 -> 1 (all leaves at depth 3).
        struct Count(Vec<Vec<u8>>);
        impl BlockSink for Count {
            fn put_block(&mut self, _: &Cid, d: &[u8]) -> Result<(), Error> {
                self.0.push(d.to_vec());
                Ok(())
            }
        }
        let mut params = ImportOptions::profile(Profile::KuboV1).resolve().unwrap();
        params.max_links = 2;
        params.chunk_size = 1;
        let mut sink = Count(Vec::new());
        let mut b = Builder {
            params,
            levels: Vec::new(),
            blocks: 0,
            sink: &mut sink,
        };
        for byte in b"abcde" {
            let leaf = b.leaf(&[*byte]).unwrap();
            b.push(0, leaf).unwrap();
        }
        b.finish().unwrap();
        // 5 leaves + 3 + 2 + 1 nodes
        assert_eq!(sink.0.len(), 11);
    }
}
