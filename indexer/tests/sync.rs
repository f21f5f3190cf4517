//! The indexer against a real anvil and real databases (each test on SQLite
//! and on PostgreSQL, each with its own database): a real history mirrors
//! exactly, reorgs of depth 1, 3 and 10 are repaired, a reorg deeper than the
//! window stops with the block named, and `verify` notices a tampered row.

mod common;

use common::{Kind, TestDb, config};
use std::{sync::Arc, time::Duration};

use alloy::primitives::B256;
use otaledger_core::{
    follow::{Batch, BlockRef, FollowStore, RetryPolicy, rpc::Rpc},
    test_support::{Chain, Scenario},
};
use otaledger_indexer::{DbStore, Error, Indexer, db, rows::TABLES};
use serde_json::json;

async fn params_cids(indexer: &Indexer) -> Vec<String> {
    db::read_table(indexer.pool(), &otaledger_indexer::rows::PARAMS_CIDS)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.values.last().unwrap().to_string())
        .collect()
}

async fn history_mirrors_exactly(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    scenario.round(&chain).await.unwrap();
    scenario.round(&chain).await.unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    let progress = indexer.sync().await.unwrap();
    assert_eq!(progress.head, chain.head().await.unwrap());
    assert_eq!(progress.checkpoint.unwrap().number, progress.head);

    let report = indexer.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
    // Every table holds rows: every event kind was mirrored.
    for (table, n) in &report.rows {
        assert!(*n > 0, "no {table} rows\n{report}");
    }
    assert_eq!(report.rows.len(), TABLES.len());

    // A second pass and a restart write nothing twice.
    indexer.sync().await.unwrap();
    drop(indexer);
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    assert_eq!(indexer.sync().await.unwrap().logs, 0);
    assert!(indexer.verify().await.unwrap().is_clean());

    // Following: new events arrive block by block.
    scenario.touch(&chain, "later").await.unwrap();
    indexer.sync().await.unwrap();
    assert_eq!(
        params_cids(&indexer).await.last().unwrap(),
        "\"bafy-later\""
    );
    assert!(indexer.verify().await.unwrap().is_clean());

    // A batch that does not follow the checkpoint is refused, writing nothing
    // (another writer, or a bug, cannot skip or repeat blocks).
    let cp = otaledger_indexer::db::checkpoint(indexer.pool())
        .await
        .unwrap()
        .unwrap();
    let rpc = Rpc::new(
        vec![chain.url()],
        Duration::from_secs(5),
        RetryPolicy::default(),
    )
    .unwrap();
    let mut store = DbStore::new(
        indexer.pool().clone(),
        Arc::new(rpc),
        chain.deployment.registry,
        chain.deployment.market,
    );
    let gap = Batch {
        from: cp.number + 5,
        to: BlockRef {
            number: cp.number + 5,
            hash: B256::repeat_byte(7),
        },
        logs: vec![],
        blocks: vec![],
        keep_from: 0,
        inputs: Default::default(),
    };
    match store.apply(&gap, None).await {
        Err(Error::CheckpointMoved { expected, found }) => {
            assert_eq!((expected, found), (cp.number as i64 + 4, cp.number as i64))
        }
        other => panic!("expected CheckpointMoved, got {other:?}"),
    }
    assert_eq!(store.checkpoint().await.unwrap(), Some(cp));

    // verify notices a row that differs from the chain.
    sqlx::query("UPDATE transfers SET to_address = '0x00' WHERE block_number = (SELECT MIN(block_number) FROM transfers)")
        .execute(indexer.pool())
        .await
        .unwrap();
    let report = indexer.verify().await.unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.diffs.len(), 1, "{report}");
    assert_eq!(report.diffs[0].table, "transfers");
    assert_eq!(
        (report.diffs[0].missing, report.diffs[0].unexpected),
        (1, 1)
    );

    drop(indexer);
    db.remove().await;
}

async fn snapshot(chain: &Chain) -> serde_json::Value {
    chain.raw("evm_snapshot", json!([])).await.unwrap()
}

async fn revert(chain: &Chain, id: serde_json::Value) {
    assert_eq!(
        chain.raw("evm_revert", json!([id])).await.unwrap(),
        json!(true)
    );
}

async fn reorgs_are_repaired(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let scenario = Scenario::register(&chain).await.unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 12)).await.unwrap();
    indexer.sync().await.unwrap();

    for depth in [1usize, 3, 10] {
        let id = snapshot(&chain).await;
        for i in 0..depth {
            scenario
                .touch(&chain, &format!("lost-{depth}-{i}"))
                .await
                .unwrap();
        }
        indexer.sync().await.unwrap();
        assert!(
            params_cids(&indexer)
                .await
                .iter()
                .any(|c| c.contains("lost"))
        );
        revert(&chain, id).await;
        // A longer branch with other events replaces the indexed blocks.
        for i in 0..=depth {
            scenario
                .touch(&chain, &format!("kept-{depth}-{i}"))
                .await
                .unwrap();
        }
        let progress = indexer.sync().await.unwrap();
        assert_eq!(progress.reorg_depth, depth as u64, "depth {depth}");
        let cids = params_cids(&indexer).await;
        assert!(cids.iter().all(|c| !c.contains("lost")), "{cids:?}");
        assert_eq!(
            cids.iter()
                .filter(|c| c.contains(&format!("kept-{depth}")))
                .count(),
            depth + 1
        );
        let report = indexer.verify().await.unwrap();
        assert!(report.is_clean(), "{report}");
    }
    drop(indexer);
    db.remove().await;
}

async fn a_reorg_deeper_than_the_window_stops(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let scenario = Scenario::register(&chain).await.unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 2)).await.unwrap();
    let id = snapshot(&chain).await;
    for i in 0..4 {
        scenario.touch(&chain, &format!("lost-{i}")).await.unwrap();
    }
    let head = indexer.sync().await.unwrap().head;
    revert(&chain, id).await;
    for i in 0..5 {
        scenario.touch(&chain, &format!("other-{i}")).await.unwrap();
    }
    match indexer.sync().await {
        Err(Error::Follow {
            source: otaledger_core::Error::ReorgTooDeep { block, window, .. },
        }) => {
            // The oldest block the window kept (head - finality depth) is gone too.
            assert_eq!((block, window), (head - 2, 2));
        }
        other => panic!("expected ReorgTooDeep, got {other:?}"),
    }
    // Nothing was rewound: the database still says what it verified, and
    // verify reports that its checkpoint left the chain.
    let report = indexer.verify().await.unwrap();
    assert_eq!(report.checkpoint, Some(head));
    assert!(!report.checkpoint_on_chain);
    drop(indexer);
    db.remove().await;
}

/// Every row of `table`, each value as its `Display` text.
async fn texts(
    indexer: &Indexer,
    table: &'static otaledger_indexer::rows::Table,
) -> Vec<Vec<String>> {
    db::read_table(indexer.pool(), table)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.values.iter().map(ToString::to_string).collect())
        .collect()
}

/// Strings from the chain may hold NUL characters, which PostgreSQL's TEXT cannot store:
/// a permissionless registration named with one must not stop the indexer. Every
/// chain string is stored with each NUL as U+FFFD on both databases, and `verify`
/// (which decodes the chain the same way) finds the mirror clean.
async fn nul_characters_in_chain_strings_do_not_stop_the_indexer(kind: Kind) {
    use otaledger_core::bindings::registry::UpdateRegistry;
    let chain = Chain::start(&[]).await.unwrap();
    let d = &chain.deployment;
    let registry = UpdateRegistry::new(d.registry, &chain.provider);
    let signer = chain.anvil.addresses()[0];
    let receipt = registry
        .registerManufacturer(
            "Ac\0me".into(),
            alloy::primitives::Address::ZERO,
            alloy::primitives::Address::ZERO,
            vec![signer],
            1,
            "bafy\0params".into(),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let id = receipt
        .decoded_log::<UpdateRegistry::ManufacturerRegistered>()
        .unwrap()
        .manufacturerId;
    registry
        .defineModel(id, "\0".into(), 0)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    let progress = indexer.sync().await.unwrap();
    assert_eq!(progress.checkpoint.unwrap().number, progress.head);
    let manufacturers = texts(&indexer, &otaledger_indexer::rows::MANUFACTURERS).await;
    assert!(
        manufacturers[0].contains(&format!("{:?}", "Ac\u{fffd}me")),
        "{manufacturers:?}"
    );
    assert!(
        manufacturers[0].contains(&format!("{:?}", "bafy\u{fffd}params")),
        "{manufacturers:?}"
    );
    let models = texts(&indexer, &otaledger_indexer::rows::MODELS).await;
    assert!(
        models[0].contains(&format!("{:?}", "\u{fffd}")),
        "{models:?}"
    );
    let report = indexer.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
    drop(indexer);
    db.remove().await;
}

both_databases! {
    history_mirrors_exactly,
    reorgs_are_repaired,
    a_reorg_deeper_than_the_window_stops,
    nul_characters_in_chain_strings_do_not_stop_the_indexer,
}

/// `eth_subscribe` newHeads wakes the follower: with a 60 s poll interval, a
/// new event is indexed within seconds only through the notification. With a
/// WebSocket URL nobody serves, polling still follows the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_heads_wake_the_follower_and_polling_is_the_fallback() {
    let chain = Chain::start(&[]).await.unwrap();
    let scenario = Scenario::register(&chain).await.unwrap();
    for (ws, poll) in [
        (chain.anvil.ws_endpoint(), Duration::from_secs(60)),
        ("ws://127.0.0.1:9".to_owned(), Duration::from_millis(50)),
    ] {
        let db = TestDb::new(Kind::Sqlite).await;
        let mut config = config(&chain, &db, 3);
        config.follow.poll_interval = poll;
        config.ws_url = Some(ws.clone());
        let mut indexer = Indexer::open(config).await.unwrap();
        let pool = indexer.pool().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            indexer
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        let caught_up = |target: u64| {
            let pool = pool.clone();
            async move {
                for _ in 0..200 {
                    if db::checkpoint(&pool)
                        .await
                        .unwrap()
                        .is_some_and(|c| c.number >= target)
                    {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                false
            }
        };
        assert!(
            caught_up(chain.head().await.unwrap()).await,
            "{ws}: first pass"
        );
        // Let the pass the subscription itself triggers run first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        scenario.touch(&chain, "woken").await.unwrap();
        assert!(
            caught_up(chain.head().await.unwrap()).await,
            "{ws}: not woken"
        );
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
        db.remove().await;
    }
}

/// The fetch stage's decoding (`decode_logs_known`, from the calldata fetched with the logs)
/// gives exactly the rows the write step's decoding (`decode_logs`, fetching calldata itself)
/// gives, over a real history with every event kind; and with a publishing transaction's
/// calldata missing it declines (`None`) instead of decoding without the approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoding_in_the_fetch_stage_equals_decoding_in_the_write_step() {
    use otaledger_core::follow::fetch_logs_with_inputs;
    use otaledger_indexer::rows::{decode_logs, decode_logs_known};
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    scenario.round(&chain).await.unwrap();
    let d = &chain.deployment;
    let rpc = Rpc::new(
        vec![chain.url()],
        Duration::from_secs(5),
        RetryPolicy::default(),
    )
    .unwrap();
    // The indexer's own follow configuration (the calldata it asks the fetch stage for).
    let follow = otaledger_indexer::IndexerConfig::new(
        "sqlite://unused".into(),
        vec![chain.url()],
        chain.deployment.clone(),
    )
    .follow;
    let head = chain.head().await.unwrap();
    let (logs, mut inputs) = fetch_logs_with_inputs(&rpc, &follow, d.deployment_block, head)
        .await
        .unwrap();
    assert!(!inputs.is_empty(), "the round publishes releases");
    let known = decode_logs_known(&logs, d.registry, d.market, &inputs)
        .unwrap()
        .expect("every calldata was fetched");
    let fetched = decode_logs(&rpc, &logs, d.registry, d.market)
        .await
        .unwrap();
    assert_eq!(known, fetched);
    assert!(known.len() >= logs.len());

    let missing = *inputs.keys().next().unwrap();
    inputs.remove(&missing);
    assert!(
        decode_logs_known(&logs, d.registry, d.market, &inputs)
            .unwrap()
            .is_none()
    );
}
