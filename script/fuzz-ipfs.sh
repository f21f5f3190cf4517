#!/usr/bin/env bash
# Runs the ipfs fuzz targets (dag_pb: dag-pb/UnixFS decoders + verifier; car_reader: CAR v1
# reader + verifier) briefly, each for SECONDS (default 60), from the committed seed corpus.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Stable stand-ins run in the normal suite: `cargo test -p otaledger-ipfs --test proptest_roundtrip`
# and `--test verify_fuzz`.
set -euo pipefail
cd "$(dirname "$0")/../ipfs/fuzz"
seconds="${1:-60}"
for target in dag_pb car_reader; do
  # Work on a copy so new corpus entries do not dirty the committed seeds.
  work="$(mktemp -d)"
  cp corpus/"$target"/* "$work/"
  cargo +nightly fuzz run "$target" "$work" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024
  rm -rf "$work"
done
