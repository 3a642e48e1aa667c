"""The node's receipt sink: the shared durable receipt store, bound to one node and one domain.

``open_node_store`` returns an object with the ``ReceiptSink`` methods the server needs (``accept``
durable before it returns; ``latest`` per channel) plus ``close``. It wraps
``nodeclient.receipts.store.ReceiptStore`` (SQLite, WAL, ``synchronous=FULL``), the same store the
settlement and bundle code read, so a receipt the relay acknowledged is exactly what settles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from eth_utils import to_checksum_address

from nodeclient.receipts.model import SignedReceipt
from nodeclient.receipts.signing import ReceiptDomain, receipt_domain
from nodeclient.receipts.store import ReceiptStore, StoredReceipt

__all__ = ["NodeReceiptStore", "ReceiptSink", "open_node_store"]


class ReceiptSink(Protocol):
    """Where accepted receipts go. ``accept`` must be durable (fsynced) when it returns."""

    def accept(self, receipt: SignedReceipt) -> Any:
        """Store ``receipt`` durably; raise a ``ReceiptError`` if the store refuses it."""
        ...

    def latest(self, consumer: str, node: str) -> SignedReceipt | None:
        """The channel's latest accepted receipt, if any."""
        ...


class NodeReceiptStore:
    """``ReceiptSink`` over the shared receipt store for one node."""

    def __init__(self, store: ReceiptStore, domain: ReceiptDomain, node: str) -> None:
        self.store = store
        self.domain = domain
        self.node = to_checksum_address(node)

    def accept(self, receipt: SignedReceipt) -> StoredReceipt:
        """Verify and store ``receipt`` durably (committed and fsynced before this returns)."""
        return self.store.accept(receipt, expected_domain=self.domain, expected_node=self.node)

    def latest(self, consumer: str, node: str) -> SignedReceipt | None:
        """The channel's latest accepted receipt."""
        stored = self.store.latest(consumer, node)
        return stored.receipt if stored is not None else None

    def close(self) -> None:
        """Close the underlying store."""
        self.store.close()


def open_node_store(path: Path | str, chain_id: int, settlement: str, node: str) -> NodeReceiptStore:
    """Open (creating if needed) the receipt store at ``path`` for ``node`` on one deployment."""
    domain = receipt_domain(chain_id, settlement)
    return NodeReceiptStore(ReceiptStore(path, domain=domain), domain, node)
