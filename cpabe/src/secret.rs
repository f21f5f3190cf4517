//! Secret values that overwrite themselves when dropped: the KEM's
//! [`SharedKey`] and, inside the crate, every secret intermediate.
//!
//! blstrs' scalars and group elements implement neither `Zeroize` nor
//! `Default` as zero (and the orphan rule forbids adding it), so [`Wipe`]
//! overwrites them with zero or the identity by assignment and keeps the store
//! alive with [`std::hint::black_box`]. Wrapping an intermediate in
//! [`Secret`] makes that happen on every path out of its scope: normal
//! return, `?` on an error, and unwinding. What no wrapper reaches: copies the
//! compiler leaves in registers or on the stack, and the state of types whose
//! fields are private to their crate (blstrs' `G2Prepared`, hkdf's HMAC);
//! `docs/cpabe.md` lists them.

use core::fmt;
use core::ops::{Deref, DerefMut};

use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Gt, MillerLoopResult, Scalar};
use ff::Field;
use group::{Group, prime::PrimeCurveAffine};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Overwrites a secret in place with a fixed public value.
pub(crate) trait Wipe {
    fn wipe(&mut self);
}

macro_rules! wipe_with {
    ($($t:ty => $zero:expr),* $(,)?) => {$(
        impl Wipe for $t {
            fn wipe(&mut self) {
                *self = $zero;
                std::hint::black_box(self);
            }
        }
    )*};
}

wipe_with! {
    Scalar => Scalar::ZERO,
    G1Affine => G1Affine::identity(),
    G1Projective => G1Projective::identity(),
    G2Affine => G2Affine::identity(),
    G2Projective => G2Projective::identity(),
    Gt => Gt::identity(),
    MillerLoopResult => MillerLoopResult::default(),
}

impl<T: Wipe, const N: usize> Wipe for [T; N] {
    fn wipe(&mut self) {
        self.iter_mut().for_each(Wipe::wipe);
    }
}

/// Wipes the elements. Fill such a vector only within the capacity it was
/// created with: a reallocation would leave an unwiped copy behind.
impl<T: Wipe> Wipe for Vec<T> {
    fn wipe(&mut self) {
        self.iter_mut().for_each(Wipe::wipe);
    }
}

/// A secret intermediate, wiped when it goes out of scope on any path.
pub(crate) struct Secret<T: Wipe>(T);

impl<T: Wipe> Secret<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(value)
    }
}

impl<T: Wipe> Deref for Secret<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Wipe> DerefMut for Secret<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Wipe> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

impl<T: Wipe> Zeroize for Secret<T> {
    fn zeroize(&mut self) {
        self.0.wipe();
    }
}

impl<T: Wipe> ZeroizeOnDrop for Secret<T> {}

/// The 32-byte key a capsule carries: HKDF-SHA256 output, bound to the whole
/// capsule encoding and the caller's context (see [`crate::encapsulate`]).
///
/// It is wiped on drop, compares in constant time (`==` is
/// [`ConstantTimeEq`]), prints as `SharedKey(<redacted>)`, and gives its
/// bytes only through [`SharedKey::as_bytes`]. It is deliberately not
/// `Clone`; a copy of the bytes taken from `as_bytes` is the caller's to wipe.
///
/// Every other way out fails to compile (these examples are tests; each
/// differs from the first, which compiles, only in the way out):
/// ```
/// fn ok(k: &otaledger_cpabe::SharedKey) -> [u8; 32] { *k.as_bytes() }
/// ```
/// ```compile_fail
/// fn clone(k: &otaledger_cpabe::SharedKey) -> otaledger_cpabe::SharedKey { k.clone() }
/// ```
/// ```compile_fail
/// fn deref(k: &otaledger_cpabe::SharedKey) -> [u8; 32] { **k }
/// ```
/// ```compile_fail
/// fn slice(k: &otaledger_cpabe::SharedKey) -> &[u8] { k.as_ref() }
/// ```
/// ```compile_fail
/// fn display(k: &otaledger_cpabe::SharedKey) -> String { format!("{k}") }
/// ```
/// ```compile_fail
/// fn order(k: &otaledger_cpabe::SharedKey) -> bool { k < k }
/// ```
/// ```compile_fail
/// fn hash(k: otaledger_cpabe::SharedKey) { std::collections::HashSet::new().insert(k); }
/// ```
/// ```compile_fail
/// fn serde(k: &otaledger_cpabe::SharedKey) -> String { serde_json::to_string(k).unwrap() }
/// ```
pub struct SharedKey([u8; SharedKey::LEN]);

impl SharedKey {
    /// Length of the key in bytes.
    pub const LEN: usize = 32;

    pub(crate) fn zeroed() -> Self {
        Self([0; Self::LEN])
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; Self::LEN] {
        &mut self.0
    }

    /// The key bytes, e.g. for an AEAD's key schedule.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl ConstantTimeEq for SharedKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

/// Constant time: every byte is compared whatever the first difference.
impl PartialEq for SharedKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SharedKey {}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(<redacted>)")
    }
}

impl Drop for SharedKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Zeroize for SharedKey {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for SharedKey {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn zeroize_on_drop<T: ZeroizeOnDrop>() {}

    thread_local! {
        static WIPED: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts its wipes, so drop paths can be observed.
    struct Probe(u8);
    impl Wipe for Probe {
        fn wipe(&mut self) {
            self.0 = 0;
            WIPED.with(|w| w.set(w.get() + 1));
        }
    }

    fn fails_after_making_a_secret(fail: bool) -> Result<u8, ()> {
        let s = Secret::new([Probe(1), Probe(2)]);
        if fail {
            return Err(());
        }
        Ok(s[0].0 + s[1].0)
    }

    #[test]
    fn secrets_are_wiped_on_success_error_and_unwinding() {
        WIPED.with(|w| w.set(0));
        assert_eq!(fails_after_making_a_secret(false), Ok(3));
        assert_eq!(WIPED.with(Cell::get), 2);
        assert_eq!(fails_after_making_a_secret(true), Err(()));
        assert_eq!(WIPED.with(Cell::get), 4);
        let unwound = std::panic::catch_unwind(|| {
            let _s = Secret::new(vec![Probe(5)]);
            panic!("unwind through a secret");
        });
        assert!(unwound.is_err());
        assert_eq!(WIPED.with(Cell::get), 5);
    }

    #[test]
    fn wipe_overwrites_every_element() {
        let g = G1Projective::generator();
        let mut s = Secret::new(vec![[g; 3], [g + g; 3]]);
        let mut z = Secret::new(blstrs::pairing(
            &G1Affine::generator(),
            &G2Affine::generator(),
        ));
        let mut k = Secret::new([Scalar::ONE; 2]);
        s.zeroize();
        z.zeroize();
        k.zeroize();
        assert!(s.iter().flatten().all(|p| bool::from(p.is_identity())));
        assert_eq!(s.len(), 2, "wiping keeps the allocation and overwrites it");
        assert!(bool::from(z.is_identity()));
        assert!(k.iter().all(|x| bool::from(x.is_zero())));
    }

    #[test]
    fn containers_are_zeroize_on_drop() {
        zeroize_on_drop::<Secret<Vec<[G1Projective; 3]>>>();
        zeroize_on_drop::<Secret<[Scalar; 2]>>();
        zeroize_on_drop::<Secret<Gt>>();
        zeroize_on_drop::<SharedKey>();
        zeroize_on_drop::<crate::SecretKey>();
        zeroize_on_drop::<crate::MasterKey>();
    }

    #[test]
    fn shared_key_is_redacted_and_compares_in_constant_time() {
        let mut a = SharedKey::zeroed();
        a.bytes_mut().copy_from_slice(&[0xab; 32]);
        let mut b = SharedKey::zeroed();
        b.bytes_mut().copy_from_slice(&[0xab; 32]);
        assert_eq!(format!("{a:?}"), "SharedKey(<redacted>)");
        let shown = format!("{a:?} {a:#?}").to_lowercase();
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
        assert!(bool::from(a.ct_eq(&b)));
        assert_eq!(a, b);
        // A difference in the last byte only is found as well.
        b.bytes_mut()[31] ^= 1;
        assert!(!bool::from(a.ct_eq(&b)));
        assert_ne!(a, b);
        a.zeroize();
        assert_eq!(a.as_bytes(), &[0; 32]);
    }

    /// Every byte takes part in the comparison: a one-bit difference at any
    /// position, or in every position, is found (a comparison that stopped
    /// early or read a prefix would miss some).
    #[test]
    fn shared_key_equality_reads_every_byte() {
        let key = |bytes: [u8; 32]| {
            let mut k = SharedKey::zeroed();
            *k.bytes_mut() = bytes;
            k
        };
        let base: [u8; 32] = core::array::from_fn(|i| i as u8 * 7);
        for i in 0..32 {
            for bit in [0x01u8, 0x80] {
                let mut other = base;
                other[i] ^= bit;
                assert!(!bool::from(key(base).ct_eq(&key(other))), "byte {i}");
                assert_ne!(key(base), key(other));
            }
        }
        assert_ne!(key(base), key(base.map(|b| !b)));
        assert_eq!(key(base), key(base));
    }
}
