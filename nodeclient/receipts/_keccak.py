"""Compatibility path for keccak256: the implementation lives in `nodeclient.receipts.crypto`."""

from __future__ import annotations

from nodeclient.receipts.crypto import KECCAK_BACKEND, keccak256

__all__ = ["KECCAK_BACKEND", "keccak256"]
