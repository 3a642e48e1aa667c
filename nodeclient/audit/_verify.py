"""Worker side of bundle verification: parse, digest and recover one chunk of receipts.

Runs in spawned worker processes, so it imports only the receipt crypto core (coincurve + Keccak): no
web3, no pydantic. The parser is as strict as ``nodeclient.receipts.model.parse_raw_receipt`` — exact keys,
JSON integers within the Solidity types (cumulative values within uint128, what the contract can
store), 0x-hex of the right length, EIP-55 checksums when mixed case, 65-byte low-s signatures with
v ∈ {27, 28} — and reports the first bad field of a receipt with its value.
"""

from __future__ import annotations

from typing import Any

from nodeclient.audit.crypto import SECP256K1_HALF_N, receipt_digest, recover_address
from nodeclient.receipts.crypto import checksum_address as checksum

__all__ = ["FIELDS", "ParsedReceipt", "checksum", "parse_receipt", "verify_chunk"]

FIELDS = ("consumer", "node", "sessionId", "cumulativeBytes", "cumulativeAmount", "latencyMs", "issuedAt", "signature")
_KEYS = frozenset(FIELDS)
_HEX = frozenset("0123456789abcdefABCDEF")
_UINT128 = (1 << 128) - 1
_LIMITS = {"cumulativeBytes": _UINT128, "cumulativeAmount": _UINT128, "latencyMs": (1 << 32) - 1,
           "issuedAt": (1 << 64) - 1}

#: (consumer, node, sessionId, cumulativeBytes, cumulativeAmount, latencyMs, issuedAt, digest, signer)
ParsedReceipt = tuple[bytes, bytes, bytes, int, int, int, int, bytes, bytes]


class _Bad(ValueError):
    pass


def _hex(name: str, value: Any, size: int) -> bytes:
    if type(value) is not str or len(value) != 2 + 2 * size or not value.startswith("0x") or not _HEX.issuperset(value[2:]):
        raise _Bad(f"{name} {str(value)[:80]!r} is not 0x followed by {2 * size} hex digits")
    return bytes.fromhex(value[2:])


_SEEN_ADDRESSES: dict[str, bytes] = {}


def _address(name: str, value: Any) -> bytes:
    # A bundle repeats a few addresses thousands of times: validate each spelling once.
    cached = _SEEN_ADDRESSES.get(value) if type(value) is str else None
    if cached is not None:
        return cached
    raw = _hex(name, value, 20)
    body = value[2:]
    if body != body.lower() and body != body.upper() and checksum(raw) != value:
        raise _Bad(f"{name} {value} has an invalid EIP-55 checksum")
    if raw == bytes(20):
        raise _Bad(f"{name} is the zero address")
    if len(_SEEN_ADDRESSES) < 100_000:
        _SEEN_ADDRESSES[value] = raw
    return raw


def _uint(name: str, value: Any) -> int:
    if type(value) is not int:  # bool is an int subclass; `true` must not become 1
        raise _Bad(f"{name} {value!r} is not a JSON integer")
    if value < 0 or value > _LIMITS[name]:
        raise _Bad(f"{name} {value} is outside 0..{_LIMITS[name]}")
    return value


def parse_receipt(obj: Any) -> tuple[tuple[bytes, bytes, bytes, int, int, int, int], bytes]:
    """(digest fields, signature) of a receipt in JSON form; ``ValueError`` names the first bad field."""
    if not isinstance(obj, dict):
        raise _Bad(f"a receipt must be a JSON object, not {type(obj).__name__}")
    if obj.keys() != _KEYS:
        extra = sorted(set(obj) - _KEYS)
        missing = sorted(_KEYS - set(obj))
        raise _Bad(f"receipt keys differ from the signed type (missing {missing}, unexpected {extra})")
    sig = _hex("signature", obj["signature"], 65)
    if sig[64] not in (27, 28):
        raise _Bad(f"signature has v = {sig[64]}, not 27 or 28")
    if int.from_bytes(sig[32:64], "big") > SECP256K1_HALF_N:
        raise _Bad("signature has a high s (malleable form)")
    fields = (
        _address("consumer", obj["consumer"]),
        _address("node", obj["node"]),
        _hex("sessionId", obj["sessionId"], 32),
        _uint("cumulativeBytes", obj["cumulativeBytes"]),
        _uint("cumulativeAmount", obj["cumulativeAmount"]),
        _uint("latencyMs", obj["latencyMs"]),
        _uint("issuedAt", obj["issuedAt"]),
    )
    return fields, sig


def verify_chunk(job: tuple[bytes, list[Any]]) -> list[ParsedReceipt | str]:
    """Parse, digest and recover each receipt object: a ``ParsedReceipt``, or the parse error text.

    The signer is ``b""`` when the signature is one the contract would reject.
    """
    separator, objs = job
    out: list[ParsedReceipt | str] = []
    append = out.append
    for obj in objs:
        try:
            fields, sig = parse_receipt(obj)
        except _Bad as exc:
            append(str(exc))
            continue
        digest = receipt_digest(fields, separator)
        append((*fields, digest, recover_address(digest, sig) or b""))
    return out


#: (separator, receipt objects) set by the parent just before it forks its workers: a forked child
#: reads them through copy-on-write memory instead of receiving them pickled.
_SHARED: tuple[bytes, list[Any]] | None = None


def share(separator: bytes, objs: list[Any] | None) -> None:
    """Publish the receipts to workers forked after this call (``None`` objs clears it)."""
    global _SHARED
    _SHARED = (separator, objs) if objs is not None else None


def verify_range(bounds: tuple[int, int]) -> list[ParsedReceipt | str]:
    """``verify_chunk`` over ``_SHARED[1][start:end]`` (fork workers only)."""
    if _SHARED is None:
        raise RuntimeError("verify_range needs receipts shared before the fork")
    separator, objs = _SHARED
    start, end = bounds
    return verify_chunk((separator, objs[start:end]))
