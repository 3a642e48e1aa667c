"""Node side of the metered relay: ``RelayServer`` accepts consumers and runs one ``NodeSession`` each.

The server holds what is node-wide (the chain view, the node key, the receipt sink, usage caps, the
rate limit, counters and the status file) and the table of open channels; everything per consumer
lives in ``nodeclient.relay.node_session`` and the modules it delegates to (admission, credit window,
receipt intake, streams). The invariant they keep together: the bytes a session has carried never
exceed the bytes covered by the consumer's latest *durably stored* receipt plus ``credit_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from eth_utils import to_checksum_address

from nodeclient.receipts.signing import ReceiptDomain, address_of_key, receipt_domain
from nodeclient.relay.chainview import ChainView, NodeInfo, NodeStatus
from nodeclient.relay.config import RelayConfig
from nodeclient.relay.errors import RelayError, SessionRefusedError
from nodeclient.relay.handshake import LinkAttestation, Welcome
from nodeclient.relay.limits import TokenBucket, UsageLedger
from nodeclient.relay.node_session import NodeSession
from nodeclient.relay.stats import RelayStats, write_snapshot
from nodeclient.relay.store import ReceiptSink

# RelayConfig and ReceiptSink are re-exported: they are the server's constructor arguments.
__all__ = ["ReceiptSink", "RelayConfig", "RelayServer"]

log = logging.getLogger("kuota.relay.node")

_NODE_INFO_TTL_S = 30.0
_SUMMARY_LOG_S = 60.0


class RelayServer:
    """An asyncio metered relay for one registered node.

    ``node_key`` is the node's registered signing key (NodeRegistry ``signingKey``); it signs
    welcomes and link keys and nothing else. It is kept private to this object and never logged.
    """

    def __init__(
        self,
        config: RelayConfig,
        chain: ChainView,
        node: str,
        node_key: bytes | str,
        sink: ReceiptSink,
        *,
        usage: UsageLedger | None = None,
        stats: RelayStats | None = None,
    ) -> None:
        self.config = config
        self.chain = chain
        self.node = to_checksum_address(node)
        self._node_key = node_key
        self.signing_address = address_of_key(node_key)
        self.sink = sink
        self.usage = usage or UsageLedger(None, config.caps)
        self.stats = stats or RelayStats()
        self.domain: ReceiptDomain = receipt_domain(chain.chain_id, chain.settlement_address)
        self.bucket = TokenBucket(config.rate_bytes_per_s) if config.rate_bytes_per_s else None
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[NodeSession] = set()
        self._channels: dict[str, object] = {}
        self._node_info: tuple[float, NodeInfo] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._usage_flushed = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        """Check the node's registration, bind, and start accepting; returns the bound (host, port)."""
        info = await self.node_info(force=True)
        self.check_registration(info)
        self._server = await asyncio.start_server(self._handle, self.config.host, self.config.port)
        sock = self._server.sockets[0].getsockname()
        log.info(
            "relay for node %s listening on %s:%s (price %d per GiB, credit %d bytes, receipt every %d bytes)",
            self.node,
            sock[0],
            sock[1],
            info.price_per_gib,
            self.config.credit_bytes,
            self.config.receipt_interval_bytes,
        )
        if self.config.stats_path is not None:
            self._stats_task = asyncio.create_task(self._stats_loop())
        return sock[0], sock[1]

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        if self._server is None:
            raise RelayError("the relay server is not started")
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting, end every session, flush counters and the status file."""
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.abort("server shutting down")
        if self._sessions:
            await asyncio.wait([s.task for s in self._sessions if s.task], timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
        await asyncio.to_thread(self.usage.flush)
        self._write_stats()

    async def flush_usage(self, force: bool = False) -> None:
        """Persist the day/month counters, at most once a second unless ``force``."""
        now = time.monotonic()
        if not force and now - self._usage_flushed < 1.0:
            return
        self._usage_flushed = now
        await asyncio.to_thread(self.usage.flush)

    def snapshot(self) -> dict[str, Any]:
        """Counters plus the current unpaid exposure of every open session."""
        self.stats.unpaid_exposure_bytes = sum(s.unpaid for s in self._sessions)
        snap = self.stats.snapshot()
        today, month = self.usage.used()
        snap["node"] = self.node
        snap["usage"] = {"todayBytes": today, "monthBytes": month}
        snap["openSessions"] = [s.describe() for s in self._sessions if s.hello is not None]
        return snap

    def _write_stats(self) -> None:
        if self.config.stats_path is not None:
            try:
                write_snapshot(self.config.stats_path, self.snapshot())
            except OSError as exc:
                log.warning("cannot write relay status file %s: %s", self.config.stats_path, exc)

    async def _stats_loop(self) -> None:
        last_log = time.monotonic()
        while True:
            self._write_stats()
            if time.monotonic() - last_log >= _SUMMARY_LOG_S:
                last_log = time.monotonic()
                stats = self.stats
                log.info(
                    "relay: %d sessions open (%d total), %d bytes down / %d up, %d unpaid, %d receipts stored, "
                    "%d settlements",
                    stats.sessions_active,
                    stats.sessions_total,
                    stats.bytes_down,
                    stats.bytes_up,
                    stats.unpaid_exposure_bytes,
                    stats.receipts_stored,
                    stats.settlements,
                )
            await asyncio.sleep(self.config.stats_interval)

    # -- chain facts ---------------------------------------------------------------------------

    async def node_info(self, force: bool = False) -> NodeInfo:
        """The registry record of this node, cached for a short time (prices change rarely)."""
        now = time.monotonic()
        if force or self._node_info is None or now - self._node_info[0] > _NODE_INFO_TTL_S:
            info = await self.chain.node_info(self.node)
            self._node_info = (now, info)
        return self._node_info[1]

    def check_registration(self, info: NodeInfo) -> None:
        """Raise ``SessionRefusedError`` unless the registry lists this node as active with this key."""
        if info.status != NodeStatus.ACTIVE:
            raise SessionRefusedError(
                f"node {self.node} is {info.status.name.lower()} in the registry, not active"
            )
        if info.signing_key != self.signing_address:
            raise SessionRefusedError(
                f"the configured node key is {self.signing_address} but the registry's signing key of "
                f"{self.node} is {info.signing_key}"
            )

    # -- connections ---------------------------------------------------------------------------

    @property
    def open_sessions(self) -> int:
        """Connections currently handled, authenticated or not."""
        return len(self._sessions)

    def reserve_channel(self, consumer: str, owner: object) -> str:
        """Claim the (consumer, node) channel for ``owner``; one session per channel at a time."""
        key = f"{consumer}:{self.node}"
        if key in self._channels:
            raise SessionRefusedError(
                f"consumer {consumer} already has an open session with this node (one per channel)"
            )
        self._channels[key] = owner
        return key

    def release_channel(self, key: str, owner: object) -> None:
        """Give up the channel ``key`` if ``owner`` holds it."""
        if self._channels.get(key) is owner:
            del self._channels[key]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = NodeSession(self, reader, writer)
        session.task = asyncio.current_task()  # type: ignore[assignment]
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            self.release_channel(session.channel_key, session)

    def sign_welcome(self, welcome: Welcome) -> Welcome:
        """Sign a welcome with the node key."""
        return welcome.signed(self._node_key, self.chain.chain_id, self.chain.settlement_address)

    def sign_link(self, attestation: LinkAttestation) -> LinkAttestation:
        """Sign a connection's link key (with its challenge) with the node key."""
        return attestation.signed(self._node_key, self.chain.chain_id, self.chain.settlement_address)
