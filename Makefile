# Kuota developer entry points. Every target runs `setup` first; setup is idempotent and fast once done.
SHELL := /bin/bash
ROOT := $(CURDIR)
export PATH := $(ROOT)/node_modules/.bin:$(ROOT)/.venv/bin:$(PATH)
export SOLCX_BINARY_PATH := $(ROOT)/.solcx
PY := $(ROOT)/.venv/bin/python

.PHONY: setup compile abi test lint demo bench clean

setup:
	@bash tools/setup.sh

compile: setup
	brownie compile

abi: compile
	$(PY) scripts/export_abis.py

test: setup
	@brownie compile >/dev/null
	$(PY) tools/run_tests.py tests -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	bash tools/lint.sh

demo: setup
	$(PY) scripts/demo.py $(DEMO_ARGS)

bench: setup
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build reports .setup-stamps crytic-export
