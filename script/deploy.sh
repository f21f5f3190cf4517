#!/usr/bin/env bash
# Deploys UpdateRegistry and UpdateMarket at their CREATE2 addresses with
# `forge script` and writes deployments/<chain-id>.json once the broadcast has
# succeeded and both contracts have code (never a file for a failed deploy).
#
#   script/deploy.sh --rpc-url URL [forge wallet options: --private-key, --keystore, --ledger, ...]
#
# Environment: REFUND_WINDOW (seconds, default 7 days), GIT_COMMIT (default: this checkout's HEAD).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
forge="$(script/foundry-bin.sh forge)"
cast="$(script/foundry-bin.sh cast)"
rpc=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ "${args[$i]}" == "--rpc-url" ]] && rpc="${args[$((i + 1))]:-}"
  [[ "${args[$i]}" == --rpc-url=* ]] && rpc="${args[$i]#--rpc-url=}"
done
[[ -n "$rpc" ]] || { echo "deploy.sh: --rpc-url URL is required" >&2; exit 2; }
export GIT_COMMIT="${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
chain_id="$("$cast" chain-id --rpc-url "$rpc")"
pending="deployments/$chain_id.json.pending"
final="deployments/$chain_id.json"
mkdir -p deployments
rm -f "$pending"
"$forge" script script/Deploy.s.sol:Deploy --broadcast "$@"
[[ -f "$pending" ]] || { echo "deploy.sh: forge did not record the deployment ($pending missing)" >&2; exit 1; }
for key in registry market; do
  address="$(node -e "process.stdout.write(JSON.parse(require('fs').readFileSync('$pending','utf8')).$key)")"
  if [[ "$("$cast" code "$address" --rpc-url "$rpc")" == "0x" ]]; then
    echo "deploy.sh: no code at the $key address $address after the broadcast; $final not written" >&2
    exit 1
  fi
done
mv "$pending" "$final"
echo "deploy.sh: wrote $final"
