//! Review (second engineer) of 0712164 and a255562 (the API and the dashboard read
//! through `db::connect_reader`'s read-only pool): the pool refuses writes on every
//! connection, also inside an explicit transaction and on connections opened again
//! after the server dropped them; and a reader never sees a batch's rows without the
//! checkpoint they were committed with, while the follower writes.

mod common;

use axum::http::StatusCode;
use common::{Kind, TestDb, config, postgres_admin_url};
use otaledger_core::test_support::{Chain, Scenario};
use otaledger_indexer::{Indexer, db};
use serde_json::Value;
use sqlx::AnyPool;

async fn get(state: &otaledger_indexer::api::ApiState, uri: &str) -> (StatusCode, Value) {
    let (status, body) = common::get_text(state, uri).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// Statements that would change the mirror, each tried on a reader connection.
const WRITES: &[&str] = &[
    "UPDATE sync_state SET block_number = block_number + 1000 WHERE id = 1",
    "DELETE FROM manufacturers",
    "INSERT INTO pins (cid, kind, status, detail, attempts) VALUES ('x', 'bundle', 'pinned', '', 0)",
    "CREATE TABLE review_intruder (x BIGINT)",
];

fn refused(e: &sqlx::Error) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("read-only") || text.contains("readonly") || text.contains("read only")
}

/// Every write statement fails on `reader`, on its own and inside `BEGIN` (what a
/// handler's `pool.begin()` would issue), `rounds` times so that every pooled connection
/// is exercised.
async fn writes_refused(reader: &AnyPool, rounds: usize) {
    for _ in 0..rounds {
        for sql in WRITES {
            let e = sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(reader)
                .await
                .expect_err(sql);
            assert!(refused(&e), "{sql}: {e}");
            let mut tx = reader.begin().await.unwrap();
            let e = sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await
                .expect_err(sql);
            assert!(refused(&e), "{sql} in a transaction: {e}");
            drop(tx);
        }
    }
}

/// The reader pool refuses writes on every connection, in and out of transactions, and
/// still does after PostgreSQL terminated all of its connections (sqlx opens new ones,
/// each through `after_connect`); the checkpoint and the tables are untouched, and the
/// API keeps answering.
async fn the_reader_pool_refuses_writes_on_every_connection(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    scenario.round(&chain).await.unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    let progress = indexer.sync().await.unwrap();
    let state = indexer.api_state(2);
    let before = db::read_table(indexer.pool(), &otaledger_indexer::rows::MANUFACTURERS)
        .await
        .unwrap();
    // Hold all READ_CONNECTIONS at once so that each is opened, then release them.
    let mut held = Vec::new();
    for _ in 0..db::READ_CONNECTIONS {
        held.push(state.reader.acquire().await.unwrap());
    }
    drop(held);
    writes_refused(&state.reader, db::READ_CONNECTIONS as usize).await;
    if kind == Kind::Postgres {
        use sqlx::Connection;
        let name = db.url.rsplit('/').next().unwrap().to_owned();
        let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .unwrap();
        let killed: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(!killed.is_empty());
        // The pool notices the dead connections (errors meanwhile are fine) and reopens.
        let mut answered = 0;
        for _ in 0..(4 * db::READ_CONNECTIONS) {
            if db::ping(&state.reader).await.is_ok() {
                answered += 1;
            }
        }
        assert!(answered > 0, "the reader pool never reconnected");
        let mut held = Vec::new();
        for _ in 0..db::READ_CONNECTIONS {
            held.push(state.reader.acquire().await.unwrap());
        }
        drop(held);
        // Writes fail for being read-only, not for a dead connection: try until each
        // attempt reaches the server.
        for sql in WRITES {
            let mut read_only_errors = 0;
            for _ in 0..(4 * db::READ_CONNECTIONS) {
                let e = sqlx::query(sqlx::AssertSqlSafe(*sql))
                    .execute(&state.reader)
                    .await
                    .expect_err(sql);
                if refused(&e) {
                    read_only_errors += 1;
                }
            }
            assert!(read_only_errors >= db::READ_CONNECTIONS, "{sql}");
        }
        writes_refused(&state.reader, db::READ_CONNECTIONS as usize).await;
    }
    let after = db::read_table(indexer.pool(), &otaledger_indexer::rows::MANUFACTURERS)
        .await
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(
        db::checkpoint(indexer.pool())
            .await
            .unwrap()
            .unwrap()
            .number,
        progress.head
    );
    for uri in ["/healthz", "/metrics", "/v1/manufacturers", "/v1/devices"] {
        let (status, body) = get(&state, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    let (status, body) = get(&state, "/readyz").await;
    assert_eq!(body["checkpoint"], progress.head, "{status}: {body}");
    drop(indexer);
    db.remove().await;
}

/// Highest `block_number` of a page's items.
fn newest_block(page: &Value) -> Option<u64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["block_number"].as_u64())
        .max()
}

/// While the follower backfills a long history batch by batch, the API reads rows and
/// then the checkpoint through the reader pool: a row is committed with its batch's
/// checkpoint, and the checkpoint only moves forward, so the checkpoint read after a row
/// is never below that row's block (a reader seeing a half-written batch would break
/// this). `/metrics` and `/readyz` answer throughout. Not a timed assertion: the
/// invariant holds at every interleaving; the loop only gives the interleavings a chance.
async fn readers_never_see_rows_ahead_of_the_checkpoint(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    for _ in 0..3 {
        scenario.round(&chain).await.unwrap();
    }
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    let state = indexer.api_state(2);
    let sync = tokio::spawn(async move {
        let progress = indexer.sync().await.unwrap();
        (indexer, progress)
    });
    let mut checks = 0;
    let mut seen_rows = 0;
    loop {
        let finished = sync.is_finished();
        for uri in [
            "/v1/releases?limit=500",
            "/v1/purchases?limit=500",
            "/v1/models?limit=500",
            "/v1/manufacturers?limit=500",
        ] {
            let (status, page) = get(&state, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {page}");
            let newest = newest_block(&page);
            let (_, ready) = get(&state, "/readyz").await;
            let checkpoint = ready["checkpoint"].as_u64();
            if let Some(newest) = newest {
                seen_rows += 1;
                assert!(
                    checkpoint.is_some_and(|c| c >= newest),
                    "{uri}: a row of block {newest} with the checkpoint at {checkpoint:?}"
                );
            }
            checks += 1;
        }
        let (status, metrics) = get(&state, "/metrics").await;
        assert_eq!(status, StatusCode::OK, "{metrics}");
        if finished {
            break;
        }
        tokio::task::yield_now().await;
    }
    let (indexer, progress) = sync.await.unwrap();
    assert!(checks > 0 && seen_rows > 0);
    let report = indexer.verify().await.unwrap();
    assert!(report.is_clean(), "{report}");
    let (_, ready) = get(&state, "/readyz").await;
    assert_eq!(ready["checkpoint"], progress.head);
    drop(indexer);
    db.remove().await;
}

both_databases! {
    the_reader_pool_refuses_writes_on_every_connection,
    readers_never_see_rows_ahead_of_the_checkpoint,
}
