"""kill -9 of a real ``kuota node serve`` process mid-session: every acknowledged receipt survives and settles once."""

from __future__ import annotations

import asyncio
import os
import signal

import brownie
import pytest
from brownie.exceptions import decode_typed_error
from eth_abi import encode as abi_encode
from eth_utils import keccak
from relay.conftest import PRICE_PER_GIB, start_node_process

from nodeclient.receipts.signing import receipt_digest, receipt_domain
from nodeclient.receipts.store import ReceiptStore
from nodeclient.relay.client import ConsumerConfig, open_session
from nodeclient.relay.errors import RelayError
from nodeclient.relay.pricing import amount_for
from nodeclient.settlement import store_path

MIB = 1024 * 1024


@pytest.mark.parametrize("kill_after_acks", [1, 8, 20])
def test_kill_9_mid_session_keeps_every_acked_receipt_and_it_settles_once(
    world, origin, tmp_path, stranger, kill_after_acks
):
    home = tmp_path / "node-home"
    home.mkdir()
    proc, host, port = start_node_process(world, home, tmp_path / "node.log")

    async def consume_until_killed():
        session = await open_session(
            host,
            port,
            node=world.node.address,
            consumer_key=world.consumer_key,
            chain=world.view(),
            config=ConsumerConfig(ping_interval=0.5),
        )

        async def killer():
            while len(session.acked) < kill_after_acks:
                await asyncio.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)

        kill_task = asyncio.create_task(killer())
        with pytest.raises(RelayError):
            await session.fetch(origin.url(400 * MIB), sink=lambda data: None, timeout=60)
        await kill_task
        await session.close()
        return session

    try:
        session = asyncio.run(consume_until_killed())
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert session.received_bytes < 400 * MIB, "the node must have died mid-transfer"
    acked = list(session.acked)
    assert len(acked) >= kill_after_acks

    settlement = world.system.settlement
    domain = receipt_domain(world.chain_id, settlement.address)
    path = store_path(home / "data", world.chain_id, settlement.address)
    with ReceiptStore(path, domain=domain) as store:
        store.check_integrity()
        for receipt in acked:
            assert store.contains(receipt_digest(receipt, domain)), (
                f"acked receipt {receipt.cumulative_bytes} lost"
            )
        latest = store.latest(world.consumer, world.node.address).receipt
    # The store may hold one receipt more than was acked (stored, then killed before the ACK), never less.
    assert latest.cumulative_amount >= acked[-1].cumulative_amount
    assert latest.cumulative_bytes <= session.metered_bytes
    assert latest.cumulative_amount == amount_for(latest.cumulative_bytes, PRICE_PER_GIB)

    as_tuple = (
        latest.consumer,
        latest.node,
        latest.session_id,
        latest.cumulative_bytes,
        latest.cumulative_amount,
        latest.latency_ms,
        latest.issued_at,
    )
    tx = settlement.settle(as_tuple, latest.signature, {"from": stranger})
    assert tx.return_value == latest.cumulative_amount
    # Settling the same receipt again is refused as stale (settle() is strict), not ignored.
    stale = "SettlementStaleReceipt(address,address,uint256,uint256)"
    stale_args = [latest.consumer, latest.node, latest.cumulative_amount, latest.cumulative_amount]
    data = keccak(text=stale)[:4] + abi_encode(["address", "address", "uint256", "uint256"], stale_args)
    with brownie.reverts(decode_typed_error("0x" + data.hex())):
        settlement.settle(as_tuple, latest.signature, {"from": stranger})
    assert tuple(int(v) for v in settlement.channelOf(world.consumer, world.node.address)) == (
        latest.cumulative_amount,
        latest.cumulative_bytes,
    )

    if kill_after_acks != 8:
        return
    # The restarted node continues the channel from its store; the consumer checks that base itself.
    proc, host, port = start_node_process(world, home, tmp_path / "node.log")
    try:

        async def resume():
            resumed = await open_session(
                host,
                port,
                node=world.node.address,
                consumer_key=world.consumer_key,
                chain=world.view(),
            )
            before = origin.delivered
            await resumed.fetch(origin.url(2 * MIB), sink=lambda data: None)
            await resumed.close()
            return resumed, origin.delivered - before

        resumed, delivered = asyncio.run(resume())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert (resumed.base_bytes, resumed.base_amount) == (latest.cumulative_bytes, latest.cumulative_amount)
    final = resumed.receipts[-1]
    assert final.cumulative_bytes == latest.cumulative_bytes + delivered
    tx = settlement.settle(
        (
            final.consumer,
            final.node,
            final.session_id,
            final.cumulative_bytes,
            final.cumulative_amount,
            final.latency_ms,
            final.issued_at,
        ),
        final.signature,
        {"from": stranger},
    )
    assert tx.return_value == amount_for(delivered, PRICE_PER_GIB)
