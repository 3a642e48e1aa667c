"""Admitting a consumer to a node: challenge and encrypted link, hello check, one session per channel, escrow and base.

The node sends a CHALLENGE with its terms and this connection's signed link key, completes the Noise
handshake that secures the link (``nodeclient.relay.link``), checks the consumer's signed HELLO against
the challenge, reserves the
(consumer, node) channel, decides where the channel starts (its own latest stored receipt, or the
chain's settled figures when the store has nothing newer), requires escrow for what is owed plus one
credit window, and answers with a signed WELCOME. Every refusal is a ``RelayError`` with its reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nodeclient.receipts.model import SignedReceipt
from nodeclient.relay.chainview import NodeInfo
from nodeclient.relay.config import RelayConfig
from nodeclient.relay.errors import (
    HandshakeError,
    InsufficientEscrowError,
    ProtocolError,
    RelayError,
    SessionRefusedError,
)
from nodeclient.relay.framing import (
    PROTOCOL_VERSION,
    Frame,
    FrameType,
    decode_control,
    encode_control,
    encode_frame,
    read_frame,
)
from nodeclient.relay.handshake import Hello, LinkAttestation, Welcome, new_challenge
from nodeclient.relay.host import SessionHost
from nodeclient.relay.link import Link, LinkKey, respond
from nodeclient.relay.pricing import GIB

__all__ = ["MAX_PROBE_PINGS", "ChannelStart", "ProbeEnded", "admit"]

# A hello is a few hundred bytes and a link handshake message 48; a larger frame before the session is
# admitted is refused before it is buffered.
_MAX_HELLO_FRAME = 16 * 1024
MAX_PROBE_PINGS = 16
"""PINGs a node answers before a HELLO: enough for a latency probe, too few to hold a slot for long."""
_MAX_PING_PAYLOAD = 64


class ProbeEnded(RelayError):
    """The peer PINGed and left without a hello: a latency probe, not a failed handshake."""

    code = "probe"


@dataclass(frozen=True, slots=True)
class ChannelStart:
    """Where an admitted session's channel starts, and the escrow figures it was admitted on."""

    hello: Hello
    channel_key: str
    price: int
    base_bytes: int
    base_amount: int
    base_receipt: SignedReceipt | None
    """The node's stored receipt the base comes from; None when the base is the chain's settled figures."""
    credit_amount: int
    """What one full credit window costs at ``price`` (rounded up)."""
    escrow_available: int
    settled_amount: int


async def admit(
    host: SessionHost, link: Link, send: Callable[[bytes], Awaitable[None]], owner: object
) -> ChannelStart:
    """Run the node's side of the handshake on a new connection; the channel is held by ``owner`` on return.

    ``link`` is the connection (read from it); ``send`` writes to it. From the HELLO on, both are encrypted.
    """
    cfg = host.config
    if host.open_sessions > cfg.max_sessions:
        raise SessionRefusedError(f"the node is at its limit of {cfg.max_sessions} sessions")
    info = await host.node_info()
    host.check_registration(info)
    challenge = new_challenge()
    await _secure_link(host, link, send, info, challenge)
    hello = await _read_hello(link, cfg)
    await _check_hello(host, hello, challenge, info)
    # Reserve the channel before any await below so a racing second hello is refused.
    key = host.reserve_channel(hello.consumer, owner)
    try:
        start = await _open_channel(host, hello, info, key)
        await send(encode_control(FrameType.WELCOME, _welcome(host, start).to_json()))
    except BaseException:
        host.release_channel(key, owner)
        raise
    return start


async def _secure_link(
    host: SessionHost, link: Link, send: Callable[[bytes], Awaitable[None]], info: NodeInfo, challenge: str
) -> None:
    """CHALLENGE with a fresh signed link key, then the Noise handshake; the link is encrypted on return."""
    key = LinkKey.generate()
    attestation = host.sign_link(
        LinkAttestation(node=host.node, link_key="0x" + key.public.hex(), challenge=challenge)
    )
    challenge_frame = encode_control(FrameType.CHALLENGE, _challenge_body(host, info, attestation))
    await send(challenge_frame)
    frame = await _read_link_frame(link, host.config, send)
    if frame.type == FrameType.HELLO:
        raise HandshakeError(
            f"the consumer sent a plaintext HELLO, as relay protocol version 1 did; this node speaks version "
            f"{PROTOCOL_VERSION}, which encrypts every frame after the CHALLENGE: upgrade the client"
        )
    if frame.type != FrameType.LINK:
        raise HandshakeError(f"expected a LINK frame (the link handshake), got {frame.type.name}")
    reply, cipher = respond(host.config.link_protocol, key, challenge_frame, frame.payload)
    await send(encode_frame(FrameType.LINK, reply))
    link.secure(cipher)


def _challenge_body(host: SessionHost, info: NodeInfo, link: LinkAttestation) -> dict[str, object]:
    return {
        "version": PROTOCOL_VERSION,
        "node": host.node,
        "chainId": host.chain.chain_id,
        "settlement": host.chain.settlement_address,
        "pricePerGiB": info.price_per_gib,
        "challenge": link.challenge,
        "linkProtocol": host.config.link_protocol,
        "linkKey": link.link_key,
        "linkSignature": link.signature,
    }


async def _read_link_frame(link: Link, cfg: RelayConfig, send: Callable[[bytes], Awaitable[None]]) -> Frame:
    """The consumer's first frame after the CHALLENGE, answering the PINGs of a latency probe first.

    PINGs before the link handshake are answered (in plaintext: they carry nothing but their own
    payload) so consumers can measure a node before choosing it (docs/RELAY.md, "Probing"); the
    handshake timeout still bounds the whole exchange.
    """
    pings = 0
    while True:
        frame = await read_frame(link, max_frame=min(cfg.max_frame, _MAX_HELLO_FRAME))
        if frame is None:
            if pings:
                raise ProbeEnded(f"probe of {pings} PINGs")
            raise HandshakeError("the connection closed before the link handshake")
        if frame.type != FrameType.PING:
            return frame
        pings += 1
        if pings > MAX_PROBE_PINGS:
            raise HandshakeError(f"more than {MAX_PROBE_PINGS} PINGs before a hello")
        if len(frame.payload) > _MAX_PING_PAYLOAD:
            raise ProtocolError(f"PING payload of {len(frame.payload)} bytes exceeds {_MAX_PING_PAYLOAD}")
        await send(encode_frame(FrameType.PONG, frame.payload))


async def _read_admission_frame(link: Link, cfg: RelayConfig, what: str) -> Frame:
    frame = await read_frame(link, max_frame=min(cfg.max_frame, _MAX_HELLO_FRAME))
    if frame is None:
        raise HandshakeError(f"the connection closed before {what}")
    return frame


async def _read_hello(link: Link, cfg: RelayConfig) -> Hello:
    frame = await _read_admission_frame(link, cfg, "a hello")
    if frame.type != FrameType.HELLO:
        raise HandshakeError(f"expected a HELLO frame, got {frame.type.name}")
    try:
        return Hello.from_json(decode_control(frame))
    except ProtocolError as exc:
        raise HandshakeError(exc.reason) from None


async def _check_hello(host: SessionHost, hello: Hello, challenge: str, info: NodeInfo) -> None:
    if hello.node != host.node:
        raise HandshakeError(f"hello is for node {hello.node}, this is node {host.node}")
    if hello.challenge != challenge:
        raise HandshakeError(f"hello signs challenge {hello.challenge}, not this connection's {challenge}")
    skew = abs(int(time.time()) - hello.issued_at)
    if skew > host.config.receipt_skew_s:
        raise HandshakeError(f"hello issuedAt {hello.issued_at} is {skew} s from the node's clock")
    signer = await asyncio.to_thread(hello.recover, host.chain.chain_id, host.chain.settlement_address)
    if signer != hello.consumer:
        raise HandshakeError(f"hello is signed by {signer}, not by its consumer {hello.consumer}")
    if hello.price_per_gib != info.price_per_gib:
        raise HandshakeError(
            f"hello agrees to price {hello.price_per_gib} per GiB but the node's registered price is "
            f"{info.price_per_gib}"
        )


async def _open_channel(host: SessionHost, hello: Hello, info: NodeInfo, key: str) -> ChannelStart:
    """The channel's base and the escrow check: what is owed plus one credit window must be available."""
    latest = await asyncio.to_thread(host.sink.latest, hello.consumer, host.node)
    available = await host.chain.escrow_available(hello.consumer)
    settled_amount, settled_bytes = await host.chain.channel_settled(hello.consumer, host.node)
    if (
        latest is not None
        and latest.cumulative_amount >= settled_amount
        and latest.cumulative_bytes >= settled_bytes
    ):
        base_receipt: SignedReceipt | None = latest
        base_bytes, base_amount = latest.cumulative_bytes, latest.cumulative_amount
    else:
        # The store has nothing newer than the chain (fresh install, or the store was lost): the
        # chain's settled figures are the channel's floor, and the consumer can read them too.
        base_receipt = None
        base_bytes, base_amount = settled_bytes, settled_amount
    price = info.price_per_gib
    credit_amount = -(-host.config.credit_bytes * price // GIB)
    needed = base_amount - settled_amount + credit_amount
    if available < needed:
        raise InsufficientEscrowError(hello.consumer, available, needed)
    return ChannelStart(
        hello=hello,
        channel_key=key,
        price=price,
        base_bytes=base_bytes,
        base_amount=base_amount,
        base_receipt=base_receipt,
        credit_amount=credit_amount,
        escrow_available=available,
        settled_amount=settled_amount,
    )


def _welcome(host: SessionHost, start: ChannelStart) -> Welcome:
    hello = start.hello
    return host.sign_welcome(
        Welcome(
            node=host.node,
            consumer=hello.consumer,
            session_id=hello.session_id,
            price_per_gib=start.price,
            credit_bytes=host.config.credit_bytes,
            receipt_interval_bytes=host.config.receipt_interval_bytes,
            base_bytes=start.base_bytes,
            base_amount=start.base_amount,
            hello_digest=hello.digest(host.chain.chain_id, host.chain.settlement_address),
            base_receipt=start.base_receipt.to_json_dict() if start.base_receipt is not None else None,
        )
    )
