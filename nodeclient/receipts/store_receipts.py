"""Accepting receipts into the store (verify, check they advance their channel, insert durably) and reading them back."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any, TypedDict, Unpack

from nodeclient.errors import ReceiptError
from nodeclient.receipts.errors import (
    NodeMismatchError,
    ReceiptFieldError,
    ReceiptNotFoundError,
    StaleReceiptError,
)
from nodeclient.receipts.model import SignedReceipt, parse_address, to_checksum_address
from nodeclient.receipts.signing import ReceiptDomain, verify_receipt
from nodeclient.receipts.store_records import (
    _RECEIPT_SELECT,
    StoredReceipt,
    _digest_key,
    _hex,
    _n,
    _stored,
)
from nodeclient.receipts.store_schema import StoreConnection

__all__ = ["ReceiptQuery", "ReceiptsMixin"]


class ReceiptQuery(TypedDict, total=False):
    """Filters of `ReceiptsMixin.list_receipts` / `iter_receipts`: all optional, combined with AND."""

    consumer: str | None
    node: str | None
    #: only receipts stored after this row id (paging).
    after_id: int
    limit: int | None
    session_id: str | None


class ReceiptsMixin(StoreConnection):
    # ------------------------------------------------------------------ accepting receipts

    def accept(
        self,
        signed: SignedReceipt,
        *,
        expected_domain: ReceiptDomain,
        expected_node: str,
        max_future_seconds: int | None = None,
    ) -> StoredReceipt:
        """Verify ``signed`` and store it durably; return the stored record.

        Checks, in order: the receipt names ``expected_node`` (`NodeMismatchError`), the signature is
        the consumer's under ``expected_domain`` (`SignatureError` / `InvalidSignerError`), the store
        is bound to that domain (`DomainMismatchError`), then — unless it is an exact duplicate, which
        returns the existing record with ``created=False`` — that it advances its channel: amount
        strictly up, bytes and issuedAt not down (`StaleReceiptError`). A refused receipt leaves the
        store unchanged. Returns only after the transaction is on disk: acknowledge after this.

        ``max_future_seconds``: refuse an issuedAt more than this far ahead of the local clock. A
        consumer whose clock runs years ahead would otherwise pin the channel's issuedAt floor there
        (later receipts may not go back) and every bundle would carry a future timestamp.
        """
        return self._accept_many([signed], expected_domain, expected_node, max_future_seconds)[0]

    def accept_many(
        self,
        receipts: Sequence[SignedReceipt],
        *,
        expected_domain: ReceiptDomain,
        expected_node: str,
        max_future_seconds: int | None = None,
    ) -> list[StoredReceipt]:
        """`accept` for several receipts in one transaction (one fsync): all are stored or none.

        An error names the failing receipt's index (``exc.index``); nothing of the call is stored.
        """
        return self._accept_many(receipts, expected_domain, expected_node, max_future_seconds)

    def _accept_many(
        self,
        receipts: Sequence[SignedReceipt],
        domain: ReceiptDomain,
        expected_node: str,
        max_future_seconds: int | None = None,
    ) -> list[StoredReceipt]:
        node = to_checksum_address(parse_address("expected_node", expected_node))
        horizon = None if max_future_seconds is None else int(time.time()) + max_future_seconds
        verified: list[tuple[SignedReceipt, str]] = []
        # Signature checks are the expensive part: do them before taking the write lock.
        for index, signed in enumerate(receipts):
            try:
                if not isinstance(signed, SignedReceipt):
                    raise ReceiptError(f"Expected a SignedReceipt, got {type(signed).__name__}.")
                if signed.node != node:
                    raise NodeMismatchError(node, signed.node)
                if horizon is not None and signed.issued_at > horizon:
                    raise ReceiptFieldError(
                        "issuedAt", signed.issued_at,
                        f"is more than {max_future_seconds} s ahead of this node's clock ({horizon - max_future_seconds})",
                    )
                verified.append((signed, _hex(verify_receipt(signed, domain))))
            except ReceiptError as exc:
                raise _at_index(exc, index, len(receipts)) from None
        now = time.time()
        out: list[StoredReceipt] = []
        with self._write() as cur:
            self._bind_domain(domain, cur)
            for index, (signed, digest) in enumerate(verified):
                try:
                    out.append(self._insert(cur, signed, digest, now))
                except ReceiptError as exc:
                    raise _at_index(exc, index, len(receipts)) from None
        return out

    def _insert(self, cur: sqlite3.Cursor, signed: SignedReceipt, digest: str, now: float) -> StoredReceipt:
        existing = cur.execute(_RECEIPT_SELECT + " WHERE r.digest = ?", (digest,)).fetchone()
        if existing is not None:
            return _stored(existing, created=False)
        latest = cur.execute(
            "SELECT r.cumulative_amount, r.cumulative_bytes, r.issued_at FROM channels c "
            "JOIN receipts r ON r.id = c.latest_receipt_id WHERE c.consumer = ? AND c.node = ?",
            (signed.consumer, signed.node),
        ).fetchone()
        if latest is None:
            _check_advance(signed, 0, 0, 0)
            cur.execute("INSERT OR IGNORE INTO channels(consumer, node) VALUES (?, ?)", (signed.consumer, signed.node))
        else:
            _check_advance(signed, int(latest[0]), int(latest[1]), int(latest[2]))
        cur.execute(
            "INSERT INTO receipts(digest, consumer, node, session_id, cumulative_bytes, cumulative_amount, "
            "latency_ms, issued_at, signature, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                digest,
                signed.consumer,
                signed.node,
                signed.session_id,
                _n(signed.cumulative_bytes),
                _n(signed.cumulative_amount),
                signed.latency_ms,
                _n(signed.issued_at),
                signed.signature,
                now,
            ),
        )
        receipt_id = cur.lastrowid
        cur.execute(
            "UPDATE channels SET latest_receipt_id = ? WHERE consumer = ? AND node = ?",
            (receipt_id, signed.consumer, signed.node),
        )
        return StoredReceipt(int(receipt_id or 0), bytes.fromhex(digest[2:]), signed, now, True)

    # ------------------------------------------------------------------ queries

    def get(self, digest: bytes | str) -> StoredReceipt:
        """The stored receipt with this digest (`ReceiptNotFoundError` if absent)."""
        key = _digest_key(digest, None)
        with self._lock:
            row = self._conn.execute(_RECEIPT_SELECT + " WHERE r.digest = ?", (key,)).fetchone()
        if row is None:
            raise ReceiptNotFoundError(key)
        return _stored(row)

    def contains(self, digest: bytes | str) -> bool:
        """True if a receipt with this digest is stored."""
        with self._lock:
            return (
                self._conn.execute("SELECT 1 FROM receipts WHERE digest = ?", (_digest_key(digest, None),)).fetchone()
                is not None
            )

    def count(self) -> int:
        """Number of stored receipts."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM receipts").fetchone()[0])

    def list_receipts(self, **query: Unpack[ReceiptQuery]) -> list[StoredReceipt]:
        """Stored receipts in acceptance order, optionally filtered by channel side or session."""
        return list(self.iter_receipts(**query))

    def iter_receipts(self, **query: Unpack[ReceiptQuery]) -> Iterator[StoredReceipt]:
        """Like `list_receipts`, streaming (pages of 1000) so an export of millions stays small in memory."""
        unknown = sorted(query.keys() - ReceiptQuery.__optional_keys__)
        if unknown:
            raise TypeError(f"iter_receipts() got unknown filter(s) {', '.join(unknown)}")
        consumer, node, session_id = query.get("consumer"), query.get("node"), query.get("session_id")
        after_id, limit = query.get("after_id", 0), query.get("limit")
        where = ["r.id > ?"]
        args: list[Any] = [after_id]
        if consumer is not None:
            where.append("r.consumer = ?")
            args.append(to_checksum_address(parse_address("consumer", consumer)))
        if node is not None:
            where.append("r.node = ?")
            args.append(to_checksum_address(parse_address("node", node)))
        if session_id is not None:
            where.append("r.session_id = ?")
            args.append(session_id.lower())
        remaining = limit
        cursor_id = after_id
        while remaining is None or remaining > 0:
            page = 1000 if remaining is None else min(1000, remaining)
            args[0] = cursor_id
            with self._lock:
                rows = self._conn.execute(
                    _RECEIPT_SELECT + " WHERE " + " AND ".join(where) + " ORDER BY r.id LIMIT ?", (*args, page)
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _stored(row)
            cursor_id = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)


def _check_advance(signed: SignedReceipt, amount: int, nbytes: int, issued_at: int) -> None:
    if signed.cumulative_amount <= amount:
        raise StaleReceiptError(signed.consumer, signed.node, "cumulativeAmount", signed.cumulative_amount, amount)
    if signed.cumulative_bytes < nbytes:
        raise StaleReceiptError(signed.consumer, signed.node, "cumulativeBytes", signed.cumulative_bytes, nbytes)
    if signed.issued_at < issued_at:
        raise StaleReceiptError(signed.consumer, signed.node, "issuedAt", signed.issued_at, issued_at)


def _at_index(exc: ReceiptError, index: int, total: int) -> ReceiptError:
    """Attach the position of the failing receipt (for accept_many); single accepts stay unchanged."""
    exc.index = index  # type: ignore[attr-defined]
    if total > 1:
        exc.args = (f"Receipt {index}: {exc}",)
    return exc


