"""The node's exposure and the consumer's payments on a real chain: credit limit, escrow check, honest signing."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account
from relay.conftest import PRICE_PER_GIB
from relay.link_support import fake_node_link

from nodeclient.relay.client import ConsumerConfig, RelaySession, open_session
from nodeclient.relay.errors import RelayError, RemoteError
from nodeclient.relay.framing import (
    FrameType,
    decode_control,
    decode_data,
    encode_control,
    encode_data,
    encode_frame,
    read_frame,
)
from nodeclient.relay.handshake import Hello, Welcome
from nodeclient.relay.pricing import amount_for

MIB = 1024 * 1024


class NeverSigns(RelaySession):
    """A consumer that takes traffic and never signs a receipt."""

    async def _sign(self, force: bool = False):
        return None


class StopsSigningAfter(RelaySession):
    """A consumer that signs its first three receipts, then stops paying."""

    async def _sign(self, force: bool = False):
        if len(self.receipts) >= 3:
            return None
        return await super()._sign(force)


def _freeload(world, node, url: str, session_class: type) -> tuple[RelaySession, BaseException | None]:
    async def run():
        session = await open_session(
            node.host,
            node.port,
            node=world.node.address,
            consumer_key=world.consumer_key,
            chain=world.view(),
            config=ConsumerConfig(ping_interval=0),
            session_class=session_class,
        )
        error = None
        try:
            await session.fetch(url, sink=lambda data: None, timeout=30)
        except RelayError as exc:  # the node cuts the session: the fetch must fail, not hang
            error = exc
        await session.close()
        return session, error

    return asyncio.run(run())


@pytest.mark.parametrize("session_class", [NeverSigns, StopsSigningAfter])
def test_consumer_that_stops_signing_is_cut_off_within_the_credit_limit(world, relay, origin, session_class):
    credit = 1 * MIB
    node = relay(credit_bytes=credit, receipt_interval_bytes=256 * 1024, pause_timeout=1.0)
    started = time.monotonic()
    session, error = _freeload(world, node, origin.url(40 * MIB), session_class)
    assert error is not None, "the fetch of 40 MiB must fail once the node cuts the session off"
    assert time.monotonic() - started < 20
    assert session.remote_error is not None and session.remote_error.code == "credit_exhausted"
    snap = node.wait_idle()
    carried = snap["bytes"]["down"] + snap["bytes"]["up"]
    stored = node.store.latest(world.consumer, world.node.address)
    paid_bytes = stored.cumulative_bytes if stored is not None else 0
    # The invariant: carried - durably receipted <= credit limit, whatever the consumer does.
    assert carried - paid_bytes <= credit
    assert session.received_bytes + session.sent_bytes == carried
    assert snap["cutoffs"] == 1 and snap["pauses"] >= 1
    assert snap["sessions"]["ended"].get("credit_exhausted") == 1
    if session_class is NeverSigns:
        assert stored is None and carried <= credit
    else:
        assert len(session.receipts) == 3 and stored == session.receipts[-1]


def test_consumer_with_too_little_escrow_is_refused_before_any_byte(world, relay, origin):
    node = relay(credit_bytes=8 * MIB)

    async def attempt():
        return await open_session(
            node.host, node.port, node=world.node.address, consumer_key=world.poor_key, chain=world.view()
        )

    with pytest.raises(RemoteError) as info:
        asyncio.run(attempt())
    assert info.value.code == "insufficient_escrow"
    needed = -(-8 * MIB * PRICE_PER_GIB // (1 << 30))
    assert f"has 1000 available but the node requires {needed}" in info.value.reason
    snap = node.snapshot()
    assert snap["bytes"] == {"up": 0, "down": 0, "paid": 0}
    assert snap["sessions"]["refused"] == {"insufficient_escrow": 1}
    assert snap["sessions"]["total"] == 0 and snap["streamsOpened"] == 0
    assert origin.stats.requests == 0


def test_consumer_topped_up_to_the_credit_limit_is_accepted(world, relay, origin):
    node = relay(credit_bytes=8 * MIB)
    needed = -(-8 * MIB * PRICE_PER_GIB // (1 << 30))
    system = world.system
    poor = next(a for a in __import__("brownie").accounts if a.address == world.poor)
    system.payment_token.mint(poor, needed, {"from": poor})
    system.payment_token.approve(system.escrow, needed, {"from": poor})
    system.escrow.deposit(needed, {"from": poor})

    async def run():
        session = await open_session(
            node.host, node.port, node=world.node.address, consumer_key=world.poor_key, chain=world.view()
        )
        result = await session.fetch(origin.url(2 * MIB))
        await session.close()
        return session, result

    session, result = asyncio.run(run())
    assert result.status == 200 and len(result.body) == 2 * MIB
    assert session.receipts[-1].cumulative_bytes == origin.delivered


async def _greedy_node(
    world,
    listener_ready: asyncio.Future,
    claims: list,
    receipts: list,
    inflate: int,
    base: tuple[int, int] = (0, 0),
) -> None:
    """A node that relays honestly but claims ``inflate`` times the bytes it carried in PAUSE frames.

    With ``base`` it also claims the channel starts there, without any receipt to show for it."""
    view = world.view()
    price = (await view.node_info(world.node.address)).price_per_gib

    async def handle(reader, writer):
        link = await fake_node_link(
            reader, writer, node=world.node.address, signer_key=world.node.private_key, view=view, price=price
        )
        hello = Hello.from_json(decode_control(await read_frame(link)))
        welcome = Welcome(
            node=world.node.address,
            consumer=hello.consumer,
            session_id=hello.session_id,
            price_per_gib=price,
            credit_bytes=64 * MIB,
            receipt_interval_bytes=256 * 1024,
            base_bytes=base[0],
            base_amount=base[1],
            hello_digest=hello.digest(view.chain_id, view.settlement_address),
        ).signed(world.node.private_key, view.chain_id, view.settlement_address)
        link.write(encode_control(FrameType.WELCOME, welcome.to_json()))
        carried = 0
        origin_writer = None
        while True:
            frame = await read_frame(link)
            if frame is None or frame.type == FrameType.BYE:
                break
            if frame.type == FrameType.PING:
                link.write(encode_frame(FrameType.PONG, frame.payload))
            elif frame.type == FrameType.OPEN:
                body = decode_control(frame)
                o_reader, origin_writer = await asyncio.open_connection(body["host"], body["port"])
                link.write(encode_control(FrameType.OPENED, {"stream": body["stream"]}))

                async def pump(sid=body["stream"], o_reader=o_reader):
                    nonlocal carried
                    while data := await o_reader.read(65536):
                        carried += len(data)
                        link.write(encode_data(sid, data))
                        claim = carried * inflate
                        claims.append(claim)
                        link.write(
                            encode_control(
                                FrameType.PAUSE, {"carriedBytes": claim, "paidBytes": 0, "creditBytes": 1}
                            )
                        )
                        await link.drain()
                    link.write(encode_control(FrameType.CLOSE, {"stream": sid}))

                asyncio.create_task(pump())
            elif frame.type == FrameType.DATA:
                _, data = decode_data(frame)
                carried += len(data)
                origin_writer.write(data)
            elif frame.type == FrameType.RECEIPT:
                body = decode_control(frame)
                receipts.append(body)
                link.write(
                    encode_control(
                        FrameType.ACK,
                        {
                            "cumulativeBytes": body["cumulativeBytes"],
                            "cumulativeAmount": body["cumulativeAmount"],
                        },
                    )
                )
        link.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    listener_ready.set_result(server.sockets[0].getsockname()[1])
    async with server:
        await asyncio.sleep(30)


def test_node_claiming_more_bytes_than_delivered_gets_no_signature_for_them(world, origin):
    claims: list[int] = []
    receipts: list[dict] = []

    async def run():
        ready = asyncio.get_running_loop().create_future()
        node_task = asyncio.create_task(_greedy_node(world, ready, claims, receipts, inflate=3))
        port = await ready
        session = await open_session(
            "127.0.0.1", port, node=world.node.address, consumer_key=world.consumer_key, chain=world.view()
        )
        result = await session.fetch(origin.url(8 * MIB), sink=lambda data: None)
        await session.close()
        node_task.cancel()
        return session, result

    session, result = asyncio.run(run())
    assert result.body_bytes == 8 * MIB
    assert max(claims) == 3 * (
        session.received_bytes + session.sent_bytes
    )  # it claimed three times the bytes...
    delivered = origin.delivered
    assert session.received_bytes + session.sent_bytes == delivered
    # ...and every signature it got covers at most what was delivered; the last exactly that.
    assert receipts and max(r["cumulativeBytes"] for r in receipts) == delivered
    assert all(r["cumulativeBytes"] <= delivered for r in receipts)
    assert receipts[-1]["cumulativeAmount"] == amount_for(delivered, PRICE_PER_GIB)
    assert len(session.pauses) >= 1


def test_consumer_stops_signing_at_its_spend_cap(world, relay, origin):
    node = relay()
    cap = 1_000  # base units: 1000 / 1e6 per GiB ≈ 1 MiB of traffic

    async def run():
        session = await open_session(
            node.host,
            node.port,
            node=world.node.address,
            consumer_key=world.consumer_key,
            chain=world.view(),
            config=ConsumerConfig(max_spend=cap),
        )
        with pytest.raises(RelayError):
            await session.fetch(origin.url(20 * MIB), sink=lambda data: None)
        await session.close()
        return session

    session = asyncio.run(run())
    assert session.spend_cap_reached
    spent = session.receipts[-1].cumulative_amount - session.base_amount
    assert spent <= cap
    assert spent >= cap - 1  # it did sign right up to the cap
    # It received more than it paid for only within the node's credit window (the node's risk).
    assert session.metered_bytes - session.signed_bytes <= node.server.config.credit_bytes
    snap = node.wait_idle()
    assert snap["receipts"]["amount"] == spent


def test_second_session_on_the_same_channel_is_refused_while_the_first_is_open(world, relay, origin):
    node = relay()

    async def run():
        first = await open_session(
            node.host, node.port, node=world.node.address, consumer_key=world.consumer_key, chain=world.view()
        )
        with pytest.raises(RemoteError) as info:
            await open_session(
                node.host,
                node.port,
                node=world.node.address,
                consumer_key=world.consumer_key,
                chain=world.view(),
            )
        result = await first.fetch(origin.url(MIB))
        await first.close()
        return info.value, result

    refused, result = asyncio.run(run())
    assert refused.code == "refused" and "already has an open session with this node" in refused.reason
    assert result.status == 200 and len(result.body) == MIB


def test_consumer_refuses_a_node_above_its_maximum_price(world, relay):
    node = relay()

    async def run():
        return await open_session(
            node.host,
            node.port,
            node=world.node.address,
            consumer_key=world.consumer_key,
            chain=world.view(),
            config=ConsumerConfig(max_price_per_gib=PRICE_PER_GIB - 1),
        )

    from nodeclient.relay.errors import HandshakeError

    with pytest.raises(HandshakeError) as info:
        asyncio.run(run())
    assert f"node price {PRICE_PER_GIB} per GiB is above the maximum {PRICE_PER_GIB - 1}" in str(info.value)
    assert node.snapshot()["bytes"] == {"up": 0, "down": 0, "paid": 0}


def test_consumer_refuses_a_relay_that_is_not_the_node_it_asked_for(world, relay):
    node = relay()
    impostor = Account.create().address

    async def run():
        return await open_session(
            node.host, node.port, node=impostor, consumer_key=world.consumer_key, chain=world.view()
        )

    from nodeclient.relay.errors import HandshakeError

    with pytest.raises(HandshakeError) as info:
        asyncio.run(run())
    assert f"is node {world.node.address!r}, not {impostor}" in str(info.value)


def test_consumer_refuses_a_node_that_inflates_the_channel_base(world):
    from nodeclient.relay.errors import HandshakeError

    async def run():
        ready = asyncio.get_running_loop().create_future()
        node_task = asyncio.create_task(
            _greedy_node(world, ready, [], [], inflate=1, base=(10 * MIB, 10_000))
        )
        port = await ready
        try:
            await open_session(
                "127.0.0.1",
                port,
                node=world.node.address,
                consumer_key=world.consumer_key,
                chain=world.view(),
            )
        finally:
            node_task.cancel()

    with pytest.raises(HandshakeError) as info:
        asyncio.run(run())
    assert f"the node claims the channel starts at {10 * MIB} bytes / 10000" in str(info.value)
