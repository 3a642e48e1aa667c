"""Auditor replay: recompute every Kuota payout and reward from chain events and receipt bundles.

``run_audit(AuditOptions(...))`` is the entry point (``kuota audit replay`` is a thin CLI over it).
Modules by concern: ``logs`` (adaptive ``eth_getLogs``, pinned block hashes), ``events`` (decoding),
``source`` (manifest checks, range, end-block views), ``replay`` (the arithmetic), ``reconcile``
(replay vs views), ``bundles`` (receipt bundles vs committed roots, parallel recovery), ``heuristics``
(warnings), ``report`` (JSON/CSV/rich), ``crypto`` (the auditor's view of the shared receipt crypto
core, `nodeclient.receipts.crypto`).

Exports are resolved lazily so that importing a submodule does not pay for web3 and rich.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["AuditOptions", "AuditResult", "run_audit"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("nodeclient.audit.engine"), name)
    raise AttributeError(f"module 'nodeclient.audit' has no attribute {name!r}")
