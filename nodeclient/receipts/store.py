"""The node's durable receipt store and settlement ledger (SQLite, WAL, ``synchronous=FULL``).

Guarantees, each relied upon by someone else:

* **Acked means durable.** `ReceiptStore.accept` verifies a receipt, writes it in one transaction and
  returns only after that transaction has committed (WAL fsynced). The relay acknowledges a receipt
  only after `accept` returns, so a crash can lose an un-acked receipt, never an acked one.
* **Every accepted receipt is kept**, intermediate ones included (receipts are append-only; triggers
  refuse UPDATE and DELETE), so bundles can publish them for auditors.
* **Settlement is recorded before it is sent.** `begin_batch` durably records the intended batch;
  `mark_submitted` records the transaction hash and nonce (call it with the signed transaction's
  hash *before* broadcasting); `mark_confirmed` records per-receipt outcomes and advances the
  channels in one transaction. After a crash, `pending_batches` lists what must be reconciled
  against the chain by transaction hash and nonce — a batch is never re-sent under a new nonce.
* **Never "settled" without the chain saying so.** Only `mark_confirmed` moves settled amounts,
  and a batch is confirmed with all its outcomes or not at all.
* **A cache of the chain, not a second authority.** When the chain no longer has a confirmed
  batch's transaction (a reorg), `reopen_batch` takes its payments back out of the ledger and the
  batch is in flight again (``nodeclient.ledger`` decides when).

The store is one class composed of one module per concern: the file and its schema
(`store_schema`), accepting and reading receipts (`store_receipts`), channels (`store_channels`),
settlement batches (`store_batches`), export and integrity checks (`store_integrity`); the records
they return live in `store_records`.
"""

from __future__ import annotations

from nodeclient.receipts.store_batches import BatchesMixin
from nodeclient.receipts.store_channels import ChannelsMixin
from nodeclient.receipts.store_integrity import IntegrityMixin
from nodeclient.receipts.store_receipts import ReceiptsMixin
from nodeclient.receipts.store_records import (
    BatchItem,
    BatchRecord,
    BatchState,
    ChannelState,
    ReceiptOutcome,
    StoredReceipt,
)
from nodeclient.receipts.store_schema import APPLICATION_ID, SCHEMA_VERSION

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "BatchItem",
    "BatchRecord",
    "BatchState",
    "ChannelState",
    "ReceiptOutcome",
    "ReceiptStore",
    "StoredReceipt",
]


class ReceiptStore(ReceiptsMixin, ChannelsMixin, BatchesMixin, IntegrityMixin):
    """Durable receipt store and settlement ledger for one node's receipts on one deployment.

    One file per (chain id, ReceiptSettlement): the store binds itself to the domain of the first
    receipt it accepts (or to ``domain`` given here) and refuses any other afterwards. Safe to share
    between threads (one lock) and between processes (SQLite locking, ``BEGIN IMMEDIATE``).
    """

    def __repr__(self) -> str:
        return f"ReceiptStore({str(self.path)!r})"
