"""Errors of the metered relay. Every class is a ``RelayError`` (or a funds error) with a full sentence.

Wire errors carry a short machine ``code`` as well, which the node sends to the peer in an ERROR
frame and writes to its log, so an operator can grep refusals by kind.
"""

from __future__ import annotations

from nodeclient.errors import EXIT_FUNDS, EXIT_REFUSED, ConfigError, RelayError

__all__ = [
    "CapReachedError",
    "CreditExhaustedError",
    "FrameTooLargeError",
    "HandshakeError",
    "InsufficientEscrowError",
    "ProtocolError",
    "ReceiptRejectedError",
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


class ProtocolError(RelayError):
    """The peer sent bytes that are not a valid frame or not valid in the session's state."""

    code = "protocol"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"relay protocol error: {reason}")


class FrameTooLargeError(ProtocolError):
    """A frame header announced more bytes than the configured maximum frame size."""

    code = "frame_too_large"

    def __init__(self, length: int, maximum: int) -> None:
        self.length = length
        self.maximum = maximum
        super().__init__(f"frame of {length} bytes exceeds the maximum frame size of {maximum} bytes")


class HandshakeError(RelayError):
    """The session handshake failed: bad signature, wrong node, stale challenge, wrong price."""

    code = "handshake"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"relay handshake failed: {reason}")


class SessionRefusedError(RelayError):
    """The node refused a session for an operational reason (busy, channel already open, node inactive)."""

    code = "refused"
    exit_code = EXIT_REFUSED

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"relay session refused: {reason}")


class InsufficientEscrowError(RelayError):
    """The consumer's escrow does not cover what it owes plus the node's credit limit."""

    code = "insufficient_escrow"
    exit_code = EXIT_FUNDS

    def __init__(self, consumer: str, available: int, needed: int) -> None:
        self.consumer = consumer
        self.available = available
        self.needed = needed
        super().__init__(
            f"escrow of consumer {consumer} has {available} available but the node requires {needed} "
            "(unsettled receipts plus its credit limit)"
        )


class ReceiptRejectedError(RelayError):
    """A receipt sent in a session failed verification; the node refuses it and ends the session."""

    code = "bad_receipt"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"receipt rejected: {reason}")


class CreditExhaustedError(RelayError):
    """The consumer let unpaid traffic reach the credit limit and did not sign within the pause time-out."""

    code = "credit_exhausted"

    def __init__(self, unpaid_bytes: int, credit_bytes: int, waited_s: float) -> None:
        self.unpaid_bytes = unpaid_bytes
        self.credit_bytes = credit_bytes
        super().__init__(
            f"consumer left {unpaid_bytes} bytes unpaid (credit limit {credit_bytes} bytes) and sent no "
            f"receipt within {waited_s:g} s"
        )


class CapReachedError(RelayError):
    """An operator cap (per session, per day, per month) leaves no room for more traffic."""

    code = "cap_reached"
    exit_code = EXIT_REFUSED

    def __init__(self, cap: str, used: int, limit: int) -> None:
        self.cap = cap
        self.used = used
        self.limit = limit
        super().__init__(f"the node's {cap} cap is reached: {used} of {limit} bytes used")


class SpendCapReachedError(RelayError):
    """The consumer's own spend cap is reached: it signs nothing more and ends the session."""

    code = "spend_cap"
    exit_code = EXIT_FUNDS

    def __init__(self, spent: int, cap: int) -> None:
        self.spent = spent
        self.cap = cap
        super().__init__(f"spend cap reached: {spent} of {cap} payment-token units signed in this session")


class TargetRefusedError(RelayError):
    """The node will not (or cannot) connect to the requested destination."""

    code = "target_refused"

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"destination {target} refused: {reason}")


class RemoteError(RelayError):
    """The peer ended the session with an ERROR frame; ``code`` and ``reason`` are the peer's."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"the relay peer ended the session ({code}): {reason}")
