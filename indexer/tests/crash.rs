//! Crash safety: the indexer runs as its own process (this test binary, re-run
//! with `crash_child`), is killed with SIGKILL at a random point of a
//! backfill, and restarted, again and again. After every kill the database
//! must equal the chain up to its checkpoint (`verify`: nothing lost, nothing
//! written twice, no half batch), and the last run must reach the head.

mod common;

use std::{
    hash::{BuildHasher, Hasher},
    path::PathBuf,
    time::Duration,
};

use common::{Kind, TestDb, config};
use otaledger_core::test_support::{Chain, Scenario};
use otaledger_indexer::{Indexer, IndexerConfig};

const CHILD_DB: &str = "OTALEDGER_CRASH_CHILD_DB";
const CHILD_RPC: &str = "OTALEDGER_CRASH_CHILD_RPC";
const CHILD_DEPLOYMENTS: &str = "OTALEDGER_CRASH_CHILD_DEPLOYMENTS";

fn random_below(n: u64) -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % n
}

/// Tiny ranges and one request in flight: a backfill of many small
/// transactions, so a kill lands between, inside and around commits.
fn slow_config(mut config: IndexerConfig) -> IndexerConfig {
    config.follow.initial_range = 1;
    config.follow.max_range = 2;
    config.follow.in_flight = 1;
    config
}

/// The indexer process of the parent test below; does nothing unless the
/// parent set its environment.
#[tokio::test]
#[ignore = "run by the crash tests as their child process"]
async fn crash_child() {
    let (Ok(db), Ok(rpc), Ok(dir)) = (
        std::env::var(CHILD_DB),
        std::env::var(CHILD_RPC),
        std::env::var(CHILD_DEPLOYMENTS),
    ) else {
        return;
    };
    let deployment =
        otaledger_indexer::load_deployment(std::slice::from_ref(&rpc), &PathBuf::from(dir))
            .await
            .unwrap();
    let mut config = slow_config(IndexerConfig::new(db, vec![rpc], deployment));
    config.follow.finality_depth = 3;
    let mut indexer = Indexer::open(config).await.unwrap();
    indexer.sync().await.unwrap();
}

async fn crash_trials(kind: Kind, trials: usize, rounds: usize) {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    for _ in 0..rounds {
        scenario.round(&chain).await.unwrap();
    }
    let deployments = tempfile::tempdir().unwrap();
    chain.deployment.store(deployments.path()).unwrap();
    let db = TestDb::new(kind).await;
    let head = chain.head().await.unwrap();

    let spawn = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--ignored", "--quiet"])
            .env(CHILD_DB, &db.url)
            .env(CHILD_RPC, chain.url())
            .env(CHILD_DEPLOYMENTS, deployments.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // The parent watches the checkpoint through its own connection (opened,
    // and the schema migrated, before any child runs).
    let watch = otaledger_indexer::db::connect(&db.url).await.unwrap();
    let mut checkpoints = Vec::new();
    let mut last = chain.deployment.deployment_block;
    // Spread the kills over the whole backfill.
    let step = (head - last) / trials as u64;
    for _ in 0..trials {
        // Kill once the checkpoint passes a random block ahead, plus a random
        // few milliseconds, so kills land before, inside and after commits.
        let target = last + 1 + random_below(step);
        let mut child = spawn();
        loop {
            let cp = otaledger_indexer::db::checkpoint(&watch).await.unwrap();
            if cp.is_some_and(|c| c.number >= target) || child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(random_below(15))).await;
        child.kill().unwrap(); // SIGKILL (a no-op if it already finished)
        child.wait().unwrap();
        // Exactly the chain up to the checkpoint, whatever the kill interrupted.
        let indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
        let report = indexer.verify().await.unwrap();
        assert!(report.is_clean(), "after a kill:\n{report}");
        checkpoints.push(report.checkpoint);
        last = report.checkpoint.unwrap_or(last);
    }
    eprintln!("checkpoints after kills: {checkpoints:?} (head {head})");
    // A last run to completion reaches the head, equal to the chain.
    let status = spawn().wait().unwrap();
    assert!(status.success());
    let indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    let report = indexer.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.checkpoint, Some(head));
    // Kills did land mid-backfill, and the checkpoint never went backwards.
    assert!(
        checkpoints.iter().any(|c| c.is_some_and(|c| c < head)),
        "{checkpoints:?}"
    );
    let mut sorted = checkpoints.clone();
    sorted.sort();
    assert_eq!(checkpoints, sorted);
    drop(indexer);
    watch.close().await;
    db.remove().await;
}

/// 20 kills per database over a history of 8 scenario rounds (about 6 s for
/// both databases).
async fn killed_backfills_resume_exactly(kind: Kind) {
    crash_trials(kind, 20, 8).await;
}

/// The long version: 60 kills per database over a longer history
/// (`cargo test -p otaledger-indexer --test crash -- --ignored many`).
async fn many_kills(kind: Kind) {
    crash_trials(kind, 60, 24).await;
}

both_databases! {
    killed_backfills_resume_exactly,
}

mod many {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "long: 60 kills per database"]
    async fn sqlite() {
        super::many_kills(super::Kind::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "long: 60 kills per database"]
    async fn postgres() {
        super::many_kills(super::Kind::Postgres).await
    }
}
