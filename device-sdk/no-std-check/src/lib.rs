//! Proof that the `otaledger-device-sdk` verification core builds without `std`.
//!
//! Built alone with `--features strict`, this static library brings its own panic handler and
//! allocator; if `otaledger-device-sdk` (with default features off) or any of its dependencies
//! linked `std`, the build would fail with a duplicate `panic_impl` lang item (E0152). The
//! exported functions reach every step of the pipeline, so the linker keeps the code: header
//! decoding and hashing, trie proof verification, ABI decoding and EIP-712 hashing of the
//! manifest, and secp256k1 recovery of the approval's signatures.
#![no_std]

// Without `strict` (a plain or whole-workspace build, where feature unification may turn on
// `otaledger-device-sdk/std` anyway) std supplies the panic handler and the allocator.
#[cfg(not(feature = "strict"))]
extern crate std;

extern crate alloc;

use alloc::vec::Vec;

use alloy_sol_types::SolValue;
use otaledger_device_sdk::{
    Approval, Limits, Manifest, Quorum, approval,
    contracts::release_id,
    head::{RawHeader, check_header},
    primitives::{Address, B256, Bytes, U256},
    state::{StorageProof, verify_storage},
};

/// # Safety
/// `ptr`/`len` must describe a readable byte slice (or `len` be 0).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees the range is readable.
    unsafe { core::slice::from_raw_parts(ptr, len) }
}

/// # Safety
/// `ptr` must point to 32 readable bytes.
unsafe fn word(ptr: *const u8) -> B256 {
    // SAFETY: the caller guarantees 32 readable bytes.
    B256::from_slice(unsafe { bytes(ptr, 32) })
}

/// Step 1 for one endpoint: decodes the header RLP, recomputes its hash, compares it with the
/// 32-byte `claimed_hash` and `number`. Returns 0 if the header is valid, -1 if not.
///
/// # Safety
/// `rlp`/`rlp_len` must describe a readable byte slice; `claimed_hash` must point to 32 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otaledger_device_check_header(
    rlp: *const u8,
    rlp_len: usize,
    claimed_hash: *const u8,
    number: u64,
) -> i32 {
    // SAFETY: forwarded from the caller.
    let raw = RawHeader {
        claimed_hash: unsafe { word(claimed_hash) },
        rlp: unsafe { bytes(rlp, rlp_len) }.to_vec(),
    };
    let Ok(quorum) = Quorum::new(1, 1) else {
        return -1;
    };
    match check_header(0, number, &raw, &Limits::new(quorum)) {
        Ok(_) => 0,
        Err(_) => -1,
    }
}

/// Step 2 for one slot: verifies that `slot` holds the 32-byte big-endian `value` under
/// `storage_root`, given the proof as an RLP list of nodes. Returns 0 if proven, -1 if not.
///
/// # Safety
/// `storage_root`, `slot` and `value` must point to 32 bytes each; `nodes`/`nodes_len` must
/// describe a readable byte slice.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otaledger_device_verify_storage(
    storage_root: *const u8,
    slot: *const u8,
    value: *const u8,
    nodes: *const u8,
    nodes_len: usize,
) -> i32 {
    // SAFETY: forwarded from the caller.
    let (root, key, value, mut nodes) = unsafe {
        (
            word(storage_root),
            word(slot),
            U256::from_be_bytes(word(value).0),
            bytes(nodes, nodes_len),
        )
    };
    let Ok(proof) = <Vec<Bytes> as alloy_rlp::Decodable>::decode(&mut nodes) else {
        return -1;
    };
    let proof = StorageProof { key, value, proof };
    match verify_storage(Address::ZERO, root, &proof) {
        Ok(_) => 0,
        Err(_) => -1,
    }
}

/// Steps 3–4's hashing: ABI-decodes a `Manifest` and writes its release id (32 bytes) to `out`.
/// Returns 0, or -1 if the encoding is invalid.
///
/// # Safety
/// `abi`/`abi_len` must describe a readable byte slice; `out` must point to 32 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otaledger_device_release_id(
    abi: *const u8,
    abi_len: usize,
    out: *mut u8,
) -> i32 {
    // SAFETY: forwarded from the caller.
    let Ok(manifest) = Manifest::abi_decode(unsafe { bytes(abi, abi_len) }) else {
        return -1;
    };
    let id = release_id(&manifest);
    // SAFETY: the caller guarantees 32 writable bytes at `out`.
    unsafe { core::ptr::copy_nonoverlapping(id.as_ptr(), out, 32) };
    0
}

/// Step 4: ABI-decodes an `Approval` and verifies it over `digest` against the proven
/// `signers_hash`. Returns the number of valid signatures, or -1 if the approval is refused.
///
/// # Safety
/// `abi`/`abi_len` must describe a readable byte slice; `signers_hash` and `digest` must point
/// to 32 bytes each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otaledger_device_verify_approval(
    abi: *const u8,
    abi_len: usize,
    signers_hash: *const u8,
    digest: *const u8,
) -> i32 {
    // SAFETY: forwarded from the caller.
    let (abi, signers_hash, digest) =
        unsafe { (bytes(abi, abi_len), word(signers_hash), word(digest)) };
    let Ok(approval) = Approval::abi_decode(abi) else {
        return -1;
    };
    match approval::verify(&approval, signers_hash, digest) {
        Ok(signed) => signed.len() as i32,
        Err(_) => -1,
    }
}

// The same allocator and panic handler as the ipfs proof: one runtime for both.
#[cfg(feature = "strict")]
#[path = "../../../ipfs/no-std-check/src/runtime.rs"]
mod runtime;
