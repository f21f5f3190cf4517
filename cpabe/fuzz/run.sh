#!/usr/bin/env bash
# Runs the decoding fuzz target briefly (default 60 s) with the committed seed corpus.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# The same invariants run on stable in `cargo test -p otaledger-cpabe --test malformed`.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
# Work on a copy so new corpus entries do not dirty the committed seeds.
work="$(mktemp -d)"
cp corpus/decode/* "$work/"
cargo +nightly fuzz run decode "$work" -- -max_total_time="$seconds" -max_len=8192
