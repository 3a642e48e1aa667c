"""Paid traffic over time, from the receipts the node stored.

A receipt carries cumulative bytes and amount for its channel (consumer, node), so what one receipt
added is its increase over the channel's previous receipt; that increase is counted in the hour the
node accepted the receipt. The series is built incrementally: each refresh reads only the receipts
stored since the last one (by row id), so a node with millions of receipts pays for them once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUCKET_S", "TrafficPoint", "TrafficSeries"]

#: Width of one traffic bucket in seconds (UTC hours).
BUCKET_S = 3600


@dataclass
class TrafficPoint:
    """Bytes and value the node's receipts added within one bucket."""

    start: int
    bytes: int = 0
    amount: int = 0
    receipts: int = 0


@dataclass
class TrafficSeries:
    """Hourly paid bytes and receipted value of one node (blocking reads: call ``refresh`` in a thread)."""

    store: Any
    node: str
    _last_id: int = 0
    _channel_totals: dict[str, tuple[int, int]] = field(default_factory=dict)
    _points: dict[int, TrafficPoint] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self) -> list[TrafficPoint]:
        """Read receipts stored since the last refresh; return every bucket, oldest first."""
        with self._lock:
            for stored in self.store.iter_receipts(node=self.node, after_id=self._last_id):
                receipt = stored.receipt
                before_bytes, before_amount = self._channel_totals.get(receipt.consumer, (0, 0))
                self._channel_totals[receipt.consumer] = (receipt.cumulative_bytes, receipt.cumulative_amount)
                start = int(stored.accepted_at) // BUCKET_S * BUCKET_S
                point = self._points.setdefault(start, TrafficPoint(start))
                # Cumulative counters only grow (the store refuses a receipt that lowers them).
                point.bytes += receipt.cumulative_bytes - before_bytes
                point.amount += receipt.cumulative_amount - before_amount
                point.receipts += 1
                self._last_id = stored.id
            return [self._points[k] for k in sorted(self._points)]
