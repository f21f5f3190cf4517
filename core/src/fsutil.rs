//! All-or-nothing file output: every file this project writes appears under
//! its name only when complete (a temporary file beside it, synced, then renamed).

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::{Error, Result};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `path` through `write`: the data goes to a temporary file in the same
/// directory, which is synced and renamed over `path` only if `write` succeeds.
/// On any error the temporary file is removed and `path` is untouched.
pub fn write_atomic_with<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".otaledger-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let mut out = BufWriter::with_capacity(256 * 1024, tmp);
    let value = write(&mut out)?;
    let tmp = out.into_inner().map_err(|e| io(path)(e.into_error()))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(value)
}

/// Writes `bytes` to `path` all-or-nothing (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes).map_err(io(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing_and_success_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, b"first").unwrap();
        let err = write_atomic_with(&path, |out| {
            out.write_all(b"partial").unwrap();
            Err::<(), _>(Error::KeyCommitment)
        });
        assert!(matches!(err, Err(Error::KeyCommitment)));
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the temporary file was removed");
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
    }
}
