"""Worker side of parallel bundle verification: digest and recover one chunk of receipts.

Kept free of web3/pydantic imports so a spawned worker starts in a fraction of a second.
"""

from __future__ import annotations

from nodeclient.audit.crypto import receipt_digest, recover_address

__all__ = ["verify_chunk"]


def verify_chunk(job: tuple[bytes, list[tuple]]) -> list[tuple[bytes, bytes]]:
    """For each (consumer, node, sessionId, bytes, amount, latency, issuedAt, signature): (digest, signer).

    ``signer`` is ``b""`` when the signature is one the contract would reject.
    """
    separator, items = job
    out: list[tuple[bytes, bytes]] = []
    append = out.append
    for item in items:
        digest = receipt_digest(item[:7], separator)
        append((digest, recover_address(digest, item[7]) or b""))
    return out
