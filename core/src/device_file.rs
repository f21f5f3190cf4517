//! `device.toml` (format `otaledger-device/1`): everything a device boots with, written by
//! `otaledger device provision` into the device's directory and read by the device client
//! (`otaledger device run`).
//!
//! ```toml
//! format = "otaledger-device/1"
//! chain_id = 31337
//! registry = "0x…"
//! market = "0x…"
//! manufacturer_id = 1
//! model_id = 1
//! batch_id = 1
//! device_index = 12            # global index on chain
//! position = 3                 # leaf position in the batch
//! address = "0x…"              # the identity key's address
//! public_key = "0x04…"         # its uncompressed public key
//! identity_key_file = "identity.key"
//! cpabe_key_file = "cpabe.key"
//! attributes = ["model:1"]
//! merkle_proof = ["0x…", …]    # for claimDevice
//! [rpc]
//! urls = ["http://…"]
//! [ipfs]
//! gateways = ["http://…"]
//! [key_service]
//! address = "0x…"              # the key-service signer the device trusts
//! urls = ["http://127.0.0.1:8547"]
//! [reports]
//! urls = ["http://127.0.0.1:8546"]   # indexers accepting POST /v1/reports (may be empty)
//! [indexer]
//! urls = ["http://127.0.0.1:8546"]   # indexers asked for a release's manifest and approval
//!                                    # before the RPC endpoints' logs (optional, untrusted)
//! ```
//!
//! Every problem is an [`Error::DeviceFile`] naming the file and what is wrong.

use std::path::{Path, PathBuf};

use alloy::{
    primitives::{Address, B256, Bytes},
    signers::local::PrivateKeySigner,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The `format` tag of `device.toml`.
pub const DEVICE_FORMAT: &str = "otaledger-device/1";
/// `name` is one plain file name: no separator, not `.` or `..`, not empty (a key file named
/// in `device.toml` stays inside the device directory).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// The file's name in a device directory.
pub const DEVICE_FILE: &str = "device.toml";
/// Largest `device.toml` read (a Merkle proof of a 2^32 batch is about 2.2 KiB).
pub const MAX_DEVICE_FILE: u64 = 256 * 1024;

/// Largest identity key file read (a 32-byte key in hex with `0x` and a newline is 67 bytes).
pub const MAX_IDENTITY_KEY_FILE: u64 = 1024;

/// Reads the text file `path`, at most `max` bytes: a longer file is refused after reading
/// `max + 1` bytes, whatever `metadata` says of it (a FIFO or a device file reports 0 bytes;
/// `review_formats::device_files_that_are_not_regular_files_are_read_within_the_bound`).
/// The buffer is allocated once and wiped on drop (it may hold a secret key).
fn read_bounded(path: &Path, max: u64) -> Result<Zeroizing<String>> {
    let bytes = crate::fsutil::read_capped(path, max).map_err(|source| {
        if source.kind() == std::io::ErrorKind::InvalidData {
            invalid(path, source.to_string())
        } else {
            Error::Io {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| invalid(path, format!("not UTF-8: {e}")))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// `device.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Always [`DEVICE_FORMAT`].
    pub format: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The registry.
    pub registry: Address,
    /// The market.
    pub market: Address,
    /// The manufacturer.
    pub manufacturer_id: u32,
    /// The device's model.
    pub model_id: u32,
    /// Its provisioning batch.
    pub batch_id: u64,
    /// Its global index on chain.
    pub device_index: u64,
    /// Its leaf position in the batch.
    pub position: u64,
    /// Its identity address.
    pub address: Address,
    /// Its identity public key (uncompressed SEC1, 65 bytes): key deliveries are encrypted to it.
    pub public_key: Bytes,
    /// File (in the device directory) with the identity secret key, hex.
    pub identity_key_file: String,
    /// File with the CP-ABE key for the static attributes.
    pub cpabe_key_file: String,
    /// The static attributes in that key.
    pub attributes: Vec<String>,
    /// Merkle proof of the device's leaf (for `claimDevice`).
    pub merkle_proof: Vec<B256>,
    /// JSON-RPC settings.
    pub rpc: RpcConfig,
    /// IPFS settings.
    pub ipfs: IpfsConfig,
    /// The key service: whose signatures the device accepts, and where to ask.
    pub key_service: KeyServiceConfig,
    /// Where install reports go.
    #[serde(default)]
    pub reports: ReportsConfig,
    /// Indexers asked for releases (absent in files written before it: none).
    #[serde(default)]
    pub indexer: IndexerConfig,
}

/// `[rpc]` of `device.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// Endpoints the device asks (k-of-n agreement is the device SDK's).
    pub urls: Vec<String>,
}

/// `[ipfs]` of `device.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpfsConfig {
    /// Trustless gateways, tried in order.
    pub gateways: Vec<String>,
}

/// `[key_service]` of `device.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyServiceConfig {
    /// The key service's signing address: the only signer of key deliveries the device accepts.
    pub address: Address,
    /// Key-service endpoints (`GET /v1/keys/<release>/<device>`), tried in order.
    #[serde(default)]
    pub urls: Vec<String>,
}

/// `[reports]` of `device.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// Indexers accepting `POST /v1/reports` (may be empty: reports then stay queued).
    #[serde(default)]
    pub urls: Vec<String>,
}

/// `[indexer]` of `device.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexerConfig {
    /// Indexers serving `GET /v1/models/<model>/releases/<version>`, asked in order before the
    /// RPC endpoints' logs; every answer is checked against the chain like any other source's
    /// (may be empty).
    #[serde(default)]
    pub urls: Vec<String>,
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::DeviceFile {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

impl DeviceConfig {
    /// Reads and checks `<dir>/device.toml`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(DEVICE_FILE);
        let len = std::fs::metadata(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?
            .len();
        if len > MAX_DEVICE_FILE {
            return Err(invalid(
                &path,
                format!("{len} bytes, at most {MAX_DEVICE_FILE}"),
            ));
        }
        // The size above is only what `metadata` says: a FIFO or a device file says 0.
        let text = read_bounded(&path, MAX_DEVICE_FILE)?;
        Self::parse(&text, &path)
    }

    /// Parses and checks the text of a `device.toml` (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| invalid(path, e.to_string()))?;
        config.check(path)?;
        Ok(config)
    }

    /// The checks beyond the syntax: the format tag, the public key matching the address,
    /// every URL parsing as http(s), and the key files being plain file names in the device
    /// directory (no `..`, no path).
    pub fn check(&self, path: &Path) -> Result<()> {
        if self.format != DEVICE_FORMAT {
            return Err(invalid(
                path,
                format!("format {:?} is not {DEVICE_FORMAT:?}", self.format),
            ));
        }
        let derived = crate::key_delivery::public_key_address(&self.public_key)
            .map_err(|e| invalid(path, format!("public_key: {e}")))?;
        if derived != self.address {
            return Err(invalid(
                path,
                format!(
                    "public_key belongs to {derived}, address says {}",
                    self.address
                ),
            ));
        }
        let lists = [
            ("rpc.urls", &self.rpc.urls),
            ("ipfs.gateways", &self.ipfs.gateways),
            ("key_service.urls", &self.key_service.urls),
            ("reports.urls", &self.reports.urls),
            ("indexer.urls", &self.indexer.urls),
        ];
        for (field, urls) in lists {
            for u in urls {
                match url::Url::parse(u) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                    Ok(_) => return Err(invalid(path, format!("{field}: {u:?} is not http(s)"))),
                    Err(e) => return Err(invalid(path, format!("{field}: {u:?}: {e}"))),
                }
            }
        }
        if self.rpc.urls.is_empty() {
            return Err(invalid(path, "rpc.urls is empty"));
        }
        for (field, name) in [
            ("identity_key_file", &self.identity_key_file),
            ("cpabe_key_file", &self.cpabe_key_file),
        ] {
            if !is_plain_file_name(name) {
                return Err(invalid(
                    path,
                    format!("{field}: {name:?} is not a file name in the device directory"),
                ));
            }
        }
        Ok(())
    }

    /// The TOML text (what `device provision` writes).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| invalid(Path::new(DEVICE_FILE), e.to_string()))
    }

    /// The device's identity key from its directory; it must be the key of [`Self::address`].
    pub fn identity(&self, dir: &Path) -> Result<PrivateKeySigner> {
        let path = dir.join(&self.identity_key_file);
        let text = read_bounded(&path, MAX_IDENTITY_KEY_FILE)?;
        let key: PrivateKeySigner = text
            .trim()
            .parse()
            .map_err(|_| invalid(&path, "not a hex secp256k1 secret key"))?;
        if key.address() != self.address {
            return Err(invalid(
                &path,
                format!(
                    "the key is {}'s, device.toml says {}",
                    key.address(),
                    self.address
                ),
            ));
        }
        Ok(key)
    }

    /// Where the identity key file is.
    pub fn identity_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.identity_key_file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (DeviceConfig, PrivateKeySigner) {
        let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
        let config = DeviceConfig {
            format: DEVICE_FORMAT.into(),
            chain_id: 31337,
            registry: Address::repeat_byte(1),
            market: Address::repeat_byte(2),
            manufacturer_id: 1,
            model_id: 2,
            batch_id: 1,
            device_index: 12,
            position: 3,
            address: key.address(),
            public_key: crate::key_delivery::identity_public_key(&key).into(),
            identity_key_file: "identity.key".into(),
            cpabe_key_file: "cpabe.key".into(),
            attributes: vec!["model:2".into()],
            merkle_proof: vec![B256::repeat_byte(3)],
            rpc: RpcConfig {
                urls: vec!["http://127.0.0.1:8545/".into()],
            },
            ipfs: IpfsConfig {
                gateways: vec!["http://127.0.0.1:8080/".into()],
            },
            key_service: KeyServiceConfig {
                address: Address::repeat_byte(4),
                urls: vec!["http://127.0.0.1:8547/".into()],
            },
            reports: ReportsConfig {
                urls: vec!["http://127.0.0.1:8546/".into()],
            },
            indexer: IndexerConfig {
                urls: vec!["http://127.0.0.1:8548/".into()],
            },
        };
        (config, key)
    }

    #[test]
    fn round_trips_and_loads_the_identity() {
        let (config, key) = sample();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DEVICE_FILE), config.to_toml().unwrap()).unwrap();
        std::fs::write(
            dir.path().join("identity.key"),
            alloy::hex::encode(key.to_bytes()),
        )
        .unwrap();
        let loaded = DeviceConfig::load(dir.path()).unwrap();
        assert_eq!(loaded, config);
        assert_eq!(
            loaded.identity(dir.path()).unwrap().address(),
            key.address()
        );
        // Reports are optional.
        let text = config.to_toml().unwrap();
        let cut = text.find("[reports]").unwrap();
        let parsed = DeviceConfig::parse(&text[..cut], Path::new("x")).unwrap();
        assert!(parsed.reports.urls.is_empty());
        // So are indexers (files written before the field load as none).
        let cut = text.find("[indexer]").unwrap();
        let parsed = DeviceConfig::parse(&text[..cut], Path::new("x")).unwrap();
        assert!(parsed.indexer.urls.is_empty());
        assert_eq!(parsed.reports, config.reports);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let (config, _) = sample();
        let text = config.to_toml().unwrap();
        let path = Path::new("device.toml");
        let cases = [
            (
                text.replace("otaledger-device/1", "otaledger-device/2"),
                "format",
            ),
            (text.replace("[key_service]", "[keyservice]"), "keyservice"),
            (
                text.replace("http://127.0.0.1:8547/", "ftp://x/"),
                "key_service.urls",
            ),
            (format!("{text}\nkey_service_x = 1\n"), "key_service_x"),
            (
                text.replace("http://127.0.0.1:8548/", "file:///etc/passwd"),
                "indexer.urls",
            ),
        ];
        for (bad, needle) in cases {
            let err = DeviceConfig::parse(&bad, path).unwrap_err();
            assert!(matches!(err, Error::DeviceFile { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
        let mut other = config.clone();
        other.address = Address::ZERO;
        let err = other.check(path).unwrap_err();
        assert!(err.to_string().contains("public_key belongs"), "{err}");
        // The old flat `key_service = "0x…"` is refused, not misread.
        let old = text.replace(
            &text[text.find("[key_service]").unwrap()..],
            &format!("key_service = \"{}\"\n", Address::repeat_byte(4)),
        );
        assert!(DeviceConfig::parse(&old, path).is_err());
    }

    #[test]
    fn an_identity_key_of_another_device_is_refused() {
        let (config, _) = sample();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("identity.key"),
            "0x".to_string() + &"11".repeat(32),
        )
        .unwrap();
        let err = config.identity(dir.path()).unwrap_err();
        assert!(err.to_string().contains("device.toml says"), "{err}");
    }
}
