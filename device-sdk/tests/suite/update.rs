//! The honest path: a published, bought release is approved over several endpoints, and only
//! then is the head's block stored.

use otaledger_device_sdk::{DeviceState, client::Rpc};

use crate::common::{World, stored};

#[tokio::test]
async fn a_bought_release_is_approved_and_the_head_stored() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let rpcs: Vec<Box<dyn Rpc>> = (0..3).map(|_| Box::new(w.honest()) as _).collect();
    let client = w.client(&dir, rpcs);
    assert_eq!(stored(&client), DeviceState::default());

    let update = client.check(&m, &a).await.unwrap();
    assert_eq!(update.manifest, m);
    assert_eq!(
        update.release_id,
        otaledger_device_sdk::contracts::release_id(&m)
    );
    let mut signers = vec![w.keys[0].address(), w.keys[2].address()];
    signers.sort();
    assert_eq!(update.signers, signers);
    let state = stored(&client);
    assert_eq!(state.highest_block, update.head.number);
    assert_eq!(state.installed_version, 0, "checking is not installing");

    client.record_installed(&update).unwrap();
    assert_eq!(stored(&client).installed_version, 1);
}

#[tokio::test]
async fn a_minority_of_endpoints_down_is_tolerated_a_majority_is_not() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    // A port that was just free: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = || -> Box<dyn Rpc> {
        let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        Box::new(otaledger_device_sdk::client::HttpRpc::new(url).unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let rpcs: Vec<Box<dyn Rpc>> = vec![down(), Box::new(w.honest()), Box::new(w.honest())];
    w.client(&dir, rpcs).check(&m, &a).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let rpcs: Vec<Box<dyn Rpc>> = vec![down(), down(), Box::new(w.honest())];
    let client = w.client(&dir, rpcs);
    assert!(matches!(
        crate::common::refused(&client, &m, &a).await,
        otaledger_device_sdk::Error::NotEnoughLatest {
            reported: 1,
            needed: 2
        }
    ));
}

/// An endpoint that counts what it is asked.
struct Counting {
    inner: otaledger_device_sdk::client::HttpRpc,
    heads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Rpc for Counting {
    fn block_number(&self) -> otaledger_device_sdk::client::RpcFuture<'_, u64> {
        self.heads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.block_number()
    }

    fn header(
        &self,
        number: u64,
    ) -> otaledger_device_sdk::client::RpcFuture<'_, otaledger_device_sdk::head::RawHeader> {
        self.heads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.header(number)
    }

    fn proof(
        &self,
        address: alloy::primitives::Address,
        slots: Vec<alloy::primitives::B256>,
        number: u64,
    ) -> otaledger_device_sdk::client::RpcFuture<'_, otaledger_device_sdk::state::AccountProof>
    {
        self.inner.proof(address, slots, number)
    }
}

/// `check_at` proves the release at the head `latest` was proven at: the endpoints are asked
/// for a head once (latest block and header, by each of the three), not again for the check,
/// and the approved update is the one `check` approves, at that head.
#[tokio::test]
async fn check_at_proves_the_release_at_the_latest_head_without_asking_for_it_again() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let heads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let rpcs: Vec<Box<dyn Rpc>> = (0..3)
        .map(|_| {
            Box::new(Counting {
                inner: w.honest(),
                heads: heads.clone(),
            }) as _
        })
        .collect();
    let client = w.client(&dir, rpcs);
    let latest = client.latest().await.unwrap();
    assert_eq!(heads.load(std::sync::atomic::Ordering::SeqCst), 6);
    let update = client.check_at(&latest, &m, &a).await.unwrap();
    assert_eq!(
        heads.load(std::sync::atomic::Ordering::SeqCst),
        6,
        "no head asked again"
    );
    assert_eq!(&update.head, latest.head());
    assert_eq!(update.manifest, m);
    assert_eq!(stored(&client).highest_block, latest.head().number);
    let again = client.check(&m, &a).await.unwrap();
    assert_eq!(again.release_id, update.release_id);
    assert_eq!(heads.load(std::sync::atomic::Ordering::SeqCst), 12);
}
