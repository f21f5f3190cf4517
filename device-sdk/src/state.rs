//! Step 2, state proofs: the storage words a device needs, proven by EIP-1186 `eth_getProof`
//! answers against the trusted head's state root (`alloy_trie::proof::verify_proof`).
//!
//! Attacks stopped: an endpoint forging a storage value, a proof node, or an account
//! ([`Error::StorageProof`], [`Error::AccountProof`]); answering for another account or other
//! slots than asked ([`Error::ProofWrongAccount`], [`Error::ProofWrongSlots`]); truncated proofs
//! (a path that stops before its leaf fails verification); endless data
//! ([`Error::ProofTooLarge`]). No value is ever taken from an unverified `eth_call`.

use alloc::vec::Vec;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::{Nibbles, TrieAccount, proof::verify_proof};

use crate::{Error, Limits, Result, head::TrustedHead};

/// One storage slot's EIP-1186 answer (untrusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageProof {
    /// The slot.
    pub key: B256,
    /// The value the endpoint claims.
    pub value: U256,
    /// Trie nodes from the storage root to the slot's leaf.
    pub proof: Vec<Bytes>,
}

/// One account's EIP-1186 answer (untrusted): `eth_getProof(address, slots, block)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    /// The account.
    pub address: Address,
    /// Its balance.
    pub balance: U256,
    /// Its nonce.
    pub nonce: u64,
    /// keccak256 of its code.
    pub code_hash: B256,
    /// Its storage root.
    pub storage_hash: B256,
    /// Trie nodes from the state root to the account's leaf.
    pub account_proof: Vec<Bytes>,
    /// One answer per slot asked for, in order.
    pub storage_proof: Vec<StorageProof>,
}

fn check_size(
    limits: &Limits,
    address: Address,
    slot: Option<B256>,
    nodes: &[Bytes],
) -> Result<()> {
    let largest = nodes.iter().map(|n| n.len()).max().unwrap_or(0);
    if nodes.len() > limits.max_proof_nodes || largest > limits.max_proof_node_size {
        return Err(Error::ProofTooLarge {
            address,
            slot,
            nodes: nodes.len(),
            largest,
            max_nodes: limits.max_proof_nodes,
            max_size: limits.max_proof_node_size,
        });
    }
    Ok(())
}

/// Verifies `proof` for `address` against the head's state root and returns the proven values
/// of exactly `slots`, in order (zero for an unset slot).
pub fn verify_account(
    head: &TrustedHead,
    limits: &Limits,
    address: Address,
    slots: &[B256],
    proof: &AccountProof,
) -> Result<Vec<U256>> {
    if proof.address != address {
        return Err(Error::ProofWrongAccount {
            expected: address,
            got: proof.address,
        });
    }
    if proof.storage_proof.len() != slots.len()
        || proof
            .storage_proof
            .iter()
            .zip(slots)
            .any(|(p, s)| p.key != *s)
    {
        return Err(Error::ProofWrongSlots {
            address,
            expected: slots.to_vec(),
            got: proof.storage_proof.iter().map(|p| p.key).collect(),
        });
    }
    check_size(limits, address, None, &proof.account_proof)?;
    for p in &proof.storage_proof {
        check_size(limits, address, Some(p.key), &p.proof)?;
    }

    let account = TrieAccount {
        nonce: proof.nonce,
        balance: proof.balance,
        storage_root: proof.storage_hash,
        code_hash: proof.code_hash,
    };
    let path = Nibbles::unpack(keccak256(address));
    if let Err(source) = verify_proof(
        head.state_root,
        path,
        Some(alloy_rlp::encode(account)),
        &proof.account_proof,
    ) {
        // A valid proof that the account is absent: the registry is not deployed on this chain
        // (or the device is configured for another chain).
        if verify_proof(head.state_root, path, None, &proof.account_proof).is_ok() {
            return Err(Error::AccountMissing {
                address,
                state_root: head.state_root,
            });
        }
        return Err(Error::AccountProof {
            address,
            state_root: head.state_root,
            source: alloc::boxed::Box::new(source),
        });
    }

    proof
        .storage_proof
        .iter()
        .map(|p| verify_storage(address, proof.storage_hash, p))
        .collect()
}

/// Verifies one storage slot's proof against `storage_root` (of the already proven account
/// `address`) and returns the proven value. Size limits are the caller's: [`verify_account`]
/// checks them first.
pub fn verify_storage(address: Address, storage_root: B256, proof: &StorageProof) -> Result<U256> {
    let expected = (!proof.value.is_zero()).then(|| alloy_rlp::encode(proof.value));
    verify_proof(
        storage_root,
        Nibbles::unpack(keccak256(proof.key)),
        expected,
        &proof.proof,
    )
    .map(|()| proof.value)
    .map_err(|source| Error::StorageProof {
        address,
        slot: proof.key,
        value: proof.value,
        source: alloc::boxed::Box::new(source),
    })
}
