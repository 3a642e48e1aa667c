"""A minimal HTTP/1.1 client over one relay stream: ``RelaySession.fetch`` sends a GET, this reads the answer.

Only what a metered fetch needs: the status line, headers, and a body framed by ``Content-Length``,
chunked transfer encoding, or the end of the stream. The body goes to a ``sink`` as it arrives or
into the result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from nodeclient.relay.errors import RelayError

__all__ = ["BodySink", "FetchResult", "read_http_response", "request_bytes"]

_MAX_HEADER_BYTES = 64 * 1024
_HEAD_READ = 64 * 1024
_BODY_READ = 256 * 1024

BodySink = Callable[[bytes], Awaitable[None] | None]
"""Receives the body piece by piece; may be a coroutine function."""


class _Readable(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


@dataclass(slots=True)
class FetchResult:
    """Outcome of ``RelaySession.fetch``."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes | None
    """The body, unless a ``sink`` consumed it."""
    body_bytes: int
    wire_bytes: int
    """Payload bytes received on the stream (status line, headers and body as sent by the server)."""
    seconds: float
    first_byte_s: float


def request_bytes(host: str, port: int, path: str) -> bytes:
    """The GET request the relay's fetch sends (identity encoding, one request per connection)."""
    host_header = host if port == 80 else f"{host}:{port}"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: kuota-relay/1\r\n"
        "Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode()


class _Body:
    """Collects the body, or hands it to the sink, and counts it."""

    def __init__(self, sink: BodySink | None) -> None:
        self.sink = sink
        self.parts: list[bytes] | None = [] if sink is None else None
        self.total = 0

    async def emit(self, data: bytes) -> None:
        self.total += len(data)
        if self.parts is not None:
            self.parts.append(data)
        elif self.sink is not None:
            out = self.sink(data)
            if asyncio.iscoroutine(out):
                await out


async def read_http_response(
    stream: _Readable, url: str, sink: BodySink | None, started: float
) -> FetchResult:
    """Read one HTTP response from ``stream``; ``started`` is the ``perf_counter`` of the request."""
    head, rest, first_byte = await _read_head(stream, url, started)
    status, headers = _parse_head(head, url)
    body = _Body(sink)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        await _read_chunked(stream, url, rest, body)
    else:
        length = int(headers["content-length"]) if "content-length" in headers else None
        await _read_sized(stream, url, rest, length, body)
    return FetchResult(
        url=url,
        status=status,
        headers=headers,
        body=b"".join(body.parts) if body.parts is not None else None,
        body_bytes=body.total,
        wire_bytes=0,
        seconds=time.perf_counter() - started,
        first_byte_s=first_byte,
    )


async def _read_head(stream: _Readable, url: str, started: float) -> tuple[bytes, bytes, float]:
    head = b""
    first_byte: float | None = None
    while b"\r\n\r\n" not in head:
        chunk = await stream.read(_HEAD_READ)
        if first_byte is None:
            first_byte = time.perf_counter() - started
        if not chunk:
            raise RelayError(f"{url}: the server closed the connection before the end of the headers")
        head += chunk
        if len(head) > _MAX_HEADER_BYTES and b"\r\n\r\n" not in head[:_MAX_HEADER_BYTES]:
            raise RelayError(f"{url}: response headers exceed {_MAX_HEADER_BYTES} bytes")
    raw_head, rest = head.split(b"\r\n\r\n", 1)
    return raw_head, rest, first_byte or 0.0


def _parse_head(raw_head: bytes, url: str) -> tuple[int, dict[str, str]]:
    lines = raw_head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise RelayError(f"{url}: malformed status line {lines[0][:100]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_chunked(stream: _Readable, url: str, buffer: bytes, body: _Body) -> None:
    async def fill(until: Callable[[bytes], bool]) -> None:
        nonlocal buffer
        while not until(buffer):
            more = await stream.read(_HEAD_READ)
            if not more:
                raise RelayError(f"{url}: chunked body ended early")
            buffer += more

    while True:
        await fill(lambda b: b"\r\n" in b)
        size_line, buffer = buffer.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        await fill(lambda b, needed=size + 2: len(b) >= needed)
        if size == 0:
            return
        await body.emit(buffer[:size])
        buffer = buffer[size + 2 :]


async def _read_sized(stream: _Readable, url: str, rest: bytes, length: int | None, body: _Body) -> None:
    """A body of ``length`` bytes, or (``None``) everything until the server closes."""
    if rest:
        await body.emit(rest)
    while length is None or body.total < length:
        data = await stream.read(_BODY_READ)
        if not data:
            break
        await body.emit(data)
    if length is not None and body.total != length:
        raise RelayError(f"{url}: body has {body.total} bytes, Content-Length said {length}")
