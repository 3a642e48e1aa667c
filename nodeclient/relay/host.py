"""What one consumer's session on a node needs from the relay that runs it.

``RelayServer`` is the implementation; the session modules (admission, credit, receipt intake,
streams) depend on this interface only, so they never import the server that imports them.
"""

from __future__ import annotations

from typing import Protocol

from nodeclient.receipts.signing import ReceiptDomain
from nodeclient.relay.chainview import ChainView, NodeInfo
from nodeclient.relay.config import RelayConfig
from nodeclient.relay.handshake import LinkAttestation, Welcome
from nodeclient.relay.limits import TokenBucket, UsageLedger
from nodeclient.relay.stats import RelayStats
from nodeclient.relay.store import ReceiptSink

__all__ = ["SessionHost"]


class SessionHost(Protocol):
    """The node-wide state and services a session uses."""

    config: RelayConfig
    chain: ChainView
    node: str
    domain: ReceiptDomain
    sink: ReceiptSink
    usage: UsageLedger
    stats: RelayStats
    bucket: TokenBucket | None

    @property
    def open_sessions(self) -> int:
        """Connections currently handled, authenticated or not (this one included)."""
        ...

    async def node_info(self, force: bool = False) -> NodeInfo:
        """The registry record of this node (briefly cached)."""
        ...

    def check_registration(self, info: NodeInfo) -> None:
        """Raise ``SessionRefusedError`` unless ``info`` says this node may serve."""
        ...

    def reserve_channel(self, consumer: str, owner: object) -> str:
        """Claim the (consumer, node) channel for ``owner``; ``SessionRefusedError`` if already open."""
        ...

    def release_channel(self, key: str, owner: object) -> None:
        """Give up the channel ``key`` if ``owner`` holds it."""
        ...

    def sign_welcome(self, welcome: Welcome) -> Welcome:
        """Sign ``welcome`` with the node key."""
        ...

    def sign_link(self, attestation: LinkAttestation) -> LinkAttestation:
        """Sign a connection's link key attestation with the node key."""
        ...

    async def flush_usage(self, force: bool = False) -> None:
        """Persist the day/month usage counters (rate-limited unless ``force``)."""
        ...
