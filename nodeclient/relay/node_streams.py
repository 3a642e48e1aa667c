"""The node's TCP streams of one session: OPEN a destination, pump both ways through the credit window.

Each OPEN frame becomes one connection to a destination the ``TargetPolicy`` allows. Downstream
(destination → consumer) and upstream (consumer → destination) bytes each pass
``CreditWindow.reserve`` before they are carried; a stream half-closes like TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nodeclient.relay.config import RelayConfig
from nodeclient.relay.credit import CreditWindow
from nodeclient.relay.errors import ProtocolError, RelayError, TargetRefusedError
from nodeclient.relay.framing import FrameType, data_header, encode_control
from nodeclient.relay.stats import RelayStats

__all__ = ["NodeStream", "NodeStreams"]

log = logging.getLogger("kuota.relay.node")


class NodeStream:
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


class NodeStreams:
    """The open streams of one session and the upstream bytes the consumer sent on them."""

    def __init__(
        self,
        config: RelayConfig,
        stats: RelayStats,
        credit: CreditWindow,
        send: Callable[..., Awaitable[None]],  # (frame bytes, *more frame bytes)
        fail: Callable[[RelayError], None],
        tag: Callable[[], str],
    ) -> None:
        self._cfg = config
        self._stats = stats
        self._credit = credit
        self._send = send
        self._fail = fail
        self._tag = tag
        self.open: dict[int, NodeStream] = {}
        self.up_received = 0
        """Payload bytes the consumer sent in DATA frames (metered when received, carried when credited)."""
        self._closed: set[int] = set()

    # -- frames from the consumer --------------------------------------------------------------

    async def on_open(self, body: dict[str, Any]) -> None:
        """OPEN: connect to the destination in a task of its own (refusals are CLOSE frames, not errors)."""
        stream_id = body.get("stream")
        if isinstance(stream_id, bool) or not isinstance(stream_id, int) or not 0 < stream_id < 2**32:
            raise ProtocolError(f"OPEN has stream id {stream_id!r}, expected an integer in 1..2^32-1")
        if stream_id in self.open or stream_id in self._closed:
            raise ProtocolError(f"OPEN reuses stream id {stream_id}")
        limit = self._cfg.max_streams_per_session
        if len(self.open) >= limit:
            error = f"the node allows {limit} streams per session"
            await self._send(encode_control(FrameType.CLOSE, {"stream": stream_id, "error": error}))
            return
        stream = NodeStream(stream_id, f"{body.get('host')!r}:{body.get('port')!r}"[:300])
        self.open[stream_id] = stream
        stream.tasks.append(asyncio.create_task(self._connect(stream, body.get("host"), body.get("port"))))

    def on_data(self, stream_id: int, data: memoryview) -> None:
        """DATA: queue upstream bytes for their stream (they wait there for credit)."""
        stream = self.open.get(stream_id)
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
        allowed = self._cfg.credit_bytes + self._cfg.max_frame
        if sum(s.queued for s in self.open.values()) > allowed:
            raise ProtocolError(f"consumer queued more than {allowed} upstream bytes ahead of its receipts")
        stream.up.put_nowait(data)

    def on_close(self, body: dict[str, Any]) -> None:
        """CLOSE: half-close upstream, or with ``abort`` stop the stream at once."""
        stream = self.open.get(body.get("stream"))  # type: ignore[arg-type]
        if stream is not None and body.get("abort") is True:
            # The consumer stopped reading: stop relaying now, or it would pay for bytes it discards.
            self._drop(stream)
        elif stream is not None and not stream.closed_by_peer:
            stream.closed_by_peer = True
            stream.up.put_nowait(None)

    def close_all(self) -> None:
        """Drop every stream (the session is ending)."""
        for stream in list(self.open.values()):
            self._drop(stream)

    # -- carrying ------------------------------------------------------------------------------

    async def _connect(self, stream: NodeStream, host: object, port: object) -> None:
        try:
            ip, number = await self._cfg.targets.resolve(host, port)
            try:
                target_reader, target_writer = await asyncio.wait_for(
                    asyncio.open_connection(ip, number), self._cfg.connect_timeout
                )
            except (TimeoutError, OSError) as exc:
                raise TargetRefusedError(f"{host}:{port}", f"connect failed ({exc or 'timed out'})") from None
        except TargetRefusedError as exc:
            log.info("%s: stream %d refused: %s", self._tag(), stream.id, exc)
            self._forget(stream)
            await self._send(encode_control(FrameType.CLOSE, {"stream": stream.id, "error": str(exc)}))
            return
        stream.writer = target_writer
        self._stats.streams_opened += 1
        await self._send(encode_control(FrameType.OPENED, {"stream": stream.id}))
        stream.tasks.append(asyncio.create_task(self._pump_up(stream)))
        await self._pump_down(stream, target_reader)

    def _forget(self, stream: NodeStream) -> None:
        self.open.pop(stream.id, None)
        self._closed.add(stream.id)

    def _drop(self, stream: NodeStream) -> None:
        self._forget(stream)
        current = asyncio.current_task()
        for task in stream.tasks:
            if task is not current:
                task.cancel()
        if stream.writer is not None:
            stream.writer.close()

    async def _pump_down(self, stream: NodeStream, target: asyncio.StreamReader) -> None:
        """Destination → consumer, one credit-gated chunk at a time."""
        try:
            while True:
                data = await target.read(self._cfg.chunk_bytes)
                if not data:
                    break
                await self._credit.reserve(len(data), downstream=True)
                # Header and payload go separately: the encrypted link seals the payload where it lies.
                await self._send(data_header(stream.id, len(data)), data)
        except RelayError as exc:
            self._fail(exc)
            return
        except (ConnectionError, OSError) as exc:
            log.info("%s: stream %d destination error: %s", self._tag(), stream.id, exc)
        with contextlib.suppress(Exception):
            await self._send(encode_control(FrameType.CLOSE, {"stream": stream.id}))
        # Half-close semantics: the upstream side stays open until the consumer closes it too.
        stream.down_done = True
        if stream.up_done:
            self._drop(stream)

    async def _pump_up(self, stream: NodeStream) -> None:
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
                        self._drop(stream)
                    return
                stream.queued -= len(data)
                await self._credit.reserve(len(data), downstream=False)
                stream.writer.write(data)
                await stream.writer.drain()
        except RelayError as exc:
            self._fail(exc)
        except (ConnectionError, OSError) as exc:
            log.info("%s: stream %d destination write error: %s", self._tag(), stream.id, exc)
