//! Step 4, manifest signatures: the approval's signer set and threshold hash to the
//! manufacturer's proven `signersHash`, and at least `threshold` 64-byte EIP-2098 signatures over
//! the manifest's EIP-712 digest recover, in order, to strictly ascending members of that set.
//! The same rules `UpdateRegistry._verifyApproval` enforces on chain (`docs/contracts.md`,
//! "Signatures and approvals").
//!
//! Attacks stopped: arbitrary software (unsigned, under the threshold, or signed by keys rotated
//! out: the rotated set no longer hashes to the proven word), and cross-chain or cross-registry
//! replay: the digest's domain is the device's configured chain id and registry, so signatures
//! made for another chain or registry recover to other addresses.

use alloc::vec::Vec;

use alloy_primitives::{Address, B256, Signature, U256, uint};

use crate::{Approval, Error, Result, layout::signers_hash};

/// `UpdateRegistry.MAX_SIGNERS`: no signer set is larger.
pub const MAX_SIGNERS: usize = 32;

/// secp256k1n / 2: a larger `s` is the malleable twin of a valid signature.
const HALF_ORDER: U256 =
    uint!(0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0_U256);

/// Verifies `approval` of `digest` against the proven `proven_signers_hash` and returns the
/// signers that signed, ascending.
pub fn verify(
    approval: &Approval,
    proven_signers_hash: B256,
    digest: B256,
) -> Result<Vec<Address>> {
    let n = approval.signers.len();
    if n > MAX_SIGNERS {
        return Err(Error::TooManySigners {
            given: n,
            max: MAX_SIGNERS,
        });
    }
    let given = signers_hash(&approval.signers, approval.threshold);
    if given != proven_signers_hash {
        return Err(Error::SignerSetMismatch {
            proven: proven_signers_hash,
            given,
        });
    }
    let len = approval.signatures.len();
    if !len.is_multiple_of(64) {
        return Err(Error::SignatureLength { len });
    }
    let count = len / 64;
    // The proven set always has 1 ≤ threshold (the registry refuses 0); checked again because an
    // approval whose set hashes right is still bytes from anywhere.
    if approval.threshold == 0 || count < usize::from(approval.threshold) || count > n {
        return Err(Error::NotEnoughSignatures {
            given: count,
            threshold: approval.threshold,
            signers: n,
        });
    }
    let mut signed = Vec::with_capacity(count);
    let mut next = 0; // the set ascends, so one forward walk finds every member
    for (index, raw) in approval.signatures.chunks_exact(64).enumerate() {
        let signature = Signature::from_erc2098(raw);
        if signature.s() > HALF_ORDER {
            return Err(Error::SignatureMalleable { index });
        }
        let recovered = signature.recover_address_from_prehash(&digest).ok();
        let position = recovered.and_then(|r| {
            approval.signers[next..]
                .iter()
                .position(|s| *s == r)
                .map(|p| next + p)
        });
        match (recovered, position) {
            (Some(address), Some(p)) if signed.last().is_none_or(|prev| *prev < address) => {
                signed.push(address);
                next = p + 1;
            }
            _ => return Err(Error::InvalidSignature { index, recovered }),
        }
    }
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Bytes, keccak256};
    use k256::ecdsa::SigningKey;

    /// Three keys and their addresses, ascending.
    fn keys() -> Vec<(SigningKey, Address)> {
        let mut keys: Vec<_> = (1..=3u8)
            .map(|i| {
                let key = SigningKey::from_slice(&[i; 32]).unwrap();
                let address = Address::from_public_key(key.verifying_key());
                (key, address)
            })
            .collect();
        keys.sort_by_key(|(_, a)| *a);
        keys
    }

    fn sign(key: &SigningKey, digest: B256) -> [u8; 64] {
        let (sig, recid) = key.sign_prehash_recoverable(digest.as_slice()).unwrap();
        Signature::from_signature_and_parity(sig, recid.is_y_odd()).as_erc2098()
    }

    fn approval(digest: B256, signing: &[usize]) -> (Approval, B256) {
        let keys = keys();
        let signers: Vec<Address> = keys.iter().map(|(_, a)| *a).collect();
        let signatures: Vec<u8> = signing
            .iter()
            .flat_map(|&i| sign(&keys[i].0, digest))
            .collect();
        let hash = signers_hash(&signers, 2);
        (
            Approval {
                signers,
                threshold: 2,
                signatures: Bytes::from(signatures),
            },
            hash,
        )
    }

    #[test]
    fn threshold_signatures_in_order_verify() {
        let digest = keccak256(b"manifest");
        let (a, hash) = approval(digest, &[0, 2]);
        let keys = keys();
        assert_eq!(
            verify(&a, hash, digest).unwrap(),
            vec![keys[0].1, keys[2].1]
        );
        let (all, _) = approval(digest, &[0, 1, 2]);
        assert_eq!(verify(&all, hash, digest).unwrap().len(), 3);
    }

    #[test]
    fn malformed_approvals_are_refused_with_their_variant() {
        let digest = keccak256(b"manifest");
        let (a, hash) = approval(digest, &[0, 2]);

        // Out of order: the second signer is below the first.
        let (reversed, _) = approval(digest, &[2, 0]);
        assert!(matches!(
            verify(&reversed, hash, digest),
            Err(Error::InvalidSignature { index: 1, .. })
        ));
        // A trailing partial signature.
        let mut partial = a.clone();
        partial.signatures = [a.signatures.as_ref(), &[0u8; 10]].concat().into();
        assert!(matches!(
            verify(&partial, hash, digest),
            Err(Error::SignatureLength { len: 138 })
        ));
        // More signatures than signers.
        let mut many = a.clone();
        many.signatures = a.signatures.repeat(2).into();
        assert!(matches!(
            verify(&many, hash, digest),
            Err(Error::NotEnoughSignatures { given: 4, .. })
        ));
        // An `s` above n/2 (EIP-2098 can carry one up to 2^255 − 1): the malleable half.
        let mut bytes = a.signatures.to_vec();
        bytes[32..64].copy_from_slice(&(HALF_ORDER + U256::from(1)).to_be_bytes::<32>());
        let mut malleable = a.clone();
        malleable.signatures = bytes.into();
        assert!(matches!(
            verify(&malleable, hash, digest),
            Err(Error::SignatureMalleable { index: 0 })
        ));
        // A set of 33 signers.
        let mut big = a.clone();
        big.signers = vec![Address::ZERO; MAX_SIGNERS + 1];
        assert!(matches!(
            verify(&big, hash, digest),
            Err(Error::TooManySigners { given: 33, .. })
        ));
    }
}
