"""The relay's wire format: length-prefixed frames over one TCP connection.

Every frame is ``type:u8 | length:u32 big-endian | payload``. Control frames carry a UTF-8 JSON object;
DATA frames carry ``stream:u32 big-endian | bytes``. The length is checked against the reader's maximum
before a single payload byte is read, so an oversized frame costs the node five bytes of memory.

Only DATA payload bytes (without the 4-byte stream id) are metered and paid for; headers and control
frames are protocol overhead nobody is billed for (docs/RELAY.md, "Framing").

Frames are read from anything with ``readexactly`` (a ``FrameSource``): a bare ``asyncio.StreamReader``,
or the encrypted ``nodeclient.relay.link.Link`` that carries every frame after the CHALLENGE.
"""

from __future__ import annotations

import asyncio
import enum
import json
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from nodeclient.relay.errors import FrameTooLargeError, ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "PROTOCOL_VERSION",
    "STREAM_ID_SIZE",
    "Frame",
    "FrameSource",
    "FrameType",
    "data_header",
    "decode_control",
    "decode_data",
    "encode_control",
    "encode_data",
    "encode_frame",
    "read_frame",
]

PROTOCOL_VERSION = 2
"""2: everything after the CHALLENGE travels on the encrypted link (1 was plaintext)."""
HEADER_SIZE = 5
STREAM_ID_SIZE = 4
DEFAULT_MAX_FRAME = 256 * 1024

_HEADER = struct.Struct(">BI")
_STREAM = struct.Struct(">I")


class FrameType(enum.IntEnum):
    """Frame types. Direction: N = node, C = consumer."""

    CHALLENGE = 0x01  # N→C  fresh nonce the consumer must sign into its hello
    HELLO = 0x02  # C→N  signed RelayHello
    WELCOME = 0x03  # N→C  RelayWelcome signed by the node's registered signing key
    OPEN = 0x04  # C→N  open a TCP stream to host:port (the CONNECT of this protocol)
    OPENED = 0x05  # N→C  the stream is connected
    DATA = 0x06  # both  stream payload (metered)
    CLOSE = 0x07  # both  end of a stream (half-close), with an optional reason
    RECEIPT = 0x08  # C→N  signed cumulative receipt
    ACK = 0x09  # N→C  the receipt is durably stored
    PAUSE = 0x0A  # N→C  unpaid traffic reached the credit limit: sign now or be cut off
    PING = 0x0B  # C→N  latency probe (8 opaque bytes)
    PONG = 0x0C  # N→C  echo of PING
    ERROR = 0x0D  # both  fatal: {code, message}; the sender closes after it
    BYE = 0x0E  # C→N  graceful end after the final receipt
    LINK = 0x0F  # both  Noise handshake message (after CHALLENGE, before HELLO; the last plaintext frames)


_BINARY_TYPES = frozenset({FrameType.DATA, FrameType.PING, FrameType.PONG})


class FrameSource(Protocol):
    """Where frames are read from: ``asyncio.StreamReader`` or the encrypted ``Link``."""

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; ``asyncio.IncompleteReadError`` if the stream ends first."""
        ...


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: its type and raw payload."""

    type: FrameType
    payload: bytes


def encode_frame(frame_type: FrameType, payload: bytes) -> bytes:
    """Serialise one frame (header + payload)."""
    return _HEADER.pack(frame_type, len(payload)) + payload


def encode_control(frame_type: FrameType, body: dict[str, Any]) -> bytes:
    """Serialise a control frame whose payload is a compact JSON object."""
    return encode_frame(frame_type, json.dumps(body, separators=(",", ":"), sort_keys=True).encode())


def data_header(stream_id: int, length: int) -> bytes:
    """The first bytes of a DATA frame of ``length`` payload bytes for ``stream_id`` (the payload follows)."""
    return _HEADER.pack(FrameType.DATA, STREAM_ID_SIZE + length) + _STREAM.pack(stream_id)


def encode_data(stream_id: int, data: bytes | memoryview) -> bytes:
    """Serialise a DATA frame for ``stream_id``."""
    return data_header(stream_id, len(data)) + bytes(data)


def decode_control(frame: Frame) -> dict[str, Any]:
    """Parse a control frame's JSON object payload; anything else is a ``ProtocolError``."""
    if frame.type in _BINARY_TYPES:
        raise ProtocolError(f"{frame.type.name} frame has no JSON payload")
    try:
        body = json.loads(frame.payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"{frame.type.name} frame payload is not UTF-8 JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ProtocolError(
            f"{frame.type.name} frame payload is JSON {type(body).__name__}, expected an object"
        )
    return body


def decode_data(frame: Frame) -> tuple[int, memoryview]:
    """Split a DATA frame into its stream id and payload (a view: the payload is not copied)."""
    if len(frame.payload) < STREAM_ID_SIZE:
        raise ProtocolError(f"DATA frame of {len(frame.payload)} bytes is shorter than its stream id")
    (stream_id,) = _STREAM.unpack_from(frame.payload)
    return stream_id, memoryview(frame.payload)[STREAM_ID_SIZE:]


async def read_frame(
    reader: FrameSource,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    idle_timeout: float | None = None,
    body_timeout: float | None = None,
) -> Frame | None:
    """Read one frame; ``None`` on a clean end of stream between frames.

    ``idle_timeout`` bounds the wait for a header (an idle peer); ``body_timeout`` bounds the wait for
    the announced payload once the header is in, so a peer that trickles a frame byte by byte
    (slowloris) is dropped after a fixed time whatever its pace. Both raise ``TimeoutError``.
    """
    # asyncio.timeout, not wait_for: wait_for wraps every read in a new task, which costs more than
    # the read itself at a few thousand frames per second.
    try:
        async with asyncio.timeout(idle_timeout):
            header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError(
            f"connection closed inside a frame header after {len(exc.partial)} bytes"
        ) from None
    type_byte, length = _HEADER.unpack(header)
    try:
        frame_type = FrameType(type_byte)
    except ValueError:
        raise ProtocolError(f"unknown frame type 0x{type_byte:02x}") from None
    if length > max_frame:
        raise FrameTooLargeError(length, max_frame)
    if not length:
        return Frame(frame_type, b"")
    try:
        async with asyncio.timeout(body_timeout):
            payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            f"connection closed inside a {frame_type.name} frame after {len(exc.partial)} of {length} bytes"
        ) from None
    return Frame(frame_type, payload)
