//! The release bundle, format `otaledger-bundle` version 1.
//!
//! A bundle is `header ‖ key commitment ‖ encrypted stream`:
//! - the [`Header`] names the release ([`ReleaseTarget`]: chain, registry,
//!   model, version), the AEAD parameters, the CP-ABE policy text and the
//!   capsule wrapping the content key. The capsule's key is bound to every
//!   header byte before it (the "context"), so no field can be changed;
//! - the 32-byte key commitment (see [`ContentKey`]) lets a device refuse a
//!   changed header, or a key of another authority, before any segment;
//! - the image follows as a STREAM of XChaCha20-Poly1305 segments
//!   ([`SealOptions::segment_size`] plaintext bytes each, 64 KiB by default),
//!   each authenticated with the header's SHA-256 as associated data and a
//!   nonce of a per-bundle random prefix, the segment counter and a
//!   last-segment flag, so altered, truncated, reordered, duplicated and
//!   extended streams are all refused, each with its own error.
//!
//! Nothing in a bundle depends on the manifest (which records the bundle's
//! hash): the manifest's signatures cover the bundle, the bundle binds its own
//! fields. The byte layout is in `docs/bundle-format.md`.

mod header;
mod keys;
pub mod limits;
mod stream;

pub use header::{
    AeadAlgorithm, FORMAT_VERSION, Header, MAGIC, NONCE_PREFIX_LEN, Parsed, ReleaseTarget,
    max_image_len, policy_id, segment_count,
};
pub use keys::ContentKey;
pub use stream::{
    BundleSpec, Opened, SealOptions, Sealed, StreamDecryptor, open, open_to_path, read_header, seal,
};

use otaledger_cpabe::Policy;

use crate::{Error, Result};

/// The attribute every device of a model holds: `model:<modelId>`.
pub fn model_attribute(model_id: u32) -> String {
    format!("model:{model_id}")
}

/// The attribute a purchase of a release grants: `release:<modelId>/<version>`
/// (fixed before encryption, unique on chain because versions increase per model).
pub fn release_attribute(model_id: u32, version: u64) -> String {
    format!("release:{model_id}/{version}")
}

/// The default release policy: `"model:<modelId>" and "release:<modelId>/<version>"`.
pub fn default_policy(model_id: u32, version: u64) -> Policy {
    Policy::new(otaledger_cpabe::PolicyNode::And(vec![
        otaledger_cpabe::PolicyNode::attr(model_attribute(model_id)),
        otaledger_cpabe::PolicyNode::attr(release_attribute(model_id, version)),
    ]))
    .expect("two distinct short attributes form a valid policy")
}

/// Parses a `--policy` text (any policy `otaledger-cpabe` parses).
pub fn parse_policy(text: &str) -> Result<Policy> {
    Policy::parse(text).map_err(|e| Error::PolicyText {
        reason: e.to_string(),
    })
}
