//! Review of step 5 (issue 14, second engineer): a key service answering a delivery sealed for
//! another device, and a lying key service placed before an honest one.

use alloy::primitives::B256;
use otaledger_device_sdk::{
    Error,
    client::{HttpKeyService, KeyAnswer, KeyService, Outcome, RpcFuture, Updater},
};

use crate::fleet::{Fleet, nothing_installed};

/// Answers every request with the delivery the honest service issued to device `to` instead.
struct Redirect {
    inner: HttpKeyService,
    to: u64,
}

impl KeyService for Redirect {
    fn key(&self, release: B256, _device: u64) -> RpcFuture<'_, KeyAnswer> {
        self.inner.key(release, self.to)
    }
}

/// Answers 200 with bytes that are no delivery at all.
pub(crate) struct Garbage;

impl KeyService for Garbage {
    fn key(&self, _release: B256, _device: u64) -> RpcFuture<'_, KeyAnswer> {
        Box::pin(async { Ok(KeyAnswer::Delivered(vec![0x42; 300])) })
    }
}

#[tokio::test]
async fn review_a_key_sealed_for_another_device_is_refused() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    // The trusted key service really issued this release's key, but to devices[1].
    f.issue_to(f.w.devices[1], release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.key_services = vec![Box::new(Redirect {
        inner: HttpKeyService::new(f.key_service.clone()).unwrap(),
        to: f.w.devices[1],
    })];
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    assert!(
        matches!(&err, Error::KeyRefused { source }
            if matches!(&**source, otaledger_core::Error::KeyDeliveryMismatch { field: "device", .. })),
        "{err}"
    );
    assert_eq!(err.step(), Some(5));
    nothing_installed(dir.path(), &updater, 0);
}

#[tokio::test]
async fn review_a_lying_key_service_does_not_hide_an_honest_one() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.key_services.insert(0, Box::new(Garbage));
    let mut updater = Updater::new(parts);
    let outcome = updater.run_once().await.unwrap();
    assert!(
        matches!(outcome, Outcome::Updated { version: 1, release_id, .. } if release_id == release.release_id),
        "{outcome:?}"
    );
}
