//! Review of steps 6–7 (issue 14, second engineer): a bundle whose SHA-256 and CID are exactly
//! the approved manifest's, but whose header was sealed for another model or another chain (an
//! insider publishing a bundle built for other hardware or a test chain). Step 7 compares the
//! header's target with the proven manifest and the device's chain and refuses before
//! decrypting; nothing reaches the inactive slot.

use otaledger_core::bundle::{BundleSpec, ReleaseTarget, SealOptions, default_policy, seal};
use otaledger_cpabe::rand_core::OsRng;
use otaledger_device_sdk::Error;

use crate::fleet::{Fleet, image, nothing_installed};

#[tokio::test]
async fn review_a_bundle_sealed_for_another_model_or_chain_is_refused() {
    let f = Fleet::new().await;
    let registry = *f.w.registry.address();
    let cases = [
        (1u64, "model", f.w.chain_id, f.w.other_model),
        (2u64, "chain id", 1u64, f.w.model),
    ];
    for (version, field, chain_id, model_id) in cases {
        let img = image(version, 30_000);
        let params = &f.params;
        let release = f
            .publish_with(version, img.clone(), |bundle, _| {
                // The published bundle (its hash, size and CID go into the manifest) is sealed
                // for another target; the manifest's image hash stays the image's.
                let mut other = Vec::new();
                seal(
                    params,
                    &BundleSpec {
                        target: ReleaseTarget {
                            chain_id,
                            registry,
                            model_id,
                            version,
                        },
                        policy: &default_policy(model_id, version),
                        options: SealOptions::default(),
                    },
                    img.as_slice(),
                    img.len() as u64,
                    &mut other,
                    &mut OsRng,
                )
                .unwrap();
                *bundle = other;
            })
            .await;
        f.issue(release.release_id, release.release_id);
        let dir = tempfile::tempdir().unwrap();
        let mut updater = f.updater(dir.path());
        let err = updater.run_once().await.unwrap_err();
        assert!(
            matches!(&err, Error::BundleTarget { field: got, .. } if *got == field),
            "{field}: {err}"
        );
        assert_eq!(err.step(), Some(7));
        nothing_installed(dir.path(), &updater, 0);
    }
}
