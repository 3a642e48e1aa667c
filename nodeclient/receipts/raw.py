"""The lean validated form of a receipt: `RawReceipt` (bytes and ints) and its strict parsers.

`parse_raw_receipt` is the one validation every receipt passes, whether it becomes a pydantic model
(`nodeclient.receipts.model`), is verified in bulk (`nodeclient.receipts.verify`) or is replayed by
the auditor's worker processes, which import this module and the crypto core only (no pydantic).

Validation follows what ``ReceiptSettlement`` accepts, so nothing a node stores can be unsettleable:
cumulative values ≤ 2**128 − 1 (the contract packs them into one slot), latency uint32, issuedAt
uint64, non-zero consumer and node, and a 65-byte low-s signature with v ∈ {27, 28}.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from nodeclient.receipts.crypto import SECP256K1_HALF_N, SECP256K1_N
from nodeclient.receipts.crypto import checksum_address as to_checksum_address
from nodeclient.receipts.errors import MISSING, ReceiptFieldError, SignatureError

__all__ = [
    "JSON_FIELDS",
    "PYTHON_FIELDS",
    "UINT32_MAX",
    "UINT64_MAX",
    "UINT128_MAX",
    "UINT256_MAX",
    "ZERO_ADDRESS",
    "RawReceipt",
    "parse_address",
    "parse_raw_receipt",
    "parse_signature",
    "raw_to_dict",
    "raw_to_json_dict",
    "to_checksum_address",
]

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
UINT128_MAX = 2**128 - 1
UINT256_MAX = 2**256 - 1
ZERO_ADDRESS = "0x" + "0" * 40

#: The EIP-712 field names, in type order; also the JSON keys of a receipt.
JSON_FIELDS: tuple[str, ...] = (
    "consumer",
    "node",
    "sessionId",
    "cumulativeBytes",
    "cumulativeAmount",
    "latencyMs",
    "issuedAt",
)
#: The same fields as Python attribute names (the pydantic models' field names), in type order.
PYTHON_FIELDS: tuple[str, ...] = (
    "consumer",
    "node",
    "session_id",
    "cumulative_bytes",
    "cumulative_amount",
    "latency_ms",
    "issued_at",
)
_JSON_KEYS_SIGNED = frozenset(JSON_FIELDS) | {"signature"}
_MISSING = MISSING
_HEX = frozenset("0123456789abcdefABCDEF")


class RawReceipt(NamedTuple):
    """A validated receipt as bytes and ints: the form the digest and recovery hot paths use."""

    consumer: bytes  # 20 bytes
    node: bytes  # 20 bytes
    session_id: bytes  # 32 bytes
    cumulative_bytes: int
    cumulative_amount: int
    latency_ms: int
    issued_at: int
    signature: bytes | None  # 65 bytes r‖s‖v, or None for an unsigned receipt


def _hex_bytes(field: str, value: object, size: int, what: str) -> bytes:
    if type(value) is not str:
        raise ReceiptFieldError(field, value, f"must be {what} as a 0x-prefixed hex string, got {type(value).__name__}")
    if len(value) != 2 + 2 * size or not value.startswith("0x") or not _HEX.issuperset(value[2:]):
        raise ReceiptFieldError(field, value, f"must be {what}: '0x' followed by {2 * size} hex digits")
    return bytes.fromhex(value[2:])


def parse_address(field: str, value: object, *, allow_zero: bool = False) -> bytes:
    """Validate an address string and return its 20 bytes.

    Lower-case (and all-upper-case) hex is accepted as "no checksum" per EIP-55; mixed case must be a
    correct checksum, because a mistyped checksummed address is exactly what EIP-55 exists to catch.
    """
    if type(value) is not str:
        raise ReceiptFieldError(field, value, f"must be a 20-byte address as a 0x-prefixed hex string, got {type(value).__name__}")
    checked = _check_address(value)
    if type(checked) is str:
        raise ReceiptFieldError(field, value, checked)
    if not allow_zero and checked == _ZERO20:
        raise ReceiptFieldError(field, value, "the zero address is not a valid " + field)
    return checked  # type: ignore[return-value]


_ZERO20 = b"\x00" * 20


@lru_cache(maxsize=1 << 16)
def _check_address(value: str) -> bytes | str:
    """20 bytes of a well-formed address string, or the reason it is not one (cached per string)."""
    if len(value) != 42 or not value.startswith("0x") or not _HEX.issuperset(value[2:]):
        return "must be a 20-byte address: '0x' followed by 40 hex digits"
    raw = bytes.fromhex(value[2:])
    body = value[2:]
    if body != body.lower() and body != body.upper():
        expected = to_checksum_address(raw)
        if value != expected:
            return f"has an invalid EIP-55 checksum (the checksummed form is {expected})"
    return raw


def parse_signature(value: object) -> bytes:
    """Validate a signature (0x-hex string or 65 bytes) and return its 65 bytes r‖s‖v.

    Rejects what ``ReceiptSettlement`` (OpenZeppelin ECDSA) rejects: v ∉ {27, 28}, r or s zero or
    ≥ n, and high-s (s > n/2) — the malleable twin of a valid signature, which would otherwise let
    anyone mint a second, different-looking copy of a receipt.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        sig = bytes(value)
        if len(sig) != 65:
            raise SignatureError(value, f"must be 65 bytes (r‖s‖v), got {len(sig)} bytes")
    elif type(value) is str:
        if not value.startswith("0x") or not _HEX.issuperset(value[2:]) or len(value) % 2:
            raise SignatureError(value, "must be '0x' followed by 130 hex digits (65 bytes r‖s‖v)")
        sig = bytes.fromhex(value[2:])
        if len(sig) != 65:
            raise SignatureError(value, f"must be 65 bytes (r‖s‖v), got {len(sig)} bytes")
    else:
        raise SignatureError(value, f"must be a 0x-prefixed hex string, got {type(value).__name__}")
    v = sig[64]
    if v not in (27, 28):
        raise SignatureError(value, f"has v = {v}; v must be 27 or 28")
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    if not 0 < r < SECP256K1_N:
        raise SignatureError(value, "has r outside 1..n-1 of secp256k1")
    if not 0 < s < SECP256K1_N:
        raise SignatureError(value, "has s outside 1..n-1 of secp256k1")
    if s > SECP256K1_HALF_N:
        raise SignatureError(value, "has high s (s > n/2): a malleable signature; use the low-s form (n - s, flipped v)")
    return sig


def _uint(field: str, value: object, bits: int, contract_max: int | None = None) -> int:
    # bool is a subclass of int; `true` in JSON must not become an amount of 1.
    if type(value) is not int:
        shown = type(value).__name__
        raise ReceiptFieldError(field, value, f"must be a JSON integer (uint{bits}), got {shown}")
    if value < 0:
        raise ReceiptFieldError(field, value, f"must not be negative (uint{bits})")
    if value > (1 << bits) - 1:
        raise ReceiptFieldError(field, value, f"exceeds the uint{bits} maximum 2**{bits}-1")
    if contract_max is not None and value > contract_max:
        raise ReceiptFieldError(
            field, value, "exceeds 2**128-1, the largest cumulative value ReceiptSettlement can store"
        )
    return value


def parse_raw_receipt(obj: object, *, signed: bool = True) -> RawReceipt:
    """Validate a JSON-shaped mapping (EIP-712 field names) and return a `RawReceipt`.

    Raises `ReceiptFieldError` (or `SignatureError`) naming the first bad field and its value.
    Unknown keys are errors: a receipt that carries more than it signs is a forgery vector.
    """
    if not isinstance(obj, Mapping):
        raise ReceiptFieldError("receipt", obj, f"a receipt must be a JSON object, got {type(obj).__name__}")
    allowed = _JSON_KEYS_SIGNED if signed else frozenset(JSON_FIELDS)
    for key in obj:
        if key not in allowed:
            hint = "; an unsigned receipt has no signature" if key == "signature" else ""
            raise ReceiptFieldError(str(key), obj[key], f"is not a receipt field{hint}")
    get = obj.get
    values = [get(name, _MISSING) for name in JSON_FIELDS]
    for name, value in zip(JSON_FIELDS, values, strict=True):
        if value is _MISSING:
            raise ReceiptFieldError(name, _MISSING, "is required")
    signature: bytes | None = None
    if signed:
        sig_value = get("signature", _MISSING)
        if sig_value is _MISSING:
            raise ReceiptFieldError("signature", _MISSING, "is required for a signed receipt")
        signature = parse_signature(sig_value)
    return RawReceipt(
        parse_address("consumer", values[0]),
        parse_address("node", values[1]),
        _hex_bytes("sessionId", values[2], 32, "a bytes32 session id"),
        _uint("cumulativeBytes", values[3], 256, UINT128_MAX),
        _uint("cumulativeAmount", values[4], 256, UINT128_MAX),
        _uint("latencyMs", values[5], 32),
        _uint("issuedAt", values[6], 64),
        signature,
    )


def raw_to_dict(raw: RawReceipt, names: tuple[str, ...] = JSON_FIELDS) -> dict[str, Any]:
    """``raw``'s values under ``names`` (`JSON_FIELDS` or `PYTHON_FIELDS`), addresses checksummed,
    hex lower-case, and ``signature`` when it is signed."""
    values = (
        to_checksum_address(raw.consumer),
        to_checksum_address(raw.node),
        "0x" + raw.session_id.hex(),
        raw.cumulative_bytes,
        raw.cumulative_amount,
        raw.latency_ms,
        raw.issued_at,
    )
    out: dict[str, Any] = dict(zip(names, values, strict=True))
    if raw.signature is not None:
        out["signature"] = "0x" + raw.signature.hex()
    return out


def raw_to_json_dict(raw: RawReceipt) -> dict[str, Any]:
    """JSON form (EIP-712 names, checksummed addresses) of a `RawReceipt`."""
    return raw_to_dict(raw, JSON_FIELDS)
