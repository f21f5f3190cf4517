//! All-or-nothing file output: every file this project writes appears under
//! its name only when complete (a temporary file beside it, synced, then renamed);
//! and bounded input: every small file this project reads is read with a cap.

use std::io::{BufWriter, Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

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

/// Reads `path` whole, at most `max` bytes: a longer file is refused (as
/// [`std::io::ErrorKind::InvalidData`], naming the bound) after reading `max + 1` bytes, whatever
/// its metadata says (a FIFO or a device file reports 0 bytes). The buffer is sized from the
/// metadata (within the bound), so a regular file is read into one allocation that is wiped on
/// drop: the file may hold a secret key, and no reallocation leaves a copy behind.
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    let hint = file.metadata().map_or(0, |m| m.len()).min(max);
    let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(hint).unwrap_or(0) + 1));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {max} bytes, at most {max} are read"),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_capped_reads_up_to_the_bound_and_refuses_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"12345").unwrap();
        assert_eq!(read_capped(&path, 5).unwrap().as_slice(), b"12345");
        let err = read_capped(&path, 4).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("at most 4"), "{err}");
    }

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
