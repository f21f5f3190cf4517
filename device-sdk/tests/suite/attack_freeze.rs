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
