#!/usr/bin/env bash
# The indexer benchmark (docs/benchmarks.md): fills a fresh anvil with EVENTS
# events of the real contracts (default 20,000; the issue's size is 200,000),
# played by SCENARIOS manufacturers side by side (default 16), then measures (a) raw eth_getLogs,
# (b) PostgreSQL backfill, (c) SQLite backfill — each its own process, start
# to caught up, with peak RSS — and API p50/p99 under 64 concurrent clients.
# Needs PostgreSQL on 127.0.0.1:5432 (script/ensure-postgres.sh) and anvil
# (npm ci). Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-20000}"
SCENARIOS="${2:-16}"
script/ensure-postgres.sh >/dev/null
exec cargo bench -p otaledger-indexer --bench sync -- "$EVENTS" "$SCENARIOS"
