#!/usr/bin/env bash
# Prints the path of the real Foundry binary (forge, anvil or cast) that the
# pinned npm package ships. The npm wrappers in node_modules/.bin always exit 0
# (an upstream bug), so nothing in this project calls them.
set -euo pipefail
tool="${1:?usage: foundry-bin.sh forge|anvil|cast}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) echo "foundry-bin.sh: unsupported OS $(uname -s)" >&2; exit 2 ;; esac
case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) echo "foundry-bin.sh: unsupported CPU $(uname -m)" >&2; exit 2 ;; esac
bin="$root/node_modules/@foundry-rs/$tool-$os-$arch/bin/$tool"
if [[ ! -x "$bin" ]]; then
  echo "foundry-bin.sh: $bin is missing; run 'npm ci' in $root first" >&2
  exit 2
fi
echo "$bin"
