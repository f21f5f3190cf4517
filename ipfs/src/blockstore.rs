//! A directory of blocks keyed by multihash, laid out like Kubo's flatfs.
//!
//! A block lives at `<dir>/blocks/<shard>/<KEY>.data`, where `KEY` is the unpadded upper-case
//! RFC 4648 base32 of the block's multihash and `shard` its next-to-last two characters (Kubo's
//! `/repo/flatfs/shard/v1/next-to-last/2`). Blocks are keyed by multihash, not CID, so the same
//! bytes under a CIDv0 and a CIDv1 are stored once.
//!
//! Writes are atomic: the block goes to a uniquely named temporary file in the shard directory,
//! is fsynced, renamed over its final name and the directory is fsynced, so a reader sees a
//! whole block or none, and concurrent writers of the same block are harmless; a new shard
//! directory's own entry is fsynced too. Every read re-checks the block's hash, and a write of a
//! block whose stored copy no longer matches it replaces that copy.

use std::{
    collections::BTreeSet,
    fs::{self, File},
    io::{ErrorKind, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{SyncSender, sync_channel},
    },
    thread::JoinHandle,
};

use multihash::Multihash;

use crate::{Cid, Error, block::check_block, error::BlockstoreError, import::BlockSink};

const SHARD_SPEC: &str = "/repo/flatfs/shard/v1/next-to-last/2\n";
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A block store in a directory (see the module documentation). Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Blockstore {
    blocks: Arc<PathBuf>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BlockstoreError + '_ {
    move |source| BlockstoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Blockstore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, BlockstoreError> {
        let blocks = dir.as_ref().join("blocks");
        fs::create_dir_all(&blocks).map_err(io_err(&blocks))?;
        let spec = blocks.join("SHARDING");
        if !spec.exists() {
            fs::write(&spec, SHARD_SPEC).map_err(io_err(&spec))?;
        }
        Ok(Self {
            blocks: Arc::new(blocks),
        })
    }

    /// The file that holds (or would hold) the block.
    pub fn path_of(&self, cid: &Cid) -> PathBuf {
        let key = base32(&cid.hash().to_bytes());
        self.blocks.join(shard(&key)).join(format!("{key}.data"))
    }

    /// Whether the block is stored.
    pub fn has(&self, cid: &Cid) -> Result<bool, BlockstoreError> {
        let path = self.path_of(cid);
        match fs::metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Reads a block, checking its hash; `None` if it is not stored.
    pub fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, BlockstoreError> {
        let path = self.path_of(cid);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        match check_block(cid, &data) {
            Ok(()) => Ok(Some(data)),
            Err(crate::VerifyError::HashMismatch { .. }) => {
                Err(BlockstoreError::Corrupt { cid: *cid })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a block that must be present.
    pub fn require(&self, cid: &Cid) -> Result<Vec<u8>, BlockstoreError> {
        self.get(cid)?
            .ok_or(BlockstoreError::NotFound { cid: *cid })
    }

    /// Opens the block's file for streaming, without checking its hash.
    pub fn open_block(&self, cid: &Cid) -> Result<Option<File>, BlockstoreError> {
        let path = self.path_of(cid);
        match File::open(&path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Stores a block after checking that it matches `cid`; a block already present is kept.
    /// A stored file that no longer hashes to its CID (disk corruption) is replaced.
    pub fn put(&self, cid: &Cid, data: &[u8]) -> Result<(), BlockstoreError> {
        for dir in self.write_new(cid, data)? {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// A writer that stores blocks on its own thread (see [`BlockWriter`]); fails only if
    /// no thread can be started.
    pub fn writer(&self) -> Result<BlockWriter, BlockstoreError> {
        BlockWriter::start(self.clone())
    }

    /// Imports the bytes of `reader` as a UnixFS file ([`crate::import`]) into this store
    /// through a [`BlockWriter`] (each block written while the next is made), finished before
    /// it returns: every block durable.
    pub fn import(
        &self,
        reader: impl std::io::Read,
        opts: &crate::ImportOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<crate::Imported, Error> {
        let mut writer = self.writer()?;
        let imported = crate::import(reader, opts, &mut writer, progress)?;
        writer.finish()?;
        Ok(imported)
    }

    /// Checks `data` against `cid` and writes it unless it is stored intact already: a
    /// temporary file, fsynced, renamed into place (over a stored file that no longer hashes to
    /// `cid`). Returns the directories to fsync so the new names survive a crash (the shard
    /// directory, and the blocks directory when the shard directory is new); none if the block
    /// was there.
    fn write_new(&self, cid: &Cid, data: &[u8]) -> Result<Vec<PathBuf>, BlockstoreError> {
        check_block(cid, data)?;
        let path = self.path_of(cid);
        match fs::read(&path) {
            // Stored and intact: nothing to do. (A corrupt copy is rewritten below.)
            Ok(stored) if check_block(cid, &stored).is_ok() => return Ok(Vec::new()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        let dir = path.parent().unwrap_or(&self.blocks).to_owned();
        let mut dirs = vec![dir.clone()];
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            dirs.push(self.blocks.to_path_buf());
        }
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&path)(e)
        })?;
        Ok(dirs)
    }

    /// Removes a block; removing an absent block is not an error.
    pub fn delete(&self, cid: &Cid) -> Result<(), BlockstoreError> {
        let path = self.path_of(cid);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The multihashes of all stored blocks (in directory order). Entries that are not block
    /// files (temporary files of writes in progress) are skipped.
    pub fn iter(&self) -> impl Iterator<Item = Result<Multihash<64>, BlockstoreError>> + '_ {
        let shards = match fs::read_dir(&*self.blocks) {
            Ok(rd) => Ok(rd),
            Err(e) => Err(io_err(&self.blocks)(e)),
        };
        let mut outer: Box<dyn Iterator<Item = Result<PathBuf, BlockstoreError>>> = match shards {
            Ok(rd) => Box::new(rd.filter_map(move |entry| match entry {
                Ok(e) if e.path().is_dir() => Some(Ok(e.path())),
                Ok(_) => None,
                Err(e) => Some(Err(io_err(&self.blocks)(e))),
            })),
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        let mut inner: Option<(PathBuf, fs::ReadDir)> = None;
        std::iter::from_fn(move || {
            loop {
                if let Some((dir, rd)) = inner.as_mut() {
                    match rd.next() {
                        Some(Ok(entry)) => {
                            let name = entry.file_name();
                            let Some(key) = name.to_str().and_then(|n| n.strip_suffix(".data"))
                            else {
                                continue;
                            };
                            let Some(bytes) = unbase32(key) else { continue };
                            match Multihash::from_bytes(&bytes) {
                                Ok(mh) => return Some(Ok(mh)),
                                Err(_) => continue,
                            }
                        }
                        Some(Err(e)) => return Some(Err(io_err(dir)(e))),
                        None => inner = None,
                    }
                } else {
                    match outer.next()? {
                        Ok(dir) => match fs::read_dir(&dir) {
                            Ok(rd) => inner = Some((dir, rd)),
                            Err(e) => return Some(Err(io_err(&dir)(e))),
                        },
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
        })
    }
}

fn sync_dir(dir: &Path) -> Result<(), BlockstoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Blocks handed to the writer before it stops on an error or is finished: with 256 KiB
/// blocks, about 2 MiB in flight.
const WRITER_QUEUE: usize = 8;

/// Stores blocks on a background thread, so that making blocks (reading, hashing, encrypting)
/// and writing them (file creation, fsync) overlap.
///
/// Each block is checked against its CID and written as [`Blockstore::put`] does (temporary
/// file, fsync, rename; a stored copy that no longer hashes to its CID is replaced), on the
/// writer's thread; the shard directories it touched are fsynced
/// once each by [`BlockWriter::finish`] instead of once per block. So a block is whole or
/// absent at any moment, and after `finish` returns every block survives a crash. At most
/// a few blocks wait in its queue (bounded memory); a producer faster than the disk waits.
///
/// A failed write (or a block that does not match its CID) stops the writer: the next
/// [`BlockSink::put_block`], or `finish`, returns that error (once; a call after it says the
/// writer has stopped). Dropping the writer without
/// `finish` waits for the blocks already handed over, without the directory fsyncs; the
/// blocks stay in the store (whole and checked, unreferenced: a later import finds them).
#[derive(Debug)]
pub struct BlockWriter {
    queue: Option<SyncSender<(Cid, Vec<u8>)>>,
    thread: Option<JoinHandle<Result<u64, BlockstoreError>>>,
}

impl BlockWriter {
    fn start(store: Blockstore) -> Result<Self, BlockstoreError> {
        let (queue, blocks) = sync_channel::<(Cid, Vec<u8>)>(WRITER_QUEUE);
        let root = Arc::clone(&store.blocks);
        let thread = std::thread::Builder::new()
            .name("blockstore-writer".into())
            .spawn(move || {
                let mut dirs = BTreeSet::new();
                let mut written = 0u64;
                for (cid, data) in blocks {
                    let to_sync = store.write_new(&cid, &data)?;
                    if !to_sync.is_empty() {
                        dirs.extend(to_sync);
                        written += 1;
                    }
                }
                for dir in &dirs {
                    sync_dir(dir)?;
                }
                Ok(written)
            });
        let thread = thread.map_err(io_err(&root))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Waits for every block handed over to be written, fsyncs the directories they went
    /// into, and returns how many blocks were new to the store.
    pub fn finish(mut self) -> Result<u64, BlockstoreError> {
        self.join()
    }

    fn join(&mut self) -> Result<u64, BlockstoreError> {
        self.queue.take();
        match self.thread.take() {
            Some(thread) => match thread.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            None => Err(writer_stopped()),
        }
    }
}

/// What a writer reports once it has stopped and its own error was already returned.
fn writer_stopped() -> BlockstoreError {
    BlockstoreError::Io {
        path: PathBuf::new(),
        source: std::io::Error::other("the block writer has stopped"),
    }
}

impl BlockSink for BlockWriter {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), Error> {
        let sent = match &self.queue {
            Some(queue) => queue.send((*cid, data.to_vec())).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped: its error says why.
        Err(self.join().err().unwrap_or_else(writer_stopped).into())
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl BlockSink for Blockstore {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), Error> {
        Ok(self.put(cid, data)?)
    }
}

impl BlockSink for &Blockstore {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), Error> {
        Ok(self.put(cid, data)?)
    }
}

fn shard(key: &str) -> &str {
    let n = key.len();
    key.get(n.saturating_sub(3)..n.saturating_sub(1))
        .unwrap_or("__")
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RAW, block_cid};

    #[test]
    fn kubo_key_layout() {
        // Kubo stores the empty raw block as CIQ...; its shard is the next-to-last two chars.
        let cid = block_cid(cid::Version::V1, RAW, b"");
        let key = base32(&cid.hash().to_bytes());
        assert!(key.starts_with("CIQ"));
        assert_eq!(unbase32(&key).unwrap(), cid.hash().to_bytes());
        assert_eq!(shard("ABCDEF"), "DE");
    }

    #[test]
    fn put_get_has_delete_iter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(dir.path()).unwrap();
        let cid = block_cid(cid::Version::V1, RAW, b"abc");
        assert!(!store.has(&cid).unwrap());
        assert_eq!(store.get(&cid).unwrap(), None);
        store.put(&cid, b"abc").unwrap();
        store.put(&cid, b"abc").unwrap();
        assert!(store.has(&cid).unwrap());
        assert_eq!(store.get(&cid).unwrap().unwrap(), b"abc");
        let all: Vec<_> = store.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(all, vec![*cid.hash()]);
        store.delete(&cid).unwrap();
        store.delete(&cid).unwrap();
        assert!(!store.has(&cid).unwrap());
    }

    #[test]
    fn rejects_bad_put_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(dir.path()).unwrap();
        let cid = block_cid(cid::Version::V1, RAW, b"abc");
        assert!(matches!(
            store.put(&cid, b"abd"),
            Err(BlockstoreError::Rejected(_))
        ));
        store.put(&cid, b"abc").unwrap();
        fs::write(store.path_of(&cid), b"abd").unwrap();
        assert!(matches!(
            store.get(&cid),
            Err(BlockstoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn writer_stores_checked_blocks_and_counts_the_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(dir.path()).unwrap();
        let blocks: Vec<Vec<u8>> = (0..40u32).map(|i| i.to_be_bytes().repeat(100)).collect();
        let cids: Vec<Cid> = blocks
            .iter()
            .map(|b| block_cid(cid::Version::V1, RAW, b))
            .collect();
        store.put(&cids[0], &blocks[0]).unwrap();
        let mut writer = store.writer().unwrap();
        for (cid, data) in cids.iter().zip(&blocks) {
            writer.put_block(cid, data).unwrap();
        }
        // The same block twice in one run is written once.
        writer.put_block(&cids[1], &blocks[1]).unwrap();
        assert_eq!(writer.finish().unwrap(), 39);
        for (cid, data) in cids.iter().zip(&blocks) {
            assert_eq!(store.get(cid).unwrap().as_deref(), Some(&data[..]));
        }
        // No temporary file left behind.
        let stray = walk(dir.path())
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .count();
        assert_eq!(stray, 0);
    }

    #[test]
    fn writer_stops_at_a_block_that_does_not_match_its_cid() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(dir.path()).unwrap();
        let good = block_cid(cid::Version::V1, RAW, b"good");
        let claimed = block_cid(cid::Version::V1, RAW, b"abc");
        let after = block_cid(cid::Version::V1, RAW, b"after");
        let mut writer = store.writer().unwrap();
        writer.put_block(&good, b"good").unwrap();
        writer.put_block(&claimed, b"abd").unwrap();
        // Sooner or later (the queue holds a few) a put reports the refusal; finish does.
        let mut refused = None;
        for _ in 0..WRITER_QUEUE * 4 {
            if let Err(e) = writer.put_block(&after, b"after") {
                refused = Some(e);
                break;
            }
        }
        let refused = refused.expect("puts after a bad block kept succeeding");
        assert!(
            matches!(refused, Error::Blockstore(BlockstoreError::Rejected(_))),
            "{refused}"
        );
        assert!(store.has(&good).unwrap());
        assert!(!store.has(&claimed).unwrap());
        assert!(!store.has(&after).unwrap(), "written after the bad block");
        // Once stopped, finishing says so too.
        assert!(writer.finish().is_err());

        let mut writer = store.writer().unwrap();
        writer.put_block(&claimed, b"abd").unwrap();
        assert!(matches!(writer.finish(), Err(BlockstoreError::Rejected(_))));
    }

    #[test]
    fn writer_names_the_path_it_could_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(dir.path()).unwrap();
        let cid = block_cid(cid::Version::V1, RAW, b"abc");
        // A file where the block's shard directory should be.
        let shard_dir = store.path_of(&cid).parent().unwrap().to_owned();
        fs::write(&shard_dir, b"not a directory").unwrap();
        let mut writer = store.writer().unwrap();
        writer.put_block(&cid, b"abc").unwrap();
        match writer.finish() {
            Err(BlockstoreError::Io { path, .. }) => {
                assert!(path.starts_with(&shard_dir), "{}", path.display());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn import_through_the_writer_equals_import_through_put() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let opts = crate::ImportOptions::profile(crate::Profile::KuboV1);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (sa, sb) = (
            Blockstore::open(a.path()).unwrap(),
            Blockstore::open(b.path()).unwrap(),
        );
        let direct = crate::import(&data[..], &opts, &mut &sa, &mut |_| {}).unwrap();
        let mut writer = sb.writer().unwrap();
        let piped = crate::import(&data[..], &opts, &mut writer, &mut |_| {}).unwrap();
        assert_eq!(writer.finish().unwrap(), piped.blocks);
        assert_eq!(direct, piped);
        let mut ka: Vec<_> = sa.iter().collect::<Result<_, _>>().unwrap();
        let mut kb: Vec<_> = sb.iter().collect::<Result<_, _>>().unwrap();
        ka.sort();
        kb.sort();
        assert_eq!(ka, kb);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
