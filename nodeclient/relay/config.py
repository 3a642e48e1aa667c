"""Settings of the two ends of the relay: the node operator's ``RelayConfig``, the consumer's ``ConsumerConfig``.

Sizes are bytes, times seconds, amounts payment-token base units. ``RelayConfig`` checks its values
when built, so a bad setting fails at start-up with the setting, its value and the rule it breaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nodeclient.relay.errors import RelayConfigError
from nodeclient.relay.framing import DEFAULT_MAX_FRAME, STREAM_ID_SIZE
from nodeclient.relay.handshake import HELLO_SKEW_S
from nodeclient.relay.limits import Caps
from nodeclient.relay.link import LINK_PROTOCOLS, preferred_link_protocol
from nodeclient.relay.targets import TargetPolicy

__all__ = ["ConsumerConfig", "RelayConfig"]

_POSITIVE_COUNTS = ("max_sessions", "max_streams_per_session")
_POSITIVE_TIMES = ("handshake_timeout", "idle_timeout", "frame_timeout", "pause_timeout", "connect_timeout")


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Operator settings of one relay node. Sizes are bytes, times seconds."""

    host: str = "127.0.0.1"
    port: int = 0
    credit_bytes: int = 16 * 1024 * 1024
    """Most unpaid bytes the node carries for one session (its exposure per consumer)."""
    receipt_interval_bytes: int = 4 * 1024 * 1024
    """The consumer is asked to sign at least this often; must not exceed ``credit_bytes``."""
    chunk_bytes: int = 128 * 1024
    max_frame: int = DEFAULT_MAX_FRAME
    max_sessions: int = 64
    max_streams_per_session: int = 32
    handshake_timeout: float = 10.0
    idle_timeout: float = 120.0
    frame_timeout: float = 20.0
    pause_timeout: float = 15.0
    connect_timeout: float = 10.0
    close_grace: float = 5.0
    receipt_skew_s: int = HELLO_SKEW_S
    rate_bytes_per_s: float | None = None
    caps: Caps = field(default_factory=Caps)
    targets: TargetPolicy = field(default_factory=TargetPolicy)
    stats_path: Path | None = None
    stats_interval: float = 5.0
    link_protocol: str = field(default_factory=preferred_link_protocol)
    """The Noise protocol of the encrypted link; consumers accept any of ``LINK_PROTOCOLS``."""

    def __post_init__(self) -> None:
        if self.link_protocol not in LINK_PROTOCOLS:
            raise RelayConfigError(
                "link_protocol", self.link_protocol, f"must be one of {', '.join(LINK_PROTOCOLS)}"
            )
        if self.credit_bytes <= 0:
            raise RelayConfigError("credit_bytes", self.credit_bytes, "must be positive")
        within_credit = f"must be in 1..credit_bytes ({self.credit_bytes})"
        if not 0 < self.receipt_interval_bytes <= self.credit_bytes:
            raise RelayConfigError("receipt_interval_bytes", self.receipt_interval_bytes, within_credit)
        if not 0 < self.chunk_bytes <= self.credit_bytes:
            raise RelayConfigError("chunk_bytes", self.chunk_bytes, within_credit)
        if self.max_frame < 4096:
            raise RelayConfigError("max_frame", self.max_frame, "must be at least 4096 bytes")
        if self.chunk_bytes + STREAM_ID_SIZE > self.max_frame:
            raise RelayConfigError(
                "chunk_bytes", self.chunk_bytes, f"plus 4 must fit in max_frame ({self.max_frame})"
            )
        for name in _POSITIVE_COUNTS:
            if getattr(self, name) <= 0:
                raise RelayConfigError(name, getattr(self, name), "must be positive")
        for name in _POSITIVE_TIMES:
            if getattr(self, name) <= 0:
                raise RelayConfigError(name, getattr(self, name), "must be a positive number of seconds")
        if self.rate_bytes_per_s is not None and self.rate_bytes_per_s <= 0:
            raise RelayConfigError(
                "rate_bytes_per_s", self.rate_bytes_per_s, "must be positive (or None for no cap)"
            )


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Consumer-side limits and timings. Amounts are payment-token base units."""

    max_price_per_gib: int | None = None
    """Refuse a node whose registered price is above this."""
    max_spend: int | None = None
    """Sign receipts for at most this much in this session, then stop."""
    ping_interval: float = 2.0
    connect_timeout: float = 10.0
    handshake_timeout: float = 15.0
    idle_timeout: float = 300.0
    ack_timeout: float = 15.0
    max_frame: int = DEFAULT_MAX_FRAME
    chunk_bytes: int = 64 * 1024
