//! `otaledger indexer verify`: re-read the chain up to the database's
//! checkpoint, decode it afresh and diff it against the database, table by table.

use std::{collections::HashSet, fmt};

use otaledger_core::follow::rpc::Rpc;
use sqlx::AnyPool;

use crate::{
    IndexerConfig, Result, db,
    rows::{Row, TABLES, Value, decode_logs_with},
};

/// The difference found in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDiff {
    /// The table.
    pub table: &'static str,
    /// Rows the chain has and the database lacks (or holds otherwise).
    pub missing: usize,
    /// Rows the database has and the chain lacks.
    pub unexpected: usize,
    /// The first differing row, for the report.
    pub example: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The checkpoint verified up to (none: empty database).
    pub checkpoint: Option<u64>,
    /// Whether the checkpoint's block hash is still the chain's.
    pub checkpoint_on_chain: bool,
    /// Rows compared per table (chain side).
    pub rows: Vec<(&'static str, usize)>,
    /// Tables that differ.
    pub diffs: Vec<TableDiff>,
}

impl Report {
    /// Whether the database equals the chain.
    pub fn is_clean(&self) -> bool {
        self.checkpoint_on_chain && self.diffs.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.checkpoint {
            Some(c) => writeln!(
                f,
                "checkpoint: block {c} (on chain: {})",
                self.checkpoint_on_chain
            )?,
            None => writeln!(f, "checkpoint: none (empty database)")?,
        }
        for (table, n) in &self.rows {
            let diff = self.diffs.iter().find(|d| d.table == *table);
            match diff {
                None => writeln!(f, "{table}: {n} rows, equal")?,
                Some(d) => writeln!(
                    f,
                    "{table}: {n} rows on chain, {} missing or different, {} unexpected; first: {}",
                    d.missing, d.unexpected, d.example
                )?,
            }
        }
        Ok(())
    }
}

fn show(row: &Row) -> String {
    let cols: Vec<String> = row
        .table
        .column_names()
        .zip(&row.values)
        .map(|(c, v)| format!("{c}={v}"))
        .collect();
    cols.join(" ")
}

/// Re-reads every log from the deployment block to the checkpoint and compares.
pub async fn verify(pool: &AnyPool, rpc: &Rpc, config: &IndexerConfig) -> Result<Report> {
    let checkpoint = db::checkpoint(pool).await?;
    let d = &config.deployment;
    let mut expected: Vec<Row> = Vec::new();
    let mut checkpoint_on_chain = true;
    if let Some(cp) = checkpoint {
        checkpoint_on_chain = rpc.block_head(cp.number).await?.hash == cp.hash;
        let (logs, inputs) = otaledger_core::follow::fetch_logs_with_inputs(
            rpc,
            &config.follow,
            config.follow.start_block,
            cp.number,
        )
        .await?;
        expected = decode_logs_with(rpc, &logs, d.registry, d.market, &inputs).await?;
    }
    let mut report = Report {
        checkpoint: checkpoint.map(|c| c.number),
        checkpoint_on_chain,
        rows: Vec::new(),
        diffs: Vec::new(),
    };
    for table in TABLES {
        let chain: Vec<&Row> = expected
            .iter()
            .filter(|r| std::ptr::eq(r.table, *table))
            .collect();
        let stored = db::read_table(pool, table).await?;
        report.rows.push((table.name, chain.len()));
        let chain_set: HashSet<&Vec<Value>> = chain.iter().map(|r| &r.values).collect();
        let stored_set: HashSet<&Vec<Value>> = stored.iter().map(|r| &r.values).collect();
        let missing: Vec<&&Row> = chain
            .iter()
            .filter(|r| !stored_set.contains(&r.values))
            .collect();
        let unexpected: Vec<&Row> = stored
            .iter()
            .filter(|r| !chain_set.contains(&r.values))
            .collect();
        let duplicates = stored.len() != chain.len();
        if !missing.is_empty() || !unexpected.is_empty() || duplicates {
            let example = missing
                .first()
                .map(|r| format!("missing {}", show(r)))
                .or_else(|| {
                    unexpected
                        .first()
                        .map(|r| format!("unexpected {}", show(r)))
                })
                .unwrap_or_else(|| {
                    format!("{} rows stored, {} on chain", stored.len(), chain.len())
                });
            report.diffs.push(TableDiff {
                table: table.name,
                missing: missing.len(),
                unexpected: unexpected.len(),
                example,
            });
        }
    }
    Ok(report)
}
