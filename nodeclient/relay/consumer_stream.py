"""One tunnelled TCP connection of a consumer's session, read and written like asyncio streams.

The session feeds received DATA into the stream; the stream sends what the application writes through
the session, which meters it against the consumer's own view of the credit window. A slow reader
backs the node off through TCP: above a high-water mark the session stops reading its socket.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from nodeclient.relay.config import ConsumerConfig
from nodeclient.relay.errors import ProtocolError
from nodeclient.relay.framing import FrameType, encode_control

__all__ = ["RelayStream", "StreamSession"]

_HIGH_WATER = 4 * 1024 * 1024
_LOW_WATER = 1024 * 1024


class StreamSession(Protocol):
    """What a stream needs from the session that carries it (``RelaySession``)."""

    config: ConsumerConfig

    @property
    def ended(self) -> bool:
        """True once the session is dead (nothing more can be sent)."""
        ...

    async def send_frame(self, data: bytes) -> None:
        """Send one encoded control frame."""
        ...

    async def send_stream_data(self, stream_id: int, data: memoryview) -> None:
        """Send upstream payload (metered, within the consumer's view of the credit window)."""
        ...

    def release_stream(self, stream_id: int) -> bool:
        """Forget the stream; False if it was already forgotten."""
        ...


class RelayStream:
    """A TCP connection to a destination, tunnelled through the session. Use like asyncio streams."""

    def __init__(self, session: StreamSession, stream_id: int, target: str) -> None:
        self.session = session
        self.id = stream_id
        self.target = target
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.eof_sent = False
        self.remote_closed = False
        # Received chunks are queued as they came (no re-buffering into one bytearray: a read never
        # moves the bytes behind it). ``buffered`` above _HIGH_WATER makes the session stop reading
        # its socket, so a slow reader backs the node off through TCP instead of growing memory.
        self._chunks: deque[memoryview] = deque()
        self.buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()

    # -- fed by the session -------------------------------------------------------------------

    @property
    def drained(self) -> bool:
        """False while the application has more unread bytes buffered than the high-water mark."""
        return self._drained.is_set()

    async def wait_drained(self) -> None:
        """Wait until the application read the buffer down to the low-water mark (or it was discarded)."""
        await self._drained.wait()

    def feed(self, data: memoryview) -> None:
        """Bytes received for this stream."""
        if data:
            self._chunks.append(data)
            self.buffered += len(data)
            self._readable.set()
            if self.buffered > _HIGH_WATER:
                self._drained.clear()

    def feed_eof(self) -> None:
        """The destination closed its side."""
        self._eof = True
        self._readable.set()

    def fail(self, error: BaseException) -> None:
        """The session ended: readers get ``error`` once the buffer is empty (unless EOF came first)."""
        if self._error is None and not self._eof:
            self._error = error
        self._readable.set()
        self._drained.set()

    def discard_buffered(self) -> None:
        """Drop unread bytes (nobody will read them) and release a session waiting for this stream."""
        self._chunks.clear()
        self.buffered = 0
        self._drained.set()

    # -- reading --------------------------------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all that is buffered when ``n`` < 0); b"" at end of stream."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        if 0 <= n < len(chunk):
            self._chunks.appendleft(chunk[n:])
            chunk = chunk[:n]
        elif n < 0:
            parts = [chunk, *self._chunks]
            self._chunks.clear()
            chunk = memoryview(b"".join(parts))
        self.buffered -= len(chunk)
        if self.buffered <= _LOW_WATER:
            self._drained.set()
        return bytes(chunk)

    async def readexactly(self, n: int) -> bytes:
        """Read exactly ``n`` bytes; ``asyncio.IncompleteReadError`` if the stream ends first."""
        parts: list[bytes] = []
        got = 0
        while got < n:
            part = await self.read(n - got)
            if not part:
                raise asyncio.IncompleteReadError(b"".join(parts), n)
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    # -- writing --------------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the destination (metered, within the consumer's own view of the credit window)."""
        if self.eof_sent:
            raise ProtocolError(f"stream {self.id} to {self.target} is closed for writing")
        view = memoryview(data)
        step = self.session.config.chunk_bytes
        for offset in range(0, len(view), step):
            await self.session.send_stream_data(self.id, view[offset : offset + step])

    async def write_eof(self) -> None:
        """Half-close: the destination sees end of stream; reading continues."""
        if not self.eof_sent:
            self.eof_sent = True
            await self.session.send_frame(encode_control(FrameType.CLOSE, {"stream": self.id}))

    async def close(self) -> None:
        """Close both directions. If the destination has not finished, the node is told to abort the
        stream, so it stops relaying (and this consumer stops paying for) bytes nobody will read."""
        # Whatever is buffered will never be read: drop it, and unblock the session's reader if it was
        # waiting for this stream to drain.
        self.discard_buffered()
        if not self.session.release_stream(self.id) or self.session.ended:
            return
        if not self.remote_closed:
            self.eof_sent = True
            await self.session.send_frame(encode_control(FrameType.CLOSE, {"stream": self.id, "abort": True}))
        else:
            await self.write_eof()
