"""The encrypted, authenticated relay link: a Noise NK handshake, then every frame inside Noise records.

The node makes a fresh X25519 link key for each connection and signs it, with the connection's
challenge, under its registered Ethereum key (``LinkAttestation`` in ``handshake``). The consumer checks
that signature against the registry before it sends a byte, then runs the Noise NK pattern
(``Noise_NK_25519_AESGCM_SHA256`` or ``Noise_NK_25519_ChaChaPoly_BLAKE2s``, the node's choice, named in
the CHALLENGE) with the link key as the responder's known static key: only the holder of that key can
complete the handshake, and the prologue is the exact CHALLENGE frame, so an altered challenge (the
protocol name included) fails it too.

After the handshake the byte stream of frames is cut into Noise transport messages, each sent as
``length:u16 big-endian | ciphertext`` (at most 65535 bytes, the Noise limit, tag included). A record
that does not authenticate ends the session with ``LinkIntegrityError``: flipped, injected, dropped or
reordered bytes are never delivered as frames. ``Link`` wraps the connection and is upgraded in place
(plaintext until ``secure``), so the code that reads and writes frames does not change with the mode.
"""

from __future__ import annotations

import asyncio
import platform
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import (
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseMaxNonceError,
    NoiseValueError,
)

from nodeclient.relay.errors import HandshakeError, LinkIntegrityError

__all__ = [
    "LINK_AESGCM",
    "LINK_CHACHAPOLY",
    "LINK_PROTOCOLS",
    "MAX_RECORD",
    "MAX_RECORD_PLAINTEXT",
    "Link",
    "LinkCipher",
    "LinkInitiator",
    "LinkKey",
    "preferred_link_protocol",
    "respond",
]

LINK_AESGCM = "Noise_NK_25519_AESGCM_SHA256"
LINK_CHACHAPOLY = "Noise_NK_25519_ChaChaPoly_BLAKE2s"
LINK_PROTOCOLS = (LINK_AESGCM, LINK_CHACHAPOLY)
"""The link protocols a client accepts; the node names one in its CHALLENGE (``preferred_link_protocol``)."""

MAX_RECORD = 65535
_TAG = 16
MAX_RECORD_PLAINTEXT = MAX_RECORD - _TAG
_MAX_NONCE = 2**64 - 1  # reserved by Noise: a link that reaches it must end
# Both ends mix this and the CHALLENGE frame into the handshake: a different protocol revision or an
# altered challenge cannot complete it.
_PROLOGUE = b"kuota relay link v2\n"
_LENGTH = struct.Struct(">H")
_READ_SIZE = 256 * 1024
# The library raises these for a message that does not authenticate or parse (it has no common base).
_NOISE_FAILURES = (
    InvalidTag,
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseMaxNonceError,
    NoiseValueError,
    ValueError,
)


def preferred_link_protocol() -> str:
    """AES-GCM where the CPU has AES instructions (several times faster there), else ChaChaPoly (faster in
    software, and constant-time without them, e.g. on a Raspberry Pi 4)."""
    machine = platform.machine().lower()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        # No /proc (macOS, Windows): every x86-64 and Apple arm64 CPU of the last decade has AES.
        return LINK_AESGCM if machine in ("x86_64", "amd64", "arm64") else LINK_CHACHAPOLY
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            return LINK_AESGCM if "aes" in value.split() else LINK_CHACHAPOLY
    return LINK_CHACHAPOLY


@dataclass(frozen=True, slots=True)
class LinkKey:
    """The node's X25519 key for one connection; it lives in memory only, for that connection."""

    private: bytes = field(repr=False)
    public: bytes

    @classmethod
    def generate(cls) -> Self:
        """A fresh random key pair."""
        key = X25519PrivateKey.generate()
        private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(private, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def _noise(protocol: str, prologue: bytes) -> NoiseConnection:
    if protocol not in LINK_PROTOCOLS:
        raise HandshakeError(f"link protocol {protocol!r} is not one of {', '.join(LINK_PROTOCOLS)}")
    noise = NoiseConnection.from_name(protocol.encode())
    noise.set_prologue(_PROLOGUE + prologue)
    return noise


class _CipherState:
    """One direction of Noise transport (spec section 5.1): the AEAD under the split key and its nonce."""

    __slots__ = ("_aead", "_little_endian", "_nonce")

    def __init__(self, protocol: str, key: bytes) -> None:
        self._little_endian = protocol == LINK_CHACHAPOLY
        self._aead = ChaCha20Poly1305(key) if self._little_endian else AESGCM(key)
        self._nonce = 0

    def _next_nonce(self) -> bytes:
        n = self._nonce
        if n >= _MAX_NONCE:
            raise LinkIntegrityError("the link used every nonce its key allows; open a new session")
        self._nonce = n + 1
        # Noise: 32 zero bits, then the counter, little-endian for ChaChaPoly and big-endian for AESGCM.
        return b"\0\0\0\0" + n.to_bytes(8, "little" if self._little_endian else "big")

    def encrypt_into(self, plaintext: memoryview, out: memoryview) -> None:
        self._aead.encrypt_into(self._next_nonce(), plaintext, None, out)

    def decrypt(self, ciphertext: bytes | memoryview) -> bytes:
        nonce = self._next_nonce()
        try:
            return self._aead.decrypt(nonce, ciphertext, None)
        except InvalidTag:
            raise LinkIntegrityError(
                f"an encrypted record of {len(ciphertext)} bytes failed authentication: the bytes were altered, "
                "injected, dropped or reordered on the way"
            ) from None


class LinkCipher:
    """Both directions of an established link: seal outgoing bytes into records, open incoming ones.

    The handshake is the library's; the transport uses the split keys with the AEAD directly, so a
    record is sealed straight into the buffer that goes to the socket (no copy per record).
    """

    __slots__ = ("_receive", "_send")

    def __init__(self, protocol: str, noise: NoiseConnection) -> None:
        state = noise.noise_protocol
        self._send = _CipherState(protocol, state.cipher_state_encrypt.k)
        self._receive = _CipherState(protocol, state.cipher_state_decrypt.k)

    def seal(self, *parts: bytes | bytearray | memoryview) -> bytearray:
        """The bytes of ``parts``, in order, as records (``length | ciphertext``) ready for the socket.

        Each part is sealed from where it lies (records do not straddle parts), so a DATA frame passed as
        its 9-byte header and its payload costs no copy of the payload before encryption.
        """
        views = [memoryview(part) for part in parts]
        records = sum(max(1, -(-len(view) // MAX_RECORD_PLAINTEXT)) for view in views)
        out = bytearray(sum(len(view) for view in views) + records * (_LENGTH.size + _TAG))
        target = memoryview(out)
        pos = 0
        for view in views:
            for offset in range(0, max(len(view), 1), MAX_RECORD_PLAINTEXT):
                chunk = view[offset : offset + MAX_RECORD_PLAINTEXT]
                length = len(chunk) + _TAG
                _LENGTH.pack_into(out, pos, length)
                self._send.encrypt_into(chunk, target[pos + _LENGTH.size : pos + _LENGTH.size + length])
                pos += _LENGTH.size + length
        return out

    def open(self, record: bytes | memoryview) -> bytes:
        """The plaintext of one record's ciphertext; ``LinkIntegrityError`` if it does not authenticate."""
        return self._receive.decrypt(record)


class LinkInitiator:
    """The consumer's half of the Noise NK handshake with a link key it has already verified."""

    def __init__(self, protocol: str, link_key: bytes, challenge_frame: bytes) -> None:
        self._protocol = protocol
        self._noise = _noise(protocol, challenge_frame)
        self._noise.set_as_initiator()
        self._noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, link_key)
        self._noise.start_handshake()

    def first_message(self) -> bytes:
        """``-> e, es``: only the holder of the link key can read what follows it."""
        try:
            return bytes(self._noise.write_message())
        except _NOISE_FAILURES as exc:
            # A low-order point signed by a registered key: refused as any other bad handshake.
            raise HandshakeError(f"the node's link key is not usable ({type(exc).__name__}: {exc})") from None

    def finish(self, reply: bytes) -> LinkCipher:
        """``<- e, ee``: the node's reply; ``HandshakeError`` unless it proves the node holds the link key."""
        try:
            self._noise.read_message(reply)
        except _NOISE_FAILURES as exc:
            raise HandshakeError(
                f"the relay did not prove it holds the link key its node signed ({type(exc).__name__}: {exc})"
            ) from None
        return LinkCipher(self._protocol, self._noise)


def respond(protocol: str, key: LinkKey, challenge_frame: bytes, first: bytes) -> tuple[bytes, LinkCipher]:
    """The node's half: read the consumer's first message, return the reply to send and the link."""
    noise = _noise(protocol, challenge_frame)
    noise.set_as_responder()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, key.private)
    noise.start_handshake()
    try:
        noise.read_message(first)
        reply = bytes(noise.write_message())
    except _NOISE_FAILURES as exc:
        raise HandshakeError(
            "the consumer's link handshake does not match this connection's link key and challenge "
            f"({type(exc).__name__}: {exc})"
        ) from None
    return reply, LinkCipher(protocol, noise)


class Link:
    """One relay connection: reads and writes frame bytes, in plaintext until ``secure`` installs a cipher.

    Reading follows ``asyncio.StreamReader.readexactly`` (what ``read_frame`` uses), including its
    ``IncompleteReadError`` at the end of the stream, so the frame layer cannot tell the modes apart.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._cipher: LinkCipher | None = None
        # Opened records not yet read, the first from ``_offset`` on: a frame is joined from them with
        # one copy, and a frame that is one whole record is handed over as it is.
        self._records: deque[bytes] = deque()
        self._offset = 0
        self._buffered = 0
        self._wire = bytearray()
        """Received bytes of a record not complete yet."""

    def secure(self, cipher: LinkCipher) -> None:
        """From now on, every byte written is sealed and every byte read must open."""
        self._cipher = cipher

    # -- reading --------------------------------------------------------------------------------

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` plaintext bytes; ``asyncio.IncompleteReadError`` if the peer ends the stream first."""
        if self._cipher is None:
            return await self._reader.readexactly(n)
        if n == 0:
            return b""
        while self._buffered < n:
            await self._read_records(self._cipher, n)
        self._buffered -= n
        records = self._records
        first = records[0]
        if self._offset == 0 and len(first) == n:
            return records.popleft()
        parts: list[memoryview] = []
        while n:
            record = memoryview(records[0])[self._offset :]
            if len(record) > n:
                parts.append(record[:n])
                self._offset += n
                break
            parts.append(record)
            records.popleft()
            self._offset = 0
            n -= len(record)
        return b"".join(parts)

    async def _read_records(self, cipher: LinkCipher, wanted: int) -> None:
        """Read what the socket has (one await for many records) and open every complete record in it.

        Records are opened from a view of the bytes as read; only a record cut by the end of a read is
        copied, into ``_wire``, until the next read completes it.
        """
        chunk = await self._reader.read(_READ_SIZE)
        if not chunk:
            if self._wire:
                raise LinkIntegrityError(
                    f"the connection closed inside an encrypted record, {len(self._wire)} bytes into it"
                )
            raise asyncio.IncompleteReadError(b"".join(self._records)[self._offset :], wanted)
        with memoryview(chunk) as view:
            pos = self._complete_cut_record(cipher, view) if self._wire else 0
            end = len(view)
            while pos + _LENGTH.size <= end:
                size = _LENGTH.size + self._record_length(view, pos)
                if pos + size > end:
                    break
                self._keep(cipher.open(view[pos + _LENGTH.size : pos + size]))
                pos += size
            self._wire += view[pos:]

    def _complete_cut_record(self, cipher: LinkCipher, view: memoryview) -> int:
        """Feed the start of ``view`` to the record in ``_wire``; how many bytes of ``view`` it took."""
        wire = self._wire
        taken = max(0, _LENGTH.size - len(wire))
        wire += view[:taken]
        if len(wire) < _LENGTH.size:
            return taken
        missing = _LENGTH.size + self._record_length(wire, 0) - len(wire)
        more = view[taken : taken + missing]
        wire += more
        taken += len(more)
        if len(more) == missing:
            with memoryview(wire) as record:
                plain = cipher.open(record[_LENGTH.size :])
            self._keep(plain)
            wire.clear()
        return taken

    @staticmethod
    def _record_length(data: bytes | bytearray | memoryview, pos: int) -> int:
        (length,) = _LENGTH.unpack_from(data, pos)
        if length < _TAG:
            raise LinkIntegrityError(
                f"an encrypted record of {length} bytes is shorter than its {_TAG}-byte tag"
            )
        return length

    def _keep(self, plain: bytes) -> None:
        if plain:
            self._records.append(plain)
            self._buffered += len(plain)

    # -- writing --------------------------------------------------------------------------------

    def write(self, data: bytes, *more: bytes | memoryview) -> None:
        """Queue frame bytes, ``data`` then ``more`` (sealed once the link is secured); follow with ``drain``."""
        if self._cipher is not None:
            self._writer.write(self._cipher.seal(data, *more))
        else:
            self._writer.write(b"".join((data, *more)) if more else data)

    async def drain(self) -> None:
        """Wait until the socket's write buffer is below its high-water mark."""
        await self._writer.drain()

    def close(self) -> None:
        """Close the connection."""
        self._writer.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self._writer.wait_closed()
