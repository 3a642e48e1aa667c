"""Receipt and store errors: specific subclasses of `ReceiptError` and `StoreError`.

Each class builds one complete sentence that names the offending value in ``__init__`` and keeps the
parts as attributes, so callers (CLI, relay, auditor) can both print the message and branch on the
fields. Nothing here ever formats key material: signing errors describe a key only by its length.
"""

from __future__ import annotations

from nodeclient.errors import EXIT_AUDIT_EVIDENCE, EXIT_NOT_FOUND, ReceiptError, StoreError

__all__ = [
    "BatchConflictError",
    "BatchNotFoundError",
    "BatchStateError",
    "BundleError",
    "BundleRecordError",
    "DomainMismatchError",
    "InvalidSignerError",
    "NodeMismatchError",
    "NothingOwedError",
    "PrivateKeyError",
    "ReceiptFieldError",
    "ReceiptFileError",
    "ReceiptNotFoundError",
    "SignatureError",
    "StaleReceiptError",
    "StoreCorruptError",
    "StoreSchemaError",
]


def _short(value: object, limit: int = 90) -> str:
    """repr() of a user-supplied value, cut so a 1 MB string does not become a 1 MB error line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


class _Missing:
    """Sentinel for a field that is absent (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "<missing>"


#: Passed as ``value`` to `ReceiptFieldError` when a required field is absent.
MISSING = _Missing()


class ReceiptFieldError(ReceiptError):
    """One field of a receipt is missing, of the wrong type, or out of range."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        shown = "missing" if value is MISSING else _short(value)
        super().__init__(f"Receipt field '{field}' is {shown}: {reason}.")


class ReceiptFileError(ReceiptError):
    """A receipt file or stream is unreadable or one of its records is malformed.

    ``location`` is ``"line N"`` (JSON lines, or a JSON syntax error) or ``"index N"`` (a JSON array);
    ``cause`` is the underlying `ReceiptError` when a record parsed but failed validation.
    """

    def __init__(self, source: str, location: str | None, detail: str, cause: ReceiptError | None = None) -> None:
        self.source = source
        self.location = location
        self.detail = detail
        self.cause = cause
        self.field = getattr(cause, "field", None)
        where = f"{source}, {location}" if location else source
        super().__init__(f"{where}: {detail}")


class SignatureError(ReceiptError):
    """A signature is malformed: wrong length, v not 27/28, r or s out of range, or high-s (malleable)."""

    def __init__(self, signature: object, reason: str) -> None:
        self.signature = signature
        self.reason = reason
        super().__init__(f"Receipt field 'signature' is {_short(signature, 150)}: {reason}.")


class InvalidSignerError(ReceiptError):
    """The signature recovers to an address other than the receipt's consumer (wrong key or wrong domain)."""

    def __init__(self, consumer: str, recovered: str) -> None:
        self.consumer = consumer
        self.recovered = recovered
        super().__init__(
            f"Receipt signature recovers to {recovered}, not to its consumer {consumer} "
            "(signed by another key, or for another chain id or settlement contract)."
        )


class NodeMismatchError(ReceiptError):
    """The receipt names another node than the one storing or settling it."""

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"Receipt field 'node' is {actual}: expected this node, {expected}.")


class DomainMismatchError(ReceiptError):
    """A store or bundle is bound to one EIP-712 domain (chain id, settlement) and was given another."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what} is bound to domain {expected}, got {actual}.")


class StaleReceiptError(ReceiptError):
    """A receipt does not advance its channel: amount not increasing, or bytes/issuedAt going backwards."""

    def __init__(self, consumer: str, node: str, field: str, value: int, latest: int) -> None:
        self.consumer = consumer
        self.node = node
        self.field = field
        self.value = value
        self.latest = latest
        relation = "does not exceed" if field == "cumulativeAmount" else "is below"
        super().__init__(
            f"Receipt field '{field}' is {value}: it {relation} the channel's latest accepted {latest} "
            f"(consumer {consumer}, node {node})."
        )


class PrivateKeyError(ReceiptError):
    """A private key given for signing is unusable. The message never contains the key."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Private key rejected: {reason}.")


class BundleError(ReceiptError):
    """A receipt bundle is unusable as a whole (unreadable, bad header, wrong root or file name)."""

    exit_code = EXIT_AUDIT_EVIDENCE

    def __init__(self, source: str, detail: str) -> None:
        self.source = source
        self.detail = detail
        super().__init__(f"Bundle {source}: {detail}")


class BundleRecordError(BundleError):
    """One receipt of a bundle is invalid; ``index`` and ``field`` name it."""

    def __init__(self, source: str, index: int, field: str | None, detail: str) -> None:
        self.index = index
        self.field = field
        at = f"receipt {index}" + (f" field '{field}'" if field else "")
        super().__init__(source, f"{at}: {detail}")


class StoreCorruptError(StoreError):
    """SQLite reports the store file damaged, or an invariant of the store does not hold."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"Receipt store {path} failed its integrity check: {detail}")


class StoreSchemaError(StoreError):
    """The store file was written by a newer Kuota (schema version unknown to this one), or is not a store."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        super().__init__(f"Receipt store {path}: {detail}")


class BatchStateError(StoreError):
    """A settlement batch transition that its current state does not allow (e.g. confirming a failed batch)."""

    def __init__(self, batch_id: int, state: str, action: str, detail: str = "") -> None:
        self.batch_id = batch_id
        self.state = state
        self.action = action
        extra = f": {detail}" if detail else ""
        super().__init__(f"Settlement batch {batch_id} is '{state}' and cannot be {action}{extra}.")


class BatchConflictError(StoreError):
    """A batch was asked for a channel that already has an open (pending or submitted) batch."""

    def __init__(self, consumer: str, node: str, batch_id: int) -> None:
        self.consumer = consumer
        self.node = node
        self.batch_id = batch_id
        super().__init__(
            f"Channel (consumer {consumer}, node {node}) is already in open settlement batch {batch_id}; "
            "reconcile that batch before starting another."
        )


class NothingOwedError(StoreError):
    """A receipt put into a settlement batch can collect nothing: its channel is settled up to it."""

    def __init__(self, consumer: str, node: str, cumulative_amount: int, settled_amount: int) -> None:
        self.consumer = consumer
        self.node = node
        self.cumulative_amount = cumulative_amount
        self.settled_amount = settled_amount
        super().__init__(
            f"Receipt with cumulativeAmount {cumulative_amount} owes nothing: channel (consumer {consumer}, "
            f"node {node}) is already settled up to {settled_amount}."
        )


class ReceiptNotFoundError(StoreError):
    """A receipt digest the caller named is not in the store."""

    exit_code = EXIT_NOT_FOUND

    def __init__(self, digest: str) -> None:
        self.digest = digest
        super().__init__(f"Receipt {digest} is not in the receipt store.")


class BatchNotFoundError(StoreError):
    """A settlement batch id the caller named is not in the store."""

    exit_code = EXIT_NOT_FOUND

    def __init__(self, batch_id: int) -> None:
        self.batch_id = batch_id
        super().__init__(f"Settlement batch {batch_id} is not in the receipt store.")
