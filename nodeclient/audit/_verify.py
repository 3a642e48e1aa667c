"""Compatibility path for ``checksum`` (EIP-55), which lives in `nodeclient.receipts.crypto`.

Bundle receipts are parsed and verified by `nodeclient.receipts.verify`, the same code the node's
bundle loader runs.
"""

from __future__ import annotations

from nodeclient.receipts.crypto import checksum_address as checksum

__all__ = ["checksum"]
