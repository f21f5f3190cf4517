#!/usr/bin/env bash
# Runs the device-sdk fuzz targets (header: step 1's header check; storage_proof: step 2's proof
# verification; approval: step 4's signature checks; manifest: the release source's publishing
# calldata and manifest decoding; bundle_header: step 7's bundle header decoding) briefly, each for SECONDS (default 60), from
# the committed seed corpus. Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Stable stand-ins run in the normal suite:
# `cargo test -p otaledger-device-sdk --test suite properties` (properties_formats for the last two).
set -euo pipefail
cd "$(dirname "$0")/../device-sdk/fuzz"
seconds="${1:-60}"  # then optionally the targets to run (default: all)
targets=("${@:2}")
if [ ${#targets[@]} -eq 0 ]; then targets=(header storage_proof approval manifest bundle_header); fi
for target in "${targets[@]}"; do
  # Work on a copy so new corpus entries do not dirty the committed seeds.
  work="$(mktemp -d)"
  cp corpus/"$target"/* "$work/"
  cargo +nightly fuzz run "$target" "$work" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024
  rm -rf "$work"
done
