"""Errors of the metered relay. Every class is a ``RelayError`` (or a funds error) with a full sentence.

Wire errors carry a short machine ``code`` as well, which the node sends to the peer in an ERROR
frame and writes to its log, so an operator can grep refusals by kind.
"""

from __future__ import annotations

from typing import ClassVar

from nodeclient.errors import EXIT_FUNDS, EXIT_REFUSED, ConfigError, RelayError

__all__ = [
    "CapReachedError",
    "CreditExhaustedError",
    "FrameTooLargeError",
    "HandshakeError",
    "InsufficientEscrowError",
    "LinkIntegrityError",
    "ProtocolError",
    "ReceiptRejectedError",
    "RelayConfigError",
    "RelayError",
    "RemoteError",
    "SessionRefusedError",
    "SpendCapReachedError",
    "TargetRefusedError",
]


class RelayConfigError(ConfigError):
    """A relay setting is out of range; names the setting, its value and the rule it breaks."""

    def __init__(self, setting: str, value: object, rule: str) -> None:
        self.setting = setting
        self.value = value
        super().__init__(f"relay setting {setting} = {value!r} is invalid: {rule}")


class _DetailedError(RelayError):
    """A relay error that keeps the values its message names as attributes, for callers and tests."""

    def __init__(self, message: str, **details: object) -> None:
        for name, value in details.items():
            setattr(self, name, value)
        super().__init__(message)


class _ReasonError(RelayError):
    """A relay error whose message is its kind (``prefix``) and a reason."""

    prefix: ClassVar[str]
    reason: str

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{self.prefix}: {reason}")


class ProtocolError(_ReasonError):
    """The peer sent bytes that are not a valid frame or not valid in the session's state."""

    code = "protocol"
    prefix = "relay protocol error"


class FrameTooLargeError(ProtocolError):
    """A frame header announced more bytes than the configured maximum frame size."""

    code = "frame_too_large"

    def __init__(self, length: int, maximum: int) -> None:
        self.length = length
        self.maximum = maximum
        super().__init__(f"frame of {length} bytes exceeds the maximum frame size of {maximum} bytes")


class LinkIntegrityError(ProtocolError):
    """An encrypted record failed authentication or was cut: the bytes were changed on the way."""

    code = "link"
    prefix = "relay link integrity failure"


class HandshakeError(_ReasonError):
    """The session handshake failed: bad signature, wrong node, stale challenge, wrong price."""

    code = "handshake"
    prefix = "relay handshake failed"


class SessionRefusedError(_ReasonError):
    """The node refused a session for an operational reason (busy, channel already open, node inactive)."""

    code = "refused"
    exit_code = EXIT_REFUSED
    prefix = "relay session refused"


class ReceiptRejectedError(_ReasonError):
    """A receipt sent in a session failed verification; the node refuses it and ends the session."""

    code = "bad_receipt"
    prefix = "receipt rejected"


class InsufficientEscrowError(_DetailedError):
    """The consumer's escrow does not cover what it owes plus the node's credit limit."""

    code = "insufficient_escrow"
    exit_code = EXIT_FUNDS
    consumer: str
    available: int
    needed: int

    def __init__(self, consumer: str, available: int, needed: int) -> None:
        super().__init__(
            f"escrow of consumer {consumer} has {available} available but the node requires {needed} "
            "(unsettled receipts plus its credit limit)",
            consumer=consumer,
            available=available,
            needed=needed,
        )


class CreditExhaustedError(_DetailedError):
    """The consumer let unpaid traffic reach the credit limit and did not sign within the pause time-out."""

    code = "credit_exhausted"
    unpaid_bytes: int
    credit_bytes: int

    def __init__(self, unpaid_bytes: int, credit_bytes: int, waited_s: float) -> None:
        super().__init__(
            f"consumer left {unpaid_bytes} bytes unpaid (credit limit {credit_bytes} bytes) and sent no "
            f"receipt within {waited_s:g} s",
            unpaid_bytes=unpaid_bytes,
            credit_bytes=credit_bytes,
        )


class CapReachedError(_DetailedError):
    """An operator cap (per session, per day, per month) leaves no room for more traffic."""

    code = "cap_reached"
    exit_code = EXIT_REFUSED
    cap: str
    used: int
    limit: int

    def __init__(self, cap: str, used: int, limit: int) -> None:
        super().__init__(
            f"the node's {cap} cap is reached: {used} of {limit} bytes used", cap=cap, used=used, limit=limit
        )


class SpendCapReachedError(_DetailedError):
    """The consumer's own spend cap is reached: it signs nothing more and ends the session."""

    code = "spend_cap"
    exit_code = EXIT_FUNDS
    spent: int
    cap: int

    def __init__(self, spent: int, cap: int) -> None:
        super().__init__(
            f"spend cap reached: {spent} of {cap} payment-token units signed in this session",
            spent=spent,
            cap=cap,
        )


class TargetRefusedError(_DetailedError):
    """The node will not (or cannot) connect to the requested destination."""

    code = "target_refused"
    target: str
    reason: str

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"destination {target} refused: {reason}", target=target, reason=reason)


class RemoteError(_DetailedError):
    """The peer ended the session with an ERROR frame; ``code`` and ``reason`` are the peer's."""

    code: str
    reason: str

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"the relay peer ended the session ({code}): {reason}", code=code, reason=reason)
