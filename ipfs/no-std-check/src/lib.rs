//! Proof that the `otaledger-ipfs` verifier core builds without `std`.
//!
//! Built alone with `--features strict`, this static library brings its own panic handler and
//! allocator; if `otaledger-ipfs` (with default features off) or any of its dependencies linked
//! `std`, the build would fail with a duplicate `panic_impl` lang item (E0152).
#![no_std]

// Without `strict` (a plain or whole-workspace build, where feature unification may turn on
// `otaledger-ipfs/std` anyway) std supplies the panic handler and the allocator.
#[cfg(not(feature = "strict"))]
extern crate std;

use otaledger_ipfs::{Cid, Limits, Pushed, Verifier};

/// Verifies one block of a single-block file and returns the number of file bytes it yields, or
/// -1 if the CID or the block is invalid. Exported so the linker keeps the verifier code.
///
/// # Safety
/// `cid_ptr`/`cid_len` and `block_ptr`/`block_len` must describe readable byte slices.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otaledger_verify_single_block(
    cid_ptr: *const u8,
    cid_len: usize,
    block_ptr: *const u8,
    block_len: usize,
) -> i64 {
    // SAFETY: the caller guarantees both ranges are readable.
    let (cid_bytes, block) = unsafe {
        (
            core::slice::from_raw_parts(cid_ptr, cid_len),
            core::slice::from_raw_parts(block_ptr, block_len),
        )
    };
    let Ok(cid) = Cid::try_from(cid_bytes) else {
        return -1;
    };
    let Ok(mut verifier) = Verifier::new(cid, Limits::for_size(block_len as u64)) else {
        return -1;
    };
    match verifier.push(&cid, block) {
        Ok(Pushed::Data(data)) => data.len() as i64,
        Ok(Pushed::Node) => 0,
        Err(_) => -1,
    }
}

#[cfg(feature = "strict")]
mod runtime;
