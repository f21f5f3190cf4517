//! A directory of blocks keyed by multihash, laid out like Kubo's flatfs.
//!
//! A block lives at `<dir>/blocks/<shard>/<KEY>.data`, where `KEY` is the unpadded upper-case
//! RFC 4648 base32 of the block's multihash and `shard` its next-to-last two characters (Kubo's
//! `/repo/flatfs/shard/v1/next-to-last/2`). Blocks are keyed by multihash, not CID, so the same
//! bytes under a CIDv0 and a CIDv1 are stored once.
//!
//! Writes are atomic: the block goes to a uniquely named temporary file in the shard directory,
//! is fsynced, renamed over its final name and the directory is fsynced, so a reader sees a
//! whole block or none, and concurrent writers of the same block are harmless. Every read
//! re-checks the block's hash.

use std::{
    fs::{self, File},
    io::{ErrorKind, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
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
    pub fn put(&self, cid: &Cid, data: &[u8]) -> Result<(), BlockstoreError> {
        check_block(cid, data)?;
        let path = self.path_of(cid);
        if path.exists() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.blocks);
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(&path)(e)
        })
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
}
