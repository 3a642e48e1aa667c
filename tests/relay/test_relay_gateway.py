"""The consumer's local proxy: HTTP CONNECT, absolute-form HTTP, SOCKS5 and a fixed forward, all metered."""

from __future__ import annotations

import asyncio
import socket
import struct
import urllib.request

from nodeclient.relay.client import open_session
from nodeclient.relay.gateway import Gateway

KIB = 1024


def _read_http(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _connect_proxy(gw: tuple[str, int], origin_port: int, size: int) -> bytes:
    with socket.create_connection(gw, timeout=10) as sock:
        sock.sendall(
            f"CONNECT 127.0.0.1:{origin_port} HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\r\n".encode()
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(1)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        sock.sendall(f"GET /bytes/{size} HTTP/1.0\r\n\r\n".encode())
        return _read_http(sock)


def _socks5(gw: tuple[str, int], origin_port: int, size: int) -> bytes:
    with socket.create_connection(gw, timeout=10) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert sock.recv(2) == b"\x05\x00"
        sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", origin_port))
        reply = sock.recv(10)
        assert reply[:2] == b"\x05\x00", reply
        sock.sendall(f"GET /bytes/{size} HTTP/1.0\r\n\r\n".encode())
        return _read_http(sock)


def _absolute_form(gw: tuple[str, int], url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://{gw[0]}:{gw[1]}"}))
    with opener.open(url, timeout=10) as response:
        return response.read()


def _forward(gw: tuple[str, int], size: int) -> bytes:
    with socket.create_connection(gw, timeout=10) as sock:
        sock.sendall(f"GET /bytes/{size} HTTP/1.0\r\n\r\n".encode())
        return _read_http(sock)


def test_gateway_carries_connect_socks5_absolute_form_and_forward_through_the_paid_session(
    world, relay, origin
):
    node = relay()
    origin_port = origin.server.server_address[1]

    async def run():
        session = await open_session(
            node.host, node.port, node=world.node.address, consumer_key=world.consumer_key, chain=world.view()
        )
        proxy = Gateway(session)
        forward = Gateway(session, forward_to=("127.0.0.1", origin_port))
        gw = await proxy.start()
        fw = await forward.start()
        results = {
            "connect": await asyncio.to_thread(_connect_proxy, gw, origin_port, 300 * KIB),
            "socks5": await asyncio.to_thread(_socks5, gw, origin_port, 200 * KIB),
            "absolute": await asyncio.to_thread(_absolute_form, gw, origin.url(100 * KIB)),
            "forward": await asyncio.to_thread(_forward, fw, 50 * KIB),
        }
        await proxy.close()
        await forward.close()
        await session.close()
        return session, results

    session, results = asyncio.run(run())
    assert (
        results["connect"].endswith(bytes(range(256)) * 4) and b"Content-Length: 307200" in results["connect"]
    )
    assert len(results["connect"].split(b"\r\n\r\n", 1)[1]) == 300 * KIB
    assert len(results["socks5"].split(b"\r\n\r\n", 1)[1]) == 200 * KIB
    assert len(results["absolute"]) == 100 * KIB
    assert len(results["forward"].split(b"\r\n\r\n", 1)[1]) == 50 * KIB
    assert origin.stats.requests == 4
    # Every byte the origin exchanged went through the session, and the final receipt pays for exactly that.
    assert session.metered_bytes == origin.delivered
    assert session.receipts[-1].cumulative_bytes == origin.delivered
    assert session.acked[-1] == session.receipts[-1]
