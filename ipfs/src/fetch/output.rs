//! The output of a fetch: a temporary file beside the destination, renamed into place only when
//! every byte was verified. Dropping it unfinished deletes the temporary file, so a failed fetch
//! never leaves anything at the destination.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::FetchError;
use crate::Repeat;

/// Size of the copy buffer for repeated subtrees.
const COPY_CHUNK: usize = 64 * 1024;

/// The partly written file; `written` equals the verifier's position.
pub(crate) struct Output {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    written: u64,
}

impl Output {
    /// A new empty temporary file in the destination's directory.
    pub(crate) fn create(dest: &Path) -> Result<Self, FetchError> {
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
        Ok(Self {
            tmp,
            dest: dest.to_path_buf(),
            written: 0,
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
        self.written += data.len() as u64;
        Ok(())
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
        self.written = position;
        Ok(())
    }

    /// fsync, rename into place, fsync the directory.
    pub(crate) fn finish(self) -> Result<PathBuf, FetchError> {
        self.tmp.as_file().sync_all().map_err(|e| self.err(e))?;
        let dest = self.dest.clone();
        self.tmp.persist(&dest).map_err(|e| FetchError::Output {
            path: dest.clone(),
            source: e.error,
        })?;
        #[cfg(unix)]
        if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| FetchError::Output {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        Ok(dest)
    }
}
