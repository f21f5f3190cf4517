//! The output of a fetch: a temporary file beside the destination, renamed into place only when
//! every byte was verified. Dropping it unfinished deletes the temporary file, so a failed fetch
//! never leaves anything at the destination. The file's SHA-256 is computed as it is written
//! (re-read from the file only if a failed write had to be cut back), so a caller that checks a
//! whole-file hash need not read the file again.
//!
//! While the fetch runs, a helper thread asks the kernel to write the file's dirty pages to disk
//! every [`WRITEBACK_EVERY`] bytes (`sync_data` on a second handle), so the disk works while the
//! network and the verifier do, and the final fsync only has the tail left. A request is skipped
//! when the previous one is still running, so the writer never waits for it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::error::FetchError;
use crate::Repeat;

/// Size of the copy buffer for repeated subtrees.
const COPY_CHUNK: usize = 64 * 1024;

/// Bytes written between two background writeback requests.
const WRITEBACK_EVERY: u64 = 16 * 1024 * 1024;

/// The partly written file; `written` equals the verifier's position.
pub(crate) struct Output {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    written: u64,
    writeback: Option<Writeback>,
    /// SHA-256 of the bytes written so far; `None` after a cut back to an earlier position.
    hash: Option<Sha256>,
    durable: bool,
}

/// The background writeback thread and its request channel (one request at most).
struct Writeback {
    requests: SyncSender<()>,
    thread: JoinHandle<std::io::Result<()>>,
}

impl Writeback {
    /// Start it on a second handle of `file`; `None` if the handle or thread cannot be had
    /// (the fetch then simply syncs everything at the end).
    fn start(file: &std::fs::File) -> Option<Self> {
        let file = file.try_clone().ok()?;
        let (requests, rx) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("fetch-writeback".into())
            .spawn(move || {
                for () in rx {
                    file.sync_data()?;
                }
                Ok(())
            })
            .ok()?;
        Some(Self { requests, thread })
    }

    /// Stop the thread and report the first error it met.
    fn stop(self) -> std::io::Result<()> {
        drop(self.requests);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("writeback thread panicked")))
    }
}

impl Output {
    /// A new empty temporary file in the destination's directory.
    pub(crate) fn create(dest: &Path, durable: bool) -> Result<Self, FetchError> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "fetch".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(|source| FetchError::Output { path: dir, source })?;
        let writeback = if durable {
            Writeback::start(tmp.as_file())
        } else {
            None
        };
        Ok(Self {
            tmp,
            dest: dest.to_path_buf(),
            written: 0,
            writeback,
            hash: Some(Sha256::new()),
            durable,
        })
    }

    fn err(&self, source: std::io::Error) -> FetchError {
        FetchError::Output {
            path: self.tmp.path().to_path_buf(),
            source,
        }
    }

    /// Bytes written (all verified).
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Append verified bytes.
    pub(crate) fn append(&mut self, data: &[u8]) -> Result<(), FetchError> {
        let r = self.tmp.as_file_mut().write_all(data);
        r.map_err(|e| self.err(e))?;
        if let Some(hash) = &mut self.hash {
            hash.update(data);
        }
        let before = self.written;
        self.written += data.len() as u64;
        if before / WRITEBACK_EVERY != self.written / WRITEBACK_EVERY {
            self.request_writeback();
        }
        Ok(())
    }

    /// Ask the writeback thread to flush what was written so far, unless it is still busy.
    fn request_writeback(&mut self) {
        if let Some(wb) = &self.writeback
            && let Err(TrySendError::Disconnected(())) = wb.requests.try_send(())
        {
            // The thread stopped on an error; `finish` reports it.
            tracing::debug!("fetch writeback thread has stopped");
        }
    }

    /// Append a copy of bytes written earlier (a subtree the DAG repeats, sent once).
    pub(crate) fn append_repeat(&mut self, repeat: Repeat) -> Result<(), FetchError> {
        let mut buf = vec![0u8; COPY_CHUNK];
        let mut done = 0u64;
        while done < repeat.len {
            let n = (repeat.len - done).min(COPY_CHUNK as u64) as usize;
            let chunk = buf.get_mut(..n).unwrap_or_default();
            let file = self.tmp.as_file_mut();
            let r = file
                .seek(SeekFrom::Start(repeat.offset + done))
                .and_then(|_| file.read_exact(chunk))
                .and_then(|_| file.seek(SeekFrom::End(0)).map(drop))
                .and_then(|_| file.write_all(chunk));
            r.map_err(|e| self.err(e))?;
            if let Some(hash) = &mut self.hash {
                hash.update(&*chunk);
            }
            done += n as u64;
            self.written += n as u64;
        }
        Ok(())
    }

    /// Cut the file back to `position` (an attempt's unverified tail never reaches the file, so
    /// this only matters if a write failed halfway) and continue from there.
    pub(crate) fn rewind_to(&mut self, position: u64) -> Result<(), FetchError> {
        let file = self.tmp.as_file_mut();
        let r = file
            .set_len(position)
            .and_then(|_| file.seek(SeekFrom::Start(position)).map(drop));
        r.map_err(|e| self.err(e))?;
        if position != self.written {
            // The running hash covers bytes no longer in the file: re-read at the end.
            self.hash = None;
        }
        self.written = position;
        Ok(())
    }

    /// SHA-256 of the whole file: the running hash, or the file re-read.
    fn sha256(&mut self) -> Result<[u8; 32], FetchError> {
        if let Some(hash) = self.hash.take() {
            return Ok(hash.finalize().into());
        }
        let file = self.tmp.as_file_mut();
        let mut hash = Sha256::new();
        let r = file.seek(SeekFrom::Start(0)).and_then(|_| {
            std::io::copy(&mut std::io::Read::by_ref(file), &mut HashWriter(&mut hash))
        });
        r.map_err(|e| self.err(e))?;
        Ok(hash.finalize().into())
    }

    /// fsync (if durable), rename into place, fsync the directory (if durable); returns where
    /// the file is and its SHA-256.
    pub(crate) fn finish(mut self) -> Result<(PathBuf, [u8; 32]), FetchError> {
        let sha256 = self.sha256()?;
        if let Some(wb) = self.writeback.take() {
            wb.stop().map_err(|e| self.err(e))?;
        }
        if self.durable {
            self.tmp.as_file().sync_all().map_err(|e| self.err(e))?;
        }
        let durable = self.durable;
        let dest = self.dest.clone();
        self.tmp.persist(&dest).map_err(|e| FetchError::Output {
            path: dest.clone(),
            source: e.error,
        })?;
        #[cfg(unix)]
        if let Some(dir) = dest
            .parent()
            .filter(|p| durable && !p.as_os_str().is_empty())
        {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| FetchError::Output {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        Ok((dest, sha256))
    }
}

/// Feeds what is written to it into a hash.
struct HashWriter<'h>(&'h mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_several_writeback_points_and_renames_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("file.bin");
        let mut out = Output::create(&dest, true).unwrap();
        assert!(out.writeback.is_some());
        let piece: Vec<u8> = (0..256 * 1024).map(|i| (i % 253) as u8).collect();
        let pieces = (2 * WRITEBACK_EVERY as usize) / piece.len() + 3;
        for _ in 0..pieces {
            out.append(&piece).unwrap();
        }
        out.append_repeat(Repeat {
            offset: 5,
            len: 1000,
        })
        .unwrap();
        let (path, sha256) = out.finish().unwrap();
        assert_eq!(path, dest);
        let got = std::fs::read(&dest).unwrap();
        assert_eq!(sha256, <[u8; 32]>::from(Sha256::digest(&got)));
        assert_eq!(got.len(), pieces * piece.len() + 1000);
        assert!(got.chunks(piece.len()).take(pieces).all(|c| c == piece));
        assert_eq!(got[pieces * piece.len()..], piece[5..1005]);
        // Only the destination is left: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unfinished_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Output::create(&dir.path().join("file.bin"), true).unwrap();
        out.append(&vec![7u8; WRITEBACK_EVERY as usize + 1])
            .unwrap();
        drop(out);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// The running SHA-256 is the file's whatever the writes: appends, a repeated subtree, a
    /// cut back to the same position (kept) or to an earlier one (then the file is re-read);
    /// also without durability (no writeback thread, same file).
    #[test]
    fn the_reported_sha256_is_the_files_after_repeats_and_cut_backs() {
        for (durable, cut_to) in [
            (true, None),
            (false, None),
            (true, Some(300)),
            (false, Some(4096)),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("file.bin");
            let mut out = Output::create(&dest, durable).unwrap();
            assert_eq!(out.writeback.is_some(), durable);
            let piece: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
            out.append(&piece).unwrap();
            out.append_repeat(Repeat {
                offset: 17,
                len: 2000,
            })
            .unwrap();
            out.rewind_to(out.written()).unwrap();
            if let Some(position) = cut_to {
                out.rewind_to(position).unwrap();
                out.append(b"after the cut").unwrap();
            }
            let (path, sha256) = out.finish().unwrap();
            let got = std::fs::read(&path).unwrap();
            assert_eq!(
                sha256,
                <[u8; 32]>::from(Sha256::digest(&got)),
                "{durable} {cut_to:?}"
            );
            let expected_len = cut_to.map_or(7000, |p| p + 13);
            assert_eq!(got.len() as u64, expected_len);
        }
    }
}
