//! Attack: the key service (compromised, buggy or impersonated) hands the device a key for
//! another release, or a delivery whose signature is not the configured key service's. Step 5
//! refuses both; nothing is downloaded or installed, and a signed `refused` report names the
//! class.

use otaledger_core::report::Outcome as ReportOutcome;
use otaledger_device_sdk::{
    Error,
    client::{HttpKeyService, KeyAnswer, KeyService, RpcFuture, Updater},
};

use crate::fleet::{Fleet, nothing_installed};

#[tokio::test]
async fn a_key_for_another_release_is_refused() {
    let f = Fleet::new().await;
    let first = f.publish(1, 20_000).await;
    let second = f.publish(2, 20_000).await;
    // Asked for release 2, the service delivers a (validly signed) key for release 1.
    f.issue(second.release_id, first.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut updater = f.updater(dir.path());
    let err = updater.run_once().await.unwrap_err();
    assert!(
        matches!(err, Error::KeyWrongRelease { expected, got }
            if expected == second.release_id && got == first.release_id),
        "{err}"
    );
    assert_eq!(err.step(), Some(5));
    nothing_installed(dir.path(), &updater, 0);
    let queued = updater.parts().reports.queued().unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].report.outcome, ReportOutcome::Refused);
    assert_eq!(queued[0].report.detail, "key-wrong-release");
}

/// Flips one bit of the honest delivery's signature.
struct Forger(HttpKeyService);

impl KeyService for Forger {
    fn key(&self, release: alloy::primitives::B256, device: u64) -> RpcFuture<'_, KeyAnswer> {
        Box::pin(async move {
            match self.0.key(release, device).await? {
                KeyAnswer::Delivered(mut bytes) => {
                    let last = bytes.len() - 5;
                    bytes[last] ^= 1;
                    Ok(KeyAnswer::Delivered(bytes))
                }
                other => Ok(other),
            }
        })
    }
}

#[tokio::test]
async fn a_delivery_not_signed_by_the_configured_key_service_is_refused() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.key_services = vec![Box::new(Forger(
        HttpKeyService::new(f.key_service.clone()).unwrap(),
    ))];
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    assert!(
        matches!(&err, Error::KeyRefused { source }
            if matches!(**source, otaledger_core::Error::KeyDeliverySigner { .. })),
        "{err}"
    );
    nothing_installed(dir.path(), &updater, 0);

    // Another device's trusted key-service address: the honest delivery is refused too.
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.key_service = alloy::primitives::Address::repeat_byte(9);
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    assert!(matches!(err, Error::KeyRefused { .. }), "{err}");
    nothing_installed(dir.path(), &updater, 0);

    // The honest delivery to the honest configuration installs.
    let dir = tempfile::tempdir().unwrap();
    let mut updater = f.updater(dir.path());
    assert!(updater.run_once().await.is_ok());
}
