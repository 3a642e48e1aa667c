"""Traffic through the relay on a real chain: 100 MiB metered exactly and settled for exactly price × bytes."""

from __future__ import annotations

import asyncio
import hashlib
import time

from integration.support import event_list
from relay.conftest import PRICE_PER_GIB

from nodeclient.receipts.signing import receipt_digest, receipt_domain, verify_receipt
from nodeclient.relay.client import ConsumerConfig, open_session
from nodeclient.relay.pricing import amount_for

MIB = 1024 * 1024


def _fetch(world, relay_thread, url: str, **config) -> tuple:
    """Fetch ``url`` through the relay; returns (session, result, body sha256)."""

    async def run():
        session = await open_session(
            relay_thread.host,
            relay_thread.port,
            node=world.node.address,
            consumer_key=world.consumer_key,
            chain=world.view(),
            config=ConsumerConfig(**config),
        )
        digest = hashlib.sha256()
        try:
            result = await session.fetch(url, sink=digest.update)
        finally:
            await session.close()
        return session, result, digest.hexdigest()

    return asyncio.run(run())


def test_100_mib_final_receipt_equals_delivered_bytes_and_settles_exactly(world, relay, origin, stranger):
    node = relay()
    size = 100 * MIB
    started = time.perf_counter()
    session, result, _ = _fetch(world, node, origin.url(size))
    elapsed = time.perf_counter() - started
    assert result.status == 200
    assert result.body_bytes == size
    # Exactly what crossed the origin's sockets (request in, response out) is what was paid for.
    assert session.received_bytes == origin.stats.response_bytes
    assert session.sent_bytes == origin.stats.request_bytes
    final = session.receipts[-1]
    assert final.cumulative_bytes == origin.delivered
    assert final.cumulative_amount == amount_for(origin.delivered, PRICE_PER_GIB)
    assert session.acked[-1] == final
    assert final.latency_ms >= 1
    # Cadence: a receipt at least every receipt_interval_bytes.
    assert len(session.receipts) >= origin.delivered // node.server.config.receipt_interval_bytes
    stored = node.store.latest(world.consumer, world.node.address)
    # The store keeps the latest receipt that raised the amount (a byte-only top-up is worth nothing on chain).
    assert stored.cumulative_amount == final.cumulative_amount
    verify_receipt(stored, receipt_domain(world.chain_id, world.system.settlement.address))
    snap = node.wait_idle()
    assert snap["bytes"]["down"] + snap["bytes"]["up"] == origin.delivered
    # Receipts that arrive while the previous one is being fsynced are superseded by the newest
    # (cumulative) one; every receipt the node acknowledged is in the store.
    assert snap["receipts"]["stored"] + snap["receipts"]["coalesced"] == len(session.receipts)
    domain = receipt_domain(world.chain_id, world.system.settlement.address)
    assert all(node.store.store.contains(receipt_digest(r, domain)) for r in session.acked)
    assert len(session.acked) >= snap["receipts"]["stored"] >= 1
    assert snap["unpaidExposureBytes"] == 0 and snap["sessions"]["ended"] == {"bye": 1}
    assert elapsed < 60

    escrow = world.system.escrow
    available_before = escrow.availableOf(world.consumer)
    credit_before = escrow.creditOf(world.node.address)
    tx = world.system.settlement.settle(_as_tuple(final), final.signature, {"from": stranger})
    paid = amount_for(final.cumulative_bytes, PRICE_PER_GIB)
    assert tx.return_value == paid
    settled = event_list(tx, "ReceiptSettled")
    assert (
        len(settled) == 1 and settled[0]["paid"] == paid and settled[0]["cumulativeBytes"] == origin.delivered
    )
    assert escrow.availableOf(world.consumer) == available_before - paid
    fee = paid * world.system.settlement.feeBps() // 10_000
    assert escrow.creditOf(world.node.address) == credit_before + paid - fee


def _as_tuple(receipt) -> tuple:
    return (
        receipt.consumer,
        receipt.node,
        receipt.session_id,
        receipt.cumulative_bytes,
        receipt.cumulative_amount,
        receipt.latency_ms,
        receipt.issued_at,
    )


def test_closing_a_stream_early_stops_the_relay_and_the_payment(world, relay, origin):
    node = relay()
    size = 200 * MIB

    async def run():
        session = await open_session(
            node.host, node.port, node=world.node.address, consumer_key=world.consumer_key, chain=world.view()
        )
        stream = await session.open_stream("127.0.0.1", origin.server.server_address[1])
        await stream.write(b"GET /bytes/%d HTTP/1.0\r\n\r\n" % size)
        got = 0
        while got < MIB:
            got += len(await stream.read(65536))
        await stream.close()
        await asyncio.sleep(1.0)  # anything still relayed after the abort would arrive (and be paid) now
        await session.close()
        return session

    session = asyncio.run(run())
    snap = node.wait_idle()
    carried = snap["bytes"]["down"] + snap["bytes"]["up"]
    # At most the credit window beyond what was read before the abort; nowhere near the 200 MiB body.
    assert carried <= MIB + node.server.config.credit_bytes + node.server.config.chunk_bytes
    assert session.receipts[-1].cumulative_bytes == session.metered_bytes == carried


def test_a_slow_reader_backs_the_node_off_instead_of_buffering_without_bound(world, relay, origin):
    node = relay()
    size = 64 * MIB

    async def run():
        session = await open_session(
            node.host, node.port, node=world.node.address, consumer_key=world.consumer_key, chain=world.view()
        )
        stream = await session.open_stream("127.0.0.1", origin.server.server_address[1])
        await stream.write(b"GET /bytes/%d HTTP/1.0\r\n\r\n" % size)
        await asyncio.sleep(1.5)  # the application does not read
        parked = stream.buffered
        total = 0
        while data := await stream.read(1 << 20):
            total += len(data)
        await stream.close()
        await session.close()
        return session, parked, total

    session, parked, total = asyncio.run(run())
    # The session stops reading its socket above 4 MiB buffered (one frame may overshoot).
    assert 0 < parked <= 4 * MIB + node.server.config.chunk_bytes
    assert total == origin.stats.response_bytes and total > size
    assert session.receipts[-1].cumulative_bytes == origin.delivered
