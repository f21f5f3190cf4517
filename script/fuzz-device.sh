#!/usr/bin/env bash
# Runs the device-sdk fuzz targets (header: step 1's header check; storage_proof: step 2's proof
# verification; approval: step 4's signature checks) briefly, each for SECONDS (default 60), from
# the committed seed corpus. Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Stable stand-ins run in the normal suite:
# `cargo test -p otaledger-device-sdk --test suite properties`.
set -euo pipefail
cd "$(dirname "$0")/../device-sdk/fuzz"
seconds="${1:-60}"
for target in header storage_proof approval; do
  # Work on a copy so new corpus entries do not dirty the committed seeds.
  work="$(mktemp -d)"
  cp corpus/"$target"/* "$work/"
  cargo +nightly fuzz run "$target" "$work" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024
  rm -rf "$work"
done
