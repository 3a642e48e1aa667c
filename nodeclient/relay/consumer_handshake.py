"""The consumer's side of the session handshake: check the node's CHALLENGE, secure the link, sign a HELLO,
verify the WELCOME.

The consumer trusts the registry, not the node: the node's price and signing key are read from the
chain; the link key in the CHALLENGE must be signed by that key before anything is sent (so the
encrypted link ends at the registered node, not at whoever answers on the address); the welcome must be
signed by that key and echo the hello; and the channel's starting point must be a receipt this consumer
signed or the chain's settled figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nodeclient.errors import ReceiptError
from nodeclient.receipts.model import SignedReceipt
from nodeclient.receipts.signing import receipt_domain, verify_receipt
from nodeclient.relay.chainview import ChainView, NodeInfo, NodeStatus
from nodeclient.relay.config import ConsumerConfig
from nodeclient.relay.errors import HandshakeError, RemoteError
from nodeclient.relay.framing import (
    PROTOCOL_VERSION,
    Frame,
    FrameType,
    decode_control,
    encode_control,
    encode_frame,
    read_frame,
)
from nodeclient.relay.handshake import Hello, LinkAttestation, Welcome
from nodeclient.relay.link import LINK_PROTOCOLS, Link, LinkInitiator

__all__ = ["Greeter"]

_NO_SIGNATURE = "0x" + "00" * 65


@dataclass(frozen=True, slots=True)
class Greeter:
    """Who greets whom: the consumer's identity, the node it wants, and the chain both must be on."""

    chain: ChainView
    node: str
    consumer: str
    consumer_key: bytes | str = field(repr=False)  # never in logs or tracebacks
    session_id: str
    config: ConsumerConfig

    async def greet(self, link: Link, send: Callable[[bytes], Awaitable[None]]) -> Welcome:
        """Run the handshake on a fresh connection (``link``, written through ``send``); returns the node's
        verified welcome, with the link encrypted."""
        challenge = await self._expect(link, FrameType.CHALLENGE)
        body = decode_control(challenge)
        self._check_challenge(body)
        info = await self.chain.node_info(self.node)
        self._check_node(info)
        attestation = await self._check_link(body, info)
        prologue = encode_frame(challenge.type, challenge.payload)
        initiator = LinkInitiator(str(body["linkProtocol"]), attestation.key_bytes, prologue)
        await send(encode_frame(FrameType.LINK, initiator.first_message()))
        link.secure(initiator.finish((await self._expect(link, FrameType.LINK)).payload))
        hello = self._hello(info, body)
        await send(encode_control(FrameType.HELLO, hello.to_json()))
        welcome = Welcome.from_json(decode_control(await self._expect(link, FrameType.WELCOME)))
        await self._check_welcome(welcome, hello, info)
        await self._check_base(welcome)
        return welcome

    async def _expect(self, link: Link, frame_type: FrameType) -> Frame:
        frame = await read_frame(link, max_frame=self.config.max_frame)
        if frame is None:
            raise HandshakeError(f"the node closed the connection before {frame_type.name}")
        if frame.type == FrameType.ERROR:
            body = decode_control(frame)
            raise RemoteError(str(body.get("code", "?")), str(body.get("message", "")))
        if frame.type != frame_type:
            raise HandshakeError(f"expected {frame_type.name} from the node, got {frame.type.name}")
        return frame

    def _check_challenge(self, body: dict[str, Any]) -> None:
        chain = self.chain
        if body.get("version") != PROTOCOL_VERSION:
            raise HandshakeError(
                f"node speaks protocol version {body.get('version')!r}, this client {PROTOCOL_VERSION}"
            )
        if str(body.get("node", "")).lower() != self.node.lower():
            raise HandshakeError(f"the relay at this address is node {body.get('node')!r}, not {self.node}")
        if (
            body.get("chainId") != chain.chain_id
            or str(body.get("settlement", "")).lower() != chain.settlement_address.lower()
        ):
            raise HandshakeError(
                f"the node is on chain {body.get('chainId')!r} / settlement {body.get('settlement')!r}, this client on "
                f"{chain.chain_id} / {chain.settlement_address}"
            )

    async def _check_link(self, body: dict[str, Any], info: NodeInfo) -> LinkAttestation:
        """The link key must be signed, with this connection's challenge, by the node's registered key."""
        if body.get("linkProtocol") not in LINK_PROTOCOLS:
            raise HandshakeError(
                f"node offers link protocol {body.get('linkProtocol')!r}, this client speaks "
                f"{' or '.join(LINK_PROTOCOLS)}"
            )
        wire = {
            "node": body.get("node"),
            "linkKey": body.get("linkKey"),
            "challenge": body.get("challenge"),
            "signature": body.get("linkSignature"),
        }
        try:
            attestation = LinkAttestation.from_json(wire)
        except HandshakeError as exc:
            raise HandshakeError(f"node sent a malformed link key: {exc.reason}") from None
        chain = self.chain
        signer = await asyncio.to_thread(attestation.recover, chain.chain_id, chain.settlement_address)
        if signer != info.signing_key:
            raise HandshakeError(
                f"the relay's link key is signed by {signer}, not by node {self.node}'s registered key "
                f"{info.signing_key}: nothing was sent to it"
            )
        return attestation

    def _check_node(self, info: NodeInfo) -> None:
        if info.status != NodeStatus.ACTIVE:
            raise HandshakeError(f"node {self.node} is {info.status.name.lower()} in the registry")
        cap = self.config.max_price_per_gib
        if cap is not None and info.price_per_gib > cap:
            raise HandshakeError(f"node price {info.price_per_gib} per GiB is above the maximum {cap}")

    def _hello(self, info: NodeInfo, challenge: dict[str, Any]) -> Hello:
        hello = Hello(
            consumer=self.consumer,
            node=self.node,
            session_id=self.session_id,
            price_per_gib=info.price_per_gib,
            challenge=str(challenge.get("challenge")),
            issued_at=int(time.time()),
        )
        try:  # parsing it back validates the node's challenge before anything is signed over it
            hello = Hello.from_json(hello.to_json() | {"signature": _NO_SIGNATURE})
        except HandshakeError as exc:
            raise HandshakeError(f"node sent a malformed challenge: {exc.reason}") from None
        return hello.signed(self.consumer_key, self.chain.chain_id, self.chain.settlement_address)

    async def _check_welcome(self, welcome: Welcome, hello: Hello, info: NodeInfo) -> None:
        chain = self.chain
        expected_digest = hello.digest(chain.chain_id, chain.settlement_address)
        echoed = (
            welcome.node,
            welcome.consumer,
            welcome.session_id,
            welcome.price_per_gib,
            welcome.hello_digest,
        )
        if echoed != (self.node, self.consumer, self.session_id, info.price_per_gib, expected_digest):
            raise HandshakeError(
                "the welcome does not match the hello (node, consumer, session, price or digest)"
            )
        signer = await asyncio.to_thread(welcome.recover, chain.chain_id, chain.settlement_address)
        if signer != info.signing_key:
            raise HandshakeError(
                f"welcome is signed by {signer}, not by node {self.node}'s registered key {info.signing_key}"
            )
        if not 0 < welcome.receipt_interval_bytes <= welcome.credit_bytes:
            raise HandshakeError(
                f"node's receipt interval {welcome.receipt_interval_bytes} is not within its credit {welcome.credit_bytes}"
            )

    async def _check_base(self, welcome: Welcome) -> None:
        """Accept the channel's starting point only if this consumer signed it or the chain settled it."""
        base = (welcome.base_bytes, welcome.base_amount)
        if welcome.base_receipt is not None:
            try:
                receipt = SignedReceipt.model_validate(welcome.base_receipt)
                verify_receipt(receipt, receipt_domain(self.chain.chain_id, self.chain.settlement_address))
            except ReceiptError as exc:
                raise HandshakeError(f"the node's base receipt does not verify: {exc}") from None
            if receipt.consumer != self.consumer or receipt.node != self.node:
                raise HandshakeError("the node's base receipt belongs to another channel")
            if (receipt.cumulative_bytes, receipt.cumulative_amount) == base:
                return
        settled_amount, settled_bytes = await self.chain.channel_settled(self.consumer, self.node)
        if base != (settled_bytes, settled_amount):
            raise HandshakeError(
                f"the node claims the channel starts at {base[0]} bytes / {base[1]}, which is neither a receipt "
                f"this consumer signed nor the chain's settled {settled_bytes} / {settled_amount}"
            )
