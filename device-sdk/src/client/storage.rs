//! Where the device keeps its [`DeviceState`], behind a trait (tests inject their own), with a
//! file implementation that replaces the file atomically: the state on disk is always either the
//! old or the new one, never a torn write, even across a power cut.

use std::path::{Path, PathBuf};

use crate::{DeviceState, Error, Result};

/// The device's persistent state.
pub trait Storage: Send + Sync {
    /// The stored state, or the default (nothing installed, no block seen) if none was stored.
    fn load(&self) -> Result<DeviceState>;

    /// Replaces the stored state, atomically.
    fn store(&self, state: &DeviceState) -> Result<()>;
}

/// A JSON file, replaced by write-to-temporary + fsync + rename + fsync of the directory.
#[derive(Debug, Clone)]
pub struct FileStorage {
    path: PathBuf,
}

impl FileStorage {
    /// State kept in `path` (created on the first store).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::StateIo {
            path: self.path.clone(),
            source,
        }
    }
}

impl Storage for FileStorage {
    fn load(&self) -> Result<DeviceState> {
        match super::read_capped(&self.path, super::MAX_STATE_FILE) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::StateFile {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DeviceState::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    fn store(&self, state: &DeviceState) -> Result<()> {
        let json = serde_json::to_vec_pretty(state).map_err(|source| Error::StateFile {
            path: self.path.clone(),
            source,
        })?;
        // Temporary file (never through a symlink planted there), fsync, rename, fsync of the
        // directory.
        super::install::write_durably(&self.path, &mut |out| {
            out.write_all(&json)?;
            Ok(json.len() as u64)
        })
        .map_err(|e| self.io(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn an_oversized_state_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // Sparse: one byte over the bound costs no disk.
        fs::File::create(&path)
            .unwrap()
            .set_len(crate::client::MAX_STATE_FILE + 1)
            .unwrap();
        let err = FileStorage::new(&path).load().unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
        assert!(err.contains("more than 1048576 bytes"), "{err}");
    }

    /// A FIFO planted as the state file says 0 bytes and never ends while its writer writes:
    /// the read stops one byte past the bound (the writer then sees a broken pipe).
    #[cfg(unix)]
    #[test]
    fn an_endless_state_file_is_read_only_to_its_bound() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reports.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(writer_path)
                .unwrap();
            let chunk = [b' '; 65536];
            let mut written = 0u64;
            while f.write_all(&chunk).is_ok() {
                written += chunk.len() as u64;
            }
            written
        });
        let err = crate::client::read_capped(&path, crate::client::MAX_STATE_FILE).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let written = writer.join().unwrap();
        // The writer stopped: nothing read on far past the bound (pipe buffers hold at most 1 MiB).
        assert!(written <= 3 * crate::client::MAX_STATE_FILE, "{written}");
    }

    #[test]
    fn missing_file_is_the_default_and_stores_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FileStorage::new(dir.path().join("state.json"));
        assert_eq!(storage.load().unwrap(), DeviceState::default());
        let state = DeviceState {
            installed_version: 3,
            highest_block: 99,
        };
        storage.store(&state).unwrap();
        assert_eq!(storage.load().unwrap(), state);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"{\"installedVersion\": 3").unwrap();
        assert!(matches!(
            FileStorage::new(&path).load(),
            Err(Error::StateFile { .. })
        ));
        fs::write(
            &path,
            b"{\"installedVersion\": 3, \"highestBlock\": 1, \"x\": 0}",
        )
        .unwrap();
        assert!(matches!(
            FileStorage::new(&path).load(),
            Err(Error::StateFile { .. })
        ));
    }
}
