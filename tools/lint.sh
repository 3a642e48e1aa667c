#!/usr/bin/env bash
# `make lint`: Slither over the contracts, failing on any Medium or High finding that the config
# (slither.config.json, every exclusion with its reason) does not exclude.
#
# Slither reads Brownie's build artifacts (crytic-compile's brownie platform), so the contracts are
# compiled with the repository's own toolchain (solc via .solcx, OpenZeppelin remapped to
# node_modules) — no second compiler setup to drift from the one the tests use. It compiles a copy of
# the sources in a temporary directory with `brownie compile --all`: fresh artifacts for exactly the
# current sources, without rewriting build/ under a test run that may be using it.
#
# Usage: tools/lint.sh [extra slither args]   (writes reports/slither.json as well)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/node_modules/.bin:$ROOT/.venv/bin:$PATH"
export SOLCX_BINARY_PATH="$ROOT/.solcx"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kuota-lint.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cp -r contracts brownie-config.yaml "$WORK/"
mkdir -p "$WORK/interfaces"
[ -d interfaces ] && cp -r interfaces/. "$WORK/interfaces/"
ln -s "$ROOT/node_modules" "$WORK/node_modules"
CONFIG_ARGS=()
if [ -f slither.config.json ]; then
  cp slither.config.json "$WORK/"
  CONFIG_ARGS=(--config-file slither.config.json)
fi

echo "[lint] compiling a copy of the contracts (brownie compile --all)"
if ! (cd "$WORK" && brownie compile --all >"$WORK/compile.log" 2>&1); then
  cat "$WORK/compile.log" >&2
  exit 1
fi

mkdir -p reports
rm -f reports/slither.json
echo "[lint] slither (fails on Medium or High)"
cd "$WORK"
slither . --compile-force-framework brownie --brownie-ignore-compile "${CONFIG_ARGS[@]}" \
  --filter-paths "node_modules" --exclude-dependencies \
  --json "$ROOT/reports/slither.json" --fail-medium "$@"
