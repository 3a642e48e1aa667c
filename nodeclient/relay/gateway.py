"""Consumer-side local proxy: ordinary applications reach the metered session through it.

Browsers, curl and package managers cannot sign receipts, so the consumer runs this gateway on a
loopback port; each accepted connection becomes one stream of the open ``RelaySession``:

- HTTP ``CONNECT host:port`` (any TLS client: ``curl -p -x http://127.0.0.1:8118 https://…``);
- HTTP absolute-form requests (``GET http://host/path``), forwarded with the request line rewritten;
- SOCKS5 (RFC 1928), no authentication, CONNECT only, IPv4 / domain / IPv6 addresses;
- or, with a fixed ``forward_to``, a plain TCP forward (like ``ssh -L``).

It listens on loopback by default: anyone who can reach it spends the consumer's escrow.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct

from nodeclient.relay.client import RelaySession
from nodeclient.relay.consumer_stream import RelayStream
from nodeclient.relay.errors import RelayError

__all__ = ["Gateway"]

log = logging.getLogger("kuota.relay.gateway")

_MAX_REQUEST_HEAD = 32 * 1024


class Gateway:
    """A local HTTP CONNECT / SOCKS5 proxy (or fixed TCP forward) over one relay session."""

    def __init__(self, session: RelaySession, forward_to: tuple[str, int] | None = None) -> None:
        self.session = session
        self.forward_to = forward_to
        self._server: asyncio.base_events.Server | None = None
        self.connections = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen; returns the bound (host, port)."""
        self._server = await asyncio.start_server(self._handle, host, port)
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.forward_to is not None:
                stream = await self.session.open_stream(*self.forward_to)
                await _splice(reader, writer, stream)
                return
            first = await asyncio.wait_for(reader.readexactly(1), 30)
            if first == b"\x05":
                await self._socks5(reader, writer)
            else:
                await self._http(first, reader, writer)
        except (TimeoutError, RelayError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            log.info("gateway connection ended: %s", exc)
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _socks5(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        (nmethods,) = await reader.readexactly(1)
        methods = await reader.readexactly(nmethods)
        if 0 not in methods:
            writer.write(b"\x05\xff")  # no acceptable method: we only offer "no authentication"
            return
        writer.write(b"\x05\x00")
        version, cmd, _rsv, atyp = await reader.readexactly(4)
        if version != 5 or cmd != 1:
            writer.write(b"\x05\x07\x00\x01" + b"\x00" * 6)  # command not supported
            return
        if atyp == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif atyp == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode("idna")
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        else:
            writer.write(b"\x05\x08\x00\x01" + b"\x00" * 6)  # address type not supported
            return
        (port,) = struct.unpack(">H", await reader.readexactly(2))
        try:
            stream = await self.session.open_stream(host, port)
        except RelayError:
            writer.write(b"\x05\x05\x00\x01" + b"\x00" * 6)  # connection refused
            raise
        writer.write(b"\x05\x00\x00\x01" + b"\x00" * 6)
        await _splice(reader, writer, stream)

    async def _http(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = first + await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_REQUEST_HEAD:
            writer.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
            return
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.decode("latin-1").split(" ")
        if len(parts) != 3:
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            return
        method, target, version = parts
        if method.upper() == "CONNECT":
            host, _, port_text = target.rpartition(":")
            try:
                stream = await self.session.open_stream(host.strip("[]"), int(port_text))
            except RelayError as exc:
                writer.write(f"HTTP/1.1 502 Bad Gateway\r\n\r\n{exc}\n".encode())
                raise
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await _splice(reader, writer, stream)
            return
        if not target.startswith("http://"):
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\nuse CONNECT, or an absolute http:// URL\n")
            return
        hostport, _, path = target[len("http://") :].partition("/")
        host, _, port_text = hostport.partition(":")
        stream = await self.session.open_stream(host, int(port_text or 80))
        await stream.write(f"{method} /{path} {version}\r\n".encode("latin-1") + rest)
        await _splice(reader, writer, stream)


async def _splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: RelayStream) -> None:
    """Copy both ways until both sides are done."""

    async def up() -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                await stream.write_eof()
                return
            await stream.write(data)

    async def down() -> None:
        while True:
            data = await stream.read(65536)
            if not data:
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    up_task = asyncio.create_task(up())
    try:
        await down()
    finally:
        up_task.cancel()
        with contextlib.suppress(BaseException):
            await up_task
        await stream.close()
