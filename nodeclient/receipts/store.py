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

Big integers (up to 2**128 − 1, plus uint64 timestamps) are stored as 39-digit zero-padded decimal
text: SQLite integers are 64-bit signed, and fixed width keeps SQL comparisons numeric.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Self

from nodeclient._utils.files import atomic_write
from nodeclient.errors import ReceiptError, StoreError
from nodeclient.receipts.errors import (
    BatchConflictError,
    BatchNotFoundError,
    BatchStateError,
    DomainMismatchError,
    NodeMismatchError,
    NothingOwedError,
    ReceiptFieldError,
    ReceiptNotFoundError,
    StaleReceiptError,
    StoreCorruptError,
    StoreSchemaError,
)
from nodeclient.receipts.model import UINT128_MAX, SignedReceipt, parse_address, to_checksum_address
from nodeclient.receipts.signing import ReceiptDomain, verify_receipt

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

#: Current schema version (PRAGMA user_version). Older files are migrated on open.
SCHEMA_VERSION = 1
#: PRAGMA application_id marking a file as a Kuota receipt store ("KUOT").
APPLICATION_ID = 0x4B554F54

BatchState = Literal["pending", "submitted", "confirmed", "failed", "skipped"]
_OPEN_STATES = ("pending", "submitted")
_WIDTH = 39  # digits of 2**128 - 1


def _n(value: int) -> str:
    return f"{value:0{_WIDTH}d}"


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


# Each migration takes the schema from version i to i + 1, inside the same transaction that bumps
# user_version: a crash mid-migration leaves the previous version intact.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE channels (
        consumer            TEXT NOT NULL CHECK (length(consumer) = 42),
        node                TEXT NOT NULL CHECK (length(node) = 42),
        latest_receipt_id   INTEGER REFERENCES receipts(id),
        -- What confirmed batches of this store paid (sum of batch_items.paid): the store's own ledger.
        settled_amount      TEXT NOT NULL DEFAULT '000000000000000000000000000000000000000',
        settled_bytes       TEXT NOT NULL DEFAULT '000000000000000000000000000000000000000',
        settled_receipt_id  INTEGER REFERENCES receipts(id),
        -- The chain's channelOf() as last read (someone else may settle a node's receipt).
        chain_settled_amount TEXT,
        chain_settled_bytes  TEXT,
        chain_synced_at      REAL,
        PRIMARY KEY (consumer, node)
    );

    CREATE TABLE receipts (
        id                INTEGER PRIMARY KEY,
        digest            TEXT NOT NULL UNIQUE CHECK (length(digest) = 66),
        consumer          TEXT NOT NULL,
        node              TEXT NOT NULL,
        session_id        TEXT NOT NULL CHECK (length(session_id) = 66),
        cumulative_bytes  TEXT NOT NULL CHECK (length(cumulative_bytes) = 39),
        cumulative_amount TEXT NOT NULL CHECK (length(cumulative_amount) = 39),
        latency_ms        INTEGER NOT NULL CHECK (latency_ms BETWEEN 0 AND 4294967295),
        issued_at         TEXT NOT NULL CHECK (length(issued_at) = 39),
        signature         TEXT NOT NULL CHECK (length(signature) = 132),
        accepted_at       REAL NOT NULL,
        FOREIGN KEY (consumer, node) REFERENCES channels(consumer, node)
    );
    CREATE INDEX receipts_by_channel ON receipts(consumer, node, id);

    CREATE TABLE batches (
        id           INTEGER PRIMARY KEY,
        node         TEXT NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('pending', 'submitted', 'confirmed', 'failed', 'skipped')),
        bundle_root  TEXT,
        bundle_file  TEXT,
        nonce        INTEGER,
        tx_hash      TEXT,
        block_number INTEGER,
        reason       TEXT,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        CHECK (state NOT IN ('submitted', 'confirmed') OR (tx_hash IS NOT NULL AND nonce IS NOT NULL))
    );
    CREATE INDEX batches_open ON batches(state) WHERE state IN ('pending', 'submitted');

    -- Every transaction hash signed for a batch: the first and each same-nonce fee-bump replacement.
    CREATE TABLE batch_txs (
        tx_hash    TEXT PRIMARY KEY CHECK (length(tx_hash) = 66),
        batch_id   INTEGER NOT NULL REFERENCES batches(id),
        nonce      INTEGER NOT NULL,
        created_at REAL NOT NULL
    );

    CREATE TABLE batch_items (
        batch_id   INTEGER NOT NULL REFERENCES batches(id),
        receipt_id INTEGER NOT NULL REFERENCES receipts(id),
        position   INTEGER NOT NULL,
        outcome    TEXT CHECK (outcome IS NULL OR outcome IN ('settled', 'skipped')),
        paid       TEXT,
        fee        TEXT,
        PRIMARY KEY (batch_id, receipt_id),
        UNIQUE (batch_id, position)
    );
    CREATE INDEX batch_items_by_receipt ON batch_items(receipt_id);

    -- Receipts are evidence: once stored they are never changed or removed.
    CREATE TRIGGER receipts_no_update BEFORE UPDATE ON receipts
    BEGIN SELECT RAISE(ABORT, 'receipts are append-only'); END;
    CREATE TRIGGER receipts_no_delete BEFORE DELETE ON receipts
    BEGIN SELECT RAISE(ABORT, 'receipts are append-only'); END;

    -- Batch states only move forward, and a terminal state is final.
    CREATE TRIGGER batches_forward_only BEFORE UPDATE OF state ON batches
    WHEN NOT (
        (OLD.state = NEW.state AND OLD.state IN ('pending', 'submitted'))
        OR (OLD.state = 'pending' AND NEW.state IN ('submitted', 'failed', 'skipped'))
        OR (OLD.state = 'submitted' AND NEW.state IN ('confirmed', 'failed'))
    )
    BEGIN SELECT RAISE(ABORT, 'illegal settlement batch state transition'); END;
    """,
)


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

    @property
    def is_open(self) -> bool:
        """Pending or submitted: not yet reconciled with the chain."""
        return self.state in _OPEN_STATES


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


class ReceiptStore:
    """Durable receipt store and settlement ledger for one node's receipts on one deployment.

    One file per (chain id, ReceiptSettlement): the store binds itself to the domain of the first
    receipt it accepts (or to ``domain`` given here) and refuses any other afterwards. Safe to share
    between threads (one lock) and between processes (SQLite locking, ``BEGIN IMMEDIATE``).
    """

    def __init__(self, path: str | Path, *, domain: ReceiptDomain | None = None, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreSchemaError(str(self.path), f"cannot be opened: {exc}") from None
        try:
            self._configure()
            self._migrate()
            self._domain = self._load_domain()
            if domain is not None:
                self._bind_domain(domain)
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ lifecycle

    def __repr__(self) -> str:
        return f"ReceiptStore({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (committed data is already on disk)."""
        with self._lock:
            self._conn.close()

    def _configure(self) -> None:
        conn = self._conn
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            # Missing directory, a directory given as the file, no permission, disk full.
            raise StoreSchemaError(str(self.path), f"cannot be opened: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreSchemaError(str(self.path), f"is not a SQLite database ({exc})") from None
        if str(mode).lower() != "wal":
            # Rollback-journal mode would still be durable, but the relay's latency budget assumes WAL.
            raise StoreSchemaError(str(self.path), f"cannot use WAL journaling (got {mode!r}; network filesystem?)")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        # Checkpoint sooner than the 1000-page default would not buy durability; keep the default.
        if conn.execute("PRAGMA synchronous").fetchone()[0] != 2:
            raise StoreSchemaError(str(self.path), "refused synchronous=FULL")

    def _migrate(self) -> None:
        with self._write() as cur:
            version = cur.execute("PRAGMA user_version").fetchone()[0]
            app_id = cur.execute("PRAGMA application_id").fetchone()[0]
            tables = cur.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if version == 0 and tables and app_id != APPLICATION_ID:
                raise StoreSchemaError(str(self.path), "is a SQLite file but not a Kuota receipt store")
            if version and app_id != APPLICATION_ID:
                raise StoreSchemaError(str(self.path), f"is not a Kuota receipt store (application_id {app_id:#x})")
            if version > SCHEMA_VERSION:
                raise StoreSchemaError(
                    str(self.path),
                    f"has schema version {version}, newer than this Kuota's {SCHEMA_VERSION}; upgrade Kuota",
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _split_sql(_MIGRATIONS[target - 1]):
                    cur.execute(statement)
                cur.execute(f"PRAGMA user_version={target}")
            if version < SCHEMA_VERSION:
                cur.execute(f"PRAGMA application_id={APPLICATION_ID}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: BEGIN IMMEDIATE (takes the write lock up front), COMMIT or ROLLBACK."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.rollback()
                raise
            else:
                # With WAL + synchronous=FULL the WAL is fsynced here: after COMMIT returns, the
                # transaction survives a crash of this process or of the machine.
                cur.execute("COMMIT")
            finally:
                cur.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        """A consistent snapshot for multi-statement reads."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN")
            try:
                yield cur
            finally:
                if self._conn.in_transaction:
                    cur.execute("COMMIT")
                cur.close()

    # ------------------------------------------------------------------ domain

    @property
    def domain(self) -> ReceiptDomain | None:
        """The domain this store is bound to, or None before its first receipt."""
        return self._domain

    def _load_domain(self) -> ReceiptDomain | None:
        rows = dict(self._conn.execute("SELECT key, value FROM meta WHERE key IN ('chain_id', 'settlement')"))
        if not rows:
            return None
        return ReceiptDomain(chain_id=int(rows["chain_id"]), verifying_contract=rows["settlement"])

    def _bind_domain(self, domain: ReceiptDomain, cur: sqlite3.Cursor | None = None) -> None:
        if self._domain is not None:
            if self._domain != domain:
                raise DomainMismatchError(f"Receipt store {self.path}", self._domain.describe(), domain.describe())
            return
        if cur is None:
            with self._write() as wcur:
                self._bind_domain(domain, wcur)
            return
        cur.executemany(
            "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
            [("chain_id", str(domain.chain_id)), ("settlement", domain.verifying_contract)],
        )
        stored = dict(cur.execute("SELECT key, value FROM meta WHERE key IN ('chain_id', 'settlement')"))
        bound = ReceiptDomain(chain_id=int(stored["chain_id"]), verifying_contract=stored["settlement"])
        if bound != domain:  # another process bound it first
            raise DomainMismatchError(f"Receipt store {self.path}", bound.describe(), domain.describe())
        self._domain = bound

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

    def list_receipts(
        self,
        *,
        consumer: str | None = None,
        node: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
        session_id: str | None = None,
    ) -> list[StoredReceipt]:
        """Stored receipts in acceptance order, optionally filtered by channel side or session."""
        return list(self.iter_receipts(consumer=consumer, node=node, after_id=after_id, limit=limit, session_id=session_id))

    def iter_receipts(
        self,
        *,
        consumer: str | None = None,
        node: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
        session_id: str | None = None,
    ) -> Iterator[StoredReceipt]:
        """Like `list_receipts`, streaming (pages of 1000) so an export of millions stays small in memory."""
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
    ) -> None:
        """Record a mined batch: submitted → confirmed, with every receipt's outcome, in one transaction.

        ``outcomes``: one per batch item, in batch order, or a mapping digest → outcome covering
        exactly the batch. ``tx_hash``: the transaction that was mined (one of the batch's recorded
        hashes; default the latest). Channels advance by what was paid. Confirming an already
        confirmed batch with the same outcomes is a no-op; anything else is refused.
        """
        with self._write() as cur:
            state, _ = self._batch_state(cur, batch_id)
            items = cur.execute(
                "SELECT bi.receipt_id, bi.position, r.digest, r.consumer, r.node, r.cumulative_amount, "
                "r.cumulative_bytes, bi.outcome, bi.paid, bi.fee FROM batch_items bi "
                "JOIN receipts r ON r.id = bi.receipt_id WHERE bi.batch_id = ? ORDER BY bi.position",
                (batch_id,),
            ).fetchall()
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
                receipt_id, consumer, node = row[0], row[3], row[4]
                amount, nbytes = int(row[5]), int(row[6])
                channel = cur.execute(
                    "SELECT settled_amount FROM channels WHERE consumer = ? AND node = ?", (consumer, node)
                ).fetchone()
                settled = int(channel[0])
                if outcome.status == "settled":
                    if settled + outcome.paid > amount:
                        raise StoreError(
                            f"Batch {batch_id} receipt {row[2]} reports paid {outcome.paid}, more than the "
                            f"{amount - settled} it could owe (cumulative {amount}, settled {settled})."
                        )
                    cur.execute(
                        "UPDATE channels SET settled_amount = ?, settled_bytes = ?, settled_receipt_id = ? "
                        "WHERE consumer = ? AND node = ?",
                        (_n(settled + outcome.paid), _n(nbytes), receipt_id, consumer, node),
                    )
                cur.execute(
                    "UPDATE batch_items SET outcome = ?, paid = ?, fee = ? WHERE batch_id = ? AND receipt_id = ?",
                    (outcome.status, _n(outcome.paid), _n(outcome.fee), batch_id, receipt_id),
                )
            cur.execute(
                "UPDATE batches SET state = 'confirmed', tx_hash = coalesce(?, tx_hash), block_number = ?, "
                "updated_at = ? WHERE id = ?",
                (mined, block_number, time.time(), batch_id),
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

    def pending_batches(self) -> list[BatchRecord]:
        """Open batches (pending or submitted), oldest first: what crash recovery must reconcile."""
        return self._batches("WHERE b.state IN ('pending', 'submitted')", ())

    def _batches(self, where: str, args: tuple[Any, ...]) -> list[BatchRecord]:
        with self._read() as cur:
            rows = cur.execute(
                "SELECT b.id, b.node, b.state, b.nonce, b.tx_hash, b.block_number, b.bundle_root, b.bundle_file, "
                f"b.reason, b.created_at, b.updated_at FROM batches b {where} ORDER BY b.id",
                args,
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
                        id=row[0],
                        node=row[1],
                        state=row[2],
                        nonce=row[3],
                        tx_hash=row[4],
                        block_number=row[5],
                        bundle_root=row[6],
                        bundle_file=row[7],
                        reason=row[8],
                        created_at=row[9],
                        updated_at=row[10],
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

    def stats(self) -> dict[str, int]:
        """Counts for status displays: receipts, channels, batches per state."""
        with self._read() as cur:
            out = {
                "receipts": cur.execute("SELECT count(*) FROM receipts").fetchone()[0],
                "channels": cur.execute("SELECT count(*) FROM channels").fetchone()[0],
            }
            for state, count in cur.execute("SELECT state, count(*) FROM batches GROUP BY state"):
                out[f"batches_{state}"] = count
        return out


# ---------------------------------------------------------------------- helpers

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


class _Counter:
    """Iterator wrapper that counts what passed through (an export streams, it is never held whole)."""

    def __init__(self, inner: Iterator[str]) -> None:
        self._inner = inner
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        for item in self._inner:
            self.count += 1
            yield item


def _tx_hash(value: bytes | str) -> str:
    text = _hex(value) if isinstance(value, bytes) else str(value).lower()
    if len(text) != 66 or not text.startswith("0x") or any(c not in "0123456789abcdef" for c in text[2:]):
        raise StoreError(f"Transaction hash {value!r} is not 32 bytes of 0x-hex.")
    return text


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


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (triggers contain ';' inside BEGIN … END)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \n;"):
        statements.append(buffer.strip())
    return statements

