#!/usr/bin/env bash
# Proves that a failing Solidity test makes forge exit non-zero, so `make test`
# cannot pass with failing contract tests (the npm wrappers always exit 0).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
forge="$("$root/script/foundry-bin.sh" forge)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src" "$dir/test"
cat >"$dir/foundry.toml" <<TOML
[profile.default]
src = "src"
test = "test"
solc = "$root/script/solc.mjs"
offline = true
auto_detect_solc = false
TOML
cat >"$dir/test/Fails.t.sol" <<'SOL'
// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

contract FailsTest {
    function test_alwaysFails() external pure {
        require(false, "this test must fail");
    }
}
SOL
if (cd "$dir" && "$forge" test >"$dir/out.log" 2>&1); then
  cat "$dir/out.log" >&2
  echo "check-forge-fails: forge exited 0 on a failing test; the test command would hide failures" >&2
  exit 1
fi
grep -q "test_alwaysFails" "$dir/out.log" || { cat "$dir/out.log" >&2; echo "check-forge-fails: forge failed for another reason" >&2; exit 1; }
echo "check-forge-fails: ok (a failing test makes forge exit non-zero)"
