//! Attack: indefinite freeze. The device is kept on an old view of the chain (hiding a revocation
//! or a newer release): a stale head by the device clock, endpoints serving an older block than
//! asked, or a head below one the device already trusted. Refused in step 1.

use otaledger_device_sdk::{
    DeviceState, Error, HeaderFault,
    client::{FileStorage, Rpc, Storage},
};

use crate::common::{FixedClock, Liar, Lie, World, refused};

#[tokio::test]
async fn a_stale_head_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    // The device clock is two hours past the chain's head (the default limit is one hour).
    let now = w.timestamp().await + 2 * 3600;
    let client = w.client_with(
        &dir,
        vec![Box::new(w.honest())],
        Box::new(FixedClock(now)),
        w.devices[0],
    );
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::StaleHead { age, max_age: 3600, .. } if age > 3600
    ));
}

#[tokio::test]
async fn a_device_clock_too_far_behind_to_judge_freshness_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    // A clock reset to 1970 would make every head look fresh.
    let client = w.client_with(
        &dir,
        vec![Box::new(w.honest())],
        Box::new(FixedClock(0)),
        w.devices[0],
    );
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::HeadInFuture {
            now: 0,
            max_skew: 300,
            ..
        }
    ));
}

#[tokio::test]
async fn endpoints_serving_an_older_block_are_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let rpcs: Vec<Box<dyn Rpc>> = (0..3)
        .map(|_| Liar::boxed(w.honest(), Lie::OldBlock))
        .collect();
    let client = w.client(&dir, rpcs);
    let err = refused(&client, &m, &a).await;
    let Error::NoQuorum {
        agreeing: 0,
        needed: 2,
        faults,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(faults.len(), 3);
    assert!(faults.iter().all(
        |f| matches!(f, HeaderFault::WrongNumber { requested, got, .. } if got + 1 == *requested)
    ));
}

#[tokio::test]
async fn a_head_below_the_highest_block_seen_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    // The device already trusted a later block (e.g. from a chain the endpoints now rewind).
    let number = alloy::providers::Provider::get_block_number(&w.provider)
        .await
        .unwrap();
    FileStorage::new(dir.path().join("state.json"))
        .store(&DeviceState {
            installed_version: 0,
            highest_block: number + 10,
        })
        .unwrap();
    let client = w.honest_client(&dir);
    assert!(matches!(
        refused(&client, &m, &a).await,
        Error::HeadBehindHighestSeen { highest_seen, .. } if highest_seen == number + 10
    ));
}

/// The head `latest` was proven at is reused for the release's check (`Client::check_at`) only
/// while the device clock moved at most `head_reuse_secs` on; two hours on, `check_at` votes a
/// new head, which is as stale by that clock (the chain did not move): refused in step 1, with
/// nothing stored.
#[tokio::test]
async fn a_reused_head_that_went_stale_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let (client, now) = w.moving_client(&dir).await;
    let latest = client.latest().await.unwrap();
    assert_eq!(latest.newer(), Some(1));
    let before = FileStorage::new(dir.path().join("state.json"))
        .load()
        .unwrap();
    now.fetch_add(2 * 3600, std::sync::atomic::Ordering::SeqCst);
    let err = client.check_at(&latest, &m, &a).await.unwrap_err();
    assert!(
        matches!(err, Error::StaleHead { number, max_age: 3600, .. } if number == latest.head().number),
        "{err:?}"
    );
    assert_eq!(err.step(), Some(1));
    let after = FileStorage::new(dir.path().join("state.json"))
        .load()
        .unwrap();
    assert_eq!(after, before, "a refusal stores nothing");
}

/// A head proven earlier cannot be replayed once the device trusted a higher one: after a second
/// `latest` at a later block, a check at the first head is refused (`HeadBehindHighestSeen`),
/// while the new head passes.
#[tokio::test]
async fn a_reused_head_below_a_newer_trusted_one_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let client = w.honest_client(&dir);
    let old = client.latest().await.unwrap();
    w.settle().await;
    let new = client.latest().await.unwrap();
    assert!(new.head().number > old.head().number);
    let err = client.check_at(&old, &m, &a).await.unwrap_err();
    assert!(
        matches!(err, Error::HeadBehindHighestSeen { number, highest_seen }
            if number == old.head().number && highest_seen == new.head().number),
        "{err:?}"
    );
    let update = client.check_at(&new, &m, &a).await.unwrap();
    assert_eq!(update.head.number, new.head().number);
}

/// `Checker::resume` (the no_std pipeline, for firmware without the std client) refuses to reuse
/// a head once the device clock moved more than `head_reuse_secs` on since it was proven, or
/// back: `HeadReuseExpired` (step 1, "head-freshness"); within the window it resumes.
#[tokio::test]
async fn the_pipeline_reuses_a_head_only_within_the_reuse_window() {
    use otaledger_device_sdk::{Checker, Limits, Quorum};
    let w = World::new().await;
    w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = w.moving_client(&dir).await;
    let latest = client.latest().await.unwrap();
    let t = latest.proven_at();
    let mut limits = Limits::new(Quorum::majority(1).unwrap());
    limits.confirmations = crate::common::CONFIRMATIONS;
    let state = client.state().unwrap();
    let config = client.config().clone();
    let at = |now: u64| Checker::new(&config, &limits, state, now);
    assert!(at(t + limits.head_reuse_secs).resume(&latest).is_ok());
    for late in [t + limits.head_reuse_secs + 1, t - 1] {
        let err = at(late).resume(&latest).unwrap_err();
        assert!(
            matches!(err, Error::HeadReuseExpired { proven_at, now, max: 15, .. } if proven_at == t && now == late),
            "{err:?}"
        );
        assert_eq!((err.step(), err.class()), (Some(1), "head-freshness"));
    }
    limits.head_reuse_secs = 0;
    let at = |now: u64| Checker::new(&config, &limits, state, now);
    assert!(at(t).resume(&latest).is_ok(), "0 s: the same instant only");
    assert!(at(t + 1).resume(&latest).is_err());
}
