#!/usr/bin/env bash
# The client on its own, with the newest web3 and eth-account, against the real contracts.
#
# The dev venv (.venv) carries eth-brownie 1.22.2, which pins web3 7.16 and eth-account 0.13.7, so the
# suite never sees what an operator's `pip install kuota-nodeclient` resolves to today. This check:
#   1. keeps a separate venv, .venv-latest, with the client's dependencies at the newest versions the
#      ranges in pyproject.toml admit (web3, eth-account...) and no Brownie; rebuilt only when
#      pyproject.toml changes (stamp in .setup-stamps/latest), so a warm run skips it; the client
#      itself is reinstalled from this checkout on every run (a few seconds);
#   2. starts an Anvil with the dev venv's `kuota chain up` and deploys the system with Brownie (the
#      dev venv: deploying is a development task, Brownie is not part of the client);
#   3. runs tests/standalone (no Brownie import, their own conftest only) in .venv-latest against it.
#
# Usage: tools/client_latest.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/node_modules/.bin:$ROOT/.venv/bin:$PATH"
export SOLCX_BINARY_PATH="$ROOT/.solcx"
# The dev venv's steps (chain, deploy) use this checkout's sources, like the test runner does.
export PYTHONPATH="$ROOT"
VENV=.venv-latest
STAMPS=.setup-stamps
mkdir -p "$STAMPS"
say() { printf '[client-latest] %s\n' "$*" >&2; }

WORK=$(mktemp -d)
# Stops only the chain this run recorded in its own home, never one of the user's.
cleanup() { KUOTA_HOME="$WORK/home" "$ROOT/.venv/bin/kuota" chain down >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
# Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds, and
# build/ here is Brownie's. The copy is what a wheel of this checkout ships (package-data included).
mkdir -p "$WORK/src"
cp -r pyproject.toml README.md LICENSE nodeclient "$WORK/src/"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +

stamp=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$STAMPS/latest" ] || [ "$(cat "$STAMPS/latest")" != "$stamp" ]; then
  say "building $VENV (client + newest web3/eth-account, no Brownie)"
  rm -rf "$VENV"
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q --upgrade --upgrade-strategy eager "$WORK/src[localchain]" web3 eth-account pytest
  echo "$stamp" > "$STAMPS/latest"
fi
# Every run: this checkout's client, as a regular (not editable) install; its dependencies stay.
"$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$WORK/src"
say "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("web3", "eth-account", "eth-abi", "pydantic")))')"
if "$VENV/bin/python" -c 'import brownie' 2>/dev/null; then
  say "$VENV has brownie installed; the check must run without it"; exit 1
fi

export KUOTA_HOME="$WORK/home"
# Settings from the caller's shell (a Foundry ETH_RPC_URL, a KUOTA_NETWORK...) must not redirect the
# client under test: it uses the `local` profile of this home only.
unset ETH_RPC_URL KUOTA_NETWORK KUOTA_RPC_URL KUOTA_CHAIN_ID KUOTA_MANIFEST KUOTA_ACCOUNT KUOTA_KEYSTORE KUOTA_DATA_DIR
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/kuota chain up --port "$port" >/dev/null
say "deploying with Brownie (.venv) to 127.0.0.1:$port"
# Attaches to the chain recorded in $KUOTA_HOME and records the manifest there, so the `local`
# profile of the client under test finds both the RPC and the deployment without flags.
timeout 300 .venv/bin/python scripts/deploy.py local >&2

# The installed package, not this checkout's sources: run from a directory where `nodeclient` is not
# importable by path, with --confcutdir so that the Brownie conftest of tests/ is never loaded.
cd "$WORK"
PYTHONPATH='' timeout 300 "$ROOT/$VENV/bin/python" -m pytest "$ROOT/tests/standalone" \
  --rootdir "$ROOT/tests/standalone" --confcutdir "$ROOT/tests/standalone" -p no:cacheprovider -q "$@"
