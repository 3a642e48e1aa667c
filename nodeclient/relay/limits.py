"""Operator limits: a token-bucket rate cap and persisted per-day / per-month byte counters.

The rate cap keeps the operator's own traffic first: the relay as a whole never sends faster than
the configured rate, however many sessions run. Day and month counters survive restarts (a small
SQLite file beside the receipt store), so a restart does not hand out a fresh monthly quota.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nodeclient.errors import StoreError
from nodeclient.relay.errors import CapReachedError, RelayConfigError

__all__ = ["Caps", "TokenBucket", "UsageLedger"]


@dataclass(frozen=True, slots=True)
class Caps:
    """Byte caps the operator sets; ``None`` means no cap."""

    per_session_bytes: int | None = None
    per_day_bytes: int | None = None
    per_month_bytes: int | None = None


class TokenBucket:
    """An asyncio token bucket: ``rate`` bytes per second, bursts up to ``burst`` bytes."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise RelayConfigError("rate_bytes_per_s", rate, "must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate / 10, 256 * 1024))
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, amount: int) -> None:
        """Wait until ``amount`` bytes may be sent. Amounts above ``burst`` go into debt and wait it off."""
        # The lock serialises waiters so one large taker cannot starve behind a stream of small ones.
        async with self._lock:
            self._refill()
            self._tokens -= amount
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate)
                self._refill()


def _period_keys(ts: float) -> tuple[str, str, float]:
    """("d:YYYY-MM-DD", "m:YYYY-MM", next UTC midnight) of ``ts``."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86_400
    return "d:" + moment.strftime("%Y-%m-%d"), "m:" + moment.strftime("%Y-%m"), midnight


class UsageLedger:
    """Bytes carried per UTC day and per UTC month, persisted in SQLite, checked against ``Caps``.

    Counts are charged when bytes are carried (in memory, cheap) and flushed to disk by ``flush``
    (after each stored receipt and at session end); a crash loses at most the unflushed part, which is
    bounded by the credit limit of the open sessions.
    """

    def __init__(self, path: Path | str | None, caps: Caps) -> None:
        self.caps = caps
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._db: sqlite3.Connection | None = None
        self._keys = ("", "", 0.0)
        if path is not None:
            try:
                self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                # Counters, not money: losing the last second of counts on power loss is acceptable,
                # an fsync per flush is not worth it (receipts have their own FULL-synchronous store).
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS usage (period TEXT PRIMARY KEY, bytes INTEGER NOT NULL)"
                )
                for period, nbytes in self._db.execute("SELECT period, bytes FROM usage"):
                    self._totals[period] = int(nbytes)
            except sqlite3.Error as exc:
                raise StoreError(f"relay usage ledger {path} cannot be opened: {exc}") from None

    def _current_keys(self) -> tuple[str, str]:
        # Called per carried chunk: format the period keys once per UTC day, not per call.
        now = time.time()
        if now >= self._keys[2]:
            self._keys = _period_keys(now)
        return self._keys[0], self._keys[1]

    def used(self) -> tuple[int, int]:
        """(bytes today, bytes this month), UTC."""
        day, month = self._current_keys()
        return self._totals.get(day, 0), self._totals.get(month, 0)

    def check(self, nbytes: int, session_bytes: int) -> None:
        """Raise ``CapReachedError`` if carrying ``nbytes`` more would pass any cap."""
        caps = self.caps
        if caps.per_session_bytes is not None and session_bytes + nbytes > caps.per_session_bytes:
            raise CapReachedError("per-session", session_bytes, caps.per_session_bytes)
        today, month = self.used()
        if caps.per_day_bytes is not None and today + nbytes > caps.per_day_bytes:
            raise CapReachedError("daily", today, caps.per_day_bytes)
        if caps.per_month_bytes is not None and month + nbytes > caps.per_month_bytes:
            raise CapReachedError("monthly", month, caps.per_month_bytes)

    def charge(self, nbytes: int) -> None:
        """Count ``nbytes`` carried now."""
        keys = self._current_keys()
        with self._lock:
            for key in keys:
                self._totals[key] = self._totals.get(key, 0) + nbytes
                self._pending[key] = self._pending.get(key, 0) + nbytes

    def flush(self) -> None:
        """Persist counts charged since the last flush (blocking: call from a thread in asyncio code)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending or self._db is None:
            return
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                for period, nbytes in pending.items():
                    self._db.execute(
                        "INSERT INTO usage(period, bytes) VALUES(?, ?) "
                        "ON CONFLICT(period) DO UPDATE SET bytes = bytes + excluded.bytes",
                        (period, nbytes),
                    )
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"relay usage ledger write failed: {exc}") from None

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None
