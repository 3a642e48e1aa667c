"""Exporting stored receipts and checking the store's invariants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

from nodeclient._utils.files import atomic_write
from nodeclient.receipts.errors import StoreCorruptError
from nodeclient.receipts.store_schema import StoreConnection

__all__ = ["IntegrityMixin"]


class IntegrityMixin(StoreConnection):
    # ------------------------------------------------------------------ export and integrity

    def export(
        self,
        destination: str | Path | IO[str],
        *,
        consumer: str | None = None,
        node: str | None = None,
        after_id: int = 0,
    ) -> int:
        """Write stored signed receipts as JSON lines (acceptance order); return how many.

        A path is written atomically (temporary file, fsync, rename), so a crash never leaves a
        half-written export under the final name.
        """
        lines = (s.receipt.to_json() + "\n" for s in self.iter_receipts(consumer=consumer, node=node, after_id=after_id))
        if not isinstance(destination, str | Path):
            count = 0
            for line in lines:
                destination.write(line)
                count += 1
            return count

        counted = _Counter(lines)
        atomic_write(destination, (line.encode("utf-8") for line in counted))
        return counted.count

    def integrity_problems(self) -> list[str]:
        """Everything wrong with the store (empty list: healthy). SQLite's own checks plus invariants."""
        problems: list[str] = []
        with self._read() as cur:
            result = [r[0] for r in cur.execute("PRAGMA integrity_check").fetchall()]
            if result != ["ok"]:
                problems.extend(f"sqlite: {line}" for line in result)
            fk = cur.execute("PRAGMA foreign_key_check").fetchall()
            problems.extend(f"foreign key: {row}" for row in fk)
            for (consumer, node) in cur.execute(
                "SELECT consumer, node FROM channels c WHERE latest_receipt_id IS NULL OR latest_receipt_id != "
                "(SELECT max(id) FROM receipts r WHERE r.consumer = c.consumer AND r.node = c.node)"
            ):
                problems.append(f"channel ({consumer}, {node}): latest receipt is not its newest receipt")
            # Within a channel, acceptance order must be strictly increasing amount.
            for (rid,) in cur.execute(
                "SELECT r.id FROM receipts r JOIN receipts p ON p.consumer = r.consumer AND p.node = r.node "
                "AND p.id = (SELECT max(id) FROM receipts q WHERE q.consumer = r.consumer AND q.node = r.node "
                "AND q.id < r.id) WHERE r.cumulative_amount <= p.cumulative_amount "
                "OR r.cumulative_bytes < p.cumulative_bytes OR r.issued_at < p.issued_at"
            ):
                problems.append(f"receipt {rid}: does not advance its channel")
            for (batch_id, state, missing) in cur.execute(
                "SELECT b.id, b.state, sum(bi.outcome IS NULL) FROM batches b JOIN batch_items bi ON bi.batch_id = b.id "
                "GROUP BY b.id HAVING (b.state = 'confirmed' AND sum(bi.outcome IS NULL) > 0) "
                "OR (b.state != 'confirmed' AND sum(bi.outcome IS NOT NULL) > 0)"
            ):
                problems.append(f"batch {batch_id} ({state}): outcomes recorded for only part of it ({missing} missing)")
            for (batch_id,) in cur.execute(
                "SELECT b.id FROM batches b WHERE NOT EXISTS (SELECT 1 FROM batch_items bi WHERE bi.batch_id = b.id)"
            ):
                problems.append(f"batch {batch_id}: has no receipts")
            for (consumer, node, count) in cur.execute(
                "SELECT r.consumer, r.node, count(DISTINCT b.id) FROM batch_items bi JOIN batches b ON b.id = bi.batch_id "
                "JOIN receipts r ON r.id = bi.receipt_id WHERE b.state IN ('pending', 'submitted') "
                "GROUP BY r.consumer, r.node HAVING count(DISTINCT b.id) > 1"
            ):
                problems.append(f"channel ({consumer}, {node}): in {count} open batches")
            ledger = {
                (c, n): 0 for (c, n) in cur.execute("SELECT consumer, node FROM channels")
            }
            for (consumer, node, paid) in cur.execute(
                "SELECT r.consumer, r.node, bi.paid FROM batch_items bi JOIN batches b ON b.id = bi.batch_id "
                "JOIN receipts r ON r.id = bi.receipt_id WHERE b.state = 'confirmed' AND bi.outcome = 'settled'"
            ):
                ledger[(consumer, node)] = ledger.get((consumer, node), 0) + int(paid)
            for (consumer, node, settled, latest_amount) in cur.execute(
                "SELECT c.consumer, c.node, c.settled_amount, r.cumulative_amount FROM channels c "
                "LEFT JOIN receipts r ON r.id = c.latest_receipt_id"
            ):
                if int(settled) != ledger.get((consumer, node), 0):
                    problems.append(
                        f"channel ({consumer}, {node}): settled_amount {int(settled)} != confirmed payments "
                        f"{ledger.get((consumer, node), 0)}"
                    )
                if latest_amount is not None and int(settled) > int(latest_amount):
                    problems.append(f"channel ({consumer}, {node}): settled beyond its latest receipt")
        return problems

    def check_integrity(self) -> None:
        """Raise `StoreCorruptError` listing the problems if `integrity_problems` finds any."""
        problems = self.integrity_problems()
        if problems:
            raise StoreCorruptError(str(self.path), "; ".join(problems[:20]))

    def stats(self, *, node: str | None = None) -> dict[str, int]:
        """Counts for status displays: receipts, channels, batches per state (of ``node`` when given)."""
        where, args = ("WHERE node = ?", (node,)) if node is not None else ("", ())
        with self._read() as cur:
            out = {
                "receipts": cur.execute(f"SELECT count(*) FROM receipts {where}", args).fetchone()[0],
                "channels": cur.execute(f"SELECT count(*) FROM channels {where}", args).fetchone()[0],
            }
            for state, count in cur.execute(f"SELECT state, count(*) FROM batches {where} GROUP BY state", args):
                out[f"batches_{state}"] = count
        return out



class _Counter:
    """Iterator wrapper that counts what passed through (an export streams, it is never held whole)."""

    def __init__(self, inner: Iterator[str]) -> None:
        self._inner = inner
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        for item in self._inner:
            self.count += 1
            yield item


