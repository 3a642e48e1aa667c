"""Node side of the metered relay: ``RelayServer`` and its per-connection ``_Session``.

Invariant the whole module is built around: the bytes a session has carried (downstream sent to the
consumer plus upstream written to destinations) never exceed the bytes covered by the consumer's
latest *durably stored* receipt plus ``credit_bytes``. Every carry goes through ``_Session._gate``,
which reserves the bytes first and blocks (PAUSE) when the window is full; the window only moves
after ``ReceiptSink.accept`` has returned, i.e. after the receipt is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eth_utils import to_checksum_address

from nodeclient.errors import KuotaError, ReceiptError
from nodeclient.receipts.model import SignedReceipt
from nodeclient.receipts.signing import ReceiptDomain, address_of_key, receipt_domain, verify_receipt
from nodeclient.relay.chainview import ChainView, NodeInfo, NodeStatus
from nodeclient.relay.errors import (
    CapReachedError,
    CreditExhaustedError,
    HandshakeError,
    InsufficientEscrowError,
    ProtocolError,
    ReceiptRejectedError,
    RelayConfigError,
    RelayError,
    SessionRefusedError,
    TargetRefusedError,
)
from nodeclient.relay.framing import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    STREAM_ID_SIZE,
    Frame,
    FrameType,
    decode_control,
    decode_data,
    encode_control,
    encode_data,
    encode_frame,
    read_frame,
)
from nodeclient.relay.handshake import HELLO_SKEW_S, Hello, Welcome, new_challenge
from nodeclient.relay.limits import Caps, TokenBucket, UsageLedger
from nodeclient.relay.pricing import GIB, cumulative_amount
from nodeclient.relay.stats import RelayStats, write_snapshot
from nodeclient.relay.targets import TargetPolicy

__all__ = ["ReceiptSink", "RelayConfig", "RelayServer"]

log = logging.getLogger("kuota.relay.node")

_NODE_INFO_TTL_S = 30.0
_SUMMARY_LOG_S = 60.0


class ReceiptSink(Protocol):
    """Where accepted receipts go. ``accept`` must be durable (fsynced) when it returns."""

    def accept(self, receipt: SignedReceipt) -> Any:
        """Store ``receipt`` durably; raise a ``ReceiptError`` if the store refuses it."""
        ...

    def latest(self, consumer: str, node: str) -> SignedReceipt | None:
        """The channel's latest accepted receipt, if any."""
        ...


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

    def __post_init__(self) -> None:
        if self.credit_bytes <= 0:
            raise RelayConfigError("credit_bytes", self.credit_bytes, "must be positive")
        if not 0 < self.receipt_interval_bytes <= self.credit_bytes:
            raise RelayConfigError(
                "receipt_interval_bytes",
                self.receipt_interval_bytes,
                f"must be in 1..credit_bytes ({self.credit_bytes})",
            )
        if not 0 < self.chunk_bytes <= self.credit_bytes:
            raise RelayConfigError(
                "chunk_bytes", self.chunk_bytes, f"must be in 1..credit_bytes ({self.credit_bytes})"
            )
        if self.max_frame < 4096:
            raise RelayConfigError("max_frame", self.max_frame, "must be at least 4096 bytes")
        if self.chunk_bytes + STREAM_ID_SIZE > self.max_frame:
            raise RelayConfigError(
                "chunk_bytes", self.chunk_bytes, f"plus 4 must fit in max_frame ({self.max_frame})"
            )
        for name in ("max_sessions", "max_streams_per_session"):
            if getattr(self, name) <= 0:
                raise RelayConfigError(name, getattr(self, name), "must be positive")
        for name in (
            "handshake_timeout",
            "idle_timeout",
            "frame_timeout",
            "pause_timeout",
            "connect_timeout",
        ):
            if getattr(self, name) <= 0:
                raise RelayConfigError(name, getattr(self, name), "must be a positive number of seconds")
        if self.rate_bytes_per_s is not None and self.rate_bytes_per_s <= 0:
            raise RelayConfigError(
                "rate_bytes_per_s", self.rate_bytes_per_s, "must be positive (or None for no cap)"
            )


def _ceil_amount(nbytes: int, price: int) -> int:
    return -(-nbytes * price // GIB)


class RelayServer:
    """An asyncio metered relay for one registered node.

    ``node_key`` is the node's registered signing key (NodeRegistry ``signingKey``); it signs
    welcomes and nothing else. It is kept private to this object and never logged.
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
        self._sessions: set[_Session] = set()
        self._channels: dict[str, _Session] = {}
        self._node_info: tuple[float, NodeInfo] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._usage_flushed = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        """Check the node's registration, bind, and start accepting; returns the bound (host, port)."""
        info = await self.node_info(force=True)
        self._check_registration(info)
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

    def _check_registration(self, info: NodeInfo) -> None:
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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        session.task = asyncio.current_task()  # type: ignore[assignment]
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            if session.hello is not None and self._channels.get(session.channel_key) is session:
                del self._channels[session.channel_key]

    def sign_welcome(self, welcome: Welcome) -> Welcome:
        """Sign a welcome with the node key."""
        return welcome.signed(self._node_key, self.chain.chain_id, self.chain.settlement_address)


class _Stream:
    """One TCP connection to a destination, opened by an OPEN frame."""

    def __init__(self, stream_id: int, target: str) -> None:
        self.id = stream_id
        self.target = target
        self.up: asyncio.Queue[memoryview | None] = asyncio.Queue()
        self.queued = 0
        self.writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.closed_by_peer = False
        self.down_done = False
        self.up_done = False


class _Session:
    """One consumer connection: handshake, then frames until either side ends it."""

    def __init__(
        self, server: RelayServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.cfg = server.config
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.task: asyncio.Task[None] | None = None
        self.hello: Hello | None = None
        self.channel_key = ""
        self.price = 0
        self.base_bytes = 0
        self.base_amount = 0
        self.latest: SignedReceipt | None = None
        self.down_sent = 0
        self.up_received = 0
        self.up_carried = 0
        self.paid = 0
        self.credit_amount = 0
        self.streams: dict[int, _Stream] = {}
        self._send_lock = asyncio.Lock()
        self._credit = asyncio.Condition()
        self._pause_sent = False
        self._failure: RelayError | None = None
        self._end = asyncio.Event()
        self._closing = False
        self._end_reason = "closed"
        self._closed: set[int] = set()
        self._last_verified: SignedReceipt | None = None
        self._pending: SignedReceipt | None = None
        self._pending_event = asyncio.Event()
        self._store_idle = asyncio.Event()
        self._store_idle.set()
        self._store_task: asyncio.Task[None] | None = None
        self._escrow_available = 0
        self._settled_amount = 0

    # -- bookkeeping ---------------------------------------------------------------------------

    @property
    def carried(self) -> int:
        """Metered payload bytes carried in this session (both directions)."""
        return self.down_sent + self.up_carried

    @property
    def unpaid(self) -> int:
        """Carried bytes not yet covered by a stored receipt."""
        return max(0, self.carried - self.paid)

    def describe(self) -> dict[str, Any]:
        assert self.hello is not None
        return {
            "consumer": self.hello.consumer,
            "sessionId": self.hello.session_id,
            "peer": self.peer,
            "carried": self.carried,
            "paid": self.paid,
            "unpaid": self.unpaid,
            "streams": len(self.streams),
        }

    def _tag(self) -> str:
        who = self.hello.consumer if self.hello else "unauthenticated"
        return f"session {self.hello.session_id[:10] if self.hello else '-'} {who} from {self.peer}"

    async def send(self, data: bytes) -> None:
        """Write one encoded frame; frames from concurrent tasks never interleave."""
        async with self._send_lock:
            self.writer.write(data)
            await self.writer.drain()

    def fail(self, error: RelayError) -> None:
        """End the session because of ``error`` (first failure wins)."""
        if self._failure is None:
            self._failure = error
        self._end.set()
        self._wake_all()

    def abort(self, reason: str) -> None:
        self.fail(SessionRefusedError(reason))

    def _wake_all(self) -> None:
        async def _notify() -> None:
            async with self._credit:
                self._credit.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(_notify())

    # -- main ------------------------------------------------------------------------------------

    async def run(self) -> None:
        stats = self.server.stats
        try:
            try:
                await asyncio.wait_for(self._handshake(), self.cfg.handshake_timeout)
            except TimeoutError:
                raise HandshakeError(f"no valid hello within {self.cfg.handshake_timeout:g} s") from None
        except KuotaError as exc:
            # RelayError subclasses carry their wire code; anything else (ChainError: the RPC is down)
            # means the node cannot check the consumer right now, which is not the consumer's fault.
            code = getattr(exc, "code", "unavailable")
            stats.sessions_refused[code] += 1
            log.warning("refused connection from %s (%s): %s", self.peer, code, exc)
            await self._send_error(code, str(exc))
            await self._close_transport()
            return
        except (ConnectionError, OSError) as exc:
            stats.sessions_refused["connection"] += 1
            log.info("connection from %s lost during handshake: %s", self.peer, exc)
            await self._close_transport()
            return
        stats.sessions_total += 1
        stats.sessions_active += 1
        try:
            await self._serve()
        finally:
            stats.sessions_active -= 1
            stats.sessions_ended[self._end_reason] += 1
            await self._teardown()
            await self.server.flush_usage(force=True)
            log.info(
                "%s ended (%s): carried %d bytes, paid %d, unpaid %d",
                self._tag(),
                self._end_reason,
                self.carried,
                self.paid,
                self.unpaid,
            )

    async def _handshake(self) -> None:
        server = self.server
        if len(server._sessions) > self.cfg.max_sessions:
            raise SessionRefusedError(f"the node is at its limit of {self.cfg.max_sessions} sessions")
        info = await server.node_info()
        server._check_registration(info)
        challenge = new_challenge()
        await self.send(
            encode_control(
                FrameType.CHALLENGE,
                {
                    "version": PROTOCOL_VERSION,
                    "node": server.node,
                    "chainId": server.chain.chain_id,
                    "settlement": server.chain.settlement_address,
                    "pricePerGiB": info.price_per_gib,
                    "challenge": challenge,
                },
            )
        )
        frame = await read_frame(self.reader, max_frame=min(self.cfg.max_frame, 16 * 1024))
        if frame is None:
            raise HandshakeError("the connection closed before a hello")
        if frame.type != FrameType.HELLO:
            raise HandshakeError(f"expected a HELLO frame, got {frame.type.name}")
        try:
            hello = Hello.from_json(decode_control(frame))
        except ProtocolError as exc:
            raise HandshakeError(exc.reason) from None
        if hello.node != server.node:
            raise HandshakeError(f"hello is for node {hello.node}, this is node {server.node}")
        if hello.challenge != challenge:
            raise HandshakeError(
                f"hello signs challenge {hello.challenge}, not this connection's {challenge}"
            )
        skew = abs(int(time.time()) - hello.issued_at)
        if skew > self.cfg.receipt_skew_s:
            raise HandshakeError(f"hello issuedAt {hello.issued_at} is {skew} s from the node's clock")
        signer = await asyncio.to_thread(
            hello.recover, server.chain.chain_id, server.chain.settlement_address
        )
        if signer != hello.consumer:
            raise HandshakeError(f"hello is signed by {signer}, not by its consumer {hello.consumer}")
        if hello.price_per_gib != info.price_per_gib:
            raise HandshakeError(
                f"hello agrees to price {hello.price_per_gib} per GiB but the node's registered price is "
                f"{info.price_per_gib}"
            )
        key = f"{hello.consumer}:{server.node}"
        if key in server._channels:
            raise SessionRefusedError(
                f"consumer {hello.consumer} already has an open session with this node (one per channel)"
            )
        # Reserve the channel before any await below so a racing second hello is refused.
        server._channels[key] = self
        self.channel_key = key
        try:
            await self._check_escrow_and_base(hello, info)
        except BaseException:
            del server._channels[key]
            raise
        self.hello = hello
        welcome = server.sign_welcome(
            Welcome(
                node=server.node,
                consumer=hello.consumer,
                session_id=hello.session_id,
                price_per_gib=self.price,
                credit_bytes=self.cfg.credit_bytes,
                receipt_interval_bytes=self.cfg.receipt_interval_bytes,
                base_bytes=self.base_bytes,
                base_amount=self.base_amount,
                hello_digest=hello.digest(server.chain.chain_id, server.chain.settlement_address),
                base_receipt=self.latest.to_json_dict() if self.latest is not None else None,
            )
        )
        await self.send(encode_control(FrameType.WELCOME, welcome.to_json()))
        log.info(
            "%s opened: base %d bytes / %d, escrow available %d, credit %d bytes",
            self._tag(),
            self.base_bytes,
            self.base_amount,
            self._escrow_available,
            self.cfg.credit_bytes,
        )

    async def _check_escrow_and_base(self, hello: Hello, info: NodeInfo) -> None:
        chain = self.server.chain
        latest = await asyncio.to_thread(self.server.sink.latest, hello.consumer, self.server.node)
        available = await chain.escrow_available(hello.consumer)
        settled_amount, settled_bytes = await chain.channel_settled(hello.consumer, self.server.node)
        if (
            latest is not None
            and latest.cumulative_amount >= settled_amount
            and latest.cumulative_bytes >= settled_bytes
        ):
            self.latest = latest
            self.base_bytes, self.base_amount = latest.cumulative_bytes, latest.cumulative_amount
        else:
            # The store has nothing newer than the chain (fresh install, or the store was lost): the
            # chain's settled figures are the channel's floor, and the consumer can read them too.
            self.latest = None
            self.base_bytes, self.base_amount = settled_bytes, settled_amount
        self.price = info.price_per_gib
        owed = self.base_amount - settled_amount
        self.credit_amount = _ceil_amount(self.cfg.credit_bytes, self.price)
        needed = owed + self.credit_amount
        if available < needed:
            raise InsufficientEscrowError(hello.consumer, available, needed)
        self._escrow_available = available
        self._settled_amount = settled_amount

    async def _serve(self) -> None:
        reader_task = asyncio.create_task(self._read_loop())
        end_task = asyncio.create_task(self._end.wait())
        try:
            done, _ = await asyncio.wait({reader_task, end_task}, return_when=asyncio.FIRST_COMPLETED)
            if reader_task in done and reader_task.exception() is not None:
                exc = reader_task.exception()
                if isinstance(exc, RelayError):
                    self.fail(exc)
                elif isinstance(exc, (ConnectionError, OSError, asyncio.IncompleteReadError)):
                    self._end_reason = "connection_lost"
                else:
                    raise exc  # type: ignore[misc]
            failure = self._failure
            if failure is None:
                return
            code = getattr(failure, "code", "refused")
            self._end_reason = code
            if isinstance(failure, (CreditExhaustedError,)):
                self.server.stats.cutoffs += 1
            log.warning("%s ending (%s): %s", self._tag(), code, failure)
            await self._send_error(code, str(failure))
            if (
                isinstance(failure, (CreditExhaustedError, CapReachedError, InsufficientEscrowError))
                and not reader_task.done()
            ):
                # A cooperative consumer answers an ERROR with its final receipt: accept it for a
                # short grace time, carrying nothing more.
                self._closing = True
                try:
                    await asyncio.wait_for(asyncio.shield(reader_task), self.cfg.close_grace)
                except TimeoutError:
                    log.info("%s: no final receipt within %g s", self._tag(), self.cfg.close_grace)
                except RelayError as exc:
                    log.warning("%s: final receipt refused: %s", self._tag(), exc)
                except (ConnectionError, OSError):
                    pass
        finally:
            end_task.cancel()
            reader_task.cancel()
            with contextlib.suppress(BaseException):
                await reader_task
            # Receipts verified before the end are still worth storing (they are the consumer's signed
            # debt); wait for the store task briefly, then stop it.
            await self.drain_receipts(self.cfg.close_grace)
            if self._store_task is not None:
                self._store_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._store_task

    async def _send_error(self, code: str, message: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.send(encode_control(FrameType.ERROR, {"code": code, "message": message[:500]})), 2
            )

    async def _close_transport(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def _teardown(self) -> None:
        for stream in list(self.streams.values()):
            self._drop_stream(stream)
        await self._close_transport()

    # -- frames from the consumer ------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            try:
                frame = await read_frame(
                    self.reader,
                    max_frame=self.cfg.max_frame,
                    idle_timeout=self.cfg.idle_timeout,
                    body_timeout=self.cfg.frame_timeout,
                )
            except TimeoutError:
                raise ProtocolError(
                    f"no complete frame within {self.cfg.idle_timeout:g} s idle / {self.cfg.frame_timeout:g} s per frame"
                ) from None
            if frame is None:
                if self._failure is None and not self._end.is_set():
                    self._end_reason = "peer_closed"
                self._end.set()
                return
            if self._closing and frame.type != FrameType.RECEIPT:
                continue
            await self._dispatch(frame)
            if frame.type == FrameType.BYE:
                return
            if self._closing and frame.type == FrameType.RECEIPT and self._receipted_all():
                return

    def _receipted_all(self) -> bool:
        """True when the latest verified receipt covers every byte metered in this session."""
        last = self._last_verified
        covered = last.cumulative_bytes - self.base_bytes if last is not None else 0
        return covered >= self.down_sent + self.up_received

    async def _dispatch(self, frame: Frame) -> None:
        t = frame.type
        if t == FrameType.DATA:
            stream_id, data = decode_data(frame)
            self._on_data(stream_id, data)
        elif t == FrameType.RECEIPT:
            await self._on_receipt(decode_control(frame))
        elif t == FrameType.PING:
            if len(frame.payload) > 64:
                raise ProtocolError(f"PING payload of {len(frame.payload)} bytes exceeds 64")
            await self.send(encode_frame(FrameType.PONG, frame.payload))
        elif t == FrameType.OPEN:
            await self._on_open(decode_control(frame))
        elif t == FrameType.CLOSE:
            body = decode_control(frame)
            stream = self.streams.get(body.get("stream"))  # type: ignore[arg-type]
            if stream is not None and body.get("abort") is True:
                # The consumer stopped reading: stop relaying now, or it would pay for bytes it discards.
                self._drop_stream(stream)
            elif stream is not None and not stream.closed_by_peer:
                stream.closed_by_peer = True
                stream.up.put_nowait(None)
        elif t == FrameType.BYE:
            self._end_reason = "bye"
            self._end.set()
        elif t == FrameType.ERROR:
            body = decode_control(frame)
            self._end_reason = "consumer_error"
            log.info("%s: consumer sent ERROR %r", self._tag(), str(body)[:300])
            self._end.set()
        else:
            raise ProtocolError(f"unexpected {t.name} frame from a consumer")

    def _on_data(self, stream_id: int, data: memoryview) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            # A stream the node already closed may still have frames in flight: count and drop them
            # (they were never carried, so they are not billable either).
            if stream_id in self._closed:
                return
            raise ProtocolError(f"DATA for unknown stream {stream_id}")
        if stream.closed_by_peer:
            raise ProtocolError(f"DATA for stream {stream_id} after its CLOSE")
        if not data:
            return
        self.up_received += len(data)
        stream.queued += len(data)
        # Upstream bytes wait for credit in the queue; an honest consumer never queues more than its
        # own view of the window, which trails the node's by at most the credit limit.
        if sum(s.queued for s in self.streams.values()) > self.cfg.credit_bytes + self.cfg.max_frame:
            raise ProtocolError(
                f"consumer queued more than {self.cfg.credit_bytes + self.cfg.max_frame} upstream bytes "
                "ahead of its receipts"
            )
        stream.up.put_nowait(data)

    async def _on_open(self, body: dict[str, Any]) -> None:
        stream_id = body.get("stream")
        if isinstance(stream_id, bool) or not isinstance(stream_id, int) or not 0 < stream_id < 2**32:
            raise ProtocolError(f"OPEN has stream id {stream_id!r}, expected an integer in 1..2^32-1")
        if stream_id in self.streams or stream_id in self._closed:
            raise ProtocolError(f"OPEN reuses stream id {stream_id}")
        if len(self.streams) >= self.cfg.max_streams_per_session:
            await self.send(
                encode_control(
                    FrameType.CLOSE,
                    {
                        "stream": stream_id,
                        "error": f"the node allows {self.cfg.max_streams_per_session} streams per session",
                    },
                )
            )
            return
        stream = _Stream(stream_id, f"{body.get('host')!r}:{body.get('port')!r}"[:300])
        self.streams[stream_id] = stream
        stream.tasks.append(
            asyncio.create_task(self._connect_stream(stream, body.get("host"), body.get("port")))
        )

    async def _connect_stream(self, stream: _Stream, host: object, port: object) -> None:
        try:
            ip, number = await self.cfg.targets.resolve(host, port)
            try:
                target_reader, target_writer = await asyncio.wait_for(
                    asyncio.open_connection(ip, number), self.cfg.connect_timeout
                )
            except (TimeoutError, OSError) as exc:
                raise TargetRefusedError(f"{host}:{port}", f"connect failed ({exc or 'timed out'})") from None
        except TargetRefusedError as exc:
            log.info("%s: stream %d refused: %s", self._tag(), stream.id, exc)
            self._forget_stream(stream)
            await self.send(encode_control(FrameType.CLOSE, {"stream": stream.id, "error": str(exc)}))
            return
        stream.writer = target_writer
        self.server.stats.streams_opened += 1
        await self.send(encode_control(FrameType.OPENED, {"stream": stream.id}))
        stream.tasks.append(asyncio.create_task(self._pump_up(stream)))
        await self._pump_down(stream, target_reader)

    def _forget_stream(self, stream: _Stream) -> None:
        self.streams.pop(stream.id, None)
        self._closed.add(stream.id)

    def _drop_stream(self, stream: _Stream) -> None:
        self._forget_stream(stream)
        current = asyncio.current_task()
        for task in stream.tasks:
            if task is not current:
                task.cancel()
        if stream.writer is not None:
            stream.writer.close()

    async def _pump_down(self, stream: _Stream, target: asyncio.StreamReader) -> None:
        """Destination → consumer, one credit-gated chunk at a time."""
        try:
            while True:
                data = await target.read(self.cfg.chunk_bytes)
                if not data:
                    break
                await self._gate(len(data), downstream=True)
                await self.send(encode_data(stream.id, data))
        except RelayError as exc:
            self.fail(exc)
            return
        except (ConnectionError, OSError) as exc:
            log.info("%s: stream %d destination error: %s", self._tag(), stream.id, exc)
        with contextlib.suppress(Exception):
            await self.send(encode_control(FrameType.CLOSE, {"stream": stream.id}))
        # Half-close semantics: the upstream side stays open until the consumer closes it too.
        stream.down_done = True
        if stream.up_done:
            self._drop_stream(stream)

    async def _pump_up(self, stream: _Stream) -> None:
        """Consumer → destination, credit-gated."""
        assert stream.writer is not None
        try:
            while True:
                data = await stream.up.get()
                if data is None:
                    with contextlib.suppress(OSError):
                        if stream.writer.can_write_eof():
                            stream.writer.write_eof()
                    stream.up_done = True
                    if stream.down_done:
                        self._drop_stream(stream)
                    return
                stream.queued -= len(data)
                await self._gate(len(data), downstream=False)
                stream.writer.write(data)
                await stream.writer.drain()
        except RelayError as exc:
            self.fail(exc)
        except (ConnectionError, OSError) as exc:
            log.info("%s: stream %d destination write error: %s", self._tag(), stream.id, exc)

    async def _gate(self, nbytes: int, *, downstream: bool) -> None:
        """Reserve ``nbytes`` of carriage: wait for credit (PAUSE after the window fills), caps, rate."""
        deadline: float | None = None
        async with self._credit:
            while True:
                if self._failure is not None or self._closing:
                    raise self._failure or SessionRefusedError("session is closing")
                self.server.usage.check(nbytes, self.carried)
                if self.carried + nbytes <= self.paid + self.cfg.credit_bytes:
                    break
                if not self._pause_sent:
                    self._pause_sent = True
                    self.server.stats.pauses += 1
                    await self.send(
                        encode_control(
                            FrameType.PAUSE,
                            {
                                "carriedBytes": self.carried,
                                "paidBytes": self.paid,
                                "creditBytes": self.cfg.credit_bytes,
                            },
                        )
                    )
                now = time.monotonic()
                deadline = deadline or now + self.cfg.pause_timeout
                if now >= deadline:
                    raise CreditExhaustedError(self.unpaid, self.cfg.credit_bytes, self.cfg.pause_timeout)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._credit.wait(), deadline - now)
            # Reserve now, inside the lock, so concurrent streams cannot overdraw the window.
            if downstream:
                self.down_sent += nbytes
                self.server.stats.bytes_down += nbytes
            else:
                self.up_carried += nbytes
                self.server.stats.bytes_up += nbytes
            self.server.usage.charge(nbytes)
        if self.server.bucket is not None:
            await self.server.bucket.take(nbytes)

    async def _on_receipt(self, body: dict[str, Any]) -> None:
        """Check a receipt as it arrives (cheap, in order) and hand it to the store task.

        Receipts are cumulative, so when several arrive while the previous one is being fsynced only
        the newest needs storing: the store task always takes the latest verified receipt. Nothing
        moves the credit window or is acknowledged before ``ReceiptSink.accept`` returned for it.
        """
        server = self.server
        assert self.hello is not None
        try:
            receipt = SignedReceipt.model_validate(body)
        except ReceiptError as exc:
            raise self._reject(str(exc)) from None
        if receipt.consumer != self.hello.consumer:
            raise self._reject(
                f"consumer {receipt.consumer} is not this session's consumer {self.hello.consumer}"
            )
        if receipt.node != server.node:
            raise self._reject(f"node {receipt.node} is not this node {server.node}")
        if receipt.session_id != self.hello.session_id:
            raise self._reject(
                f"sessionId {receipt.session_id} is not this session's {self.hello.session_id}"
            )
        session_bytes = receipt.cumulative_bytes - self.base_bytes
        last = self._last_verified
        prev_bytes = last.cumulative_bytes if last is not None else self.base_bytes
        if receipt.cumulative_bytes <= prev_bytes:
            raise self._reject(
                f"cumulativeBytes {receipt.cumulative_bytes} does not exceed the last accepted {prev_bytes}"
            )
        metered = self.down_sent + self.up_received
        if session_bytes > metered:
            raise self._reject(
                f"cumulativeBytes {receipt.cumulative_bytes} covers {session_bytes} session bytes but the node "
                f"metered only {metered}"
            )
        expected = cumulative_amount(self.base_bytes, self.base_amount, receipt.cumulative_bytes, self.price)
        if receipt.cumulative_amount != expected:
            raise self._reject(
                f"cumulativeAmount {receipt.cumulative_amount} is not {expected} (price {self.price} per GiB "
                f"× {session_bytes} bytes over base {self.base_amount})"
            )
        now = int(time.time())
        if abs(receipt.issued_at - now) > self.cfg.receipt_skew_s:
            raise self._reject(
                f"issuedAt {receipt.issued_at} is {receipt.issued_at - now:+d} s from the node's clock"
            )
        if last is not None and receipt.issued_at < last.issued_at:
            raise self._reject(
                f"issuedAt {receipt.issued_at} is before the previous receipt's {last.issued_at}"
            )
        try:
            verify_receipt(receipt, server.domain)
        except ReceiptError as exc:
            raise self._reject(str(exc)) from None
        self._last_verified = receipt
        if self._pending is not None:
            server.stats.receipts_coalesced += 1
        self._pending = receipt
        self._pending_event.set()
        if self._store_task is None:
            self._store_task = asyncio.create_task(self._store_loop())

    async def _store_loop(self) -> None:
        try:
            while True:
                await self._pending_event.wait()
                self._pending_event.clear()
                receipt, self._pending = self._pending, None
                if receipt is not None:
                    await self._store(receipt)
                self._store_idle.set()
        except RelayError as exc:
            self.fail(exc)
        except KuotaError as exc:  # the escrow re-check could not reach the chain
            log.error("%s: %s", self._tag(), exc)
            self.fail(
                SessionRefusedError(
                    f"the node cannot reach the chain to re-check escrow ({type(exc).__name__})"
                )
            )

    async def _store(self, receipt: SignedReceipt) -> None:
        server = self.server
        self._store_idle.clear()
        prev_amount = self.latest.cumulative_amount if self.latest is not None else self.base_amount
        prev_bytes = self.latest.cumulative_bytes if self.latest is not None else self.base_bytes
        try:
            # A receipt that adds bytes but not a whole payment unit is worth nothing on chain (settle
            # pays by amount) and the store refuses it as stale: it moves the byte window, it is not stored.
            if receipt.cumulative_amount > prev_amount:
                await asyncio.to_thread(server.sink.accept, receipt)
                server.stats.receipts_stored += 1
        except ReceiptError as exc:
            raise self._reject(str(exc)) from None
        except KuotaError as exc:
            # The store refused a write (disk full, corrupt): the receipt is not durable, so it is not
            # acknowledged and the window does not move; end the session rather than carry on credit.
            log.error("%s: receipt store refused a valid receipt: %s", self._tag(), exc)
            raise SessionRefusedError(
                f"the node cannot store receipts right now ({type(exc).__name__})"
            ) from None
        # Durable from here on: move the window, wake gated carriers, then acknowledge.
        self.latest = receipt
        async with self._credit:
            self.paid = max(self.paid, receipt.cumulative_bytes - self.base_bytes)
            self._pause_sent = False
            self._credit.notify_all()
        server.stats.paid_bytes += receipt.cumulative_bytes - prev_bytes
        server.stats.amount_receipted += receipt.cumulative_amount - prev_amount
        with contextlib.suppress(ConnectionError, OSError):
            await self.send(
                encode_control(
                    FrameType.ACK,
                    {
                        "cumulativeBytes": receipt.cumulative_bytes,
                        "cumulativeAmount": receipt.cumulative_amount,
                    },
                )
            )
        await server.flush_usage()
        await self._check_headroom(receipt)

    async def drain_receipts(self, timeout: float) -> None:
        """Wait (bounded) until every verified receipt is stored and acknowledged."""
        deadline = time.monotonic() + timeout
        while (self._pending is not None or not self._store_idle.is_set()) and self._store_task is not None:
            if self._store_task.done() or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.01)

    def _reject(self, reason: str) -> ReceiptRejectedError:
        self.server.stats.receipts_rejected += 1
        return ReceiptRejectedError(reason)

    async def _check_headroom(self, receipt: SignedReceipt) -> None:
        """End the session before the consumer's receipts outgrow its escrow.

        The consumer must keep ``available - owed >= credit`` (owed = accepted but unsettled), so the
        next credit window is always payable. Checked on cached figures; the chain is re-read only
        when they say no (a settlement lowers available and owed alike, a deposit raises available).
        """
        assert self.hello is not None
        owed = receipt.cumulative_amount - self._settled_amount
        if self._escrow_available - owed >= self.credit_amount:
            return
        chain = self.server.chain
        self._escrow_available = await chain.escrow_available(self.hello.consumer)
        self._settled_amount, _ = await chain.channel_settled(self.hello.consumer, self.server.node)
        owed = receipt.cumulative_amount - self._settled_amount
        if self._escrow_available - owed < self.credit_amount:
            self.fail(
                InsufficientEscrowError(
                    self.hello.consumer, self._escrow_available, owed + self.credit_amount
                )
            )
