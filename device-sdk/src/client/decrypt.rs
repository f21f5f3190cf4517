//! Step 7, decryption: the bundle (`otaledger-bundle` v1, docs/bundle-format.md) opened with
//! the device's CP-ABE key, segment by segment in constant memory (one 64 KiB segment
//! buffered), with `otaledger_core::bundle`'s `StreamDecryptor`: plaintext is passed on only
//! after its segment authenticated, and the image's SHA-256 must be the manifest's
//! `imageSha256`. The bytes are pushed in order ([`BundleOpener`]): by the updater straight from
//! the verified fetch ([`super::stream_into_slot`], steps 6 and 7 as one stream), or read from a
//! bundle file ([`decrypt_into`]).
//!
//! Attacks stopped: a bundle made for another chain, registry, model or version, or sealed
//! under another policy than the manifest's `policyId` ([`Error::BundleTarget`]); a changed
//! header or capsule (key commitment), a tampered, reordered, duplicated, truncated or extended
//! segment ([`Error::Decrypt`], with the core's variant as its source); an image other than the
//! approved one ([`Error::ImageHash`]). The caller's output is committed only when this returns
//! `Ok` ([`crate::client::Installer`] discards it otherwise), so nothing reaches the inactive
//! slot unless every check passed.

use std::{
    io::{Read, Write},
    path::Path,
};

use alloy_primitives::Address;
use otaledger_core::bundle::{ContentKey, Header, Parsed, StreamDecryptor};
use otaledger_cpabe::SecretKey;

use crate::{Error, Manifest, Result};

fn refused(e: otaledger_core::Error) -> Error {
    Error::Decrypt {
        source: Box::new(e),
    }
}

/// Step 7: decrypts the bundle file `bundle` of the approved `manifest` (published on
/// `chain_id` in `registry`) with `key`, writing the verified image to `out`. Returns the image's
/// length.
pub fn decrypt_into(
    bundle: &Path,
    key: &SecretKey,
    manifest: &Manifest,
    chain_id: u64,
    registry: Address,
    out: &mut dyn Write,
) -> Result<u64> {
    let io = |source| Error::InstallIo {
        path: bundle.to_path_buf(),
        source,
    };
    let mut reader = std::fs::File::open(bundle).map_err(io)?;
    let mut opener = BundleOpener::new(key, manifest, chain_id, registry);
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        opener.update(&chunk[..n], out)?;
    }
    opener.finish()
}

/// Step 7 over the bundle's bytes pushed in order, in pieces of any size (from a file, or
/// straight from the verified fetch): the header is gathered (at most
/// `otaledger_core::bundle::limits::MAX_HEADER_LEN` bytes) and checked against the approved
/// release as soon as it is complete, the content key unlocked, then the stream decrypted into
/// the caller's writer segment by segment. [`BundleOpener::finish`] checks that every segment
/// arrived and the image's SHA-256.
pub(crate) struct BundleOpener<'a> {
    key: &'a SecretKey,
    manifest: &'a Manifest,
    chain_id: u64,
    registry: Address,
    /// The header's bytes gathered so far (until it is complete).
    header: Vec<u8>,
    /// Bytes the header parser needs before it is asked again.
    needed: usize,
    decryptor: Option<StreamDecryptor>,
}

impl<'a> BundleOpener<'a> {
    /// An opener for the bundle of the approved `manifest` (published on `chain_id` in
    /// `registry`), with the device's `key`.
    pub(crate) fn new(
        key: &'a SecretKey,
        manifest: &'a Manifest,
        chain_id: u64,
        registry: Address,
    ) -> Self {
        Self {
            key,
            manifest,
            chain_id,
            registry,
            header: Vec::new(),
            needed: 0,
            decryptor: None,
        }
    }

    /// The next bytes of the bundle; verified plaintext goes to `out`.
    pub(crate) fn update(&mut self, mut bytes: &[u8], out: &mut dyn Write) -> Result<()> {
        if self.decryptor.is_none() {
            // Gather no more than the parser asked for, so the header buffer stays bounded.
            while self.decryptor.is_none() && !bytes.is_empty() {
                let take = self
                    .needed
                    .saturating_sub(self.header.len())
                    .clamp(1, bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() >= self.needed {
                    self.parse_header(out)?;
                }
            }
            if bytes.is_empty() {
                return Ok(());
            }
        }
        let Some(decryptor) = &mut self.decryptor else {
            return Ok(());
        };
        feed(decryptor, bytes, out)
    }

    /// Parses the gathered header: still incomplete (asks for more), or complete (checked
    /// against the approved release, the key unlocked, the decryptor started with any stream
    /// bytes gathered past the header).
    fn parse_header(&mut self, out: &mut dyn Write) -> Result<()> {
        let (header, used) = match Header::parse_prefix(&self.header).map_err(refused)? {
            Parsed::Incomplete { needed } => {
                self.needed = needed;
                return Ok(());
            }
            Parsed::Complete(header, used) => (header, used),
        };
        self.check_target(&header)?;
        let content_key = ContentKey::unlock(&header, self.key).map_err(refused)?;
        let mut decryptor = StreamDecryptor::new(&header, content_key);
        // The image hash on the second core, where there is one (same digest either way).
        if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
            decryptor = decryptor.hash_on_thread();
        }
        let rest = self.header.split_off(used);
        self.header = Vec::new();
        feed(&mut decryptor, &rest, out)?;
        self.decryptor = Some(decryptor);
        Ok(())
    }

    /// The header's chain, registry, model, version and policy must be the approved release's.
    fn check_target(&self, header: &Header) -> Result<()> {
        let t = header.target();
        let m = self.manifest;
        let checks = [
            (
                "chain id",
                t.chain_id.to_string(),
                self.chain_id.to_string(),
            ),
            (
                "registry",
                t.registry.to_string(),
                self.registry.to_string(),
            ),
            ("model", t.model_id.to_string(), m.modelId.to_string()),
            ("version", t.version.to_string(), m.version.to_string()),
            // The signers approved `policyId`, never saw the bundle's policy: a bundle sealed
            // under another (weaker) policy is refused (review of issue 13,
            // `a_bundle_sealed_under_another_policy_than_the_manifest_names_is_refused`).
            (
                "policy id",
                header.policy_id().to_string(),
                m.policyId.to_string(),
            ),
        ];
        for (field, found, expected) in checks {
            if found != expected {
                return Err(Error::BundleTarget {
                    field,
                    found,
                    expected,
                });
            }
        }
        Ok(())
    }

    /// Ends the bundle: the header complete, every segment arrived and authenticated, the
    /// image's SHA-256 the manifest's `imageSha256`. Returns the image's length.
    pub(crate) fn finish(self) -> Result<u64> {
        let Some(decryptor) = self.decryptor else {
            // Too short even for its header: the core's own error for it.
            return Err(refused(otaledger_core::Error::Truncated {
                format: "bundle header",
                needed: self.needed.max(1) as u64,
                available: self.header.len() as u64,
            }));
        };
        let opened = decryptor.finish().map_err(refused)?;
        if opened.image_sha256 != self.manifest.imageSha256 {
            return Err(Error::ImageHash {
                expected: self.manifest.imageSha256,
                actual: opened.image_sha256,
            });
        }
        tracing::info!(
            image_len = opened.image_len,
            "step 7: bundle decrypted, every segment and the image sha256 verified"
        );
        Ok(opened.image_len)
    }
}

/// Feeds `bytes` to `decryptor`, the verified plaintext to `out`. The bundle's faults are
/// [`Error::Decrypt`] (step 7, a refusal of the release); a failed write to `out` is the
/// device's own (its flash full or failing), [`Error::InstallIo`]: no step, never reported as
/// a refused release.
fn feed(decryptor: &mut StreamDecryptor, bytes: &[u8], out: &mut dyn Write) -> Result<()> {
    let mut failed = None;
    let result = decryptor.update(bytes, &mut |plain: &[u8]| {
        out.write_all(plain).map_err(|source| {
            let stream = otaledger_core::Error::Stream {
                during: "writing the image",
                source: std::io::Error::new(source.kind(), source.to_string()),
            };
            failed = Some(source);
            stream
        })
    });
    match (result, failed) {
        (Err(_), Some(source)) => Err(Error::InstallIo {
            path: std::path::PathBuf::from("<inactive slot>"),
            source,
        }),
        (result, _) => result.map_err(refused),
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::B256;
    use otaledger_core::bundle::{
        BundleSpec, ReleaseTarget, SealOptions, default_policy, model_attribute, parse_policy,
        policy_id, release_attribute, seal,
    };
    use otaledger_cpabe::{keygen, rand_core::OsRng, setup};

    use super::*;

    /// A fresh CP-ABE authority's public key, the key of a device of model 7 that bought
    /// release 42, and that release's target.
    fn release_7_42() -> (
        otaledger_cpabe::PublicKey,
        otaledger_cpabe::SecretKey,
        ReleaseTarget,
    ) {
        let (params, master) = setup(&mut OsRng);
        let key = keygen(
            &master,
            &[model_attribute(7), release_attribute(7, 42)],
            &mut OsRng,
        )
        .unwrap();
        let target = ReleaseTarget {
            chain_id: 31337,
            registry: Address::repeat_byte(0x5a),
            model_id: 7,
            version: 42,
        };
        (params, key, target)
    }

    /// Review of issue 13: the manifest's signed `policyId` must be the bundle's policy. A
    /// bundle sealed under a weaker policy (`"model:7"`: every device of the model opens it, paid
    /// or not) but listed in a manifest whose `policyId` is the release policy passed every
    /// other check, since nothing compared the two; signers reviewing `manifest.json` see only
    /// the policy text that hashes to `policyId`, never the bundle's.
    #[test]
    fn a_bundle_sealed_under_another_policy_than_the_manifest_names_is_refused() {
        let (params, key, target) = release_7_42();
        let image = vec![7u8; 1000];
        let weaker = parse_policy("\"model:7\"").unwrap();
        let mut bytes = Vec::new();
        let sealed = seal(
            &params,
            &BundleSpec {
                target,
                policy: &weaker,
                options: SealOptions::default(),
            },
            &image[..],
            image.len() as u64,
            &mut bytes,
            &mut OsRng,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle.bin");
        std::fs::write(&path, &bytes).unwrap();
        let manifest = Manifest {
            modelId: 7,
            version: 42,
            bundleSha256: sealed.bundle_sha256,
            bundleSize: sealed.bundle_len,
            bundleCid: Default::default(),
            imageSha256: sealed.image_sha256,
            price: 1,
            paymentToken: Address::ZERO,
            policyId: policy_id(&default_policy(7, 42)),
            expiry: 0,
            metadataHash: B256::ZERO,
        };
        let mut out = Vec::new();
        let r = decrypt_into(&path, &key, &manifest, 31337, target.registry, &mut out);
        assert!(
            matches!(
                r,
                Err(Error::BundleTarget {
                    field: "policy id",
                    ..
                })
            ),
            "a bundle under another policy than the signed policyId was decrypted: {r:?}"
        );
        assert!(out.is_empty());
        // The same bundle in a manifest that names its real policy opens.
        let honest = Manifest {
            policyId: policy_id(&weaker),
            ..manifest
        };
        let mut out = Vec::new();
        let len = decrypt_into(&path, &key, &honest, 31337, target.registry, &mut out).unwrap();
        assert_eq!((len, out), (image.len() as u64, image.clone()));

        // Steps 6 and 7 as one stream push the bundle in pieces of whatever size the blocks have:
        // the header is gathered across pieces, and the result is the same for any size; a
        // bundle cut short anywhere is refused at `finish`.
        for size in [1, 7, 4096, 100_000, bytes.len()] {
            let mut opener = BundleOpener::new(&key, &honest, 31337, target.registry);
            let mut out = Vec::new();
            for piece in bytes.chunks(size) {
                opener.update(piece, &mut out).unwrap();
            }
            assert_eq!(opener.finish().unwrap(), image.len() as u64, "{size}");
            assert_eq!(out, image, "{size}");
        }
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let mut opener = BundleOpener::new(&key, &honest, 31337, target.registry);
            let mut out = Vec::new();
            opener.update(&bytes[..cut], &mut out).unwrap();
            assert!(
                matches!(opener.finish(), Err(Error::Decrypt { .. })),
                "cut at {cut}"
            );
        }
    }

    /// What reaches the slot's writer (with steps 6 and 7 as one stream, `<slot>.partial`, before
    /// the bundle's and the image's hashes are known) is plaintext of authenticated segments
    /// only: a segment whose tag fails (here the last, every byte of it received) gives its
    /// writer nothing, and the segments before it arrive whole. The AEAD check is the core's
    /// `StreamDecryptor` (`decrypt_in_place` verifies the tag before the plaintext is handed on).
    #[test]
    fn only_authenticated_segments_reach_the_writer() {
        let (params, key, target) = release_7_42();
        let segment = 64 * 1024;
        let image: Vec<u8> = (0..3 * segment + 1000).map(|i| (i % 251) as u8).collect();
        let policy = default_policy(7, 42);
        let mut bytes = Vec::new();
        let sealed = seal(
            &params,
            &BundleSpec {
                target,
                policy: &policy,
                options: SealOptions {
                    segment_size: segment as u32,
                },
            },
            &image[..],
            image.len() as u64,
            &mut bytes,
            &mut OsRng,
        )
        .unwrap();
        let manifest = Manifest {
            modelId: 7,
            version: 42,
            bundleSha256: sealed.bundle_sha256,
            bundleSize: sealed.bundle_len,
            bundleCid: Default::default(),
            imageSha256: sealed.image_sha256,
            price: 1,
            paymentToken: Address::ZERO,
            policyId: policy_id(&policy),
            expiry: 0,
            metadataHash: B256::ZERO,
        };
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let mut opener = BundleOpener::new(&key, &manifest, 31337, target.registry);
        let mut out = Vec::new();
        let refused = bytes
            .chunks(4096)
            .map(|piece| opener.update(piece, &mut out))
            .find(Result::is_err);
        assert!(
            matches!(refused, Some(Err(Error::Decrypt { .. }))),
            "{refused:?}"
        );
        assert_eq!(
            out.len(),
            3 * segment,
            "only the three authenticated segments"
        );
        assert!(out[..] == image[..3 * segment]);
    }
}
