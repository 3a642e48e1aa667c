"""Settlement batches: the store's ledger of what was sent to the chain and what the chain did with it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nodeclient.errors import StoreError
from nodeclient.receipts.errors import (
    BatchConflictError,
    BatchNotFoundError,
    BatchStateError,
    NothingOwedError,
    ReceiptNotFoundError,
)
from nodeclient.receipts.model import SignedReceipt
from nodeclient.receipts.store_records import (
    _OPEN_BATCH_CHANNELS,
    _OPEN_STATES,
    _RECEIPT_COLUMNS,
    _RECEIPT_SELECT,
    BatchItem,
    BatchRecord,
    BatchState,
    ReceiptOutcome,
    StoredReceipt,
    _digest_key,
    _hex,
    _n,
    _stored,
    _tx_hash,
)
from nodeclient.receipts.store_schema import StoreConnection

__all__ = ["BatchesMixin", "LedgerAheadError"]


class LedgerAheadError(StoreError):
    """A confirmed payment exceeds what the store thinks the channel still owes.

    The chain is right by definition, so the store is behind it: an earlier batch it recorded as
    confirmed is no longer on chain. Reopen that batch, then confirm this one.
    """

    def __init__(self, batch_id: int, digest: str, paid: int, amount: int, settled: int) -> None:
        super().__init__(
            f"Batch {batch_id} receipt {digest} reports paid {paid}, more than the {amount - settled} it could owe "
            f"(cumulative {amount}, settled {settled} in this store): an earlier batch of the channel is no longer on chain."
        )
        self.batch_id = batch_id
        self.digest = digest


class BatchesMixin(StoreConnection):
    def begin_batch(
        self,
        receipts: Sequence[bytes | str | StoredReceipt | SignedReceipt],
        *,
        bundle_root: bytes | None = None,
        bundle_file: str | None = None,
    ) -> int:
        """Durably record an intended ``settleMany`` batch (state 'pending'); return its id.

        ``receipts``: the receipts to settle, in settleMany order, one per channel, all of one node,
        each stored and each still owed something. Refuses a channel already in an open batch
        (`BatchConflictError`). Call before signing or sending the transaction.
        """
        if not receipts:
            raise StoreError("A settlement batch needs at least one receipt.")
        now = time.time()
        with self._write() as cur:
            rows = []
            for item in receipts:
                key = _digest_key(item, self._domain)
                row = cur.execute(_RECEIPT_SELECT + " WHERE r.digest = ?", (key,)).fetchone()
                if row is None:
                    raise ReceiptNotFoundError(key)
                rows.append(_stored(row))
            node = rows[0].receipt.node
            seen: set[tuple[str, str]] = set()
            for index, stored in enumerate(rows):
                receipt = stored.receipt
                if receipt.node != node:
                    raise StoreError(
                        f"Batch receipt {index} is for node {receipt.node}; a batch settles one node ({node})."
                    )
                if receipt.channel in seen:
                    raise StoreError(f"Batch receipt {index} repeats channel ({receipt.consumer}, {node}).")
                seen.add(receipt.channel)
                open_batch = cur.execute(
                    "SELECT batch_id FROM (" + _OPEN_BATCH_CHANNELS + ") WHERE consumer = ? AND node = ?",
                    receipt.channel,
                ).fetchone()
                if open_batch is not None:
                    raise BatchConflictError(receipt.consumer, node, open_batch[0])
                settled = cur.execute(
                    "SELECT max(settled_amount, coalesce(chain_settled_amount, '')) FROM channels "
                    "WHERE consumer = ? AND node = ?",
                    receipt.channel,
                ).fetchone()[0]
                if receipt.cumulative_amount <= int(settled or 0):
                    raise NothingOwedError(receipt.consumer, node, receipt.cumulative_amount, int(settled))
            cur.execute(
                "INSERT INTO batches(node, state, bundle_root, bundle_file, created_at, updated_at) "
                "VALUES (?, 'pending', ?, ?, ?, ?)",
                (node, _hex(bundle_root) if bundle_root is not None else None, bundle_file, now, now),
            )
            batch_id = int(cur.lastrowid or 0)
            cur.executemany(
                "INSERT INTO batch_items(batch_id, receipt_id, position) VALUES (?, ?, ?)",
                [(batch_id, stored.id, position) for position, stored in enumerate(rows)],
            )
        return batch_id

    def mark_submitted(self, batch_id: int, tx_hash: bytes | str, nonce: int) -> None:
        """Record the (signed) transaction for a batch: pending → submitted.

        Call it with the signed transaction's hash before broadcasting, so a crash right after the
        broadcast still leaves the hash to reconcile. Calling again with a new hash at the same nonce
        records a fee-bump replacement; a different nonce is refused (`BatchStateError`): a batch is
        never re-sent under a new nonce. Repeating the same call is a no-op.
        """
        tx = _tx_hash(tx_hash)
        if type(nonce) is not int or nonce < 0:
            raise StoreError(f"Transaction nonce {nonce!r} is not a non-negative integer.")
        with self._write() as cur:
            state, current_nonce = self._batch_state(cur, batch_id)
            if state not in _OPEN_STATES:
                raise BatchStateError(batch_id, state, "marked submitted")
            if state == "submitted" and current_nonce != nonce:
                raise BatchStateError(
                    batch_id, state, f"re-sent under nonce {nonce}",
                    f"it was sent under nonce {current_nonce}; reconcile that nonce on chain, or replace at the same nonce",
                )
            owner = cur.execute("SELECT batch_id FROM batch_txs WHERE tx_hash = ?", (tx,)).fetchone()
            if owner is not None and owner[0] != batch_id:
                raise StoreError(f"Transaction {tx} is already recorded for settlement batch {owner[0]}.")
            if owner is None:
                cur.execute(
                    "INSERT INTO batch_txs(tx_hash, batch_id, nonce, created_at) VALUES (?, ?, ?, ?)",
                    (tx, batch_id, nonce, time.time()),
                )
            cur.execute(
                "UPDATE batches SET state = 'submitted', tx_hash = ?, nonce = ?, updated_at = ? WHERE id = ?",
                (tx, nonce, time.time(), batch_id),
            )

    def mark_confirmed(
        self,
        batch_id: int,
        outcomes: Sequence[ReceiptOutcome] | Mapping[bytes | str, ReceiptOutcome],
        *,
        tx_hash: bytes | str | None = None,
        block_number: int | None = None,
        block_hash: bytes | str | None = None,
    ) -> None:
        """Record a mined batch: submitted → confirmed, with every receipt's outcome, in one transaction.

        ``outcomes``: one per batch item, in batch order, or a mapping digest → outcome covering
        exactly the batch. ``tx_hash``: the transaction that was mined (one of the batch's recorded
        hashes; default the latest). ``block_hash``: the block it was mined in, so a later check can
        tell whether a reorg moved or removed it. Channels advance by what was paid. Confirming an
        already confirmed batch with the same outcomes is a no-op; anything else is refused, and so is
        a payment larger than the store thinks the channel still owes (`LedgerAheadError`: an earlier
        confirmed batch of the channel is no longer on chain; reopen it first).
        """
        mined_block = None if block_hash is None else _tx_hash(block_hash)
        with self._write() as cur:
            state, _ = self._batch_state(cur, batch_id)
            items = cur.execute(_ITEMS_SELECT, (batch_id,)).fetchall()
            resolved = _resolve_outcomes(batch_id, items, outcomes)
            mined = None if tx_hash is None else _tx_hash(tx_hash)
            if state == "confirmed":
                previous = [
                    ReceiptOutcome(row[7], int(row[8] or 0), int(row[9] or 0)) for row in items  # type: ignore[arg-type]
                ]
                current_tx = cur.execute("SELECT tx_hash FROM batches WHERE id = ?", (batch_id,)).fetchone()[0]
                if previous == resolved and (mined is None or mined == current_tx):
                    return
                raise BatchStateError(batch_id, state, "confirmed again with different outcomes")
            if state != "submitted":
                raise BatchStateError(batch_id, state, "confirmed", "only a submitted batch can be confirmed")
            if mined is not None:
                known = cur.execute(
                    "SELECT 1 FROM batch_txs WHERE tx_hash = ? AND batch_id = ?", (mined, batch_id)
                ).fetchone()
                if known is None:
                    raise BatchStateError(batch_id, state, f"confirmed by transaction {mined}",
                                          "that hash was never recorded for this batch")
            for row, outcome in zip(items, resolved, strict=True):
                _apply_outcome(cur, batch_id, row, outcome)
            cur.execute(
                "UPDATE batches SET state = 'confirmed', tx_hash = coalesce(?, tx_hash), block_number = ?, "
                "block_hash = ?, updated_at = ? WHERE id = ?",
                (mined, block_number, mined_block, time.time(), batch_id),
            )

    def reopen_batch(self, batch_id: int, reason: str) -> None:
        """The chain no longer has a confirmed batch's transaction: confirmed → submitted, in one transaction.

        What the batch paid leaves the channels' ledger (each channel's settled receipt falls back to
        the newest one a still-confirmed batch settled), its outcomes are cleared, and the batch is in
        flight again under its recorded nonce: reconciliation re-sends the signed transaction or, if
        that nonce went to another transaction, fails the batch so its receipts settle in a new one.
        """
        with self._write() as cur:
            state, _ = self._batch_state(cur, batch_id)
            if state != "confirmed":
                raise BatchStateError(batch_id, state, "reopened", "only a confirmed batch can be reopened")
            items = cur.execute(_ITEMS_SELECT, (batch_id,)).fetchall()
            cur.execute(
                "UPDATE batch_items SET outcome = NULL, paid = NULL, fee = NULL WHERE batch_id = ?", (batch_id,)
            )
            for row in items:
                if row[7] == "settled":
                    _rewind_channel(cur, row[3], row[4], int(row[8]))
            cur.execute(
                "UPDATE batches SET state = 'submitted', block_number = NULL, block_hash = NULL, reason = ?, "
                "reopened = reopened + 1, updated_at = ? WHERE id = ?",
                (str(reason), time.time(), batch_id),
            )

    def confirmed_batches(self, *, above_block: int | None = None, node: str | None = None) -> list[BatchRecord]:
        """Confirmed batches, oldest first; ``above_block``: only those mined in a later block (not final yet)."""
        return self._batches(
            "WHERE b.state = 'confirmed' AND (? IS NULL OR b.block_number IS NULL OR b.block_number > ?) "
            "AND (? IS NULL OR b.node = ?)",
            (above_block, above_block, node, node),
        )

    def mark_failed(self, batch_id: int, reason: str) -> None:
        """Close a batch that did not settle (reverted, or its nonce was consumed by another transaction).

        Its receipts become settleable again. Only call for a submitted batch once the chain shows
        none of its recorded transactions can still be mined.
        """
        self._close(batch_id, "failed", reason, ("pending", "submitted"))

    def mark_skipped(self, batch_id: int, reason: str) -> None:
        """Close a pending batch that was never signed or sent (e.g. the gas policy declined it)."""
        self._close(batch_id, "skipped", reason, ("pending",))

    def _close(self, batch_id: int, state: str, reason: str, allowed: tuple[str, ...]) -> None:
        with self._write() as cur:
            current, _ = self._batch_state(cur, batch_id)
            if current == state:
                return
            if current not in allowed:
                raise BatchStateError(batch_id, current, f"marked {state}")
            cur.execute(
                "UPDATE batches SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (state, str(reason), time.time(), batch_id),
            )

    def _batch_state(self, cur: sqlite3.Cursor, batch_id: int) -> tuple[str, int | None]:
        row = cur.execute("SELECT state, nonce FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise BatchNotFoundError(batch_id)
        return row[0], row[1]

    def batch(self, batch_id: int) -> BatchRecord:
        """One batch with its items and transaction hashes (`BatchNotFoundError` if absent)."""
        records = self._batches("WHERE b.id = ?", (batch_id,))
        if not records:
            raise BatchNotFoundError(batch_id)
        return records[0]

    def batches(self, *, state: BatchState | None = None) -> list[BatchRecord]:
        """All batches (optionally in one state), oldest first."""
        if state is None:
            return self._batches("", ())
        return self._batches("WHERE b.state = ?", (state,))

    def published_bundles(self, *, node: str | None = None) -> dict[str, bytes]:
        """Bundle file name → bundle root of every batch that was sent (submitted or confirmed).

        These are the bundles a node publishes: a batch that was never sent, or that failed, names a
        root no ``BatchSettled`` event carries.
        """
        with self._read() as cur:
            rows = cur.execute(
                "SELECT bundle_file, bundle_root FROM batches WHERE state IN ('submitted', 'confirmed') "
                "AND bundle_file IS NOT NULL AND bundle_root IS NOT NULL AND (? IS NULL OR node = ?)",
                (node, node),
            ).fetchall()
        return {str(name): bytes.fromhex(str(root).removeprefix("0x")) for name, root in rows}

    def pending_batches(self) -> list[BatchRecord]:
        """Open batches (pending or submitted), oldest first: what crash recovery must reconcile."""
        return self._batches("WHERE b.state IN ('pending', 'submitted')", ())

    def _batches(self, where: str, args: tuple[Any, ...]) -> list[BatchRecord]:
        with self._read() as cur:
            rows = cur.execute(
                f"SELECT {', '.join('b.' + c for c in _BATCH_COLUMNS)} FROM batches b {where} ORDER BY b.id", args
            ).fetchall()
            out = []
            for row in rows:
                items = cur.execute(
                    "SELECT bi.position, bi.outcome, bi.paid, bi.fee, " + _RECEIPT_COLUMNS
                    + " FROM batch_items bi JOIN receipts r ON r.id = bi.receipt_id WHERE bi.batch_id = ? "
                    "ORDER BY bi.position",
                    (row[0],),
                ).fetchall()
                txs = cur.execute(
                    "SELECT tx_hash FROM batch_txs WHERE batch_id = ? ORDER BY created_at, rowid", (row[0],)
                ).fetchall()
                out.append(
                    BatchRecord(
                        **dict(zip(_BATCH_COLUMNS, row, strict=True)),
                        tx_hashes=tuple(t[0] for t in txs),
                        items=tuple(
                            BatchItem(
                                position=i[0],
                                outcome=None if i[1] is None else ReceiptOutcome(i[1], int(i[2]), int(i[3])),
                                receipt=_stored(i[4:]),
                            )
                            for i in items
                        ),
                    )
                )
        return out


# Batch columns, named as the BatchRecord fields they fill.
_BATCH_COLUMNS = (
    "id", "node", "state", "nonce", "tx_hash", "block_number", "bundle_root", "bundle_file", "reason",
    "created_at", "updated_at", "block_hash", "reopened",
)
_ITEMS_SELECT = (
    "SELECT bi.receipt_id, bi.position, r.digest, r.consumer, r.node, r.cumulative_amount, "
    "r.cumulative_bytes, bi.outcome, bi.paid, bi.fee FROM batch_items bi "
    "JOIN receipts r ON r.id = bi.receipt_id WHERE bi.batch_id = ? ORDER BY bi.position"
)


def _apply_outcome(cur: sqlite3.Cursor, batch_id: int, row: Sequence[Any], outcome: ReceiptOutcome) -> None:
    """Record one item's outcome; a settled receipt advances its channel by what it paid."""
    receipt_id, consumer, node = row[0], row[3], row[4]
    amount, nbytes = int(row[5]), int(row[6])
    settled = int(
        cur.execute("SELECT settled_amount FROM channels WHERE consumer = ? AND node = ?", (consumer, node)).fetchone()[0]
    )
    if outcome.status == "settled":
        if settled + outcome.paid > amount:
            raise LedgerAheadError(batch_id, row[2], outcome.paid, amount, settled)
        cur.execute(
            "UPDATE channels SET settled_amount = ?, settled_bytes = ?, settled_receipt_id = ? "
            "WHERE consumer = ? AND node = ?",
            (_n(settled + outcome.paid), _n(nbytes), receipt_id, consumer, node),
        )
    cur.execute(
        "UPDATE batch_items SET outcome = ?, paid = ?, fee = ? WHERE batch_id = ? AND receipt_id = ?",
        (outcome.status, _n(outcome.paid), _n(outcome.fee), batch_id, receipt_id),
    )


def _rewind_channel(cur: sqlite3.Cursor, consumer: str, node: str, paid: int) -> None:
    """Take a reopened batch's payment out of a channel (its outcomes are already cleared)."""
    settled = int(
        cur.execute("SELECT settled_amount FROM channels WHERE consumer = ? AND node = ?", (consumer, node)).fetchone()[0]
    )
    # The newest receipt a still-confirmed batch settled is the channel's settled receipt again.
    floor = cur.execute(
        "SELECT r.id, r.cumulative_bytes FROM batch_items bi JOIN batches b ON b.id = bi.batch_id "
        "JOIN receipts r ON r.id = bi.receipt_id WHERE b.state = 'confirmed' AND bi.outcome = 'settled' "
        "AND r.consumer = ? AND r.node = ? ORDER BY r.id DESC LIMIT 1",
        (consumer, node),
    ).fetchone()
    cur.execute(
        "UPDATE channels SET settled_amount = ?, settled_bytes = ?, settled_receipt_id = ? WHERE consumer = ? AND node = ?",
        (_n(max(0, settled - paid)), floor[1] if floor else _n(0), floor[0] if floor else None, consumer, node),
    )


def _resolve_outcomes(
    batch_id: int,
    items: Sequence[Sequence[Any]],
    outcomes: Sequence[ReceiptOutcome] | Mapping[bytes | str, ReceiptOutcome],
) -> list[ReceiptOutcome]:
    if isinstance(outcomes, Mapping):
        by_digest = {(_hex(k) if isinstance(k, bytes) else str(k).lower()): v for k, v in outcomes.items()}
        digests = [row[2] for row in items]
        unknown = set(by_digest) - set(digests)
        missing = [d for d in digests if d not in by_digest]
        if unknown or missing:
            raise StoreError(
                f"Outcomes for batch {batch_id} must cover exactly its {len(items)} receipts "
                f"(missing {sorted(missing)[:3]}, not in batch {sorted(unknown)[:3]})."
            )
        resolved = [by_digest[d] for d in digests]
    else:
        resolved = list(outcomes)
        if len(resolved) != len(items):
            raise StoreError(f"Batch {batch_id} has {len(items)} receipts but {len(resolved)} outcomes were given.")
    for outcome in resolved:
        if not isinstance(outcome, ReceiptOutcome):
            raise StoreError(f"Outcome {outcome!r} for batch {batch_id} is not a ReceiptOutcome.")
    return resolved


