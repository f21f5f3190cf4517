//! The contracts' storage layout, as `docs/contracts.md` ("Storage layout") fixes it: the slot
//! of every word a device proves, and the bit layout of the packed words.
//!
//! This is the only place the SDK computes a slot. `tests/layout.rs` checks every formula and
//! decoder against a real anvil deployment (`eth_getStorageAt` against the contracts' views).

use alloy_primitives::{Address, B256, U256, keccak256};

/// `UpdateRegistry._manufacturers` (mapping at slot 1).
const MANUFACTURERS: u64 = 1;
/// `UpdateRegistry._models` (slot 2).
const MODELS: u64 = 2;
/// `UpdateRegistry._devices` (slot 4).
const DEVICES: u64 = 4;
/// `UpdateRegistry._releases` (slot 5).
const RELEASES: u64 = 5;
/// `UpdateMarket._entitlements` (slot 0).
const ENTITLEMENTS: u64 = 0;

/// `keccak256(key ‖ pad32(slot))`: the slot of `mapping[key]` for a mapping at `slot`.
fn mapping_slot(key: B256, slot: B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(key.as_slice());
    buf[32..].copy_from_slice(slot.as_slice());
    keccak256(buf)
}

fn pad(n: u64) -> B256 {
    B256::from(U256::from(n))
}

/// Registry slot of a manufacturer's `signersHash` (member 0 of its struct).
pub fn manufacturer_signers_hash(manufacturer_id: u32) -> B256 {
    mapping_slot(pad(manufacturer_id.into()), pad(MANUFACTURERS))
}

/// Registry slot of a model's packed word.
pub fn model(model_id: u32) -> B256 {
    mapping_slot(pad(model_id.into()), pad(MODELS))
}

/// Registry slot of a device's packed word.
pub fn device(device_index: u64) -> B256 {
    mapping_slot(pad(device_index), pad(DEVICES))
}

/// Registry slot of a release's packed word.
pub fn release(release_id: B256) -> B256 {
    mapping_slot(release_id, pad(RELEASES))
}

/// Market slot of the entitlement word holding `device_index`'s bit for `release_id`:
/// `keccak256(pad32(d >> 8) ‖ keccak256(id ‖ pad32(0)))`.
pub fn entitlement_word(release_id: B256, device_index: u64) -> B256 {
    mapping_slot(
        pad(device_index >> 8),
        mapping_slot(release_id, pad(ENTITLEMENTS)),
    )
}

/// The bit of `device_index` in its entitlement word.
pub fn entitlement_bit(device_index: u64) -> usize {
    (device_index & 255) as usize
}

/// `bits` bits of `word` from bit `from` (bit 0 = least significant).
fn bits(word: U256, from: usize, bits: usize) -> u64 {
    debug_assert!(bits <= 64);
    let mask = (U256::from(1) << bits) - U256::from(1);
    ((word >> from) & mask).to::<u64>()
}

/// A model's packed word: `manufacturerId` (0 = no such model), `latestVersion`, `minVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelWord {
    /// The manufacturer that defined the model; 0 if the model does not exist.
    pub manufacturer_id: u32,
    /// The version of the model's latest release (0 before the first).
    pub latest_version: u64,
    /// The version floor: nothing older may be installed.
    pub min_version: u64,
}

impl ModelWord {
    /// Decodes bits 0..31, 32..95 and 96..159.
    pub fn decode(word: U256) -> Self {
        Self {
            manufacturer_id: bits(word, 0, 32) as u32,
            latest_version: bits(word, 32, 64),
            min_version: bits(word, 96, 64),
        }
    }
}

/// A device's status (`IUpdateRegistry.DeviceStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Provisioned but not claimed (or no such device).
    Unclaimed,
    /// Claimed and active: may receive updates.
    Active,
    /// Deactivated by the operator.
    Deactivated,
    /// A value the contract never writes.
    Unknown(u8),
}

/// A device's packed word: `owner` (0 = unclaimed), `modelId`, `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceWord {
    /// The device's owner.
    pub owner: Address,
    /// The device's model.
    pub model_id: u32,
    /// Whether it is active.
    pub status: DeviceStatus,
}

impl DeviceWord {
    /// Decodes bits 0..159, 160..191 and 192..199.
    pub fn decode(word: U256) -> Self {
        let bytes = word.to_be_bytes::<32>();
        Self {
            owner: Address::from_slice(&bytes[12..]),
            model_id: bits(word, 160, 32) as u32,
            status: match bits(word, 192, 8) as u8 {
                0 => DeviceStatus::Unclaimed,
                1 => DeviceStatus::Active,
                2 => DeviceStatus::Deactivated,
                other => DeviceStatus::Unknown(other),
            },
        }
    }
}

/// A release's packed word: `version`, `modelId`, `publishedAt` (0 = no such release),
/// `revokedAt` (0 = live), `rolloutBps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseWord {
    /// The release's version.
    pub version: u64,
    /// Its model.
    pub model_id: u32,
    /// When it was published (block timestamp); 0 if it never was.
    pub published_at: u64,
    /// When it was revoked; 0 while it is live.
    pub revoked_at: u64,
    /// Rollout fraction in basis points (10000 today).
    pub rollout_bps: u16,
}

impl ReleaseWord {
    /// Decodes bits 0..63, 64..95, 96..135, 136..175 and 176..191.
    pub fn decode(word: U256) -> Self {
        Self {
            version: bits(word, 0, 64),
            model_id: bits(word, 64, 32) as u32,
            published_at: bits(word, 96, 40),
            revoked_at: bits(word, 136, 40),
            rollout_bps: bits(word, 176, 16) as u16,
        }
    }
}

/// Whether `device_index`'s bit is set in its proven entitlement word.
pub fn is_entitled(word: U256, device_index: u64) -> bool {
    word.bit(entitlement_bit(device_index))
}

/// `keccak256(uint256(threshold) ‖ signers[0] ‖ … ‖ signers[n-1])`, each address as a word:
/// the manufacturer's `signersHash`.
pub fn signers_hash(signers: &[Address], threshold: u8) -> B256 {
    let mut buf = alloc::vec::Vec::with_capacity(32 * (signers.len() + 1));
    buf.extend_from_slice(&U256::from(threshold).to_be_bytes::<32>());
    for signer in signers {
        buf.extend_from_slice(B256::left_padding_from(signer.as_slice()).as_slice());
    }
    keccak256(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_words_decode_each_field() {
        let word = U256::from(7u64)
            | (U256::from(5u64) << 32)
            | (U256::from(3u64) << 96)
            | (U256::from(1u64) << 200); // above the fields: ignored
        assert_eq!(
            ModelWord::decode(word),
            ModelWord {
                manufacturer_id: 7,
                latest_version: 5,
                min_version: 3
            }
        );
        let owner = Address::repeat_byte(0xab);
        let word = U256::from_be_slice(owner.as_slice())
            | (U256::from(9u64) << 160)
            | (U256::from(2u64) << 192);
        let d = DeviceWord::decode(word);
        assert_eq!(
            (d.owner, d.model_id, d.status),
            (owner, 9, DeviceStatus::Deactivated)
        );
        let word = U256::from(u64::MAX)
            | (U256::from(4u64) << 64)
            | (U256::from((1u64 << 40) - 1) << 96)
            | (U256::from(8u64) << 136)
            | (U256::from(10_000u64) << 176);
        assert_eq!(
            ReleaseWord::decode(word),
            ReleaseWord {
                version: u64::MAX,
                model_id: 4,
                published_at: (1 << 40) - 1,
                revoked_at: 8,
                rollout_bps: 10_000
            }
        );
    }

    #[test]
    fn entitlement_bits_index_by_device() {
        let word = U256::from(1) << 3 | U256::from(1) << 255;
        assert!(is_entitled(word, 3));
        assert!(is_entitled(word, 256 + 3));
        assert!(is_entitled(word, 255));
        assert!(!is_entitled(word, 4));
        assert_eq!(
            entitlement_word(B256::ZERO, 3),
            entitlement_word(B256::ZERO, 255)
        );
        assert_ne!(
            entitlement_word(B256::ZERO, 255),
            entitlement_word(B256::ZERO, 256)
        );
    }
}
