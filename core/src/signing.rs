//! EIP-712 messages of `UpdateRegistry` and threshold approvals.
//!
//! Every security-relevant registry call (publishing, revoking, rotating the
//! signer set, raising a floor) carries an [`Approval`]: the manufacturer's
//! full current signer set (ascending), its threshold, and the concatenation of
//! 64-byte EIP-2098 compact signatures over the EIP-712 digest, ordered by
//! ascending signer address. The typed-data definitions here equal the
//! contract's type strings (see `docs/contracts.md`); a test proves the digests
//! match the deployed contract.

use alloy::{
    primitives::{Address, B256, Bytes, Signature, U256},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};

use crate::{
    Error, Result,
    bindings::registry::IUpdateRegistry::{Approval, Manifest},
};

alloy::sol! {
    /// Approves a new signer set and threshold (`rotateSigners`).
    #[derive(Debug, PartialEq, Eq)]
    struct RotateSigners {
        /// The manufacturer.
        uint32 manufacturerId;
        /// The manufacturer's current nonce (replay protection).
        uint64 nonce;
        /// The new signer set, ascending.
        address[] signers;
        /// The new threshold.
        uint8 threshold;
    }

    /// Approves a new operator and payee (`updateManufacturer`).
    #[derive(Debug, PartialEq, Eq)]
    struct UpdateManufacturer {
        /// The manufacturer.
        uint32 manufacturerId;
        /// The manufacturer's current nonce (replay protection).
        uint64 nonce;
        /// The new operator.
        address operator;
        /// The new payee.
        address payee;
    }

    /// Approves raising a model's version floor (`raiseFloor`).
    #[derive(Debug, PartialEq, Eq)]
    struct RaiseFloor {
        /// The model.
        uint32 modelId;
        /// The new floor.
        uint64 minVersion;
    }

    /// Approves revoking a release (`revokeRelease`).
    #[derive(Debug, PartialEq, Eq)]
    struct RevokeRelease {
        /// The release id.
        bytes32 releaseId;
        /// Why it is revoked (emitted in the event).
        string reason;
    }

    /// A device's consent to be claimed by `owner` (`claimDevice`), signed with the device's identity key.
    #[derive(Debug, PartialEq, Eq)]
    struct Claim {
        /// The first owner.
        address owner;
        /// The device's index.
        uint64 deviceIndex;
    }
}

/// The registry's EIP-712 domain on `chain_id` at `registry`.
pub fn registry_domain(chain_id: u64, registry: Address) -> Eip712Domain {
    eip712_domain! {
        name: "OTA Ledger UpdateRegistry",
        version: "1",
        chain_id: chain_id,
        verifying_contract: registry,
    }
}

/// The release id of a manifest: its EIP-712 struct hash (what the registry stores the release under).
pub fn release_id(manifest: &Manifest) -> B256 {
    manifest.eip712_hash_struct()
}

/// Signs an EIP-712 digest with `signer` as a 64-byte EIP-2098 compact signature (low `s`).
pub fn sign_compact(signer: &PrivateKeySigner, digest: B256) -> Result<[u8; 64]> {
    let signature = signer.sign_hash_sync(&digest).map_err(|e| Error::Signing {
        signer: signer.address(),
        reason: e.to_string(),
    })?;
    Ok(signature.as_erc2098())
}

/// The signer of a 64-byte EIP-2098 compact signature over `digest`.
///
/// Refuses `s` above secp256k1n/2 ([`Error::MalleableSignature`]) before
/// recovering: `alloy` normalises `s` when it recovers, so the high-s twin of a
/// signature (`n - s`, parity flipped) would recover to the same signer and give
/// one signed message a second encoding; the registry refuses such signatures
/// too. A signature that recovers to no key is [`Error::InvalidKey`].
/// (`review_formats::key_delivery_high_s_twin_is_refused`,
/// `review_formats::manifest_signature_file_high_s_twin_is_refused`.)
pub fn recover_compact(signature: &[u8; 64], digest: &B256) -> Result<Address> {
    let signature = Signature::from_erc2098(signature);
    if signature.normalize_s().is_some() {
        return Err(Error::MalleableSignature);
    }
    signature
        .recover_address_from_prehash(digest)
        .map_err(|_| Error::InvalidKey {
            what: "signature (does not recover)",
        })
}

/// A signer set with its threshold, as registered for a manufacturer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerSet {
    signers: Vec<Address>,
    threshold: u8,
}

impl SignerSet {
    /// A signer set; the addresses are sorted ascending (the registry's canonical
    /// order). Rejects duplicates, the zero address, and a threshold of 0 or above the set's size.
    pub fn new(mut signers: Vec<Address>, threshold: u8) -> Result<Self> {
        signers.sort_unstable();
        let duplicate = signers.windows(2).any(|w| w[0] == w[1]);
        if signers.is_empty()
            || duplicate
            || signers.contains(&Address::ZERO)
            || threshold == 0
            || usize::from(threshold) > signers.len()
        {
            return Err(Error::InvalidSignerSet {
                signers: signers.len(),
                threshold,
                duplicate,
            });
        }
        Ok(Self { signers, threshold })
    }

    /// The signers, ascending.
    pub fn signers(&self) -> &[Address] {
        &self.signers
    }

    /// How many of them must sign.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// An [`Approval`] of `digest` by `keys` (at least the threshold, all members of this set).
    pub fn approve(&self, digest: B256, keys: &[&PrivateKeySigner]) -> Result<Approval> {
        let mut keys = keys.to_vec();
        keys.sort_unstable_by_key(|k| k.address());
        keys.dedup_by_key(|k| k.address());
        if keys.len() < usize::from(self.threshold) {
            return Err(Error::NotEnoughSigners {
                given: keys.len(),
                threshold: self.threshold,
            });
        }
        let mut signatures = Vec::with_capacity(64 * keys.len());
        for key in keys {
            if !self.signers.contains(&key.address()) {
                return Err(Error::NotASigner {
                    address: key.address(),
                });
            }
            signatures.extend_from_slice(&sign_compact(key, digest)?);
        }
        Ok(Approval {
            signers: self.signers.clone(),
            threshold: self.threshold,
            signatures: Bytes::from(signatures),
        })
    }

    /// Approves a typed message under `domain`.
    pub fn approve_typed<T: SolStruct>(
        &self,
        message: &T,
        domain: &Eip712Domain,
        keys: &[&PrivateKeySigner],
    ) -> Result<Approval> {
        self.approve(message.eip712_signing_hash(domain), keys)
    }
}

/// Bit `i` set for every `signers[i]` that signed: the `signerMask` of `ReleasePublished`.
pub fn signer_mask(set: &SignerSet, signed: &[Address]) -> U256 {
    set.signers
        .iter()
        .enumerate()
        .filter(|(_, s)| signed.contains(s))
        .fold(U256::ZERO, |mask, (i, _)| mask | (U256::from(1) << i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Signature, keccak256};

    fn keys(n: u8) -> Vec<PrivateKeySigner> {
        (1..=n)
            .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).unwrap())
            .collect()
    }

    #[test]
    fn type_strings_equal_the_contracts() {
        assert_eq!(
            RotateSigners::eip712_encode_type(),
            "RotateSigners(uint32 manufacturerId,uint64 nonce,address[] signers,uint8 threshold)"
        );
        assert_eq!(
            UpdateManufacturer::eip712_encode_type(),
            "UpdateManufacturer(uint32 manufacturerId,uint64 nonce,address operator,address payee)"
        );
        assert_eq!(
            RaiseFloor::eip712_encode_type(),
            "RaiseFloor(uint32 modelId,uint64 minVersion)"
        );
        assert_eq!(
            RevokeRelease::eip712_encode_type(),
            "RevokeRelease(bytes32 releaseId,string reason)"
        );
        assert_eq!(
            Claim::eip712_encode_type(),
            "Claim(address owner,uint64 deviceIndex)"
        );
        assert_eq!(
            Manifest::eip712_encode_type(),
            "Manifest(uint32 modelId,uint64 version,bytes32 bundleSha256,uint64 bundleSize,bytes bundleCid,bytes32 imageSha256,uint128 price,address paymentToken,bytes32 policyId,uint64 expiry,bytes32 metadataHash)"
        );
    }

    #[test]
    fn approval_sorts_signatures_by_signer_and_they_recover() {
        let keys = keys(3);
        let set = SignerSet::new(keys.iter().map(|k| k.address()).collect(), 2).unwrap();
        assert!(set.signers().windows(2).all(|w| w[0] < w[1]));
        let digest = keccak256(b"digest");
        let approval = set.approve(digest, &[&keys[2], &keys[0]]).unwrap();
        assert_eq!(approval.signatures.len(), 128);
        let recovered: Vec<Address> = approval
            .signatures
            .chunks(64)
            .map(|c| {
                Signature::from_erc2098(c)
                    .recover_address_from_prehash(&digest)
                    .unwrap()
            })
            .collect();
        assert!(recovered[0] < recovered[1]);
        let mut expected = vec![keys[0].address(), keys[2].address()];
        expected.sort();
        assert_eq!(recovered, expected);
    }

    #[test]
    fn rejects_bad_sets_and_too_few_or_foreign_signers() {
        let keys = keys(4);
        let a = keys[0].address();
        assert!(matches!(
            SignerSet::new(vec![a, a], 1),
            Err(Error::InvalidSignerSet {
                duplicate: true,
                ..
            })
        ));
        assert!(matches!(
            SignerSet::new(vec![a], 2),
            Err(Error::InvalidSignerSet { .. })
        ));
        assert!(matches!(
            SignerSet::new(vec![a], 0),
            Err(Error::InvalidSignerSet { .. })
        ));
        assert!(matches!(
            SignerSet::new(vec![], 1),
            Err(Error::InvalidSignerSet { .. })
        ));
        let set = SignerSet::new(keys[..3].iter().map(|k| k.address()).collect(), 2).unwrap();
        let d = B256::ZERO;
        assert!(matches!(
            set.approve(d, &[&keys[0], &keys[0]]),
            Err(Error::NotEnoughSigners {
                given: 1,
                threshold: 2
            })
        ));
        assert!(matches!(
            set.approve(d, &[&keys[0], &keys[3]]),
            Err(Error::NotASigner { .. })
        ));
    }
}
