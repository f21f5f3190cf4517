#!/usr/bin/env bash
# The indexer benchmark (docs/benchmarks.md): fills a fresh anvil with about EVENTS events of
# the real contracts (default 200,000, the issue's size), played by SCENARIOS manufacturers side
# by side (default 512) on anvil mining a block every BLOCK_TIME seconds (default 1), then
# measures (a) raw eth_getLogs, (a') the same then the publishing transactions' raw bytes (the
# approvals' calldata), (b) PostgreSQL backfill, (c) SQLite backfill — each its own
# process, start to caught up, with peak RSS — and API p50/p99 under 64 concurrent clients.
# The filled history is saved in target/bench-indexer/EVENTS (anvil's dumped state, about
# 1.2 GB for 200,000 events) and loaded by later runs with the same EVENTS (delete it to fill
# again; the fill takes 13-15 minutes, a loaded run about one). Needs PostgreSQL on
# 127.0.0.1:5432 (script/ensure-postgres.sh) and anvil (npm ci). Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-200000}"
SCENARIOS="${2:-512}"
BLOCK_TIME="${3:-1}"
script/ensure-postgres.sh >/dev/null
# Anvil keeps four historical states (not one per block) and takes blocks of ~500 transactions.
export OTALEDGER_BENCH_ANVIL_ARGS="${OTALEDGER_BENCH_ANVIL_ARGS:---prune-history 4 --gas-limit 1000000000}"
export OTALEDGER_BENCH_STATE="${OTALEDGER_BENCH_STATE:-$PWD/target/bench-indexer/$EVENTS}"
exec cargo bench -p otaledger-indexer --bench sync -- "$EVENTS" "$SCENARIOS" "$BLOCK_TIME"
