"""The hashing and signature recovery the replay runs once per receipt, written for speed.

The receipt engineer's ``nodeclient.receipts.signing`` is the reference implementation (pydantic
model in, digest out). Replaying hundreds of thousands of receipts spends most of its time here, so
this module works on plain tuples: the EIP-712 struct of a ``Receipt`` has eight static 32-byte words,
so the digest is two Keccak calls over concatenated bytes, and recovery is one coincurve call. The
tests check both against ``hashReceipt`` on chain and against the reference signer.

Nothing here imports web3 or pydantic: worker processes import this module alone.
"""

from __future__ import annotations

from coincurve import PublicKey

try:  # safe-pysha3 is a C extension and ~3x faster than pycryptodome for 32-256 byte inputs.
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        """Keccak-256 of ``data``."""
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - depends on the environment
    from Crypto.Hash import keccak as _keccak_mod

    def keccak(data: bytes) -> bytes:
        """Keccak-256 of ``data``."""
        return _keccak_mod.new(digest_bits=256, data=data).digest()


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

RECEIPT_TYPE = (
    "Receipt(address consumer,address node,bytes32 sessionId,uint256 cumulativeBytes,"
    "uint256 cumulativeAmount,uint32 latencyMs,uint64 issuedAt)"
)
RECEIPT_TYPEHASH = keccak(RECEIPT_TYPE.encode())
_DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_NAME_HASH = keccak(b"Kuota")
_VERSION_HASH = keccak(b"1")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

#: (consumer, node, sessionId, cumulativeBytes, cumulativeAmount, latencyMs, issuedAt) with addresses
#: as 20 raw bytes and the session id as 32 raw bytes.
ReceiptTuple = tuple[bytes, bytes, bytes, int, int, int, int]

_ZERO12 = bytes(12)


def domain_separator(chain_id: int, settlement: bytes) -> bytes:
    """EIP-712 domain separator of ReceiptSettlement (name "Kuota", version "1") at ``settlement``."""
    return keccak(_DOMAIN_TYPEHASH + _NAME_HASH + _VERSION_HASH + chain_id.to_bytes(32, "big") + _ZERO12 + settlement)


def receipt_struct_hash(receipt: ReceiptTuple) -> bytes:
    """``hashStruct(Receipt)``; raises ``OverflowError``/``ValueError`` on out-of-range fields."""
    consumer, node, session_id, cum_bytes, cum_amount, latency, issued_at = receipt
    if len(consumer) != 20 or len(node) != 20 or len(session_id) != 32:
        raise ValueError("consumer and node must be 20 bytes and sessionId 32 bytes")
    if latency >= 1 << 32 or issued_at >= 1 << 64:
        # to_bytes(32) would accept them, but the contract's uint32/uint64 could not hold them.
        raise OverflowError("latencyMs must fit uint32 and issuedAt uint64")
    return keccak(
        RECEIPT_TYPEHASH
        + _ZERO12 + consumer
        + _ZERO12 + node
        + session_id
        + cum_bytes.to_bytes(32, "big")
        + cum_amount.to_bytes(32, "big")
        + latency.to_bytes(32, "big")
        + issued_at.to_bytes(32, "big")
    )


def receipt_digest(receipt: ReceiptTuple, separator: bytes) -> bytes:
    """The EIP-712 digest the consumer signs (what ``hashReceipt`` returns on chain)."""
    return keccak(b"\x19\x01" + separator + receipt_struct_hash(receipt))


def recover_address(digest: bytes, signature: bytes) -> bytes | None:
    """20-byte address that signed ``digest``, or ``None`` for a signature the contract would reject.

    The contract uses OpenZeppelin's ``ECDSA.recover``: 65 bytes r‖s‖v, v ∈ {27, 28}, s in the lower
    half of the curve order (no malleable twins). Anything else is rejected here too, so a receipt
    that verifies here would also verify on chain.
    """
    if len(signature) != 65:
        return None
    v = signature[64]
    if v not in (27, 28):
        return None
    s = int.from_bytes(signature[32:64], "big")
    if s == 0 or s > SECP256K1_HALF_N:
        return None
    try:
        point = PublicKey.from_signature_and_message(signature[:64] + bytes((v - 27,)), digest, hasher=None)
    except Exception:  # noqa: BLE001 - coincurve raises ValueError/Exception for r out of range or no point
        return None
    return keccak(point.format(compressed=False)[1:])[12:]


def merkle_root(leaves: list[bytes]) -> bytes:
    """Merkle root in OpenZeppelin ``MerkleProof`` convention over ``leaves`` in the given order.

    Parent = keccak256 of the two children sorted ascending; an odd node is carried up unchanged; one
    leaf is its own root. An empty list has no root (``ValueError``).
    """
    if not leaves:
        raise ValueError("a Merkle root needs at least one leaf")
    level = list(leaves)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            a, b = level[i], level[i + 1]
            nxt.append(keccak(a + b) if a <= b else keccak(b + a))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
