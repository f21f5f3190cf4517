//! Shared by the indexer's integration tests: a fresh database of either kind
//! per test, and an indexer configuration for a test chain.

#![allow(dead_code, unreachable_pub)] // each test binary uses part of it

use std::time::Duration;

use otaledger_core::{follow::RetryPolicy, test_support::Chain};
use otaledger_indexer::IndexerConfig;

/// Where the tests' PostgreSQL runs (`script/ensure-postgres.sh`); override
/// with `OTALEDGER_TEST_POSTGRES`.
pub fn postgres_admin_url() -> String {
    std::env::var("OTALEDGER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// A fresh, empty database; removed when dropped (PostgreSQL: at the next
/// test run's start at the latest, see [`TestDb::new`]).
pub struct TestDb {
    /// Its URL.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// A new database of `kind`.
    pub async fn new(kind: Kind) -> Self {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("index.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Kind::Postgres => {
                use sqlx::Connection;
                let name = format!(
                    "otaledger_indexer_test_{}_{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos()
                );
                let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
                    .await
                    .expect("PostgreSQL is not running: start it with script/ensure-postgres.sh");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let base = postgres_admin_url();
                let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
                Self {
                    url,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Drops a PostgreSQL database (SQLite's directory goes with `self`).
    pub async fn remove(self) {
        if let Some(name) = &self.pg_name {
            use sqlx::Connection;
            if let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
            }
        }
    }
}

/// An indexer configuration for `chain` into `db`, with small ranges and a
/// short finality depth so that tests exercise splitting, the pipelined
/// backfill and the block-by-block tip.
pub fn config(chain: &Chain, db: &TestDb, finality_depth: u64) -> IndexerConfig {
    let mut config =
        IndexerConfig::new(db.url.clone(), vec![chain.url()], chain.deployment.clone());
    config.follow.finality_depth = finality_depth;
    config.follow.initial_range = 4;
    config.follow.max_range = 64;
    config.follow.target_logs = 16;
    config.follow.in_flight = 3;
    config.follow.poll_interval = Duration::from_millis(50);
    config.request_timeout = Duration::from_secs(5);
    config.retry = RetryPolicy {
        attempts: 8,
        base: Duration::from_millis(20),
        max: Duration::from_millis(500),
    };
    config
}

/// Runs each named async fn taking a [`Kind`] once on SQLite and once on
/// PostgreSQL, as two tests.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Kind::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Kind::Postgres).await
                }
            )*
        }
    };
}

/// One in-process GET of the API (`app(state).oneshot(…)`, no port): the status and the
/// body as text (lossy UTF-8, for bodies that may not be JSON, e.g. axum's rejections).
pub async fn get_text(
    state: &otaledger_indexer::api::ApiState,
    uri: &str,
) -> (axum::http::StatusCode, String) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = otaledger_indexer::api::app(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// [`get_text`] with the body parsed as JSON; a body that is not JSON fails the test.
pub async fn get_json(
    state: &otaledger_indexer::api::ApiState,
    uri: &str,
) -> (axum::http::StatusCode, serde_json::Value) {
    let (status, body) = get_text(state, uri).await;
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{uri}: {status} answered no JSON ({e}): {body}"));
    (status, json)
}
