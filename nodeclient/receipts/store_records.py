"""The receipt store's records (what its queries return) and the row codecs shared by its modules.

Big integers (up to 2**128 − 1, plus uint64 timestamps) are stored as 39-digit zero-padded decimal
text: SQLite integers are 64-bit signed, and fixed width keeps SQL comparisons numeric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nodeclient.errors import StoreError
from nodeclient.receipts.model import SignedReceipt
from nodeclient.receipts.signing import ReceiptDomain

__all__ = [
    "BatchItem",
    "BatchRecord",
    "BatchState",
    "ChannelState",
    "ReceiptOutcome",
    "StoredReceipt",
]

BatchState = Literal["pending", "submitted", "confirmed", "failed", "skipped"]
_OPEN_STATES = ("pending", "submitted")
_WIDTH = 39  # digits of 2**128 - 1


def _n(value: int) -> str:
    return f"{value:0{_WIDTH}d}"


def _hex(data: bytes) -> str:
    return "0x" + data.hex()



@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """A receipt as stored: its row id (acceptance order), digest, the signed receipt, and when.

    ``created`` is False when `accept` found the same receipt already stored (idempotent duplicate).
    """

    id: int
    digest: bytes
    receipt: SignedReceipt
    accepted_at: float
    created: bool = True

    @property
    def digest_hex(self) -> str:
        """0x-hex digest."""
        return _hex(self.digest)


@dataclass(frozen=True, slots=True)
class ChannelState:
    """A channel (consumer, node) as the store knows it."""

    consumer: str
    node: str
    latest: StoredReceipt
    settled_amount: int
    settled_bytes: int
    settled_receipt_id: int | None
    chain_settled_amount: int | None
    chain_settled_bytes: int | None
    open_batch_id: int | None

    @property
    def known_settled_amount(self) -> int:
        """The larger of what this store's batches paid and what the chain last said."""
        return max(self.settled_amount, self.chain_settled_amount or 0)

    @property
    def unsettled_amount(self) -> int:
        """Amount the latest receipt can still collect (before escrow limits)."""
        return max(0, self.latest.receipt.cumulative_amount - self.known_settled_amount)


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    """What the chain did with one receipt of a batch (from ReceiptSettled / ReceiptSkipped events)."""

    status: Literal["settled", "skipped"]
    paid: int = 0
    fee: int = 0

    def __post_init__(self) -> None:
        if self.status not in ("settled", "skipped"):
            raise StoreError(f"Receipt outcome status {self.status!r} is not 'settled' or 'skipped'.")
        if self.paid < 0 or self.fee < 0 or self.fee > self.paid:
            raise StoreError(f"Receipt outcome paid={self.paid}, fee={self.fee} is inconsistent (0 <= fee <= paid).")
        if self.status == "skipped" and self.paid:
            raise StoreError(f"A skipped receipt pays nothing, got paid={self.paid}.")


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One receipt of a settlement batch, in settleMany order, with its outcome once confirmed."""

    position: int
    receipt: StoredReceipt
    outcome: ReceiptOutcome | None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A settlement batch and everything needed to reconcile it after a crash."""

    id: int
    node: str
    state: BatchState
    items: tuple[BatchItem, ...]
    nonce: int | None
    tx_hash: str | None
    tx_hashes: tuple[str, ...]
    block_number: int | None
    bundle_root: str | None
    bundle_file: str | None
    reason: str | None
    created_at: float
    updated_at: float
    block_hash: str | None = None
    reopened: int = 0


def _digest_key(value: bytes | str | SignedReceipt | StoredReceipt, domain: ReceiptDomain | None) -> str:
    if isinstance(value, StoredReceipt):
        return value.digest_hex
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, str):
        return value.lower()
    if domain is None:
        raise StoreError("A SignedReceipt can only be looked up once the store is bound to a domain.")
    from nodeclient.receipts.signing import receipt_digest

    return _hex(receipt_digest(value, domain))

_RECEIPT_COLUMNS = (
    "r.id, r.digest, r.consumer, r.node, r.session_id, r.cumulative_bytes, r.cumulative_amount, "
    "r.latency_ms, r.issued_at, r.signature, r.accepted_at"
)
_RECEIPT_SELECT = "SELECT " + _RECEIPT_COLUMNS + " FROM receipts r"
# Channels in open batches. CROSS JOIN fixes the join order: start from the few open batches (partial
# index batches_open), never from a channel's possibly millions of receipts.
_OPEN_BATCH_CHANNELS = (
    "SELECT rr.consumer AS consumer, rr.node AS node, min(b.id) AS batch_id "
    "FROM batches b CROSS JOIN batch_items bi CROSS JOIN receipts rr "
    "WHERE b.state IN ('pending', 'submitted') AND bi.batch_id = b.id AND rr.id = bi.receipt_id "
    "GROUP BY rr.consumer, rr.node"
)


def _stored(row: Sequence[Any], created: bool = True) -> StoredReceipt:
    # Rows were validated on the way in; rebuild the model without a second validation pass.
    receipt = SignedReceipt.model_construct(
        consumer=row[2],
        node=row[3],
        session_id=row[4],
        cumulative_bytes=int(row[5]),
        cumulative_amount=int(row[6]),
        latency_ms=int(row[7]),
        issued_at=int(row[8]),
        signature=row[9],
    )
    return StoredReceipt(int(row[0]), bytes.fromhex(row[1][2:]), receipt, float(row[10]), created)


def _tx_hash(value: bytes | str) -> str:
    text = _hex(value) if isinstance(value, bytes) else str(value).lower()
    if len(text) != 66 or not text.startswith("0x") or any(c not in "0123456789abcdef" for c in text[2:]):
        raise StoreError(f"Transaction hash {value!r} is not 32 bytes of 0x-hex.")
    return text

