//! Step 3, policy: what the proven words say about this device and this manifest, in the order
//! `docs/contracts.md` lists a device's checks.
//!
//! Attacks stopped: a deactivated or foreign device ([`Error::DeviceNotActive`]); an unpublished
//! release or one of another registry ([`Error::ReleaseNotPublished`]); a revoked release
//! ([`Error::ReleaseRevoked`]); mix-and-match and wrong software, i.e. a manifest of another model
//! ([`Error::WrongModel`]); rollback to an older version or below the floor
//! ([`Error::Rollback`], [`Error::BelowFloor`]); an older release offered while a newer one
//! exists ([`Error::NotLatest`]); an unpaid device ([`Error::NotEntitled`]).

use alloy_primitives::{B256, U256};

use crate::{
    Error, Manifest, Result,
    layout::{self, DeviceStatus, DeviceWord, ModelWord, ReleaseWord},
    pipeline::DeviceConfig,
};

/// The words step 2 proved, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenWords {
    /// The manufacturer's `signersHash`.
    pub signers_hash: B256,
    /// The device's model.
    pub model: ModelWord,
    /// The device.
    pub device: DeviceWord,
    /// The manifest's release id.
    pub release_id: B256,
    /// The release.
    pub release: ReleaseWord,
    /// The device's entitlement word for the release.
    pub entitlement: U256,
}

/// Step 3: checks the proven words for `manifest`, offered to a device that runs
/// `installed`.
pub fn check(
    config: &DeviceConfig,
    installed: u64,
    words: &ProvenWords,
    manifest: &Manifest,
) -> Result<()> {
    let device = &words.device;
    if device.status != DeviceStatus::Active || device.model_id != config.model_id {
        return Err(Error::DeviceNotActive {
            device_index: config.device_index,
            status: device.status,
            model_id: device.model_id,
            expected_model: config.model_id,
        });
    }
    if words.model.manufacturer_id != config.manufacturer_id {
        return Err(Error::ModelNotOfManufacturer {
            model_id: config.model_id,
            expected: config.manufacturer_id,
            found: words.model.manufacturer_id,
        });
    }
    let release = &words.release;
    if release.published_at == 0 {
        return Err(Error::ReleaseNotPublished {
            release_id: words.release_id,
        });
    }
    if release.revoked_at != 0 {
        return Err(Error::ReleaseRevoked {
            release_id: words.release_id,
            revoked_at: release.revoked_at,
        });
    }
    if manifest.modelId != config.model_id {
        return Err(Error::WrongModel {
            release_id: words.release_id,
            manifest_model: manifest.modelId,
            device_model: config.model_id,
        });
    }
    if release.model_id != manifest.modelId || release.version != manifest.version {
        return Err(Error::ReleaseWordMismatch {
            release_id: words.release_id,
            word_model: release.model_id,
            word_version: release.version,
            manifest_model: manifest.modelId,
            manifest_version: manifest.version,
        });
    }
    if manifest.version <= installed {
        return Err(Error::Rollback {
            version: manifest.version,
            installed,
        });
    }
    if manifest.version < words.model.min_version {
        return Err(Error::BelowFloor {
            version: manifest.version,
            floor: words.model.min_version,
        });
    }
    if manifest.version != words.model.latest_version {
        return Err(Error::NotLatest {
            version: manifest.version,
            latest: words.model.latest_version,
        });
    }
    if !layout::is_entitled(words.entitlement, config.device_index) {
        return Err(Error::NotEntitled {
            release_id: words.release_id,
            device_index: config.device_index,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, Bytes};

    const DEVICE: u64 = 300;

    fn config() -> DeviceConfig {
        DeviceConfig {
            chain_id: 1,
            registry: Address::repeat_byte(1),
            market: Address::repeat_byte(2),
            manufacturer_id: 4,
            model_id: 7,
            device_index: DEVICE,
        }
    }

    fn manifest(model: u32, version: u64) -> Manifest {
        Manifest {
            modelId: model,
            version,
            bundleSha256: B256::ZERO,
            bundleSize: 1,
            bundleCid: Bytes::new(),
            imageSha256: B256::ZERO,
            price: 0,
            paymentToken: Address::ZERO,
            policyId: B256::ZERO,
            expiry: 0,
            metadataHash: B256::ZERO,
        }
    }

    /// Words under which `manifest(7, 5)` passes for a device at version 4.
    fn words() -> ProvenWords {
        ProvenWords {
            signers_hash: B256::ZERO,
            model: ModelWord {
                manufacturer_id: 4,
                latest_version: 5,
                min_version: 3,
            },
            device: DeviceWord {
                owner: Address::repeat_byte(9),
                model_id: 7,
                status: DeviceStatus::Active,
            },
            release_id: B256::repeat_byte(5),
            release: ReleaseWord {
                version: 5,
                model_id: 7,
                published_at: 1000,
                revoked_at: 0,
                rollout_bps: 10_000,
            },
            entitlement: U256::from(1) << (DEVICE & 255),
        }
    }

    fn refuse(words: &ProvenWords, installed: u64, m: &Manifest) -> Error {
        check(&config(), installed, words, m).unwrap_err()
    }

    #[test]
    fn every_rule_refuses_with_its_variant() {
        let m = manifest(7, 5);
        check(&config(), 4, &words(), &m).unwrap();

        let mut w = words();
        w.device.status = DeviceStatus::Deactivated;
        assert!(matches!(refuse(&w, 4, &m), Error::DeviceNotActive { .. }));
        let mut w = words();
        w.device.model_id = 8;
        assert!(matches!(
            refuse(&w, 4, &m),
            Error::DeviceNotActive { model_id: 8, .. }
        ));
        let mut w = words();
        w.model.manufacturer_id = 5;
        assert!(matches!(
            refuse(&w, 4, &m),
            Error::ModelNotOfManufacturer { found: 5, .. }
        ));
        let mut w = words();
        w.release.published_at = 0;
        assert!(matches!(
            refuse(&w, 4, &m),
            Error::ReleaseNotPublished { .. }
        ));
        let mut w = words();
        w.release.revoked_at = 2000;
        assert!(matches!(
            refuse(&w, 4, &m),
            Error::ReleaseRevoked {
                revoked_at: 2000,
                ..
            }
        ));
        assert!(matches!(
            refuse(&words(), 4, &manifest(8, 5)),
            Error::WrongModel { .. }
        ));
        let mut w = words();
        w.release.version = 6;
        assert!(matches!(
            refuse(&w, 4, &m),
            Error::ReleaseWordMismatch { .. }
        ));
        assert!(matches!(
            refuse(&words(), 5, &m),
            Error::Rollback {
                version: 5,
                installed: 5
            }
        ));
        let mut w = words();
        w.model.min_version = 6;
        assert!(matches!(
            refuse(&w, 4, &m),
            Error::BelowFloor {
                version: 5,
                floor: 6
            }
        ));
        let mut w = words();
        w.model.latest_version = 6;
        assert!(matches!(
            refuse(&w, 4, &m),
            Error::NotLatest {
                version: 5,
                latest: 6
            }
        ));
        let mut w = words();
        w.entitlement = U256::from(1) << ((DEVICE + 1) & 255);
        assert!(matches!(
            refuse(&w, 4, &m),
            Error::NotEntitled {
                device_index: DEVICE,
                ..
            }
        ));
    }
}
