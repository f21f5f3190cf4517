//! The database: every runtime SQL statement of the crate, written once for
//! PostgreSQL and SQLite (`$n` placeholders and types both accept), through
//! sqlx's `Any` driver; forward-only migrations run at start-up.

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use otaledger_core::follow::{Batch, BlockRef, FollowStore, Preparer, rpc::Rpc};
use sqlx::{
    AnyPool, Row as _,
    any::{AnyPoolOptions, AnyRow},
};

use crate::error::db;
use crate::{
    Error, Result,
    rows::{Kind, Row, TABLES, Table, Value, decode_logs_known, decode_logs_with},
};

/// Rows per multi-row INSERT (well under both databases' parameter limits).
const ROWS_PER_INSERT: usize = 500;

/// Opens `url` (`sqlite://PATH` — created if missing — or `postgres://…`) and
/// runs the migrations.
pub async fn connect(url: &str) -> Result<AnyPool> {
    let (sqlite, url) = checked_url(url)?;
    // SQLite: one connection (one writer); WAL so readers never block it. SQLite's default
    // 2 MiB page cache: a 32 MiB one made the 200,000-event backfill 3-5 % faster for 25 MiB
    // more peak RSS (docs/benchmarks.md), not worth it against the 200 MiB target.
    let options = if sqlite {
        AnyPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        AnyPoolOptions::new().max_connections(4)
    };
    let pool = options.connect(&url).await.map_err(db("connecting"))?;
    if sqlite {
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .map_err(db("enabling WAL"))?;
    }
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|source| Error::Migrate { source })?;
    Ok(pool)
}

/// Checks that `url` names a supported database; returns whether it is SQLite and the URL
/// to connect with (SQLite: created if missing unless the URL says otherwise).
fn checked_url(url: &str) -> Result<(bool, String)> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    if !sqlite && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        let shown = url.split('@').next_back().unwrap_or_default().to_owned();
        return Err(Error::UnsupportedDatabase { url: shown });
    }
    let url = if sqlite && !url.contains("mode=") {
        format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
    } else {
        url.to_owned()
    };
    Ok((sqlite, url))
}

/// Connections of the [`connect_reader`] pool.
pub const READ_CONNECTIONS: u32 = 4;

/// Opens a second pool on the database [`connect`] opened (and migrated), for the
/// API's reads: [`READ_CONNECTIONS`] connections, each read-only at the database's
/// own level (SQLite `PRAGMA query_only`, PostgreSQL read-only transactions), so
/// a read handler cannot write by mistake.
///
/// On SQLite this is what lets readers run beside the writer: [`connect`]'s pool has
/// the one writer connection, and in WAL mode readers on other connections see the
/// last committed state without waiting for it (before this pool, every API query
/// queued for that one connection). Open it after [`connect`] (the file and its
/// schema must exist).
pub async fn connect_reader(url: &str) -> Result<AnyPool> {
    let (sqlite, url) = checked_url(url)?;
    let read_only = if sqlite {
        "PRAGMA query_only = ON"
    } else {
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
    };
    AnyPoolOptions::new()
        .max_connections(READ_CONNECTIONS)
        .idle_timeout(None)
        .max_lifetime(None)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, read_only).await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(db("connecting the readers"))
}

fn hex_text(bytes: &[u8]) -> String {
    format!("0x{}", alloy::hex::encode(bytes))
}

/// Records which chain and contracts the database mirrors, or checks that it
/// mirrors these.
pub async fn claim(
    pool: &AnyPool,
    chain_id: u64,
    registry: Address,
    market: Address,
) -> Result<()> {
    let row = sqlx::query("SELECT chain_id, registry FROM sync_state WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(db("reading the sync state"))?;
    match row {
        None => {
            sqlx::query(
                "INSERT INTO sync_state (id, chain_id, registry, market, block_number, block_hash) \
                 VALUES (1, $1, $2, $3, -1, '')",
            )
            .bind(chain_id as i64)
            .bind(hex_text(registry.as_slice()))
            .bind(hex_text(market.as_slice()))
            .execute(pool)
            .await
            .map_err(db("initialising the sync state"))?;
            Ok(())
        }
        Some(row) => {
            let stored_chain: i64 = row.try_get(0).map_err(db("reading the sync state"))?;
            let stored_registry: String = row.try_get(1).map_err(db("reading the sync state"))?;
            if stored_chain != chain_id as i64 || stored_registry != hex_text(registry.as_slice()) {
                return Err(Error::OtherDeployment {
                    stored_chain,
                    stored_registry,
                    chain: chain_id,
                    registry,
                });
            }
            Ok(())
        }
    }
}

/// The checkpoint stored in `pool`.
pub async fn checkpoint(pool: &AnyPool) -> Result<Option<BlockRef>> {
    let row = sqlx::query("SELECT block_number, block_hash FROM sync_state WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(db("reading the checkpoint"))?;
    let Some(row) = row else { return Ok(None) };
    let number: i64 = row.try_get(0).map_err(db("reading the checkpoint"))?;
    let hash: String = row.try_get(1).map_err(db("reading the checkpoint"))?;
    if number < 0 {
        return Ok(None);
    }
    Ok(Some(BlockRef {
        number: number as u64,
        hash: hash.parse::<B256>().unwrap_or_default(),
    }))
}

/// The follower's store on a PostgreSQL or SQLite database.
#[derive(Debug, Clone)]
pub struct DbStore {
    pool: AnyPool,
    rpc: Arc<Rpc>,
    registry: Address,
    market: Address,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl DbStore {
    /// A store on `pool` (already migrated and claimed) for these contracts;
    /// `rpc` fetches the calldata of publishing transactions.
    pub fn new(pool: AnyPool, rpc: Arc<Rpc>, registry: Address, market: Address) -> Self {
        Self {
            pool,
            rpc,
            registry,
            market,
            metrics: None,
        }
    }

    /// Records each batch transaction's duration in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    value: &Value,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    match value {
        Value::Null => query.bind(None::<i64>),
        Value::Int(i) => query.bind(*i),
        Value::Text(s) => query.bind(s.clone()),
    }
}

/// Whether statements on `conn` take anonymous `?` parameters (SQLite; see [`insert_sql`])
/// rather than numbered `$n` ones.
pub(crate) fn anonymous_params(conn: &sqlx::AnyConnection) -> bool {
    conn.backend_name() == "SQLite"
}

/// Parameter `n` (from 1) of a statement: `$n`, or `?` on SQLite (`anonymous`; see
/// [`insert_sql`] for why), for statements with many parameters bound in order.
pub(crate) fn param(anonymous: bool, n: usize) -> String {
    if anonymous {
        "?".into()
    } else {
        format!("${n}")
    }
}

/// `INSERT INTO t (cols) VALUES ($1, …), (…)` for `rows` rows; with `?` placeholders on
/// SQLite (`anonymous`): SQLite looks a numbered parameter's name up by walking the list of
/// names, and sqlx asks for every parameter's name when it binds, so a statement of P `$N`
/// parameters costs O(P²) there (63 % of a 200,000-event SQLite backfill's time went to
/// `sqlite3_bind_parameter_name`); anonymous ones have no names to walk.
fn insert_sql(table: &Table, rows: usize, anonymous: bool) -> String {
    let columns: Vec<&str> = table.column_names().collect();
    let n = columns.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.name,
        columns.join(", ")
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..n {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&param(anonymous, r * n + c + 1));
        }
        sql.push(')');
    }
    sql
}

async fn insert_rows(tx: &mut sqlx::Transaction<'_, sqlx::Any>, rows: &[Row]) -> Result<()> {
    let sqlite = anonymous_params(tx);
    for table in TABLES {
        let of_table: Vec<&Row> = rows
            .iter()
            .filter(|r| std::ptr::eq(r.table, *table))
            .collect();
        for chunk in of_table.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(table, chunk.len(), sqlite);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                for value in &row.values {
                    query = bind(query, value);
                }
            }
            query
                .execute(&mut **tx)
                .await
                .map_err(db("inserting rows"))?;
        }
    }
    Ok(())
}

impl FollowStore for DbStore {
    type Error = Error;
    /// The batch's rows, or `None` when some calldata is missing (then `apply` decodes,
    /// fetching it).
    type Prepared = Option<Vec<Row>>;

    fn preparer(&self) -> Preparer<Self::Prepared, Error> {
        let (registry, market) = (self.registry, self.market);
        Arc::new(move |logs, inputs| decode_logs_known(logs, registry, market, inputs))
    }

    async fn checkpoint(&mut self) -> Result<Option<BlockRef>> {
        checkpoint(&self.pool).await
    }

    async fn recent_blocks(&mut self) -> Result<Vec<BlockRef>> {
        let rows = sqlx::query(
            "SELECT block_number, block_hash FROM recent_blocks ORDER BY block_number DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading recent blocks"))?;
        rows.iter()
            .map(|row| {
                let number: i64 = row.try_get(0).map_err(db("reading recent blocks"))?;
                let hash: String = row.try_get(1).map_err(db("reading recent blocks"))?;
                Ok(BlockRef {
                    number: number as u64,
                    hash: hash.parse().unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn apply(&mut self, batch: &Batch, prepared: Option<Vec<Row>>) -> Result<()> {
        // Decoded before the transaction (by the fetch stage's preparer, or here when some
        // calldata was missing): a bad log writes nothing.
        let decoding = std::time::Instant::now();
        let rows = match prepared {
            Some(rows) => rows,
            None => {
                decode_logs_with(
                    &self.rpc,
                    &batch.logs,
                    self.registry,
                    self.market,
                    &batch.inputs,
                )
                .await?
            }
        };
        let decode_ms = decoding.elapsed().as_millis() as u64;
        let started = std::time::Instant::now();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("beginning a transaction"))?;
        let found: i64 = sqlx::query("SELECT block_number FROM sync_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(db("reading the checkpoint"))?
            .try_get(0)
            .map_err(db("reading the checkpoint"))?;
        // The batch must follow the checkpoint (or be the first one).
        let expected = batch.from as i64 - 1;
        if found >= 0 && found != expected {
            return Err(Error::CheckpointMoved { expected, found });
        }
        insert_rows(&mut tx, &rows).await?;
        let sqlite = anonymous_params(&tx);
        // One statement for the batch's block hashes (a tip batch carries up
        // to the finality depth of them), not one round trip per block.
        for chunk in batch.blocks.chunks(ROWS_PER_INSERT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "({}, {})",
                        param(sqlite, 2 * i + 1),
                        param(sqlite, 2 * i + 2)
                    )
                })
                .collect();
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO recent_blocks (block_number, block_hash) VALUES {} \
                 ON CONFLICT (block_number) DO UPDATE SET block_hash = excluded.block_hash",
                values.join(", ")
            )));
            for block in chunk {
                query = query.bind(block.number as i64).bind(block.hash.to_string());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(db("remembering block hashes"))?;
        }
        sqlx::query("DELETE FROM recent_blocks WHERE block_number < $1")
            .bind(batch.keep_from as i64)
            .execute(&mut *tx)
            .await
            .map_err(db("forgetting old block hashes"))?;
        let moved = sqlx::query(
            "UPDATE sync_state SET block_number = $1, block_hash = $2 WHERE id = 1 AND block_number = $3",
        )
        .bind(batch.to.number as i64)
        .bind(batch.to.hash.to_string())
        .bind(found)
        .execute(&mut *tx)
        .await
        .map_err(db("moving the checkpoint"))?;
        if moved.rows_affected() != 1 {
            return Err(Error::CheckpointMoved { expected, found });
        }
        tx.commit().await.map_err(db("committing a batch"))?;
        tracing::debug!(
            rows = rows.len(),
            blocks = batch.blocks.len(),
            decode_ms,
            write_ms = started.elapsed().as_millis() as u64,
            "batch write timings"
        );
        if let Some(m) = &self.metrics {
            m.db_write(started.elapsed());
        }
        Ok(())
    }

    async fn rewind(&mut self, ancestor: BlockRef) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("beginning a transaction"))?;
        let above = ancestor.number as i64;
        // Rows derived from batches (their leaf lists) first, then the events.
        let derived = ["device_identities", "batch_leaves"];
        for table in derived
            .into_iter()
            .chain(TABLES.iter().map(|t| t.name))
            .chain(["recent_blocks"])
        {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE block_number > $1"
            )))
            .bind(above)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting rows above the common ancestor"))?;
        }
        sqlx::query("UPDATE sync_state SET block_number = $1, block_hash = $2 WHERE id = 1")
            .bind(above)
            .bind(ancestor.hash.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db("rewinding the checkpoint"))?;
        crate::alerts::rewind(&mut tx, above).await?;
        tx.commit().await.map_err(db("committing a rewind"))
    }
}

fn read_value(row: &AnyRow, index: usize, kind: Kind) -> Result<Value> {
    let read = db("reading a row");
    Ok(match kind {
        Kind::Int => Value::Int(row.try_get::<i64, _>(index).map_err(read)?),
        Kind::OptInt => row
            .try_get::<Option<i64>, _>(index)
            .map_err(read)?
            .map_or(Value::Null, Value::Int),
        Kind::Text => Value::Text(row.try_get::<String, _>(index).map_err(read)?),
    })
}

/// Every row of `table`, in chain order.
pub async fn read_table(pool: &AnyPool, table: &'static Table) -> Result<Vec<Row>> {
    select(pool, table, &[], None, None).await
}

/// An equality condition on a column (the column name comes from the code,
/// the value is bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The column.
    pub column: &'static str,
    /// The value it must equal.
    pub value: Value,
}

/// The statement [`select`] runs: `filters` are the columns compared for equality
/// (`$1…`), then the position `after` (three parameters) and the limit, if asked.
fn select_sql(table: &Table, filters: &[&str], after: bool, limit: bool) -> String {
    let columns: Vec<&str> = table.column_names().collect();
    let mut conditions = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    for column in filters {
        conditions.push(format!("{column} = {}", next()));
    }
    if after {
        let (b1, b2, l) = (next(), next(), next());
        conditions.push(format!(
            "(block_number > {b1} OR (block_number = {b2} AND log_index > {l}))"
        ));
    }
    let mut sql = format!("SELECT {} FROM {}", columns.join(", "), table.name);
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(if table.positioned {
        " ORDER BY block_number, log_index, position"
    } else {
        " ORDER BY block_number, log_index"
    });
    if limit {
        sql.push_str(&format!(" LIMIT {}", next()));
    }
    sql
}

/// Rows of `table` matching every filter, in chain order, after the position
/// `after` (block number, log index), at most `limit`.
pub async fn select(
    pool: &AnyPool,
    table: &'static Table,
    filters: &[Filter],
    after: Option<(i64, i64)>,
    limit: Option<i64>,
) -> Result<Vec<Row>> {
    let columns: Vec<&str> = filters.iter().map(|f| f.column).collect();
    let sql = select_sql(table, &columns, after.is_some(), limit.is_some());
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for f in filters {
        query = bind(query, &f.value);
    }
    if let Some((block, log)) = after {
        query = query.bind(block).bind(block).bind(log);
    }
    if let Some(limit) = limit {
        query = query.bind(limit);
    }
    let rows = query.fetch_all(pool).await.map_err(db("selecting rows"))?;
    rows.iter()
        .map(|r| {
            let values = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| read_value(r, i, *kind))
                .collect::<Result<Vec<_>>>()?;
            Ok(Row { table, values })
        })
        .collect()
}

/// Whether the database answers.
pub async fn ping(pool: &AnyPool) -> Result<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(db("pinging the database"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns the API and the rules look rows up by.
    const LOOKUPS: &[&str] = &[
        "release_id",
        "device_index",
        "model_id",
        "manufacturer_id",
        "batch_id",
        "owner",
        "buyer",
        "to_address",
        "signer",
    ];

    /// Columns of [`LOOKUPS`] that no statement of the crate looks a table up by, so
    /// they are left without an index (each costs every backfill insert).
    const NOT_LOOKED_UP: &[(&str, &str)] = &[
        ("claims", "batch_id"),
        ("release_approval_signers", "signer"),
        ("revocations", "model_id"),
        ("refunds", "owner"),
    ];

    /// Every lookup by one of [`LOOKUPS`] in every table that has it is answered from an
    /// index, never by reading the whole table (the device's update answer read all of
    /// `release_approval_signers`, one row per signature of every release, until
    /// migration 0008 indexed it).
    #[tokio::test]
    async fn every_lookup_column_is_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let pool = connect(&url).await.unwrap();
        let mut scans = Vec::new();
        let mut checked = 0;
        for table in TABLES {
            let looked_up =
                |c: &&str| LOOKUPS.contains(c) && !NOT_LOOKED_UP.contains(&(table.name, *c));
            for column in table.column_names().filter(looked_up) {
                for limit in [false, true] {
                    let sql = select_sql(table, &[column], false, limit);
                    let plan =
                        sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                            .fetch_all(&pool)
                            .await
                            .unwrap();
                    let details: Vec<String> = plan.iter().map(|r| r.get::<String, _>(3)).collect();
                    checked += 1;
                    if !details.iter().any(|d| {
                        d.contains(&format!("({column}=?)")) || d.contains(&format!("({column}=?"))
                    }) {
                        scans.push(format!(
                            "{}.{column} (limit {limit}): {details:?}",
                            table.name
                        ));
                    }
                }
            }
        }
        assert!(checked > 20, "only {checked} lookups checked");
        assert!(
            scans.is_empty(),
            "lookups not answered from an index:\n{}",
            scans.join("\n")
        );
    }

    #[test]
    fn multi_row_insert_numbers_placeholders_row_by_row() {
        let sql = insert_sql(&crate::rows::FLOORS, 2, false);
        assert_eq!(
            sql,
            "INSERT INTO floors (block_number, block_hash, tx_hash, log_index, model_id, min_version) \
             VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)"
        );
        let sql = insert_sql(&crate::rows::FLOORS, 2, true);
        assert_eq!(
            sql,
            "INSERT INTO floors (block_number, block_hash, tx_hash, log_index, model_id, min_version) \
             VALUES (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)"
        );
    }
}
