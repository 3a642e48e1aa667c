"""The receipt store's file: SQLite connection (WAL, ``synchronous=FULL``), schema migrations, domain binding."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from nodeclient.receipts.errors import DomainMismatchError, StoreSchemaError
from nodeclient.receipts.signing import ReceiptDomain

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "StoreConnection"]

#: Current schema version (PRAGMA user_version). Older files are migrated on open.
SCHEMA_VERSION = 2
#: PRAGMA application_id marking a file as a Kuota receipt store ("KUOT").
APPLICATION_ID = 0x4B554F54

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
    # 2: the store follows the chain. A confirmed batch whose transaction the chain no longer has (a
    # reorg, or an RPC that served a block it later dropped) goes back to 'submitted' and its
    # payments leave the ledger; block_hash tells a re-inclusion in another block from the original.
    """
    ALTER TABLE batches ADD COLUMN block_hash TEXT;
    ALTER TABLE batches ADD COLUMN reopened INTEGER NOT NULL DEFAULT 0;

    DROP TRIGGER batches_forward_only;
    CREATE TRIGGER batches_forward_only BEFORE UPDATE OF state ON batches
    WHEN NOT (
        (OLD.state = NEW.state AND OLD.state IN ('pending', 'submitted'))
        OR (OLD.state = 'pending' AND NEW.state IN ('submitted', 'failed', 'skipped'))
        OR (OLD.state = 'submitted' AND NEW.state IN ('confirmed', 'failed'))
        OR (OLD.state = 'confirmed' AND NEW.state = 'submitted' AND NEW.reopened = OLD.reopened + 1)
    )
    BEGIN SELECT RAISE(ABORT, 'illegal settlement batch state transition'); END;
    """,
)


class StoreConnection:
    """The store's SQLite connection: opened, configured for durability, migrated, bound to one domain.

    Every other part of `ReceiptStore` reads and writes through `_read` and `_write`.
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

