//! The indexer benchmark (run by `script/bench-indexer.sh`; see
//! docs/benchmarks.md). One process fills a fresh anvil with a history of the
//! real contracts made by `test_support::Scenario` rounds (mostly one event per
//! transaction), then runs each leg as its own process under `/usr/bin/time`
//! (wall time from process start to caught up, peak RSS):
//! (a) raw `eth_getLogs` of the whole history, fixed 2,000-block ranges, 2 in
//! flight, no database; (a') as a second reference, not one of the legs, (a)
//! then the signed bytes of every publishing transaction (the approvals' calldata, which
//! the indexer must fetch too) in batches of 100, 2 in flight; (b) a full backfill into
//! PostgreSQL; (c) into SQLite;
//! then API latency (p50/p99) under 64 concurrent clients over the SQLite index.
//!
//! `cargo bench -p otaledger-indexer --bench sync -- EVENTS [SCENARIOS [BLOCK_TIME]]` (default
//! 20,000 events; 16 scenarios; a block per transaction, or one every BLOCK_TIME seconds).
//! `OTALEDGER_BENCH_ANVIL_ARGS` adds anvil arguments (e.g. `--prune-history 4 --gas-limit
//! 1000000000`); `OTALEDGER_BENCH_STATE=DIR` saves the filled history in DIR (anvil's dumped
//! state and the deployment file) on the first run and loads it (`--load-state`) on later runs,
//! so every run measures the same history. The history is filled by SCENARIOS manufacturers side
//! by side, each with its own operator and owner accounts (registered 32 at a time): one scenario
//! sends one transaction after another, waiting for each receipt, so many keep anvil busy. Their
//! rounds run in lockstep: every scenario plays its round up to the refunds, then one
//! `evm_increaseTime` past the refund window serves them all, then every withdrawal. The
//! 200,000-event history: `-- 200000 512 1` with the anvil arguments above (docs/benchmarks.md).

use std::{path::Path, process::Command, sync::Arc, time::Instant};

use futures_util::{StreamExt, stream};
use otaledger_core::{
    deploy::DEFAULT_REFUND_WINDOW,
    test_support::{Chain, Scenario},
};
use otaledger_indexer::{Indexer, IndexerConfig};

fn leg_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

/// Leg (a): every log of both contracts in fixed 2,000-block ranges, 2 in flight; the number
/// of logs and, when `publishes` names `ReleasePublished`'s topic, the hashes of the
/// transactions that emitted it (deduplicated, in order).
async fn raw_get_logs(
    rpc: &str,
    registry: &str,
    market: &str,
    (from, to): (u64, u64),
    publishes: Option<&str>,
) -> (usize, Vec<String>) {
    let http = reqwest::Client::new();
    let ranges: Vec<(u64, u64)> = (from..=to)
        .step_by(2_000)
        .map(|a| (a, (a + 1_999).min(to)))
        .collect();
    stream::iter(ranges)
        .map(|(a, b)| {
            let http = http.clone();
            async move {
                let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                    "params": [{"address": [registry, market], "fromBlock": format!("{a:#x}"), "toBlock": format!("{b:#x}")}]});
                let v: serde_json::Value = http
                    .post(rpc)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                // Read in place: leg (a) must cost what it did before (a) collected hashes.
                let logs = v["result"].as_array().map_or(&[][..], Vec::as_slice);
                let hashes: Vec<String> = publishes.map_or_else(Vec::new, |topic| {
                    logs.iter()
                        .filter(|l| l["topics"][0].as_str() == Some(topic))
                        .filter_map(|l| l["transactionHash"].as_str().map(str::to_owned))
                        .collect()
                });
                (logs.len(), hashes)
            }
        })
        .buffered(2)
        .fold((0, Vec::new()), |(n, mut all), (k, hashes)| async move {
            for h in hashes {
                if all.last() != Some(&h) {
                    all.push(h);
                }
            }
            (n + k, all)
        })
        .await
}

/// Leg (a'): leg (a), then the signed bytes of every publishing transaction (where the
/// approvals are) as the indexer asks for them: `eth_getRawTransactionByHash` in JSON-RPC
/// batches of 100, here 2 in flight, no checks; the number of bytes received.
async fn raw_calldata(rpc: &str, hashes: Vec<String>) -> usize {
    let http = reqwest::Client::new();
    let batches: Vec<Vec<String>> = hashes.chunks(100).map(<[String]>::to_vec).collect();
    stream::iter(batches)
        .map(|batch| {
            let http = http.clone();
            async move {
                let body: Vec<serde_json::Value> = batch
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        serde_json::json!({"jsonrpc": "2.0", "id": i,
                        "method": "eth_getRawTransactionByHash", "params": [h]})
                    })
                    .collect();
                let v: Vec<serde_json::Value> = http
                    .post(rpc)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(v.len(), batch.len(), "a batch answered short");
                v.iter()
                    .map(|a| a["result"].as_str().expect("a raw transaction").len() / 2 - 1)
                    .sum::<usize>()
            }
        })
        .buffered(2)
        .fold(0, |n, k| async move { n + k })
        .await
}

async fn leg(kind: &str) {
    let rpc = leg_env("BENCH_RPC");
    let dir = leg_env("BENCH_DEPLOYMENTS");
    let deployment =
        otaledger_indexer::load_deployment(std::slice::from_ref(&rpc), Path::new(&dir))
            .await
            .unwrap();
    if kind == "raw" || kind == "raw-calldata" {
        let head: u64 = leg_env("BENCH_HEAD").parse().unwrap();
        let topic = format!(
            "{}",
            <otaledger_core::bindings::registry::UpdateRegistry::ReleasePublished as alloy::sol_types::SolEvent>::SIGNATURE_HASH
        );
        let (n, hashes) = raw_get_logs(
            &rpc,
            &deployment.registry.to_string(),
            &deployment.market.to_string(),
            (deployment.deployment_block, head),
            (kind == "raw-calldata").then_some(topic.as_str()),
        )
        .await;
        if kind == "raw" {
            println!("logs {n}");
        } else {
            let count = hashes.len();
            let bytes = raw_calldata(&rpc, hashes).await;
            println!("logs {n}, then {count} publishing transactions, {bytes} bytes");
        }
        return;
    }
    // Where the time goes: the indexer's per-pass timings (follower, rules)
    // and each database transaction's duration go to stderr.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("otaledger_indexer=debug")
        .with_writer(std::io::stderr)
        .try_init();
    let config = IndexerConfig::new(leg_env("BENCH_DB"), vec![rpc], deployment);
    let started = Instant::now();
    let mut indexer = Indexer::open(config).await.unwrap();
    let opened = started.elapsed();
    let progress = indexer.sync().await.unwrap();
    println!(
        "logs {}; open (connect, migrate) {:.2} s, sync {:.2} s",
        progress.logs,
        opened.as_secs_f64(),
        (started.elapsed() - opened).as_secs_f64()
    );
}

fn timed(kind: &str, envs: &[(&str, String)]) -> (f64, u64, String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "TIME %e %M"])
        .arg(std::env::current_exe().unwrap())
        .arg("leg")
        .arg(kind)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{kind}: {stderr}");
    for l in stderr.lines().filter(|l| l.contains("timings")) {
        println!("    {kind}: {}", l.trim());
    }
    let line = stderr.lines().find(|l| l.starts_with("TIME ")).unwrap();
    let mut parts = line.split_whitespace().skip(1);
    let secs: f64 = parts.next().unwrap().parse().unwrap();
    let kib: u64 = parts.next().unwrap().parse().unwrap();
    (
        secs,
        kib / 1024,
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

async fn api_load(db_url: &str, chain: &Chain) -> (f64, f64, usize) {
    let mut config = IndexerConfig::new(
        db_url.to_owned(),
        vec![chain.url()],
        chain.deployment.clone(),
    );
    config.follow.finality_depth = 64;
    let indexer = Indexer::open(config).await.unwrap();
    let app = otaledger_indexer::api::app(indexer.api_state(u64::MAX));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let paths = [
        "/v1/releases?limit=50",
        "/v1/purchases?limit=50",
        "/v1/manufacturers",
        "/v1/models?limit=50",
        "/v1/devices/1",
        "/v1/devices/1/update",
    ];
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..64)
        .map(|c| {
            let (http, base, latencies) = (http.clone(), base.clone(), latencies.clone());
            tokio::spawn(async move {
                for i in 0..50 {
                    let path = paths[(c + i) % paths.len()];
                    let t = Instant::now();
                    let r = http.get(format!("{base}{path}")).send().await.unwrap();
                    let _ = r.bytes().await.unwrap();
                    latencies
                        .lock()
                        .unwrap()
                        .push((path, t.elapsed().as_secs_f64() * 1e3));
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let all = latencies.lock().unwrap().clone();
    let quantiles = |mut l: Vec<f64>| {
        l.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let at = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)];
        (at(0.5), at(0.99), l.len())
    };
    // Each path's own quantiles, then all requests'.
    for path in paths {
        let (p50, p99, n) = quantiles(
            all.iter()
                .filter(|(p, _)| *p == path)
                .map(|(_, ms)| *ms)
                .collect(),
        );
        println!("  API {path}: {n} requests, p50 {p50:.2} ms, p99 {p99:.2} ms");
    }
    quantiles(all.iter().map(|(_, ms)| *ms).collect())
}

/// The chain's head and the number of events of both contracts up to it.
async fn history(chain: &Chain) -> (u64, usize) {
    let head = chain.head().await.unwrap();
    let d = &chain.deployment;
    let (events, _) = raw_get_logs(
        &chain.url(),
        &d.registry.to_string(),
        &d.market.to_string(),
        (d.deployment_block, head),
        None,
    )
    .await;
    (head, events)
}

/// Plays rounds of `parallel` scenarios until about `target` events are on the chain.
async fn fill(chain: &Chain, target: usize, parallel: usize) {
    // Registered 32 at a time (each on its own fresh accounts): with interval mining one
    // after another would take a block each.
    let mut scenarios: Vec<Scenario> = stream::iter(0..parallel)
        .map(|_| Scenario::register_fresh(chain))
        .buffer_unordered(32)
        .map(Result::unwrap)
        .collect()
        .await;
    eprintln!("{} scenarios registered", scenarios.len());
    let started = Instant::now();
    play(chain, &mut scenarios).await;
    let (_, per_round) = history(chain).await;
    let rounds = target.div_ceil(per_round.max(1));
    for round in 1..rounds {
        play(chain, &mut scenarios).await;
        let filled = per_round * (round + 1);
        eprintln!(
            "filling: round {} of {rounds}, about {filled} of {target} events ({:.0} events/s)",
            round + 1,
            filled as f64 / started.elapsed().as_secs_f64()
        );
    }
    let (head, events) = history(chain).await;
    println!(
        "history: {events} events in {head} blocks ({rounds} rounds of {parallel} scenarios, filled in {:.0} s)",
        started.elapsed().as_secs_f64()
    );
}

/// Saves the chain's state (`anvil_dumpState`, gunzipped) and deployment file in `dir`.
async fn save(chain: &Chain, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let dumped = chain
        .raw("anvil_dumpState", serde_json::json!([]))
        .await
        .unwrap();
    let bytes = alloy::hex::decode(dumped.as_str().unwrap()).unwrap();
    let gz = dir.join("state.json.gz");
    std::fs::write(&gz, bytes).unwrap();
    let status = Command::new("gzip").arg("-df").arg(&gz).status().unwrap();
    assert!(status.success(), "gunzip {}", gz.display());
    chain.deployment.store(dir).unwrap();
    eprintln!("history saved in {}", dir.display());
}

/// One round of every scenario, side by side (see the module documentation).
async fn play(chain: &Chain, scenarios: &mut [Scenario]) {
    for r in
        futures_util::future::join_all(scenarios.iter_mut().map(|s| s.round_until_refunds(chain)))
            .await
    {
        r.unwrap();
    }
    chain
        .raw(
            "evm_increaseTime",
            serde_json::json!([DEFAULT_REFUND_WINDOW + 1]),
        )
        .await
        .unwrap();
    for r in futures_util::future::join_all(
        scenarios
            .iter_mut()
            .map(|s| s.round_after_refund_window(chain)),
    )
    .await
    {
        r.unwrap();
    }
}

fn main() {
    // As `otaledger` does before its runtime starts: one malloc arena per core.
    otaledger_indexer::memory::limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it: then one round (about twenty events) runs every leg
    // as a smoke test instead of the 20,000-event default.
    let bench = all.iter().any(|a| a == "--bench");
    let args: Vec<String> = all.into_iter().filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("leg") {
        return leg(&args[1]).await;
    }
    let target: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(if bench { 20_000 } else { 1 });
    let parallel: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(if bench { 16 } else { 1 })
        .max(1);
    // BLOCK_TIME (seconds, e.g. 0.2): interval mining, many transactions per block, as on a
    // real chain; without it anvil mines a block per transaction and spends its time on a
    // state root per transaction.
    let mut anvil_args = Vec::new();
    if let Some(t) = args.get(2) {
        anvil_args.extend(["--block-time", t]);
    }
    // OTALEDGER_BENCH_ANVIL_ARGS: more anvil arguments, space-separated (e.g. `--prune-history`:
    // no historical states at all; the legs read logs and headers, not old state).
    let extra = std::env::var("OTALEDGER_BENCH_ANVIL_ARGS").unwrap_or_default();
    anvil_args.extend(extra.split_whitespace());
    // OTALEDGER_BENCH_STATE=DIR: the first run fills the history and saves it there
    // (`anvil_dumpState`, unzipped: DIR/state.json, and the deployment file); later runs
    // load it with `--load-state` and measure the same history again without filling.
    let state_dir = std::env::var_os("OTALEDGER_BENCH_STATE").map(std::path::PathBuf::from);
    let saved = state_dir
        .as_ref()
        .map(|d| d.join("state.json"))
        .filter(|p| p.exists());
    let saved_arg = saved.as_ref().map(|p| p.display().to_string());
    if let Some(p) = &saved_arg {
        anvil_args.extend(["--load-state", p.as_str()]);
    }
    let mut chain = Chain::start(&anvil_args).await.unwrap();
    if let Some(dir) = state_dir.as_ref().filter(|_| saved.is_some()) {
        chain.deployment =
            otaledger_core::deployment::Deployment::load(dir, chain.deployment.chain_id).unwrap();
        let (head, events) = history(&chain).await;
        println!(
            "history: {events} events in {head} blocks (loaded from {})",
            dir.display()
        );
    } else {
        fill(&chain, target, parallel).await;
        if let Some(dir) = &state_dir {
            save(&chain, dir).await;
        }
    }
    let head = chain.head().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    chain.deployment.store(dir.path()).unwrap();
    let common = vec![
        ("BENCH_RPC", chain.url()),
        ("BENCH_DEPLOYMENTS", dir.path().display().to_string()),
        ("BENCH_HEAD", head.to_string()),
    ];
    let (raw_s, raw_mib, raw_out) = timed("raw", &common);
    println!("(a) raw eth_getLogs, 2 in flight: {raw_s:.2} s, {raw_mib} MiB peak RSS ({raw_out})");
    // Not one of the legs: the raw fetch of everything the mirror needs, the
    // approvals' calldata included, as a second reference for (b) and (c).
    let (calldata_s, calldata_mib, calldata_out) = timed("raw-calldata", &common);
    println!(
        "(a') (a) + the publishing transactions' raw bytes, batches of 100, 2 in flight: \
         {calldata_s:.2} s, {calldata_mib} MiB peak RSS ({calldata_out})"
    );
    let pg_name = format!("otaledger_bench_{}", std::process::id());
    let admin = std::env::var("OTALEDGER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {pg_name}")))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let pg_url = format!("{}/{pg_name}", admin.rsplit_once('/').unwrap().0);
    let mut env = common.clone();
    env.push(("BENCH_DB", pg_url));
    let (pg_s, pg_mib, pg_out) = timed("postgres", &env);
    println!(
        "(b) PostgreSQL backfill: {pg_s:.2} s = {:.2} x (a) = {:.2} x (a'), {pg_mib} MiB peak RSS ({pg_out})",
        pg_s / raw_s,
        pg_s / calldata_s
    );
    let sqlite = format!("sqlite://{}", dir.path().join("index.db").display());
    let mut env = common.clone();
    env.push(("BENCH_DB", sqlite.clone()));
    let (sq_s, sq_mib, sq_out) = timed("sqlite", &env);
    println!(
        "(c) SQLite backfill: {sq_s:.2} s = {:.2} x (b), {sq_mib} MiB peak RSS ({sq_out})",
        sq_s / pg_s
    );
    let (p50, p99, n) = api_load(&sqlite, &chain).await;
    println!("API, 64 concurrent clients, {n} requests: p50 {p50:.2} ms, p99 {p99:.2} ms");
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await;
}
