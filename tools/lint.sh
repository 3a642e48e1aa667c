#!/usr/bin/env bash
# `make lint`: Slither over the contracts; fails on any Medium or High finding that
# slither.config.json does not exclude (each exclusion there carries its reason).
#
# How it compiles: crytic-compile's solc standard-JSON mode, with the repository's own solc
# (.solcx/solc-v<version>: a native solc or the solcjs shim, which speaks only --standard-json) and
# the OpenZeppelin remapping from brownie-config.yaml. Slither's Brownie mode
# (`--compile-force-framework brownie`) does not work here: it reads build/contracts/*.json, and
# Brownie writes no artifact for a source file that declares no contract (OpenZeppelin's
# `interfaces/IERC20.sol` only re-exports), so Slither stops with "IERC20.sol does not exist".
# This route also never touches build/, which test runs on the same machine may be reading.
#
# Usage: tools/lint.sh [extra slither args]   (also writes reports/slither.json)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/node_modules/.bin:$ROOT/.venv/bin:$PATH"
export SOLCX_BINARY_PATH="$ROOT/.solcx"

SOLC_VERSION=$(sed -n 's/^ *version: *\([0-9.]*\) *$/\1/p' brownie-config.yaml | head -n 1)
SOLC="$SOLCX_BINARY_PATH/solc-v$SOLC_VERSION"
REMAP=$(sed -n 's/^ *- *"\(@openzeppelin\/=[^"]*\)" *$/\1/p' brownie-config.yaml | head -n 1)
[ -x "$SOLC" ] || { echo "[lint] $SOLC is missing: run \`make setup\`" >&2; exit 1; }
[ -n "$REMAP" ] || { echo "[lint] no @openzeppelin remapping in brownie-config.yaml" >&2; exit 1; }

mkdir -p reports
rm -f reports/slither.json
echo "[lint] slither on contracts/ (solc $SOLC_VERSION, fails on Medium or High)"
exec slither contracts \
  --solc-standard-json --solc "$SOLC" --solc-remaps "$REMAP" \
  --config-file slither.config.json \
  --json reports/slither.json \
  --fail-medium "$@"
