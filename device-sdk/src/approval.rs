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
