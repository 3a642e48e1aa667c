"""The transaction journal: every transaction this client signs, on disk before it is broadcast.

One SQLite file per data dir (``txjournal.sqlite``, WAL, ``synchronous=FULL``). A row is written when a
transaction is signed and before it is sent, so after a crash the client knows every nonce it may
have used and the signed bytes to re-broadcast. Rows of one (chain, sender, nonce) form a *group*:
the original and its fee-bumped replacements, at most one of which can ever be mined. Because a
replacement reuses the nonce, a settlement is never sent twice under two nonces.

The journal is also the source of the gas an operator spent (``kuota earnings``).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeclient.errors import StoreError

__all__ = ["PENDING_STATUSES", "TxJournal", "TxRecord", "account_lock"]

#: Statuses of a transaction whose fate is not known yet.
PENDING_STATUSES = ("signed", "sent")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS txs (
    tx_hash TEXT PRIMARY KEY,
    chain_id INTEGER NOT NULL,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL,
    node TEXT,
    raw TEXT NOT NULL,
    to_address TEXT NOT NULL,
    data TEXT NOT NULL,
    value TEXT NOT NULL,
    gas_limit INTEGER NOT NULL,
    max_fee INTEGER NOT NULL,
    priority_fee INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('signed', 'sent', 'mined', 'failed', 'replaced', 'dropped')),
    block_number INTEGER,
    gas_used INTEGER,
    effective_gas_price INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS txs_group ON txs (chain_id, sender, nonce);
CREATE INDEX IF NOT EXISTS txs_node ON txs (chain_id, node);
"""


@dataclass(frozen=True)
class TxRecord:
    """One journaled transaction."""

    tx_hash: str
    chain_id: int
    sender: str
    nonce: int
    kind: str
    description: str
    node: str | None
    raw: str
    to_address: str
    data: str
    value: str
    gas_limit: int
    max_fee: int
    priority_fee: int
    status: str
    block_number: int | None
    gas_used: int | None
    effective_gas_price: int | None
    created_at: float
    updated_at: float

    @property
    def gas_cost(self) -> int:
        """Wei paid for gas if mined (or failed on chain), else 0."""
        if self.gas_used is None or self.effective_gas_price is None:
            return 0
        return self.gas_used * self.effective_gas_price

    def to_json(self) -> dict[str, Any]:
        """Stable machine form (the raw transaction left out: it is long and public anyway)."""
        return {
            "txHash": self.tx_hash,
            "chainId": self.chain_id,
            "sender": self.sender,
            "nonce": self.nonce,
            "kind": self.kind,
            "description": self.description,
            "node": self.node,
            "status": self.status,
            "blockNumber": self.block_number,
            "gasUsed": self.gas_used,
            "effectiveGasPrice": self.effective_gas_price,
            "gasCost": self.gas_cost,
        }


@contextmanager
def account_lock(
    data_dir: Path,
    chain_id: int,
    sender: str,
    timeout: float = 600.0,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold an exclusive lock for ``sender`` on ``chain_id`` across processes.

    Two ``kuota`` processes sending from one account would race for nonces; the lock makes nonce
    allocation, broadcast and replacement of one account strictly sequential.
    """
    lock_dir = Path(data_dir) / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = lock_dir / f"{chain_id}-{sender.lower()}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(f"waiting for another kuota process that is sending from {sender}")
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"account {sender} is busy in another kuota process (lock {path}) for over {timeout:.0f} s"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class TxJournal:
    """SQLite journal of signed transactions (see module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            # One connection shared by threads (the relay settles in the background) under a lock.
            self._lock = threading.RLock()
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"transaction journal {self.path} cannot be opened: {exc}") from None

    def _execute(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """Run one statement under the lock and return all its rows (fetched under the lock too)."""
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"transaction journal {self.path}: {exc}") from None

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __repr__(self) -> str:
        return f"TxJournal({str(self.path)!r})"

    @staticmethod
    def _record(row: sqlite3.Row) -> TxRecord:
        return TxRecord(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - sqlite3.Row iterates values

    def add(
        self,
        *,
        tx_hash: str,
        chain_id: int,
        sender: str,
        nonce: int,
        kind: str,
        description: str,
        node: str | None,
        raw: str,
        to_address: str,
        data: str,
        value: int,
        gas_limit: int,
        max_fee: int,
        priority_fee: int,
    ) -> None:
        """Record a freshly signed transaction (status ``signed``), durably, before it is broadcast."""
        now = time.time()
        self._execute(
            "INSERT OR IGNORE INTO txs (tx_hash, chain_id, sender, nonce, kind, description, node, raw, to_address,"
            " data, value, gas_limit, max_fee, priority_fee, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'signed', ?, ?)",
            (
                tx_hash, chain_id, sender, nonce, kind, description, node, raw, to_address, data, str(value),
                gas_limit, max_fee, priority_fee, now, now,
            ),
        )

    def set_status(
        self,
        tx_hash: str,
        status: str,
        *,
        block_number: int | None = None,
        gas_used: int | None = None,
        effective_gas_price: int | None = None,
    ) -> None:
        """Move a transaction to ``status`` (with its receipt figures once mined)."""
        self._execute(
            "UPDATE txs SET status = ?, block_number = COALESCE(?, block_number), gas_used = COALESCE(?, gas_used),"
            " effective_gas_price = COALESCE(?, effective_gas_price), updated_at = ? WHERE tx_hash = ?",
            (status, block_number, gas_used, effective_gas_price, time.time(), tx_hash),
        )

    def resolve_group(self, winner: str | None, chain_id: int, sender: str, nonce: int) -> None:
        """Mark every other pending member of a nonce group ``replaced`` (or ``dropped`` if none won)."""
        other = "replaced" if winner else "dropped"
        self._execute(
            "UPDATE txs SET status = ?, updated_at = ? WHERE chain_id = ? AND sender = ? AND nonce = ?"
            " AND tx_hash != ? AND status IN ('signed', 'sent')",
            (other, time.time(), chain_id, sender, nonce, winner or ""),
        )

    def get(self, tx_hash: str) -> TxRecord | None:
        """The record of ``tx_hash``, if journaled."""
        rows = self._execute("SELECT * FROM txs WHERE tx_hash = ?", (tx_hash,))
        return self._record(rows[0]) if rows else None

    def group(self, chain_id: int, sender: str, nonce: int) -> list[TxRecord]:
        """Every transaction at (chain, sender, nonce), oldest first."""
        rows = self._execute(
            "SELECT * FROM txs WHERE chain_id = ? AND sender = ? AND nonce = ? ORDER BY created_at, rowid",
            (chain_id, sender, nonce),
        )
        return [self._record(r) for r in rows]

    def pending_nonces(self, chain_id: int, sender: str) -> list[int]:
        """Nonces of ``sender`` with a transaction whose fate is unknown, ascending."""
        rows = self._execute(
            "SELECT DISTINCT nonce FROM txs WHERE chain_id = ? AND sender = ? AND status IN ('signed', 'sent')"
            " ORDER BY nonce",
            (chain_id, sender),
        )
        return [r[0] for r in rows]

    def mined_above(self, chain_id: int, block: int) -> list[TxRecord]:
        """Transactions recorded as mined (or reverted on chain) in a block above ``block``, oldest first.

        These are not final yet: a reorg may still remove them, so the client re-reads their receipts.
        """
        rows = self._execute(
            "SELECT * FROM txs WHERE chain_id = ? AND status IN ('mined', 'failed') AND block_number > ?"
            " ORDER BY created_at, rowid",
            (chain_id, block),
        )
        return [self._record(r) for r in rows]

    def reopen_group(self, record: TxRecord) -> None:
        """The chain no longer has ``record`` (a reorg dropped its block): its nonce group is in flight again.

        Every member goes back to ``sent`` with its receipt figures cleared, so the gas it cost is no
        longer counted and the next ``transact``/``resume`` re-broadcasts the signed bytes at the same
        nonce, as the network itself would after a reorg. Only fee-bump replacements of ``record`` (same
        recipient, data and value) are reopened: a different transaction signed at that nonce after
        the reorg is another intent and keeps its own status. Members that were ``dropped`` (refused
        by the node) stay dropped.
        """
        self._execute(
            "UPDATE txs SET status = 'sent', block_number = NULL, gas_used = NULL, effective_gas_price = NULL,"
            " updated_at = ? WHERE chain_id = ? AND sender = ? AND nonce = ? AND status != 'dropped'"
            " AND to_address = ? AND data = ? AND value = ?",
            (time.time(), record.chain_id, record.sender, record.nonce, record.to_address, record.data, record.value),
        )

    def move_block(self, tx_hash: str, block_number: int) -> None:
        """Record that a reorg re-included ``tx_hash`` in another block."""
        self._execute(
            "UPDATE txs SET block_number = ?, updated_at = ? WHERE tx_hash = ?", (block_number, time.time(), tx_hash)
        )

    def records(self, chain_id: int, *, node: str | None = None, sender: str | None = None) -> list[TxRecord]:
        """Journaled transactions on ``chain_id``, optionally for one node or sender, oldest first."""
        query = "SELECT * FROM txs WHERE chain_id = ?"
        params: list[Any] = [chain_id]
        if node is not None:
            query += " AND lower(node) = lower(?)"
            params.append(node)
        if sender is not None:
            query += " AND sender = ?"
            params.append(sender)
        rows = self._execute(query + " ORDER BY created_at, rowid", params)
        return [self._record(r) for r in rows]
