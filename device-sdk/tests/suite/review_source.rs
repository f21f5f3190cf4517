//! Review of the release source (issue 14, second engineer): a source answering a manifest that
//! is not the published one (its bundle swapped for the attacker's) must not slip past the
//! proofs, and one lying source must not hide the release an honest source has (a minority of
//! the configured RPC endpoints could otherwise freeze every device whose first endpoint it is).

use alloy::primitives::{Address, Bytes};
use otaledger_device_sdk::{
    Error,
    client::{Outcome, ReleaseSource, SourceFuture, Updater},
};

use crate::fleet::{Fleet, nothing_installed};

/// Answers the honest release with its bundle CID swapped for another one.
struct SwapBundle(otaledger_device_sdk::client::HttpRpc);

impl ReleaseSource for SwapBundle {
    fn release(&self, registry: Address, model_id: u32, version: u64) -> SourceFuture<'_> {
        Box::pin(async move {
            let (mut manifest, approval) = self.0.release(registry, model_id, version).await?;
            manifest.bundleCid = Bytes::from_static(b"the attacker's bundle");
            Ok((manifest, approval))
        })
    }
}

#[tokio::test]
async fn review_a_manifest_not_published_does_not_slip_past_the_proofs() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.sources = vec![Box::new(SwapBundle(f.w.honest()))];
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    assert!(matches!(err, Error::ReleaseNotPublished { .. }), "{err}");
    assert_eq!(err.step(), Some(3));
    nothing_installed(dir.path(), &updater, 0);
}

#[tokio::test]
async fn review_a_lying_source_does_not_hide_an_honest_one() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let mut parts = f.parts(dir.path());
    parts.sources.insert(0, Box::new(SwapBundle(f.w.honest())));
    let mut updater = Updater::new(parts);
    let outcome = updater.run_once().await.unwrap();
    assert!(
        matches!(outcome, Outcome::Updated { version: 1, release_id, .. } if release_id == release.release_id),
        "{outcome:?}"
    );
    // The lying source's answer is logged, not reported: the one report is the install.
    let queued = updater.parts().reports.queued().unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].report.outcome,
        otaledger_core::report::Outcome::Installed
    );
}
