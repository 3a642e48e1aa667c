"""Both ends of the encrypted relay link for tests that play one side by hand: a fake node (asyncio) and a
raw consumer on a blocking socket, each built on the real ``nodeclient.relay.link`` code, plus an on-path
TCP proxy on 127.0.0.1 that records (and may alter) the bytes it forwards."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from nodeclient.relay.framing import PROTOCOL_VERSION, FrameType, encode_control, encode_frame, read_frame
from nodeclient.relay.handshake import LinkAttestation, new_challenge
from nodeclient.relay.link import LINK_PROTOCOLS, Link, LinkCipher, LinkInitiator, LinkKey, respond


def challenge_body(
    node: str, view: Any, price: int, challenge: str, attestation: LinkAttestation, **overrides: Any
) -> dict[str, Any]:
    """A CHALLENGE body as a v2 node sends it."""
    return {
        "version": PROTOCOL_VERSION,
        "node": node,
        "chainId": view.chain_id,
        "settlement": view.settlement_address,
        "pricePerGiB": price,
        "challenge": challenge,
        "linkProtocol": LINK_PROTOCOLS[0],
        "linkKey": attestation.link_key,
        "linkSignature": attestation.signature,
    } | overrides


async def fake_node_link(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    node: str,
    signer_key: str,
    view: Any,
    price: int,
) -> Link:
    """Play the node up to an encrypted link, signing the link key with ``signer_key``."""
    challenge = new_challenge()
    key = LinkKey.generate()
    attestation = LinkAttestation(node=node, link_key="0x" + key.public.hex(), challenge=challenge).signed(
        signer_key, view.chain_id, view.settlement_address
    )
    challenge_frame = encode_control(
        FrameType.CHALLENGE, challenge_body(node, view, price, challenge, attestation)
    )
    writer.write(challenge_frame)
    link = Link(reader, writer)
    first = await read_frame(link)
    assert first is not None and first.type == FrameType.LINK, first
    reply, cipher = respond(LINK_PROTOCOLS[0], key, challenge_frame, first.payload)
    writer.write(encode_frame(FrameType.LINK, reply))
    link.secure(cipher)
    return link


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


class RawConsumer:
    """A consumer on a blocking socket: reads the CHALLENGE, can secure the link, then sends what it is told."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._cipher: LinkCipher | None = None
        frame_type, payload = self._recv_plain_frame()
        assert frame_type == FrameType.CHALLENGE, frame_type
        self.challenge_frame = encode_frame(FrameType.CHALLENGE, payload)
        self.challenge: dict[str, Any] = json.loads(payload)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def secure(self) -> None:
        """Run the link handshake against the node's (unverified: this is a test) link key."""
        key = bytes.fromhex(self.challenge["linkKey"][2:])
        initiator = LinkInitiator(self.challenge["linkProtocol"], key, self.challenge_frame)
        self.sock.sendall(encode_frame(FrameType.LINK, initiator.first_message()))
        frame_type, payload = self._recv_plain_frame()
        assert frame_type == FrameType.LINK, frame_type
        self._cipher = initiator.finish(payload)

    def send(self, data: bytes) -> None:
        """Send frame bytes, sealed once the link is secured."""
        self.sock.sendall(data if self._cipher is None else self._cipher.seal(data))

    def _recv_plain_frame(self) -> tuple[int, bytes]:
        frame_type, length = struct.unpack(">BI", _recv_exact(self.sock, 5))
        return frame_type, _recv_exact(self.sock, length)

    def recv_frame(self) -> tuple[int, bytes]:
        """The next frame, opened from its records once the link is secured."""
        if self._cipher is None:
            return self._recv_plain_frame()
        plain = b""
        while len(plain) < 5 or len(plain) < 5 + struct.unpack(">I", plain[1:5])[0]:
            (length,) = struct.unpack(">H", _recv_exact(self.sock, 2))
            plain += self._cipher.open(_recv_exact(self.sock, length))
        return plain[0], plain[5:]

    def error(self, timeout: float = 8.0) -> dict[str, Any]:
        """Read frames until the node's ERROR; its body."""
        self.sock.settimeout(timeout)
        while True:
            frame_type, payload = self.recv_frame()
            if frame_type == FrameType.ERROR:
                return json.loads(payload)


_LINK_MESSAGE = 5 + 48  # a LINK frame of the NK handshake: header, ephemeral key, empty payload's tag


def record_starts(seen: bytes | bytearray, direction: str) -> list[int]:
    """Offsets of the encrypted records in one direction's bytes so far (each known once the previous
    record's length is in), after the plaintext CHALLENGE and LINK frames."""
    if direction == "up":
        pos = _LINK_MESSAGE
    elif len(seen) >= 5:
        pos = 5 + struct.unpack(">I", bytes(seen[1:5]))[0] + _LINK_MESSAGE
    else:
        return []
    starts = []
    while pos <= len(seen):
        starts.append(pos)
        if pos + 2 > len(seen):
            break
        pos += 2 + struct.unpack(">H", bytes(seen[pos : pos + 2]))[0]
    return starts


@dataclass
class RecordTamper:
    """Alters one direction once, at its encrypted record ``index``: flips one ciphertext byte inside it,
    or, with ``insert``, puts those bytes (``insert(seen)``: a replayed record, a plaintext frame) before it."""

    direction: str
    index: int
    insert: Callable[[bytearray], bytes] | None = None
    done: bool = False

    def __call__(self, direction: str, offset: int, data: bytes, seen: bytearray) -> bytes:
        if self.done or direction != self.direction:
            return data
        starts = record_starts(seen, direction)
        if len(starts) <= self.index:
            return data
        # Flip a byte past the length prefix, so the record is read whole and then fails its tag.
        target = starts[self.index] + (0 if self.insert is not None else 2 + 5)
        if not offset <= target < offset + len(data):
            return data
        self.done = True
        at = target - offset
        if self.insert is not None:
            return data[:at] + self.insert(seen) + data[at:]
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


Transform = Callable[[str, int, bytes, bytearray], bytes]
"""(direction "up" consumer→node or "down", offset of ``data`` in that direction, data, every byte seen in
that direction so far, ``data`` included) → the bytes to forward."""


@dataclass
class OnPathProxy:
    """A TCP proxy on 127.0.0.1 in front of a relay: records every byte both ways and may rewrite them."""

    target: tuple[str, int]
    transform: Transform | None = None
    seen: dict[str, bytearray] = field(default_factory=lambda: {"up": bytearray(), "down": bytearray()})
    port: int = 0
    _server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(
            self._pipe("up", reader, up_writer), self._pipe("down", up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, direction: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                offset = len(self.seen[direction])
                self.seen[direction] += data
                writer.write(
                    self.transform(direction, offset, data, self.seen[direction]) if self.transform else data
                )
                await writer.drain()
        finally:
            writer.close()
