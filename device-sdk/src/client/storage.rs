//! Where the device keeps its [`DeviceState`], behind a trait (tests inject their own), with a
//! file implementation that replaces the file atomically: the state on disk is always either the
//! old or the new one, never a torn write, even across a power cut.

use std::{
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
};

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
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::StateFile {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DeviceState::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    fn store(&self, state: &DeviceState) -> Result<()> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let tmp = dir.join(name);
        let json = serde_json::to_vec_pretty(state).map_err(|source| Error::StateFile {
            path: self.path.clone(),
            source,
        })?;
        // Never through a symlink planted at the temporary path.
        let mut file = super::install::create_new(&tmp).map_err(|e| self.io(e))?;
        file.write_all(&json).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        // The rename is durable only once the directory entry is on disk.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
