//! Step 7, decryption: the downloaded bundle (`otaledger-bundle` v1, docs/bundle-format.md)
//! opened with the device's CP-ABE key, segment by segment in constant memory (one 64 KiB
//! segment buffered), with `otaledger_core::bundle`'s `StreamDecryptor`: plaintext is passed on
//! only after its segment authenticated, and the image's SHA-256 must be the manifest's
//! `imageSha256`.
//!
//! Attacks stopped: a bundle made for another chain, registry, model or version, or sealed
//! under another policy than the manifest's `policyId` ([`Error::BundleTarget`]); a changed header or capsule (key commitment), a tampered,
//! reordered, duplicated, truncated or extended segment ([`Error::Decrypt`], with the core's
//! variant as its source); an image other than the approved one ([`Error::ImageHash`]). The
//! caller's output is committed only when this returns `Ok` ([`crate::client::Installer`]
//! discards it otherwise), so nothing reaches the inactive slot unless every check passed.

use std::{
    io::{Read, Write},
    path::Path,
};

use alloy_primitives::Address;
use otaledger_core::bundle::{ContentKey, StreamDecryptor, read_header};
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
    let (header, rest) = read_header(&mut reader).map_err(refused)?;
    let t = header.target();
    let checks = [
        ("chain id", t.chain_id.to_string(), chain_id.to_string()),
        ("registry", t.registry.to_string(), registry.to_string()),
        (
            "model",
            t.model_id.to_string(),
            manifest.modelId.to_string(),
        ),
        (
            "version",
            t.version.to_string(),
            manifest.version.to_string(),
        ),
        // The signers approved `policyId`, never saw the bundle's policy: a bundle sealed under
        // another (weaker) policy is refused (review of issue 13,
        // `a_bundle_sealed_under_another_policy_than_the_manifest_names_is_refused`).
        (
            "policy id",
            header.policy_id().to_string(),
            manifest.policyId.to_string(),
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
    let content_key = ContentKey::unlock(&header, key).map_err(refused)?;
    let mut decryptor = StreamDecryptor::new(&header, content_key);
    // The image hash on the second core, where there is one (same digest either way).
    if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
        decryptor = decryptor.hash_on_thread();
    }
    // A failed write surfaces as the core's `Stream { during: "writing the image" }`.
    let mut sink = |plain: &[u8]| -> otaledger_core::Result<()> {
        out.write_all(plain)
            .map_err(|source| otaledger_core::Error::Stream {
                during: "writing the image",
                source,
            })
    };
    decryptor.update(&rest, &mut sink).map_err(refused)?;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        decryptor.update(&chunk[..n], &mut sink).map_err(refused)?;
    }
    let opened = decryptor.finish().map_err(refused)?;
    if opened.image_sha256 != manifest.imageSha256 {
        return Err(Error::ImageHash {
            expected: manifest.imageSha256,
            actual: opened.image_sha256,
        });
    }
    tracing::info!(
        image_len = opened.image_len,
        "step 7: bundle decrypted, every segment and the image sha256 verified"
    );
    Ok(opened.image_len)
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

    /// Review of issue 13: the manifest's signed `policyId` must be the bundle's policy. A
    /// bundle sealed under a weaker policy (`"model:7"`: every device of the model opens it, paid
    /// or not) but listed in a manifest whose `policyId` is the release policy passed every
    /// other check, since nothing compared the two; signers reviewing `manifest.json` see only
    /// the policy text that hashes to `policyId`, never the bundle's.
    #[test]
    fn a_bundle_sealed_under_another_policy_than_the_manifest_names_is_refused() {
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
        assert_eq!((len, out), (image.len() as u64, image));
    }
}
