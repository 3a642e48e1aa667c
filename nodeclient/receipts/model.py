"""The proof-of-bandwidth receipt: pydantic models, a lean validated tuple form, and file parsers.

Two representations of one thing:

* `Receipt` / `SignedReceipt` — frozen pydantic models for application code: checksummed
  addresses, lower-case hex, Python field names, JSON with the EIP-712 names.
* `RawReceipt` — a plain named tuple of bytes and ints produced by `parse_raw_receipt`
  (`nodeclient.receipts.raw`, re-exported here). The models validate through the same function, so
  both accept exactly the same inputs; the auditor's and the relay's hot paths use the tuple and never
  touch pydantic.

Validation follows what ``ReceiptSettlement`` accepts, so nothing a node stores can be unsettleable:
cumulative values ≤ 2**128 − 1 (the contract packs them into one slot), latency uint32, issuedAt
uint64, non-zero consumer and node, and a 65-byte low-s signature with v ∈ {27, 28}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nodeclient.errors import ReceiptError
from nodeclient.receipts.crypto import SECP256K1_HALF_N, SECP256K1_N
from nodeclient.receipts.errors import ReceiptFieldError, ReceiptFileError
from nodeclient.receipts.raw import (
    JSON_FIELDS,
    PYTHON_FIELDS,
    UINT32_MAX,
    UINT64_MAX,
    UINT128_MAX,
    UINT256_MAX,
    RawReceipt,
    parse_address,
    parse_raw_receipt,
    parse_signature,
    raw_to_dict,
    raw_to_json_dict,
    to_checksum_address,
)

__all__ = [
    "JSON_FIELDS",
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "UINT32_MAX",
    "UINT64_MAX",
    "UINT128_MAX",
    "UINT256_MAX",
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

_PY_TO_JSON = dict(zip(PYTHON_FIELDS, JSON_FIELDS, strict=True)) | {"signature": "signature"}


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
        return raw_to_dict(parse_raw_receipt(data, signed=cls._SIGNED), PYTHON_FIELDS)

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
        fields = raw_to_dict(raw, PYTHON_FIELDS)
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
