"""The auditor's view of the shared receipt cryptography (`nodeclient.receipts.crypto`).

The replay and the bundle check take receipts as plain tuples and want "no signer" rather than an
exception for a signature the contract would reject, so this module adapts the core's recovery to
that; every digest, address and Merkle root is the core's own.

Nothing here imports web3 or pydantic: worker processes import this module alone.
"""

from __future__ import annotations

from nodeclient.errors import ReceiptError
from nodeclient.receipts.crypto import (
    RECEIPT_TYPE,
    RECEIPT_TYPEHASH,
    SECP256K1_HALF_N,
    domain_separator,
    merkle_root,
    receipt_digest,
    receipt_struct_hash,
)
from nodeclient.receipts.crypto import keccak256 as keccak
from nodeclient.receipts.crypto import recover_address as _recover

__all__ = [
    "RECEIPT_TYPE",
    "RECEIPT_TYPEHASH",
    "SECP256K1_HALF_N",
    "ReceiptTuple",
    "domain_separator",
    "keccak",
    "merkle_root",
    "receipt_digest",
    "receipt_struct_hash",
    "recover_address",
]

#: (consumer, node, sessionId, cumulativeBytes, cumulativeAmount, latencyMs, issuedAt) with addresses
#: as 20 raw bytes and the session id as 32 raw bytes.
ReceiptTuple = tuple[bytes, bytes, bytes, int, int, int, int]


def recover_address(digest: bytes, signature: bytes) -> bytes | None:
    """20-byte address that signed ``digest``, or ``None`` for a signature the contract would reject
    (OpenZeppelin ``ECDSA.recover``: wrong length, v ∉ {27, 28}, r or s out of range, high s)."""
    try:
        return _recover(digest, signature)
    except ReceiptError:
        return None
