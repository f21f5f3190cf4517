//! Review of the head reuse (`Client::check_at`, `Checker::resume`; second engineer): the release
//! is checked at the head `Client::latest` was proven at, with only the freshness checks run
//! again. Each test is one attempt to make the device check a release at a head it should not
//! trust: a head from another chain or another client, an old head replayed (also across a
//! restart), a head gone stale or "in the future" while the sources answered, a revocation hidden
//! by a source that waits, and refusals that must store nothing.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use alloy::{
    primitives::{Address, B256},
    providers::Provider,
};
use otaledger_device_sdk::{
    Approval, DeviceState, Error, Manifest,
    client::{FileStorage, HttpRpc, ReleaseSource, Rpc, RpcFuture, SourceFuture, Storage, Updater},
    contracts::release_id,
    head::RawHeader,
    state::AccountProof,
};

use crate::{
    common::{Liar, Lie, MovingClock, World, stored},
    fleet::{Fleet, nothing_installed},
    mined,
};

fn state_file(dir: &tempfile::TempDir) -> DeviceState {
    FileStorage::new(dir.path().join("state.json"))
        .load()
        .unwrap()
}

async fn block_number(w: &World) -> u64 {
    w.provider.get_block_number().await.unwrap()
}

/// An endpoint that serves a self-consistent view of an older state: asked for block `n`, it
/// answers block `old`'s header re-encoded as number `n` with block `n`'s timestamp (its own
/// hash, so it passes the header checks of a client that trusts it alone), and `old`'s proofs.
struct OldState {
    inner: HttpRpc,
    old: u64,
}

fn decode(rlp: &[u8]) -> alloy::consensus::Header {
    use alloy::rlp::Decodable;
    alloy::consensus::Header::decode(&mut &rlp[..]).unwrap()
}

impl Rpc for OldState {
    fn block_number(&self) -> RpcFuture<'_, u64> {
        self.inner.block_number()
    }

    fn header(&self, number: u64) -> RpcFuture<'_, RawHeader> {
        Box::pin(async move {
            let timestamp = decode(&self.inner.header(number).await?.rlp).timestamp;
            let mut h = decode(&self.inner.header(self.old).await?.rlp);
            h.number = number;
            h.timestamp = timestamp;
            Ok(RawHeader {
                claimed_hash: h.hash_slow(),
                rlp: alloy::rlp::encode(&h),
            })
        })
    }

    fn proof(
        &self,
        address: Address,
        slots: Vec<B256>,
        _number: u64,
    ) -> RpcFuture<'_, AccountProof> {
        self.inner.proof(address, slots, self.old)
    }
}

/// Attempt: a `LatestVerified` proven on another chain (another anvil with the same deployment,
/// so the same registry address and chain id) passed to this device's `check_at`. Before the
/// review's fix the head passed step 1 (fresh, not below the highest block) and was refused
/// only at the proofs (the other chain's state root); now `check_at` refuses any head another
/// client proved before using it (`ForeignLatest`), and nothing is stored.
#[tokio::test]
async fn review_a_head_from_another_chain_is_refused() {
    let a = World::new().await;
    let b = World::new().await;
    assert_eq!(a.registry.address(), b.registry.address());
    // The two chains' states must differ at every block (anvil runs the same transactions
    // to the same state within the same second: a proof of an identical state is no forgery):
    // A's owner also pays for devices[1], B's never does.
    let (ma, _) = a.release(1).await;
    a.purchase(&crate::common::to_core(&ma), &[a.devices[1]])
        .await;
    a.settle().await;
    let (m, ap) = b.release(1).await;
    b.release(2).await;
    b.settle().await;
    // B's chain must have A's head number, or its endpoint answers "no such block" (an RPC
    // error, not a verdict).
    let target = block_number(&a).await;
    while block_number(&b).await <= target {
        b.settle().await;
    }
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let client_a = a.honest_client(&dir_a);
    let client_b = b.honest_client(&dir_b);
    let foreign = client_a.latest().await.unwrap();
    let before = stored(&client_b);
    let err = client_b.check_at(&foreign, &m, &ap).await.unwrap_err();
    assert!(matches!(err, Error::ForeignLatest), "{err:?}");
    assert_eq!(err.class(), "config");
    assert_eq!(stored(&client_b), before, "a refusal stores nothing");
    // Its own latest is judged on B's state: version 2 is B's latest, so version 1 is not.
    let own = client_b.latest().await.unwrap();
    assert!(matches!(
        client_b.check_at(&own, &m, &ap).await.unwrap_err(),
        Error::NotLatest {
            version: 1,
            latest: 2
        }
    ));
}

/// Attempt: a `LatestVerified` of another device (same chain, same endpoints) passed to this
/// device's `check_at`: refused as another client's (`ForeignLatest`), nothing stored; the
/// device's own verdict (not entitled: only devices[0] paid) is what `check` says.
#[tokio::test]
async fn review_a_head_from_another_device_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir0 = tempfile::tempdir().unwrap();
    let dir1 = tempfile::tempdir().unwrap();
    let paid = w.client_with(
        &dir0,
        vec![Box::new(w.honest())],
        Box::new(otaledger_device_sdk::client::SystemClock),
        w.devices[0],
    );
    let unpaid = w.client_with(
        &dir1,
        vec![Box::new(w.honest())],
        Box::new(otaledger_device_sdk::client::SystemClock),
        w.devices[1],
    );
    let latest = paid.latest().await.unwrap();
    let before = stored(&unpaid);
    let err = unpaid.check_at(&latest, &m, &a).await.unwrap_err();
    assert!(matches!(err, Error::ForeignLatest), "{err:?}");
    assert_eq!(stored(&unpaid), before, "a refusal stores nothing");
    // The same verdict a fresh vote gives.
    assert!(matches!(
        unpaid.check(&m, &a).await.unwrap_err(),
        Error::NotEntitled { .. }
    ));
}

/// Found by this review, fixed: `check_at`'s precondition "`latest` must come from this client's
/// `latest`" was not enforced. A head voted by another client, here one trusting a single
/// endpoint that serves a self-consistent view of the state before a revocation, was taken by
/// a 2-of-3 client whose own vote refuses the release: a revoked release was approved. Now
/// every `LatestVerified` carries the client that proved it and `check_at` refuses another's
/// (`ForeignLatest`).
#[tokio::test]
async fn review_a_head_voted_by_another_clients_endpoints_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let before_revocation = block_number(&w).await;
    mined!(
        w.registry
            .emergencyRevoke(release_id(&m), "bricks devices".into())
    );
    w.settle().await;

    // The strict client: two honest endpoints and the old-state one (a minority).
    let dir = tempfile::tempdir().unwrap();
    let strict = w.client(
        &dir,
        vec![
            Box::new(w.honest()),
            Box::new(w.honest()),
            Box::new(OldState {
                inner: w.honest(),
                old: before_revocation,
            }),
        ],
    );
    assert!(matches!(
        strict.check(&m, &a).await.unwrap_err(),
        Error::ReleaseRevoked { .. }
    ));

    // Another client of the same device configuration, over the old-state endpoint alone.
    let other_dir = tempfile::tempdir().unwrap();
    let weak = w.client(
        &other_dir,
        vec![Box::new(OldState {
            inner: w.honest(),
            old: before_revocation,
        })],
    );
    let forged = weak.latest().await.unwrap();
    let honest_root = w
        .provider
        .get_block_by_number(forged.head().number.into())
        .await
        .unwrap()
        .unwrap()
        .header
        .state_root;
    assert_ne!(
        forged.head().state_root,
        honest_root,
        "a head no honest quorum voted"
    );

    let err = strict.check_at(&forged, &m, &a).await.unwrap_err();
    assert!(matches!(err, Error::ForeignLatest), "{err:?}");
    // Its own latest, voted by its own quorum, sees the revocation.
    let own = strict.latest().await.unwrap();
    assert!(matches!(
        strict.check_at(&own, &m, &a).await.unwrap_err(),
        Error::ReleaseRevoked { .. }
    ));
}

/// Attempt: replay a `LatestVerified` after a restart: the first run proved it, the device
/// restarted (a new `Client` over the same state file) and trusted a newer head since (by
/// `latest`, and again by a `check`). The new client refuses it as another client's
/// (`ForeignLatest`); the old one below the highest block seen; nothing is stored.
#[tokio::test]
async fn review_an_old_head_replayed_across_a_restart_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let first = w.honest_client(&dir);
    let old = first.latest().await.unwrap();
    assert_eq!(state_file(&dir).highest_block, old.head().number);
    w.settle().await;

    // Restart: a new client over the same state file; its check trusts a newer head.
    let second = w.honest_client(&dir);
    let update = second.check(&m, &a).await.unwrap();
    assert!(update.head.number > old.head().number);
    let after = state_file(&dir);
    assert_eq!(after.highest_block, update.head.number);

    let err = second.check_at(&old, &m, &a).await.unwrap_err();
    assert!(matches!(err, Error::ForeignLatest), "{err:?}");
    assert_eq!(state_file(&dir), after, "a refusal stores nothing");
    let err = first.check_at(&old, &m, &a).await.unwrap_err();
    assert!(
        matches!(err, Error::HeadBehindHighestSeen { number, highest_seen }
            if number == old.head().number && highest_seen == update.head.number),
        "{err:?}"
    );
    assert_eq!(err.step(), Some(1));
    assert_eq!(state_file(&dir), after, "a refusal stores nothing");
}

/// Attempt: the device clock steps back between `latest` and `check_at` (an NTP correction, or
/// a clock an attacker can set): the reused head is then ahead of the clock by more than the
/// skew and refused, as a voted one would be.
#[tokio::test]
async fn review_a_reused_head_after_the_clock_stepped_back_is_refused() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let (client, now) = w.moving_client(&dir).await;
    let latest = client.latest().await.unwrap();
    let before = state_file(&dir);
    now.fetch_sub(3600, Ordering::SeqCst);
    let err = client.check_at(&latest, &m, &a).await.unwrap_err();
    assert!(
        matches!(err, Error::HeadInFuture { number, max_skew: 300, .. } if number == latest.head().number),
        "{err:?}"
    );
    assert_eq!(state_file(&dir), before, "a refusal stores nothing");
}

/// Refusals at steps 2 and 3 of `check_at` store nothing; a pass stores the reused head's
/// number, which is exactly what `latest` stored (the highest block never moves back).
#[tokio::test]
async fn review_check_at_stores_nothing_on_refusal_and_never_lowers_the_highest_block() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    // Two honest endpoints for the vote, but both answer forged proofs.
    let liars = w.client(
        &dir,
        vec![
            Liar::boxed(w.honest(), Lie::ForgeStorageNode),
            Liar::boxed(w.honest(), Lie::ForgeStorageNode),
            Liar::boxed(w.honest(), Lie::ForgeStorageNode),
        ],
    );
    // `latest` asks the model and device words: forged too, so it cannot be proven over them.
    assert!(matches!(
        liars.latest().await.unwrap_err(),
        Error::StorageProof { .. }
    ));
    assert_eq!(state_file(&dir), DeviceState::default());

    // Honest for `latest`'s proof, forging every proof after it (the check's, at the reused head).
    let turncoat = w.client(
        &dir,
        vec![Box::new(Turncoat {
            honest: w.honest(),
            liar: Liar::boxed(w.honest(), Lie::ForgeStorageNode),
            proofs: std::sync::atomic::AtomicUsize::new(0),
        })],
    );
    let latest = turncoat.latest().await.unwrap();
    let proven = state_file(&dir);
    assert_eq!(proven.highest_block, latest.head().number);
    // Step 2 refused.
    let err = turncoat.check_at(&latest, &m, &a).await.unwrap_err();
    assert!(matches!(err, Error::StorageProof { .. }), "{err:?}");
    assert_eq!(state_file(&dir), proven, "a step-2 refusal stores nothing");

    let client = w.honest_client(&dir);
    let latest = client.latest().await.unwrap();
    assert_eq!(
        state_file(&dir),
        proven,
        "the same head, the same highest block"
    );

    // Step 3 refused: a manifest that was never published.
    let mut unpublished = m.clone();
    unpublished.bundleSize += 1;
    let err = client
        .check_at(&latest, &unpublished, &a)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ReleaseNotPublished { .. }), "{err:?}");
    assert_eq!(state_file(&dir), proven, "a step-3 refusal stores nothing");

    // Step 4 refused: the approval of another manifest.
    let (_, other_approval) = w.publish(w.model, 2).await;
    let err = client
        .check_at(
            &latest,
            &m,
            &crate::common::to_device_approval(&other_approval),
        )
        .await
        .unwrap_err();
    assert_eq!(err.step(), Some(4), "{err:?}");
    assert_eq!(state_file(&dir), proven, "a step-4 refusal stores nothing");

    // A pass at the reused head stores its number: the same, never lower.
    let update = client.check_at(&latest, &m, &a).await.unwrap();
    assert_eq!(&update.head, latest.head());
    assert_eq!(state_file(&dir), proven);
}

/// An endpoint honest for its first proof and forging every later one.
struct Turncoat {
    honest: HttpRpc,
    liar: Box<dyn Rpc>,
    proofs: std::sync::atomic::AtomicUsize,
}

impl Rpc for Turncoat {
    fn block_number(&self) -> RpcFuture<'_, u64> {
        self.honest.block_number()
    }

    fn header(&self, number: u64) -> RpcFuture<'_, RawHeader> {
        self.honest.header(number)
    }

    fn proof(
        &self,
        address: Address,
        slots: Vec<B256>,
        number: u64,
    ) -> RpcFuture<'_, AccountProof> {
        if self.proofs.fetch_add(1, Ordering::SeqCst) == 0 {
            self.honest.proof(address, slots, number)
        } else {
            self.liar.proof(address, slots, number)
        }
    }
}

/// A release source that takes its time: while it "waits", the device clock moves on (`clock`)
/// and/or the chain moves on (`on_chain`), then it answers the honest release.
struct WaitingSource {
    inner: HttpRpc,
    clock: Option<(Arc<AtomicU64>, u64)>,
    revoke: Option<Registry>,
    provider: alloy::providers::DynProvider,
    answered: Mutex<Option<(Manifest, Approval)>>,
}

type Registry = crate::common::Registry;

impl ReleaseSource for WaitingSource {
    fn release(&self, registry: Address, model_id: u32, version: u64) -> SourceFuture<'_> {
        Box::pin(async move {
            let found = self.inner.release(registry, model_id, version).await?;
            if let Some((clock, by)) = &self.clock {
                clock.fetch_add(*by, Ordering::SeqCst);
            }
            if let Some(r) = &self.revoke {
                let id = release_id(&found.0);
                mined!(r.emergencyRevoke(id, "bricks devices".into()));
                self.provider
                    .raw_request::<_, serde_json::Value>(
                        "anvil_mine".into(),
                        (crate::common::CONFIRMATIONS,),
                    )
                    .await
                    .unwrap();
            }
            *self.answered.lock().unwrap() = Some(found.clone());
            Ok(found)
        })
    }
}

/// Attempt (whole updater): the source answers only after the head `latest` was proven at went
/// stale (the device clock moved two hours on while it "waited"). `check_at` refuses the reused
/// head in step 1 (`StaleHead`, the head `latest` proved), nothing installed, the highest block
/// is `latest`'s.
#[tokio::test]
async fn review_a_source_answering_after_the_head_went_stale_is_refused() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(f.w.timestamp().await));
    let mut parts = f.parts(dir.path());
    let mut limits =
        otaledger_device_sdk::Limits::new(otaledger_device_sdk::Quorum::majority(1).unwrap());
    limits.confirmations = crate::common::CONFIRMATIONS;
    parts.client = otaledger_device_sdk::client::Client::new(
        f.w.config(f.w.devices[0]),
        limits,
        vec![Box::new(f.w.honest())],
        Box::new(MovingClock(now.clone())),
        Box::new(FileStorage::new(dir.path().join("state.json"))),
    )
    .unwrap();
    parts.sources = vec![Box::new(WaitingSource {
        inner: f.w.honest(),
        clock: Some((now.clone(), 2 * 3600)),
        revoke: None,
        provider: f.w.provider.clone(),
        answered: Mutex::default(),
    })];
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    let highest = updater.parts().client.state().unwrap().highest_block;
    assert!(
        matches!(err, Error::StaleHead { number, max_age: 3600, .. } if number == highest),
        "{err:?}"
    );
    assert_eq!(err.step(), Some(1));
    nothing_installed(dir.path(), &updater, 0);
}

/// Found by this review, fixed: a source that waits until a revocation is mined (and
/// confirmed) before answering had the release checked at the head `latest` was proven at,
/// from before the revocation, so it was approved and installed, where a check voting a new
/// head when the source answered refuses it (`ReleaseRevoked`). Now a head is reused only while
/// the device clock has moved at most `Limits::head_reuse_secs` (15 s) since `latest`; here the
/// source takes 20 s, so the device votes a new head, sees the revocation and installs nothing.
/// (Within the 15 s a waiting source can still have the release checked at the older head: a
/// bounded window, small beside the confirmations every head lags by; docs/device-sdk.md.)
#[tokio::test]
async fn review_a_source_waiting_for_a_revocation_gets_a_new_head() {
    let f = Fleet::new().await;
    let release = f.publish(1, 20_000).await;
    f.issue(release.release_id, release.release_id);
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(f.w.timestamp().await));
    let mut parts = f.parts(dir.path());
    let mut limits =
        otaledger_device_sdk::Limits::new(otaledger_device_sdk::Quorum::majority(1).unwrap());
    limits.confirmations = crate::common::CONFIRMATIONS;
    assert_eq!(limits.head_reuse_secs, 15);
    parts.client = otaledger_device_sdk::client::Client::new(
        f.w.config(f.w.devices[0]),
        limits,
        vec![Box::new(f.w.honest())],
        Box::new(MovingClock(now.clone())),
        Box::new(FileStorage::new(dir.path().join("state.json"))),
    )
    .unwrap();
    parts.sources = vec![Box::new(WaitingSource {
        inner: f.w.honest(),
        clock: Some((now.clone(), 20)),
        revoke: Some(f.w.registry.clone()),
        provider: f.w.provider.clone(),
        answered: Mutex::default(),
    })];
    let mut updater = Updater::new(parts);
    let err = updater.run_once().await.unwrap_err();
    assert!(
        matches!(err, Error::ReleaseRevoked { release_id, .. } if release_id == release.release_id),
        "{err:?}"
    );
    nothing_installed(dir.path(), &updater, 0);
}

/// Attempt: external code edits a `LatestVerified` it owns. Before this review its fields were
/// `pub` (`non_exhaustive` only stops struct literals), and both edits below passed `check_at`:
/// a stale head "refreshed" by rewriting its timestamp was approved, and a state root rewritten
/// to a block before a revocation, with a minority endpoint serving that block's proofs, got the
/// revoked release approved. Now the fields are private (the `compile_fail` examples on
/// `LatestVerified` are the guard); the most external code can do is edit a copy of the head,
/// which `check_at` never sees: the stale head is refused, the revoked release too.
#[tokio::test]
async fn review_a_latest_cannot_be_edited_by_its_owner() {
    let w = World::new().await;
    let (m, a) = w.release(1).await;
    w.settle().await;
    let before_revocation = block_number(&w).await;
    let old_root = w
        .provider
        .get_block_by_number(before_revocation.into())
        .await
        .unwrap()
        .unwrap()
        .header
        .state_root;
    mined!(
        w.registry
            .emergencyRevoke(release_id(&m), "bricks devices".into())
    );
    w.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(w.timestamp().await));
    let client = w.client_with(
        &dir,
        vec![
            Box::new(w.honest()),
            Box::new(w.honest()),
            Box::new(OldState {
                inner: w.honest(),
                old: before_revocation,
            }),
        ],
        Box::new(MovingClock(now.clone())),
        w.devices[0],
    );
    let latest = client.latest().await.unwrap();
    let proven = state_file(&dir);

    // The forged root: the copy is edited, the proven value is not.
    let mut copy = latest.head().clone();
    copy.state_root = old_root;
    assert_ne!(latest.head(), &copy);
    let err = client.check_at(&latest, &m, &a).await.unwrap_err();
    assert!(matches!(err, Error::ReleaseRevoked { .. }), "{err:?}");

    // The refreshed timestamp: the same.
    now.fetch_add(2 * 3600, Ordering::SeqCst);
    let mut copy = latest.head().clone();
    copy.timestamp = now.load(Ordering::SeqCst);
    assert_ne!(latest.head(), &copy);
    let err = client.check_at(&latest, &m, &a).await.unwrap_err();
    assert!(
        matches!(err, Error::StaleHead { number, .. } if number == latest.head().number),
        "{err:?}"
    );
    assert_eq!(state_file(&dir), proven, "refusals store nothing");
}
