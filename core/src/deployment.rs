//! `deployments/<chain-id>.json`: where the contracts of one chain live.
//!
//! The deploy script (`script/Deploy.s.sol`) and the demo write this file; the
//! indexer, the CLI and device provisioning read it. Both contracts are deployed
//! through the deterministic CREATE2 deployer, so their addresses depend only on
//! the salt and the init code, and are the same on every chain.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, address, keccak256};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The deterministic deployment proxy (Arachnid's CREATE2 factory) that
/// `forge script` uses for `new C{salt: s}()`; anvil predeploys it.
pub const CREATE2_DEPLOYER: Address = address!("4e59b44847b379578588920cA78FbF26c0B4956C");

/// Where one chain's OTA Ledger contracts are, as `deployments/<chain-id>.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// `UpdateRegistry` address.
    pub registry: Address,
    /// `UpdateMarket` address.
    pub market: Address,
    /// Block of the first deployment transaction: the indexer starts there.
    pub deployment_block: u64,
    /// CREATE2 salt both contracts were deployed with.
    pub salt: B256,
    /// Git commit of the contracts' source, or `"unknown"`.
    pub commit: String,
}

impl Deployment {
    /// The file this deployment is stored in under `dir` (`<dir>/<chain-id>.json`).
    pub fn path_in(dir: &Path, chain_id: u64) -> PathBuf {
        dir.join(format!("{chain_id}.json"))
    }

    /// Reads `<dir>/<chain-id>.json`.
    pub fn load(dir: &Path, chain_id: u64) -> Result<Self> {
        let path = Self::path_in(dir, chain_id);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let deployment: Self =
            serde_json::from_str(&text).map_err(|source| Error::DeploymentFile {
                path: path.clone(),
                source,
            })?;
        if deployment.chain_id != chain_id {
            return Err(Error::ChainIdMismatch {
                path,
                expected: chain_id,
                found: deployment.chain_id,
            });
        }
        Ok(deployment)
    }

    /// Writes `<dir>/<chain-id>.json` atomically (temporary file, then rename),
    /// so a reader never sees half a file.
    pub fn store(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = Self::path_in(dir, self.chain_id);
        let tmp = path.with_extension("json.tmp");
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| Error::DeploymentFile {
                path: path.clone(),
                source,
            })?;
        text.push('\n');
        std::fs::write(&tmp, text).map_err(|source| Error::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// The address `CREATE2_DEPLOYER` gives a contract with this salt and init code
/// (creation bytecode followed by the ABI-encoded constructor arguments).
pub fn create2_address(salt: B256, init_code: &[u8]) -> Address {
    CREATE2_DEPLOYER.create2(salt, keccak256(init_code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create2_matches_eip1014_example() {
        // EIP-1014 example 5: deployer 0x00000000000000000000000000000000deadbeef,
        // salt 0x00000000000000000000000000000000000000000000000000000000cafebabe,
        // init code 0xdeadbeef.
        let deployer = address!("00000000000000000000000000000000deadbeef");
        let salt = B256::left_padding_from(&[0xca, 0xfe, 0xba, 0xbe]);
        let got = deployer.create2(salt, keccak256([0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(got, address!("60f3f640a8508fC6a86d45DF051962668E1e8AC7"));
        assert_eq!(
            create2_address(salt, &[0xde, 0xad, 0xbe, 0xef]),
            CREATE2_DEPLOYER.create2(salt, keccak256([0xde, 0xad, 0xbe, 0xef]))
        );
    }

    #[test]
    fn store_then_load_round_trips_and_checks_chain_id() {
        let dir = tempfile::tempdir().unwrap();
        let d = Deployment {
            chain_id: 31337,
            registry: Address::repeat_byte(1),
            market: Address::repeat_byte(2),
            deployment_block: 7,
            salt: B256::repeat_byte(3),
            commit: "abc".into(),
        };
        let path = d.store(dir.path()).unwrap();
        assert!(path.ends_with("31337.json"));
        assert_eq!(Deployment::load(dir.path(), 31337).unwrap(), d);
        std::fs::copy(&path, dir.path().join("1.json")).unwrap();
        assert!(matches!(
            Deployment::load(dir.path(), 1),
            Err(Error::ChainIdMismatch {
                expected: 1,
                found: 31337,
                ..
            })
        ));
        assert!(matches!(
            Deployment::load(dir.path(), 5),
            Err(Error::Io { .. })
        ));
    }
}
