"""Channels (consumer, node) as the store knows them, the chain's view of them, and what a bundle must publish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from nodeclient.errors import StoreError
from nodeclient.receipts.errors import ReceiptNotFoundError
from nodeclient.receipts.model import UINT128_MAX, SignedReceipt, parse_address, to_checksum_address
from nodeclient.receipts.store_records import (
    _OPEN_BATCH_CHANNELS,
    _RECEIPT_COLUMNS,
    _RECEIPT_SELECT,
    ChannelState,
    StoredReceipt,
    _digest_key,
    _n,
    _stored,
)
from nodeclient.receipts.store_schema import StoreConnection

__all__ = ["ChannelsMixin"]


class ChannelsMixin(StoreConnection):
    def latest(self, consumer: str, node: str) -> StoredReceipt | None:
        """The channel's latest accepted receipt, or None."""
        state = self.channel(consumer, node)
        return state.latest if state else None

    def channel(self, consumer: str, node: str) -> ChannelState | None:
        """State of one channel, or None if it has no receipt."""
        rows = self._channels(
            "WHERE c.consumer = ? AND c.node = ?",
            (
                to_checksum_address(parse_address("consumer", consumer)),
                to_checksum_address(parse_address("node", node)),
            ),
        )
        return rows[0] if rows else None

    def channels(self, *, node: str | None = None) -> list[ChannelState]:
        """All channels (optionally of one node), ordered by consumer."""
        if node is None:
            return self._channels("", ())
        return self._channels("WHERE c.node = ?", (to_checksum_address(parse_address("node", node)),))

    def unsettled_channels(self, *, node: str | None = None, include_open: bool = False) -> list[ChannelState]:
        """Channels whose latest receipt can still collect something.

        Channels already in an open (pending/submitted) batch are left out unless ``include_open``:
        they must be reconciled first, never put into a second batch.
        """
        out = [c for c in self.channels(node=node) if c.unsettled_amount > 0]
        return out if include_open else [c for c in out if c.open_batch_id is None]

    def _channels(self, where: str, args: tuple[Any, ...]) -> list[ChannelState]:
        sql = (
            "SELECT c.consumer, c.node, c.settled_amount, c.settled_bytes, c.settled_receipt_id, "
            "c.chain_settled_amount, c.chain_settled_bytes, "
            "ob.batch_id, "
            + _RECEIPT_COLUMNS
            + " FROM channels c JOIN receipts r ON r.id = c.latest_receipt_id LEFT JOIN ("
            + _OPEN_BATCH_CHANNELS
            + ") ob ON ob.consumer = c.consumer AND ob.node = c.node "
            + where
            + " ORDER BY c.node, c.consumer"
        )
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [
            ChannelState(
                consumer=row[0],
                node=row[1],
                settled_amount=int(row[2]),
                settled_bytes=int(row[3]),
                settled_receipt_id=row[4],
                chain_settled_amount=None if row[5] is None else int(row[5]),
                chain_settled_bytes=None if row[6] is None else int(row[6]),
                open_batch_id=row[7],
                latest=_stored(row[8:]),
            )
            for row in rows
        ]

    def sync_channel(self, consumer: str, node: str, settled_amount: int, settled_bytes: int) -> None:
        """Record the chain's ``channelOf(consumer, node)`` as last read (kept apart from this store's ledger)."""
        consumer_cs = to_checksum_address(parse_address("consumer", consumer))
        node_cs = to_checksum_address(parse_address("node", node))
        for name, value in (("settled_amount", settled_amount), ("settled_bytes", settled_bytes)):
            if type(value) is not int or not 0 <= value <= UINT128_MAX:
                raise StoreError(f"Chain channel value {name}={value!r} is not an integer in 0..2**128-1.")
        with self._write() as cur:
            cur.execute(
                "UPDATE channels SET chain_settled_amount = ?, chain_settled_bytes = ?, chain_synced_at = ? "
                "WHERE consumer = ? AND node = ?",
                (_n(settled_amount), _n(settled_bytes), time.time(), consumer_cs, node_cs),
            )
            if cur.rowcount == 0:
                raise StoreError(f"Channel (consumer {consumer_cs}, node {node_cs}) has no receipts in this store.")

    # ------------------------------------------------------------------ settlement batches

    def bundle_receipts(self, receipts: Sequence[bytes | str | StoredReceipt | SignedReceipt]) -> list[StoredReceipt]:
        """Receipts a bundle for settling ``receipts`` must publish.

        For each receipt to settle (the channel's chosen latest), every receipt of its channel accepted
        after the channel's previously settled receipt, up to and including it. Acceptance order.
        """
        out: list[StoredReceipt] = []
        with self._read() as cur:
            for item in receipts:
                key = _digest_key(item, self._domain)
                row = cur.execute(_RECEIPT_SELECT + " WHERE r.digest = ?", (key,)).fetchone()
                if row is None:
                    raise ReceiptNotFoundError(key)
                target = _stored(row)
                floor = cur.execute(
                    "SELECT settled_receipt_id FROM channels WHERE consumer = ? AND node = ?",
                    (target.receipt.consumer, target.receipt.node),
                ).fetchone()[0] or 0
                if floor >= target.id:
                    out.append(target)  # re-settling the same receipt after a top-up: only itself
                    continue
                rows = cur.execute(
                    _RECEIPT_SELECT + " WHERE r.consumer = ? AND r.node = ? AND r.id > ? AND r.id <= ? ORDER BY r.id",
                    (target.receipt.consumer, target.receipt.node, floor, target.id),
                ).fetchall()
                out.extend(_stored(r) for r in rows)
        return out

