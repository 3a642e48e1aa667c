"""The proof-of-bandwidth receipt: pydantic models, a lean validated tuple form, and file parsers.

Two representations of one thing:

* `Receipt` / `SignedReceipt` — frozen pydantic models for application code: checksummed
  addresses, lower-case hex, Python field names, JSON with the EIP-712 names.
* `RawReceipt` — a plain named tuple of bytes and ints produced by `parse_raw_receipt`. The models
  validate through the same function, so both accept exactly the same inputs; the auditor's and the
  relay's hot paths use the tuple and never touch pydantic.

Validation follows what ``ReceiptSettlement`` accepts, so nothing a node stores can be unsettleable:
cumulative values ≤ 2**128 − 1 (the contract packs them into one slot), latency uint32, issuedAt
uint64, non-zero consumer and node, and a 65-byte low-s signature with v ∈ {27, 28}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nodeclient.errors import ReceiptError
from nodeclient.receipts.crypto import SECP256K1_HALF_N, SECP256K1_N
from nodeclient.receipts.crypto import checksum_address as to_checksum_address
from nodeclient.receipts.errors import MISSING, ReceiptFieldError, ReceiptFileError, SignatureError

__all__ = [
    "JSON_FIELDS",
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "UINT32_MAX",
    "UINT64_MAX",
    "UINT128_MAX",
    "UINT256_MAX",
    "ZERO_ADDRESS",
    "RawReceipt",
    "Receipt",
    "SignedReceipt",
    "iter_receipts_jsonl",
    "load_receipts",
    "parse_address",
    "parse_raw_receipt",
    "parse_receipts_text",
    "parse_signature",
    "raw_to_json_dict",
    "reject_duplicate_keys",
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
_PY_FIELDS: tuple[str, ...] = (
    "consumer",
    "node",
    "session_id",
    "cumulative_bytes",
    "cumulative_amount",
    "latency_ms",
    "issued_at",
)
_PY_TO_JSON = dict(zip(_PY_FIELDS, JSON_FIELDS, strict=True)) | {"signature": "signature"}
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


def _fields_of(raw: RawReceipt, names: tuple[str, ...]) -> dict[str, Any]:
    """``raw``'s values under ``names`` (JSON or Python spelling, in type order), addresses checksummed."""
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
    return _fields_of(raw, JSON_FIELDS)


def _model_fields(raw: RawReceipt) -> dict[str, Any]:
    return _fields_of(raw, _PY_FIELDS)


class Receipt(BaseModel):
    """A cumulative proof-of-bandwidth receipt for the channel (consumer, node).

    Construct with Python names (``Receipt(consumer=..., session_id=..., ...)``) or validate JSON
    with the EIP-712 names (``Receipt.model_validate({"sessionId": ...})``). Invalid input raises
    `ReceiptFieldError` (a `ReceiptError`), never pydantic's ValidationError.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    _SIGNED: ClassVar[bool] = False

    consumer: str = Field(description="Consumer (payer and signer) address, EIP-55 checksummed.")
    node: str = Field(description="Node address (the node key registered in NodeRegistry), checksummed.")
    session_id: str = Field(alias="sessionId", description="bytes32 session id, 0x + 64 lower-case hex.")
    cumulative_bytes: int = Field(alias="cumulativeBytes", description="Bytes served in the channel so far.")
    cumulative_amount: int = Field(
        alias="cumulativeAmount", description="Payment-token base units owed in the channel so far."
    )
    latency_ms: int = Field(alias="latencyMs", description="Consumer-measured median latency, ms (uint32).")
    issued_at: int = Field(alias="issuedAt", description="Unix seconds when the consumer signed (uint64).")

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if isinstance(data, cls):
            return data
        if isinstance(data, Receipt):
            # e.g. an unsigned Receipt given where a SignedReceipt is expected: validate its fields,
            # so the missing signature is reported like any other missing field.
            data = data.to_json_dict()
        if isinstance(data, Mapping):
            # Accept Python names too (code constructs models with them); both spellings at once is ambiguous.
            json_shaped: dict[Any, Any] = {}
            for key, value in data.items():
                name = _PY_TO_JSON.get(key, key) if isinstance(key, str) else key
                if name in json_shaped:
                    raise ReceiptFieldError(str(name), value, "is given twice (Python and EIP-712 spelling)")
                json_shaped[name] = value
            data = json_shaped
        return _model_fields(parse_raw_receipt(data, signed=cls._SIGNED))

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **_: Any) -> Self:  # type: ignore[override]
        """Parse one receipt from JSON text with the same rules as the file parsers.

        Overrides pydantic's parser, which keeps the last of duplicated keys: a receipt that states
        two amounts is refused (`ReceiptFileError`), never read one way here and another elsewhere.
        """
        text = json_data if isinstance(json_data, str) else bytes(json_data).decode("utf-8", errors="replace")
        try:
            data = _json_loads(text)
        except ValueError as exc:
            raise _decode_error("<json>", exc) from None
        return cls.model_validate(data)

    @classmethod
    def from_raw(cls, raw: RawReceipt) -> Receipt:
        """Model of an already validated `RawReceipt` (no second validation pass)."""
        fields = _model_fields(raw)
        if raw.signature is not None:
            return SignedReceipt.model_construct(**fields)
        return Receipt.model_construct(**fields)

    @property
    def raw(self) -> RawReceipt:
        """The bytes/ints form used by `receipt_digest` and the verifier."""
        sig = getattr(self, "signature", None)
        return RawReceipt(
            bytes.fromhex(self.consumer[2:]),
            bytes.fromhex(self.node[2:]),
            bytes.fromhex(self.session_id[2:]),
            self.cumulative_bytes,
            self.cumulative_amount,
            self.latency_ms,
            self.issued_at,
            bytes.fromhex(sig[2:]) if sig is not None else None,
        )

    @property
    def channel(self) -> tuple[str, str]:
        """(consumer, node): the on-chain channel this receipt advances."""
        return (self.consumer, self.node)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the EIP-712 names and integers as integers."""
        return self.model_dump(by_alias=True)

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace (the bundle's byte format)."""
        return json.dumps(self.to_json_dict(), sort_keys=True, separators=(",", ":"))


class SignedReceipt(Receipt):
    """A receipt with the consumer's EIP-712 signature: 0x + 130 hex, r‖s‖v, v ∈ {27, 28}, low-s."""

    _SIGNED: ClassVar[bool] = True

    signature: str = Field(description="65-byte r‖s‖v signature by the consumer, 0x + 130 lower-case hex.")

    @property
    def signature_bytes(self) -> bytes:
        """The 65 signature bytes."""
        return bytes.fromhex(self.signature[2:])

    @property
    def receipt(self) -> Receipt:
        """The signed content without the signature."""
        return Receipt.model_construct(**self.model_dump(exclude={"signature"}))


# ---------------------------------------------------------------------------------------------
# Files and streams


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads`` that refuses a key given twice (``ValueError``).

    json.loads keeps the last of duplicated keys while other parsers keep the first: a receipt (or
    bundle) that says two amounts must be refused, not silently read one way.
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key '{key}'")
        out[key] = value
    return out


def _json_loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=reject_duplicate_keys)


def _decode_error(source: str, exc: ValueError) -> ReceiptFileError:
    if isinstance(exc, json.JSONDecodeError):
        truncated = " (truncated?)" if exc.pos >= len(exc.doc.rstrip()) else ""
        return ReceiptFileError(source, f"line {exc.lineno} column {exc.colno}", f"invalid JSON{truncated}: {exc.msg}")
    return ReceiptFileError(source, None, f"invalid JSON: {exc}")


def _model(signed: bool) -> type[Receipt]:
    return SignedReceipt if signed else Receipt


def _parse_one(obj: object, source: str, location: str, signed: bool) -> Receipt:
    try:
        return _model(signed).model_validate(obj)
    except ReceiptError as exc:
        raise ReceiptFileError(source, location, str(exc), cause=exc) from None


def parse_receipts_text(text: str, *, source: str = "<input>", signed: bool = True) -> list[Receipt]:
    """Parse one receipt (a JSON object), a JSON array of receipts, or JSON lines (one object a line).

    Errors are `ReceiptFileError` naming ``source`` and the record: ``index N`` in an array,
    ``line N`` in JSON lines or at a JSON syntax error. Empty input is an error, not an empty list:
    a file that silently yields nothing would hide a lost export.
    """
    stripped = text.strip()
    if not stripped:
        raise ReceiptFileError(source, None, "is empty: expected a receipt, a JSON array of receipts, or JSON lines")
    try:
        doc = _json_loads(stripped)
    except ValueError as whole_exc:
        # Not one JSON document: JSON lines if its first non-blank line is a complete object.
        first = next(line for line in stripped.splitlines() if line.strip())
        try:
            first_doc = _json_loads(first)
        except ValueError:
            first_doc = None
        if isinstance(first_doc, dict) and first.strip() != stripped:
            return list(iter_receipts_jsonl(text.splitlines(), source=source, signed=signed))
        raise _decode_error(source, whole_exc) from None
    if isinstance(doc, list):
        if not doc:
            raise ReceiptFileError(source, None, "is an empty JSON array: no receipts")
        return [_parse_one(item, source, f"index {i}", signed) for i, item in enumerate(doc)]
    if isinstance(doc, dict):
        return [_parse_one(doc, source, "line 1", signed)]
    raise ReceiptFileError(source, None, f"must hold a JSON object or array of receipts, got {type(doc).__name__}")


def iter_receipts_jsonl(lines: Iterable[str], *, source: str = "<stream>", signed: bool = True) -> Iterator[Receipt]:
    """Yield receipts from JSON lines (blank lines skipped); errors name ``source`` and ``line N``."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = _json_loads(line)
        except ValueError as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise ReceiptFileError(source, f"line {number}", f"invalid JSON (truncated line?): {detail}") from None
        yield _parse_one(obj, source, f"line {number}", signed)


def load_receipts(path: str | Path, *, signed: bool = True) -> list[Receipt]:
    """Read receipts from a file: one object, a JSON array, or JSON lines. See `parse_receipts_text`."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReceiptFileError(source, None, f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReceiptFileError(source, f"byte {exc.start}", "is not UTF-8 text") from None
    return parse_receipts_text(text, source=source, signed=signed)
