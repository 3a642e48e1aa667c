# Kuota developer entry points. Every target runs `setup` first; setup is idempotent and fast once done.
SHELL := /bin/bash
ROOT := $(CURDIR)
export PATH := $(ROOT)/node_modules/.bin:$(ROOT)/.venv/bin:$(PATH)
export SOLCX_BINARY_PATH := $(ROOT)/.solcx
PY := $(ROOT)/.venv/bin/python

# Foundry (docs/FUZZING.md): the fuzz and invariant profile `make fuzz` runs (ci: 10,000 runs per
# property, invariants at depth 50; deep: 100,000 at depth 100), and the gas snapshot's tolerance in %.
FOUNDRY_PROFILE ?= ci
GAS_TOLERANCE ?= 1
GAS_TESTS := tests/foundry/gas/*

.PHONY: setup compile abi test client-latest fuzz gas-snapshot lint demo bench clean

setup:
	@bash tools/setup.sh

compile: setup
	brownie compile

abi: compile
	$(PY) scripts/export_abis.py

# The Foundry campaign first, then the suite, then the client alone on the newest web3/eth-account
# (tools/client_latest.sh: about 20 s once .venv-latest exists).
test: setup
	@$(MAKE) --no-print-directory fuzz
	@brownie compile >/dev/null
	$(PY) tools/run_tests.py tests -p no:cacheprovider $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory client-latest

# The client without Brownie, in its own venv with the newest dependencies, against a fresh deployment.
client-latest: setup
	bash tools/client_latest.sh

# Stateless fuzz and handler-based invariant tests, then the gas snapshot check. forge 1.7.1's
# `snapshot --check` prints a "Diff in" line for a change beyond the tolerance but still exits 0,
# so the check reads its output.
fuzz: setup
	FOUNDRY_PROFILE=$(FOUNDRY_PROFILE) forge test --no-match-path '$(GAS_TESTS)' $(FORGE_ARGS)
	@mkdir -p reports
	@forge snapshot --match-path '$(GAS_TESTS)' --check --tolerance $(GAS_TOLERANCE) > reports/gas-snapshot.log 2>&1 \
		|| { cat reports/gas-snapshot.log; exit 1; }
	@if grep '^Diff in' reports/gas-snapshot.log; then \
		echo "[fuzz] gas differs from .gas-snapshot by more than $(GAS_TOLERANCE)%: run \`make gas-snapshot\` if intended" >&2; exit 1; fi
	@echo "[fuzz] gas matches .gas-snapshot within $(GAS_TOLERANCE)%"

# Rewrites .gas-snapshot after an intended gas change (commit it with the change).
gas-snapshot: setup
	forge snapshot --match-path '$(GAS_TESTS)'

lint: setup
	bash tools/lint.sh

demo: setup
	$(PY) scripts/demo.py $(DEMO_ARGS)

bench: setup
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build reports .setup-stamps .venv-latest crytic-export out cache
