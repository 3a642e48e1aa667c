"""Counters an operator reads: sessions, bytes, unpaid exposure, receipts, settlements.

``RelayStats.snapshot()`` is a JSON-ready dict; ``write_snapshot`` replaces the status file atomically
(write to a temporary file, fsync, rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeclient._utils.files import atomic_write

__all__ = ["RelayStats", "read_snapshot", "write_snapshot"]


@dataclass
class RelayStats:
    """Process-wide relay counters (mutated only from the event loop thread)."""

    started_at: float = field(default_factory=time.time)
    sessions_total: int = 0
    sessions_active: int = 0
    sessions_refused: Counter[str] = field(default_factory=Counter)
    sessions_ended: Counter[str] = field(default_factory=Counter)
    probes: int = 0
    """Connections that only PINGed before any hello (consumers measuring the node)."""
    streams_opened: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    paid_bytes: int = 0
    receipts_stored: int = 0
    receipts_rejected: int = 0
    receipts_coalesced: int = 0
    """Receipts superseded by a newer one of the same session before they were stored."""
    amount_receipted: int = 0
    pauses: int = 0
    cutoffs: int = 0
    settlements: int = 0
    settled_amount: int = 0
    settlement_errors: int = 0
    last_settlement: dict[str, Any] | None = None
    unpaid_exposure_bytes: int = 0
    """Carried but not yet receipted bytes, summed over the open sessions (refreshed by the server)."""

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of every counter."""
        return {
            "startedAt": int(self.started_at),
            "uptimeS": round(time.time() - self.started_at, 1),
            "sessions": {
                "total": self.sessions_total,
                "active": self.sessions_active,
                "refused": dict(self.sessions_refused),
                "ended": dict(self.sessions_ended),
                "probes": self.probes,
            },
            "streamsOpened": self.streams_opened,
            "bytes": {"up": self.bytes_up, "down": self.bytes_down, "paid": self.paid_bytes},
            "unpaidExposureBytes": self.unpaid_exposure_bytes,
            "receipts": {
                "stored": self.receipts_stored,
                "rejected": self.receipts_rejected,
                "coalesced": self.receipts_coalesced,
                "amount": self.amount_receipted,
            },
            "pauses": self.pauses,
            "cutoffs": self.cutoffs,
            "settlements": {
                "count": self.settlements,
                "amount": self.settled_amount,
                "errors": self.settlement_errors,
                "last": self.last_settlement,
            },
        }


def write_snapshot(path: Path | str, snapshot: dict[str, Any]) -> None:
    """Atomically replace ``path`` with ``snapshot`` as JSON."""
    atomic_write(path, json.dumps(snapshot, indent=2, sort_keys=True) + "\n")


def read_snapshot(path: Path | str) -> dict[str, Any]:
    """Read a status file written by ``write_snapshot``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
