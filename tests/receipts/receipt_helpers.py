"""Shared helpers for receipt tests: fixed test-only keys and a receipt factory.

The keys are keccak256 of fixed labels: public, test-only, never to hold funds. (A plain module with a
unique name, because tests/ folders are not packages and conftest cannot be imported by tests.)
"""

from __future__ import annotations

from nodeclient.receipts import Receipt, address_of_key
from nodeclient.receipts.crypto import keccak256

SETTLEMENT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def make_test_key(label: str) -> bytes:
    """Deterministic test-only private key for ``label``."""
    return keccak256(b"kuota-test-key:" + label.encode())


CONSUMER_KEY = make_test_key("consumer")
CONSUMER2_KEY = make_test_key("consumer2")
NODE_KEY = make_test_key("node")
CONSUMER = address_of_key(CONSUMER_KEY)
CONSUMER2 = address_of_key(CONSUMER2_KEY)
NODE = address_of_key(NODE_KEY)
OTHER_NODE = address_of_key(make_test_key("other-node"))


def make_receipt(amount: int = 1000, *, consumer: str = CONSUMER, node: str = NODE, nbytes: int | None = None,
                 issued_at: int = 1_700_000_000, session: str = "0x" + "11" * 32, latency: int = 42) -> Receipt:
    """A valid unsigned receipt; bytes default to 1000 × amount."""
    return Receipt(
        consumer=consumer,
        node=node,
        session_id=session,
        cumulative_bytes=amount * 1000 if nbytes is None else nbytes,
        cumulative_amount=amount,
        latency_ms=latency,
        issued_at=issued_at,
    )


def db_snapshot(path) -> str:
    """Full SQL dump of a store file through a separate connection: equal dumps, unchanged store."""
    import sqlite3

    conn = sqlite3.connect(str(path))
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()
