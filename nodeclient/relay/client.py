"""Consumer side of the metered relay: open a session with a node, tunnel TCP, fetch URLs, pay as you go.

The consumer signs receipts only for payload bytes it has itself sent or received on this session
(``sent_bytes + received_bytes``), whatever the node claims in PAUSE frames; it verifies the node's
welcome against the registry's signing key; it accepts a channel base only if it is its own signed
receipt or the chain's settled figures; and it stops signing at its spend cap.

Typical use::

    async with await open_session("127.0.0.1", 7000, node=NODE, consumer_key=KEY, chain=view) as session:
        result = await session.fetch("http://example.org/file")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

from eth_utils import to_checksum_address

from nodeclient.receipts.model import Receipt, SignedReceipt
from nodeclient.receipts.signing import ReceiptSigner, receipt_domain
from nodeclient.relay.chainview import ChainView
from nodeclient.relay.config import ConsumerConfig
from nodeclient.relay.consumer_handshake import Greeter
from nodeclient.relay.consumer_stream import RelayStream
from nodeclient.relay.errors import (
    HandshakeError,
    ProtocolError,
    RelayError,
    RemoteError,
    SpendCapReachedError,
    TargetRefusedError,
)
from nodeclient.relay.framing import (
    Frame,
    FrameType,
    decode_control,
    decode_data,
    encode_control,
    encode_data,
    encode_frame,
    read_frame,
)
from nodeclient.relay.handshake import new_session_id
from nodeclient.relay.http_fetch import BodySink, FetchResult, read_http_response, request_bytes
from nodeclient.relay.latency import PingMeter
from nodeclient.relay.link import Link
from nodeclient.relay.pricing import bytes_for_amount, cumulative_amount

__all__ = ["ConsumerConfig", "FetchResult", "RelayClient", "RelaySession", "RelayStream", "open_session"]

log = logging.getLogger("kuota.relay.consumer")


class RelaySession:
    """An open, paid session with one node. Create with ``open_session``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        chain: ChainView,
        node: str,
        consumer_key: bytes | str,
        config: ConsumerConfig,
    ) -> None:
        signer = ReceiptSigner(consumer_key, receipt_domain(chain.chain_id, chain.settlement_address))
        # Plaintext until the handshake secures it, encrypted from the HELLO on.
        self._link = Link(reader, writer)
        self.chain = chain
        self.node = node
        self.consumer = signer.address
        self._signer = signer
        self._key = consumer_key  # signs the hello; never logged or shown in repr
        self.config = config
        self.session_id = new_session_id()
        self.price_per_gib = 0
        self.credit_bytes = 0
        self.receipt_interval_bytes = 0
        self.base_bytes = 0
        self.base_amount = 0
        self.sent_bytes = 0
        self.received_bytes = 0
        self.signed_bytes = 0
        """Session bytes covered by the latest receipt this consumer signed."""
        self.acked_bytes = 0
        self.receipts: list[SignedReceipt] = []
        self.acked: list[SignedReceipt] = []
        self.pauses: list[dict[str, Any]] = []
        self.remote_error: RemoteError | None = None
        self.spend_cap_reached = False
        self._cap_bytes: int | None = None
        self._streams: dict[int, RelayStream] = {}
        self._closed_streams: set[int] = set()
        self._next_stream = 1
        self._send_lock = asyncio.Lock()
        self._ack_event = asyncio.Event()
        self._latency = PingMeter(self.send_frame, config.ack_timeout)
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._last_issued = 0
        self._dead: BaseException | None = None

    # -- figures -------------------------------------------------------------------------------

    @property
    def metered_bytes(self) -> int:
        """Payload bytes this consumer sent plus received in this session: what it pays for."""
        return self.sent_bytes + self.received_bytes

    @property
    def latency_ms(self) -> int:
        """Median round trip of PING frames so far, in whole milliseconds (rounded up)."""
        return self._latency.median_ms

    @property
    def rtts_ms(self) -> list[float]:
        """Every PING round trip measured so far, in milliseconds."""
        return self._latency.rtts_ms

    @property
    def ended(self) -> bool:
        """True once the session is dead (the node ended it, or it was closed)."""
        return self._dead is not None

    def release_stream(self, stream_id: int) -> bool:
        """Forget a stream the application closed; False if it was already forgotten."""
        if self._streams.pop(stream_id, None) is None:
            return False
        self._closed_streams.add(stream_id)
        return True

    @property
    def spent(self) -> int:
        """Amount signed for in this session."""
        return cumulative_amount(0, 0, self.signed_bytes, self.price_per_gib)

    # -- handshake ------------------------------------------------------------------------------

    async def _handshake(self) -> None:
        greeter = Greeter(self.chain, self.node, self.consumer, self._key, self.session_id, self.config)
        welcome = await greeter.greet(self._link, self.send_frame)
        self.price_per_gib = welcome.price_per_gib
        self.credit_bytes = welcome.credit_bytes
        self.receipt_interval_bytes = welcome.receipt_interval_bytes
        self.base_bytes = welcome.base_bytes
        self.base_amount = welcome.base_amount
        if self.config.max_spend is not None and self.price_per_gib > 0:
            self._cap_bytes = bytes_for_amount(self.config.max_spend, self.price_per_gib)

    # -- running ----------------------------------------------------------------------------------

    def _start(self) -> None:
        self._tasks.append(asyncio.create_task(self._read_loop()))
        if self.config.ping_interval > 0:
            self._tasks.append(asyncio.create_task(self._ping_loop()))

    async def send_frame(self, data: bytes) -> None:
        """Send one encoded frame; frames from concurrent tasks never interleave."""
        if self._dead is not None:
            raise (
                self._dead
                if isinstance(self._dead, RelayError)
                else RelayError(f"session is closed: {self._dead}")
            )
        async with self._send_lock:
            self._link.write(data)
            await self._link.drain()

    async def ping(self) -> float:
        """Send one PING and wait for its PONG; returns the round trip in ms."""
        return await self._latency.ping()

    async def _ping_loop(self) -> None:
        with contextlib.suppress(
            asyncio.CancelledError, RelayError, ConnectionError, OSError, asyncio.TimeoutError
        ):
            while not self._closed:
                await asyncio.sleep(self.config.ping_interval)
                await self.ping()

    async def _read_loop(self) -> None:
        try:
            while True:
                frame = await read_frame(
                    self._link, max_frame=self.config.max_frame, idle_timeout=self.config.idle_timeout
                )
                if frame is None:
                    raise self.remote_error or RelayError("the node closed the connection")
                await self._dispatch(frame)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - recorded and re-raised to every waiter
            if isinstance(exc, asyncio.TimeoutError):
                exc = RelayError(f"the node sent nothing for {self.config.idle_timeout:g} s")
            self._die(exc)

    def _fail_streams(self, exc: BaseException) -> None:
        error = exc if isinstance(exc, RelayError) else RelayError(str(exc))
        for stream in self._streams.values():
            if not stream.opened.done():
                stream.opened.set_exception(error)
            stream.fail(error)

    def _die(self, exc: BaseException) -> None:
        if self._dead is None:
            self._dead = exc
            if not isinstance(exc, RemoteError) and not self._closed:
                log.info("session %s with %s ended: %s", self.session_id[:10], self.node, exc)
        self._fail_streams(exc)
        self._ack_event.set()
        self._latency.stop()

    async def _dispatch(self, frame: Frame) -> None:
        t = frame.type
        if t == FrameType.DATA:
            await self._on_data(*decode_data(frame))
        elif t == FrameType.ACK:
            self._on_ack(decode_control(frame))
        elif t == FrameType.PONG:
            self._latency.on_pong(frame.payload)
        elif t == FrameType.OPENED:
            stream = self._streams.get(decode_control(frame).get("stream"))  # type: ignore[arg-type]
            if stream is not None and not stream.opened.done():
                stream.opened.set_result(None)
        elif t == FrameType.CLOSE:
            self._on_close(decode_control(frame))
        elif t == FrameType.PAUSE:
            # The node's own count is informative only: we sign what we measured, never its figure.
            self.pauses.append(decode_control(frame))
            await self._sign(force=True)
        elif t == FrameType.ERROR:
            await self._on_error(decode_control(frame))
        else:
            raise ProtocolError(f"unexpected {t.name} frame from the node")

    async def _on_data(self, stream_id: int, data: memoryview) -> None:
        stream = self._streams.get(stream_id)
        if stream is None and stream_id not in self._closed_streams:
            raise ProtocolError(f"node sent DATA for stream {stream_id}, which this consumer never opened")
        # Bytes received are bytes received, even for a stream the application already closed.
        self.received_bytes += len(data)
        if stream is not None:
            stream.feed(data)
        await self._maybe_sign()
        if stream is not None and not stream.drained:
            # Stop reading the socket until the application catches up (TCP backpressure).
            await stream.wait_drained()

    def _on_close(self, body: dict[str, Any]) -> None:
        stream = self._streams.get(body.get("stream"))  # type: ignore[arg-type]
        if stream is None:
            return
        stream.remote_closed = True
        if not stream.opened.done():
            stream.opened.set_exception(TargetRefusedError(stream.target, str(body.get("error", "closed"))))
        stream.feed_eof()

    async def _on_error(self, body: dict[str, Any]) -> None:
        error = RemoteError(str(body.get("code", "?"))[:64], str(body.get("message", ""))[:500])
        self.remote_error = error
        log.warning("node %s ended session %s: %s", self.node, self.session_id[:10], error)
        self._fail_streams(error)
        # Pay for what was received before the node stopped (the final receipt), then keep reading
        # until the node acknowledges it or hangs up, so the consumer knows where the channel stands.
        signed = None
        with contextlib.suppress(Exception):
            signed = await self._sign(force=True)
        if signed is None:
            raise error

    def _on_ack(self, body: dict[str, Any]) -> None:
        nbytes = body.get("cumulativeBytes")
        match = next((r for r in reversed(self.receipts) if r.cumulative_bytes == nbytes), None)
        if match is None or match.cumulative_amount != body.get("cumulativeAmount"):
            raise ProtocolError(f"node acknowledged a receipt this consumer never signed ({str(body)[:200]})")
        self.acked_bytes = max(self.acked_bytes, match.cumulative_bytes - self.base_bytes)
        if not self.acked or self.acked[-1].cumulative_bytes < match.cumulative_bytes:
            self.acked.append(match)
        self._ack_event.set()
        if self.remote_error is not None and self.acked_bytes >= self.signed_bytes:
            raise self.remote_error  # the final receipt after the node's ERROR is acknowledged

    async def _maybe_sign(self) -> None:
        if self.metered_bytes - self.signed_bytes >= self.receipt_interval_bytes:
            await self._sign()

    async def _sign(self, force: bool = False) -> SignedReceipt | None:
        """Sign a receipt for every byte measured so far (capped by the spend cap); None if nothing new."""
        target = self.metered_bytes
        if self._cap_bytes is not None and target > self._cap_bytes:
            target = self._cap_bytes
            if not self.spend_cap_reached:
                self.spend_cap_reached = True
                self._tasks.append(asyncio.create_task(self._stop_for_cap()))
        if target <= self.signed_bytes:
            return None
        issued = max(int(time.time()), self._last_issued)
        receipt = Receipt(
            consumer=self.consumer,
            node=self.node,
            session_id=self.session_id,
            cumulative_bytes=self.base_bytes + target,
            cumulative_amount=cumulative_amount(
                self.base_bytes, self.base_amount, self.base_bytes + target, self.price_per_gib
            ),
            latency_ms=min(self.latency_ms, 2**32 - 1),
            issued_at=issued,
        )
        signed = self._signer.sign(receipt)
        self._last_issued = issued
        self.signed_bytes = target
        self.receipts.append(signed)
        self._ack_event.clear()
        await self.send_frame(encode_control(FrameType.RECEIPT, signed.to_json_dict()))
        return signed

    async def _stop_for_cap(self) -> None:
        cap = SpendCapReachedError(self.spent, self.config.max_spend or 0)
        log.warning("session %s: %s", self.session_id[:10], cap)
        with contextlib.suppress(Exception):
            await self._wait_acked(self.config.ack_timeout)
        await self._shutdown(cap)

    async def send_stream_data(self, stream_id: int, data: memoryview) -> None:
        """Send upstream payload of a stream, keeping within this consumer's own view of the credit window."""
        if self.spend_cap_reached:
            raise SpendCapReachedError(self.spent, self.config.max_spend or 0)
        n = len(data)
        # Keep upstream within our own view of the window: sign and wait for the ack if needed.
        if self.metered_bytes + n - self.acked_bytes > self.credit_bytes:
            await self._sign(force=True)
            await self._wait_for_acks(
                lambda: self.metered_bytes + n - self.acked_bytes <= self.credit_bytes,
                self.config.ack_timeout,
                ended_is_error=True,
            )
        if self._cap_bytes is not None and self.metered_bytes + n > self._cap_bytes:
            await self._sign(force=True)
            raise SpendCapReachedError(self.spent, self.config.max_spend or 0)
        await self.send_frame(encode_data(stream_id, data))
        self.sent_bytes += n
        await self._maybe_sign()

    async def _wait_acked(self, timeout: float) -> None:
        """Wait until the node acknowledged every receipt signed so far (or the session ended)."""
        await self._wait_for_acks(
            lambda: self.acked_bytes >= self.signed_bytes, timeout, ended_is_error=False
        )

    async def _wait_for_acks(self, done: Callable[[], bool], timeout: float, *, ended_is_error: bool) -> None:
        """Wait for ACK frames until ``done()``; ``RelayError`` after ``timeout``, or if the session ends
        and ``ended_is_error``."""
        deadline = time.monotonic() + timeout
        while not done():
            if self._dead is not None:
                if ended_is_error:
                    raise RelayError(f"session ended: {self._dead}")
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RelayError(f"the node acknowledged no receipt within {timeout:g} s")
            self._ack_event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ack_event.wait(), remaining)

    # -- public API ---------------------------------------------------------------------------

    async def open_stream(self, host: str, port: int) -> RelayStream:
        """Open a TCP connection to ``host:port`` through the node (the relay's CONNECT)."""
        if self._dead is not None:
            raise RelayError(f"session ended: {self._dead}")
        stream_id = self._next_stream
        self._next_stream += 1
        stream = RelayStream(self, stream_id, f"{host}:{port}")
        self._streams[stream_id] = stream
        await self.send_frame(
            encode_control(FrameType.OPEN, {"stream": stream_id, "host": host, "port": port})
        )
        try:
            await asyncio.wait_for(asyncio.shield(stream.opened), self.config.connect_timeout + 5)
        except BaseException:
            self.release_stream(stream_id)
            raise
        return stream

    async def fetch(
        self,
        url: str,
        *,
        sink: BodySink | None = None,
        timeout: float = 300.0,
    ) -> FetchResult:
        """HTTP/1.1 GET ``url`` (http://) through the node; the body goes to ``sink`` or into the result."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise RelayError(
                f"fetch supports http:// URLs, got {url!r}; for HTTPS run `kuota consume tunnel` and point "
                "the client at its local HTTP CONNECT / SOCKS5 proxy"
            )
        host, port = parts.hostname, parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        started = time.perf_counter()
        stream = await self.open_stream(host, port)
        before = self.received_bytes
        await stream.write(request_bytes(host, port, path))
        result = await asyncio.wait_for(read_http_response(stream, url, sink, started), timeout)
        await stream.close()
        result.wire_bytes = self.received_bytes - before
        return result

    async def close(self) -> None:
        """Sign the final receipt for everything received, wait for its ack, say BYE, close."""
        await self._shutdown(None)

    async def _shutdown(self, reason: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams.values()):
            # Unread data will not be read now; a reader parked on a full stream must not block the ACK.
            stream.discard_buffered()
        if self._dead is None:
            with contextlib.suppress(Exception):
                await self._sign(force=True)
                await self._wait_acked(self.config.ack_timeout)
            with contextlib.suppress(Exception):
                await self.send_frame(encode_frame(FrameType.BYE, b"{}"))
        if reason is not None:
            self._die(reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            self._link.close()
            await asyncio.wait_for(self._link.wait_closed(), 2)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def summary(self) -> dict[str, Any]:
        """What this session measured and signed (JSON-ready)."""
        last = self.receipts[-1] if self.receipts else None
        return {
            "node": self.node,
            "consumer": self.consumer,
            "sessionId": self.session_id,
            "pricePerGiB": self.price_per_gib,
            "sentBytes": self.sent_bytes,
            "receivedBytes": self.received_bytes,
            "signedBytes": self.signed_bytes,
            "ackedBytes": self.acked_bytes,
            "spent": self.spent,
            "receipts": len(self.receipts),
            "latencyMs": self.latency_ms,
            "spendCapReached": self.spend_cap_reached,
            "remoteError": str(self.remote_error) if self.remote_error else None,
            "lastReceipt": last.to_json_dict() if last else None,
        }


async def open_session(
    host: str,
    port: int,
    *,
    node: str,
    consumer_key: bytes | str,
    chain: ChainView,
    config: ConsumerConfig | None = None,
    session_class: type[RelaySession] | None = None,
) -> RelaySession:
    """Connect to the relay at ``host:port``, run the handshake with ``node``, measure one round trip.

    ``session_class`` lets tools substitute a ``RelaySession`` subclass (the test suite uses one that
    never signs, to check the node's cut-off).
    """
    config = config or ConsumerConfig()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), config.connect_timeout)
    except (TimeoutError, OSError) as exc:
        raise RelayError(f"cannot connect to the relay at {host}:{port}: {exc or 'timed out'}") from None
    session = (session_class or RelaySession)(
        reader, writer, chain=chain, node=to_checksum_address(node), consumer_key=consumer_key, config=config
    )
    try:
        await asyncio.wait_for(session._handshake(), config.handshake_timeout)
    except TimeoutError:
        writer.close()
        raise HandshakeError(
            f"the node did not complete the handshake within {config.handshake_timeout:g} s"
        ) from None
    except BaseException:
        writer.close()
        raise
    session._start()
    # One round trip before any receipt, so even the first receipt carries a measured latency.
    with contextlib.suppress(asyncio.TimeoutError):
        await session.ping()
    return session


@dataclass(slots=True)
class RelayClient:
    """A consumer's handle: its key, its chain view and its limits; opens sessions with nodes."""

    consumer_key: bytes | str = field(repr=False)
    chain: ChainView
    config: ConsumerConfig = field(default_factory=ConsumerConfig)

    async def session(self, host: str, port: int, node: str, **overrides: Any) -> RelaySession:
        """Open a session with ``node`` at ``host:port``; ``overrides`` replace ``ConsumerConfig`` fields."""
        config = self.config
        if overrides:
            from dataclasses import replace

            config = replace(config, **overrides)
        return await open_session(
            host, port, node=node, consumer_key=self.consumer_key, chain=self.chain, config=config
        )
