"""The receipt cryptography every side shares: keccak256, EIP-712 digests, signer recovery, Merkle tree.

Signing (`nodeclient.receipts.signing`), the store, the relay handshake and the auditor's worker
processes all hash and recover through this module, so a receipt that verifies in one place verifies
in every other, and the same way ``ReceiptSettlement`` does on chain.

- keccak256 comes from eth-hash. Its own automatic choice takes pycryptodome first; the pysha3
  backend (``eth-hash[pysha3]``, safe-pysha3) is about three times faster per call for the 32-256
  byte inputs hashed here and the auditor hashes every receipt twice, so it is preferred when
  installed. ``ETH_HASH_BACKEND`` still overrides the choice.
- The EIP-712 digest of a Receipt is written out (eight static 32-byte words, two keccak calls)
  rather than run through a generic typed-data encoder: it is the auditor's hot loop. The generic
  `hash_static_struct` serves the messages that are hashed once per session (handshake, node key).
- Recovery accepts exactly what OpenZeppelin's ``ECDSA.recover`` accepts: 65 bytes r‖s‖v,
  v ∈ {27, 28}, 0 < r < n, 0 < s ≤ n/2 (no malleable twin of a valid signature).
- The Merkle tree is the one ``@openzeppelin/merkle-tree`` builds with
  ``SimpleMerkleTree.of(leaves, {sortLeaves: false})`` (docs/PROTOCOL.md, "Bundles").

Nothing here imports pydantic or web3: the auditor's worker processes import this module alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from coincurve import PublicKey
from eth_hash.abc import BackendAPI
from eth_hash.utils import auto_choose_backend, get_backend_in_environment, load_backend

from nodeclient.errors import ReceiptError
from nodeclient.receipts.errors import SignatureError

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "EIP712_DOMAIN_FIELDS",
    "EIP712_DOMAIN_TYPE",
    "EIP712_DOMAIN_TYPEHASH",
    "KECCAK_BACKEND",
    "RECEIPT_FIELDS",
    "RECEIPT_TYPE",
    "RECEIPT_TYPEHASH",
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "address_of_public_key",
    "checksum_address",
    "decode_type",
    "domain_separator",
    "eip712_digest",
    "encode_type",
    "hash_pair",
    "hash_static_struct",
    "keccak256",
    "merkle_proof",
    "merkle_root",
    "receipt_digest",
    "receipt_struct_hash",
    "recover_address",
    "typed_data",
    "verify_proof",
]


def _keccak_backend() -> BackendAPI:
    if get_backend_in_environment():
        return auto_choose_backend()
    try:
        return load_backend("pysha3")
    except ImportError:  # pragma: no cover - depends on the environment
        return auto_choose_backend()


_BACKEND = _keccak_backend()
#: keccak256 (Ethereum's, not NIST SHA3-256) of bytes: the backend's method, without eth-hash's per-call type check.
keccak256: Callable[[bytes], bytes] = _BACKEND.keccak256
#: Which eth-hash backend `keccak256` runs on (``pysha3`` or ``pycryptodome``), for benchmarks.
KECCAK_BACKEND = type(_BACKEND).__module__.rsplit(".", 1)[-1]

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2

DOMAIN_NAME = "Kuota"
DOMAIN_VERSION = "1"
#: The EIP-712 domain fields every Kuota contract uses (OpenZeppelin ``EIP712``), typed-data form.
EIP712_DOMAIN_FIELDS: tuple[dict[str, str], ...] = (
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
)
#: The Receipt struct, typed-data form; field order is the signed order.
RECEIPT_FIELDS: tuple[dict[str, str], ...] = (
    {"name": "consumer", "type": "address"},
    {"name": "node", "type": "address"},
    {"name": "sessionId", "type": "bytes32"},
    {"name": "cumulativeBytes", "type": "uint256"},
    {"name": "cumulativeAmount", "type": "uint256"},
    {"name": "latencyMs", "type": "uint32"},
    {"name": "issuedAt", "type": "uint64"},
)


def encode_type(primary: str, fields: Sequence[Mapping[str, str]]) -> str:
    """EIP-712 ``encodeType`` of a struct without nested structs: ``Name(type name,...)``."""
    return f"{primary}(" + ",".join(f"{f['type']} {f['name']}" for f in fields) + ")"


def decode_type(type_string: str) -> tuple[str, tuple[dict[str, str], ...]]:
    """(primary type, typed-data fields) of ``Name(type name,...)``: the inverse of `encode_type`."""
    primary, _, inner = type_string.partition("(")
    if not primary or not inner.endswith(")"):
        raise ValueError(f"{type_string!r} is not an EIP-712 struct type 'Name(type name,...)'")
    fields = tuple({"name": name, "type": kind} for kind, _, name in (p.partition(" ") for p in inner[:-1].split(",")))
    return primary, fields


EIP712_DOMAIN_TYPE = encode_type("EIP712Domain", EIP712_DOMAIN_FIELDS)
EIP712_DOMAIN_TYPEHASH = keccak256(EIP712_DOMAIN_TYPE.encode("ascii"))
RECEIPT_TYPE = encode_type("Receipt", RECEIPT_FIELDS)
RECEIPT_TYPEHASH = keccak256(RECEIPT_TYPE.encode("ascii"))

_PAD12 = bytes(12)
_UINT32_LIMIT = 1 << 32
_UINT64_LIMIT = 1 << 64


# ------------------------------------------------------------------------------------------ EIP-712


def domain_separator(
    chain_id: int, verifying_contract: bytes, name: str = DOMAIN_NAME, version: str = DOMAIN_VERSION
) -> bytes:
    """``hashStruct(EIP712Domain)`` of a contract (20 raw address bytes) on ``chain_id``."""
    if len(verifying_contract) != 20:
        raise ValueError(f"verifyingContract must be 20 bytes, got {len(verifying_contract)}")
    return keccak256(
        EIP712_DOMAIN_TYPEHASH
        + keccak256(name.encode("utf-8"))
        + keccak256(version.encode("utf-8"))
        + chain_id.to_bytes(32, "big")
        + _PAD12
        + verifying_contract
    )


def eip712_digest(separator: bytes, struct_hash: bytes) -> bytes:
    """``keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message))``: what gets signed."""
    return keccak256(b"\x19\x01" + separator + struct_hash)


def receipt_struct_hash(receipt: Sequence[Any]) -> bytes:
    """``hashStruct(Receipt)`` of (consumer, node, sessionId, cumulativeBytes, cumulativeAmount,
    latencyMs, issuedAt, ...) with addresses as 20 bytes and the session id as 32 bytes.

    Extra trailing items (a `RawReceipt`'s signature) are ignored. Raises ``ValueError`` for wrong
    byte lengths and ``OverflowError`` for integers the contract's field types cannot hold.
    """
    consumer, node, session_id, cum_bytes, cum_amount, latency, issued_at = receipt[:7]
    if len(consumer) != 20 or len(node) != 20 or len(session_id) != 32:
        raise ValueError("consumer and node must be 20 bytes and sessionId 32 bytes")
    if not 0 <= latency < _UINT32_LIMIT or not 0 <= issued_at < _UINT64_LIMIT:
        # to_bytes(32) would accept them, but the contract's uint32 / uint64 could not hold them.
        raise OverflowError("latencyMs must fit uint32 and issuedAt uint64")
    return keccak256(
        RECEIPT_TYPEHASH
        + _PAD12
        + consumer
        + _PAD12
        + node
        + session_id
        + cum_bytes.to_bytes(32, "big")
        + cum_amount.to_bytes(32, "big")
        + latency.to_bytes(32, "big")
        + issued_at.to_bytes(32, "big")
    )


def receipt_digest(receipt: Sequence[Any], separator: bytes) -> bytes:
    """The digest a consumer signs, equal to ``ReceiptSettlement.hashReceipt`` under ``separator``."""
    return keccak256(b"\x19\x01" + separator + receipt_struct_hash(receipt))


def _word(kind: str, value: Any) -> bytes:
    if kind == "address":
        raw = bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)
        if len(raw) != 20:
            raise ValueError(f"address {value!r} is not 20 bytes")
        return _PAD12 + raw
    if kind == "bytes32":
        raw = bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)
        if len(raw) != 32:
            raise ValueError(f"bytes32 {value!r} is not 32 bytes")
        return raw
    if kind.startswith("uint") and type(value) is int:
        if not 0 <= value < 1 << int(kind[4:] or 256):
            raise OverflowError(f"{value} does not fit {kind}")
        return value.to_bytes(32, "big")
    raise ValueError(f"{kind} value {value!r} is not a supported static EIP-712 field")


@lru_cache(maxsize=64)
def _typehash(type_string: str) -> bytes:
    return keccak256(type_string.encode("ascii"))


def hash_static_struct(primary: str, fields: Sequence[Mapping[str, str]], message: Mapping[str, Any]) -> bytes:
    """``hashStruct`` of a struct of address, bytes32 and uintN fields only (hex strings or bytes).

    Dynamic and nested types are refused with ``ValueError``: the Kuota messages have none, and
    a partial encoder that guessed would sign something no contract checks.
    """
    typehash = _typehash(encode_type(primary, fields))
    return keccak256(typehash + b"".join(_word(f["type"], message[f["name"]]) for f in fields))


def typed_data(
    primary: str, fields: Sequence[Mapping[str, str]], domain: Mapping[str, Any], message: Mapping[str, Any]
) -> dict[str, Any]:
    """A full ``eth_signTypedData_v4`` message, for wallets and eth-account's ``sign_typed_data``."""
    return {
        "types": {"EIP712Domain": [dict(f) for f in EIP712_DOMAIN_FIELDS], primary: [dict(f) for f in fields]},
        "primaryType": primary,
        "domain": dict(domain),
        "message": dict(message),
    }


# ----------------------------------------------------------------------------------------- addresses


def address_of_public_key(public: PublicKey) -> bytes:
    """The 20-byte Ethereum address of a secp256k1 public key."""
    return keccak256(public.format(compressed=False)[1:])[12:]


@lru_cache(maxsize=1 << 16)
def checksum_address(raw: bytes) -> str:
    """EIP-55 checksummed form of a 20-byte address.

    Cached: a bundle of 100,000 receipts names a few hundred distinct addresses, and checksumming
    was the largest cost of parsing one before the signature check.
    """
    lower = raw.hex()
    hashed = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if h in "89abcdef" else c for c, h in zip(lower, hashed[:40], strict=True))


def recover_address(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key made the 65-byte ``signature`` (r‖s‖v) over ``digest``.

    Raises `SignatureError` for anything OpenZeppelin's ``ECDSA.recover`` rejects: a length other
    than 65, v ∉ {27, 28}, r or s outside 1..n-1, s > n/2, or an r that is no curve point.
    """
    if len(signature) != 65:
        raise SignatureError(signature, f"must be 65 bytes (r‖s‖v), got {len(signature)} bytes")
    v = signature[64]
    if v != 27 and v != 28:
        raise SignatureError(signature, f"has v = {v}; v must be 27 or 28")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N or not 0 < s < SECP256K1_N:
        raise SignatureError(signature, "has r or s outside 1..n-1 of secp256k1")
    if s > SECP256K1_HALF_N:
        raise SignatureError(signature, "has high s (s > n/2): a malleable signature")
    try:
        public = PublicKey.from_signature_and_message(signature[:64] + bytes((v - 27,)), digest, hasher=None)
    except ValueError as exc:  # r is not the x of a curve point for this v
        raise SignatureError(signature, f"does not recover to any public key ({exc})") from None
    return address_of_public_key(public)


# --------------------------------------------------------------------------------------- Merkle tree


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of two 32-byte nodes in ascending order (OZ ``Hashes.commutativeKeccak256``)."""
    return keccak256(a + b) if a <= b else keccak256(b + a)


def _tree(leaves: Sequence[bytes]) -> list[bytes]:
    """The tree as OpenZeppelin's ``makeMerkleTree`` lays it out: an array of 2n-1 nodes, the root at 0,
    node i's children at 2i+1 and 2i+2, leaf k at index 2n-2-k."""
    if not leaves:
        raise ReceiptError("A Merkle root needs at least one leaf; the batch has no receipts.")
    for i, leaf in enumerate(leaves):
        if len(leaf) != 32:
            raise ReceiptError(f"Merkle leaf {i} is {len(leaf)} bytes; leaves are 32-byte digests.")
    size = 2 * len(leaves) - 1
    tree: list[bytes] = [b""] * (size - len(leaves)) + list(reversed(leaves))
    for i in range(size - len(leaves) - 1, -1, -1):
        tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
    return tree


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root over ``leaves`` (32-byte digests) in the given order; one leaf is its own root."""
    return _tree(leaves)[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling path of ``leaves[index]``, bottom-up, as OZ ``SimpleMerkleTree.getProof(index)`` gives it."""
    tree = _tree(leaves)
    if not 0 <= index < len(leaves):
        raise ReceiptError(f"Merkle leaf index {index} is outside 0..{len(leaves) - 1}.")
    node = len(tree) - 1 - index
    proof: list[bytes] = []
    while node > 0:
        proof.append(tree[node + 1 if node % 2 else node - 1])
        node = (node - 1) // 2
    return proof


def verify_proof(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True if ``proof`` links ``leaf`` to ``root`` (the fold of OZ ``MerkleProof.processProof``)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root
