//! CP-ABE for OTA Ledger: FAME (Agrawal–Chase, CCS 2017) on BLS12-381.
//!
//! A release's content key is wrapped under a policy over device attributes
//! (`"model:thermo-x" and "release:42"`); only keys whose attributes satisfy
//! it can unwrap it. This crate provides:
//! - [`Policy`]: monotone formulas with AND, OR and k-of-n gates, in a human
//!   syntax and in JSON, compiled to an LSSS matrix;
//! - a KEM: [`setup`], [`keygen`], [`encapsulate`], [`decapsulate`], whose
//!   32-byte [`SharedKey`] comes from HKDF-SHA256 over the pairing result,
//!   bound to the whole capsule encoding and a caller context; it wipes
//!   itself on drop, compares in constant time and never prints;
//! - checked, versioned binary encodings (and serde) for every object, within
//!   the documented [`limits`].
//!
//! Attributes are hashed to G1 with RFC 9380 hash-to-curve ([`HASH_DST`]), so
//! no discrete logarithm of an attribute point is known to anyone (the flaw
//! that breaks the `rabe` crate). See `docs/cpabe.md`.
//!
//! Secret intermediates are wiped on every path (see `docs/cpabe.md` for what
//! that does and does not reach). The crate has no `unsafe` code.
//!
//! ```
//! use otaledger_cpabe::{Policy, setup, keygen, encapsulate, decapsulate};
//! let mut rng = otaledger_cpabe::rand_core::OsRng;
//! let (pk, msk) = setup(&mut rng);
//! let policy = Policy::parse(r#""model:thermo-x" and ("region:eu" or "region:in")"#)?;
//! let (capsule, key) = encapsulate(&pk, &policy, b"manifest hash", &mut rng)?;
//! let sk = keygen(&msk, &["model:thermo-x", "region:in"], &mut rng)?;
//! assert_eq!(decapsulate(&sk, &capsule, b"manifest hash")?, key);
//! let aead_key: &[u8; 32] = key.as_bytes();
//! # let _ = aead_key;
//! # Ok::<(), otaledger_cpabe::Error>(())
//! ```

#![forbid(unsafe_code)]

mod codec;
mod error;
mod fame;
mod hash;
#[cfg(feature = "hazmat")]
pub mod hazmat;
mod keys;
pub mod limits;
mod lsss;
mod parse;
mod policy;
mod policy_serde;
mod secret;

pub use codec::{FORMAT_VERSION, MAGIC};
pub use error::{Error, GroupKind, Result};
pub use fame::{decapsulate, encapsulate, keygen, setup};
pub use hash::HASH_DST;
pub use keys::{Capsule, MasterKey, PublicKey, SecretKey};
pub use parse::ParseProblem;
pub use policy::{Policy, PolicyNode};
/// The `rand_core` version whose `CryptoRng + RngCore` the API takes.
pub use rand_core;
pub use secret::SharedKey;
