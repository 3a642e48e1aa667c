"""Kuota benchmarks (``make bench``): gas from real transactions and off-chain throughput.

- `bench.gas`: the gas scenarios (own Anvil, real deploy, ``tx.gas_used`` from receipts) and the
  opcode-class breakdown of a transaction from ``debug_traceTransaction``.
- ``bench/run.py``: the ``make bench`` entry point; runs the gas part and the off-chain part, writes
  ``bench/results.json`` and prints the table beside the peers' published figures.
- ``bench/receipts_bench.py``, ``bench/relay_bench.py``, ``bench/audit_bench.py``: each area's own
  benchmark, exposing ``run(...) -> dict``; ``run.py`` calls them when they are present.
"""

from __future__ import annotations

__all__: list[str] = []
