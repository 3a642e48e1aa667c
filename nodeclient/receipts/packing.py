"""The calldata layout of ``ReceiptSettlement.settleManyPacked``: each receipt in 161 bytes.

ABI-encoding a receipt for ``settleMany`` takes 384 bytes (seven padded words, and the signature as a
dynamic ``bytes`` with its offset, length and padding); most of them are zeros that still cost calldata
gas and decoding. The packed layout keeps each field at its own width, big-endian, without padding::

    consumer 20 | sessionId 32 | cumulativeBytes 16 | cumulativeAmount 16 | latencyMs 4 | issuedAt 8 | r 32 | s 32 | v 1

The node is passed once per batch. The contract rebuilds exactly the EIP-712 words the consumer
signed, so the receipts, their digests and the events are the same as through ``settleMany``.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import to_bytes, to_canonical_address

from nodeclient.receipts.model import SignedReceipt

__all__ = ["PACKED_RECEIPT_LENGTH", "pack_receipt", "pack_receipt_args", "pack_signed_receipts"]

#: Bytes per receipt; ``ReceiptSettlement.PACKED_RECEIPT_LENGTH``.
PACKED_RECEIPT_LENGTH = 161

_WIDTHS = (("cumulativeBytes", 16), ("cumulativeAmount", 16), ("latencyMs", 4), ("issuedAt", 8))


def pack_receipt(
    consumer: str,
    session_id: bytes,
    cumulative_bytes: int,
    cumulative_amount: int,
    latency_ms: int,
    issued_at: int,
    signature: bytes,
) -> bytes:
    """One receipt in the packed layout; ``ValueError`` names a field that does not fit its width."""
    if len(session_id) != 32:
        raise ValueError(f"sessionId is {len(session_id)} bytes, not 32")
    if len(signature) != 65:
        raise ValueError(f"signature is {len(signature)} bytes, not 65")
    out = bytearray(to_canonical_address(consumer))
    out += session_id
    for (name, width), value in zip(_WIDTHS, (cumulative_bytes, cumulative_amount, latency_ms, issued_at)):
        if not 0 <= value < 1 << (8 * width):
            raise ValueError(f"{name} {value} does not fit {8 * width} bits")
        out += value.to_bytes(width, "big")
    out += signature
    return bytes(out)


def _raw(value: str | bytes) -> bytes:
    return to_bytes(hexstr=value) if isinstance(value, str) else bytes(value)


def pack_receipt_args(args: Sequence, signature: str | bytes) -> bytes:
    """``pack_receipt`` of a receipt in the contract's struct order ``(consumer, node, sessionId,
    cumulativeBytes, cumulativeAmount, latencyMs, issuedAt)``; sessionId and the signature as bytes or
    0x-hex (the form tools and tests hold receipts in). The node is not packed."""
    consumer, _node, session, cumulative_bytes, cumulative_amount, latency_ms, issued_at = args
    return pack_receipt(
        consumer, _raw(session), cumulative_bytes, cumulative_amount, latency_ms, issued_at, _raw(signature)
    )


def pack_signed_receipts(node: str, signed: Sequence[SignedReceipt]) -> bytes:
    """The ``packed`` argument of ``settleManyPacked(node, packed, root)`` for ``signed``, in order.

    Every receipt must be for ``node``: the contract hashes each with the batch's node, so a receipt
    for another node would be refused on chain as signed by someone else.
    """
    wanted = to_canonical_address(node)
    parts = []
    for index, r in enumerate(signed):
        if to_canonical_address(r.node) != wanted:
            raise ValueError(f"receipt {index} is for node {r.node}, the batch is for {node}")
        parts.append(
            pack_receipt(
                r.consumer,
                to_bytes(hexstr=r.session_id),
                r.cumulative_bytes,
                r.cumulative_amount,
                r.latency_ms,
                r.issued_at,
                r.signature_bytes,
            )
        )
    return b"".join(parts)
