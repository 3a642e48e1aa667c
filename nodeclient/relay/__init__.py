"""The metered relay: nodes carry consumers' TCP traffic for cumulative receipts signed as bytes flow.

Node side: ``RelayServer`` (with ``RelayConfig``, a ``ChainView`` and the durable receipt store from
``open_node_store``), run by ``serve_node``. Consumer side: ``open_session`` / ``RelayClient`` return a
``RelaySession`` that fetches URLs and opens TCP streams through the node, and ``Gateway`` exposes it
to ordinary applications as a local HTTP CONNECT / SOCKS5 proxy. The protocol is docs/RELAY.md.
"""

from __future__ import annotations

from nodeclient.relay.chainview import ChainView, NodeInfo, NodeStatus, Web3ChainView
from nodeclient.relay.client import (
    FetchResult,
    RelayClient,
    RelaySession,
    open_session,
)
from nodeclient.relay.config import ConsumerConfig, RelayConfig
from nodeclient.relay.consumer_stream import RelayStream
from nodeclient.relay.errors import (
    CapReachedError,
    CreditExhaustedError,
    FrameTooLargeError,
    HandshakeError,
    InsufficientEscrowError,
    ProtocolError,
    ReceiptRejectedError,
    RelayConfigError,
    RelayError,
    RemoteError,
    SessionRefusedError,
    SpendCapReachedError,
    TargetRefusedError,
)
from nodeclient.relay.gateway import Gateway
from nodeclient.relay.limits import Caps, TokenBucket, UsageLedger
from nodeclient.relay.pricing import GIB, amount_for, bytes_for_amount, cumulative_amount
from nodeclient.relay.runtime import BackgroundSettler, serve_node
from nodeclient.relay.server import RelayServer
from nodeclient.relay.stats import RelayStats, read_snapshot, write_snapshot
from nodeclient.relay.store import NodeReceiptStore, ReceiptSink, open_node_store
from nodeclient.relay.targets import TargetPolicy

__all__ = [
    "GIB",
    "BackgroundSettler",
    "CapReachedError",
    "Caps",
    "ChainView",
    "ConsumerConfig",
    "CreditExhaustedError",
    "FetchResult",
    "FrameTooLargeError",
    "Gateway",
    "HandshakeError",
    "InsufficientEscrowError",
    "NodeInfo",
    "NodeReceiptStore",
    "NodeStatus",
    "ProtocolError",
    "ReceiptRejectedError",
    "ReceiptSink",
    "RelayClient",
    "RelayConfig",
    "RelayConfigError",
    "RelayError",
    "RelayServer",
    "RelaySession",
    "RelayStats",
    "RelayStream",
    "RemoteError",
    "SessionRefusedError",
    "SpendCapReachedError",
    "TargetPolicy",
    "TargetRefusedError",
    "TokenBucket",
    "UsageLedger",
    "Web3ChainView",
    "amount_for",
    "bytes_for_amount",
    "cumulative_amount",
    "open_node_store",
    "open_session",
    "read_snapshot",
    "serve_node",
    "write_snapshot",
]
