#!/usr/bin/env bash
# Builds the contracts and exports their ABI + bytecode to core/artifacts/
# (or, with --check, fails if the committed files differ from a fresh build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$(script/foundry-bin.sh forge)" build --skip test --skip script >/dev/null
exec node script/export-artifacts.mjs "$@"
