"""A relay serving for lanes admits a consumer on its lane with this node, not on its pooled escrow,
and the receipts it stores are LaneSettlement's (they settle from the lane)."""

from __future__ import annotations

import asyncio

import brownie
import pytest
from lane_helpers import lane_view

from nodeclient.receipts.packing import pack_signed_receipts
from nodeclient.receipts.signing import receipt_domain, verify_receipt
from nodeclient.relay.client import open_session
from nodeclient.relay.errors import RemoteError

MIB = 1024 * 1024
CREDIT = 4 * MIB


def _consumer(world):
    return next(a for a in brownie.accounts if a.address == world.consumer)


def _open(world, node):
    return open_session(node.host, node.port, node=world.node.address, consumer_key=world.consumer_key, chain=lane_view(world))


def test_pooled_escrow_alone_does_not_admit_a_lane_session(world, lane_relay):
    node = lane_relay(credit_bytes=CREDIT)
    assert world.system.escrow.availableOf(world.consumer) > 0  # a rich pooled deposit, but no lane
    with pytest.raises(RemoteError) as info:
        asyncio.run(_open(world, node))
    assert info.value.code == "insufficient_escrow"
    assert "has 0 available" in info.value.reason
    assert node.snapshot()["bytes"] == {"up": 0, "down": 0, "paid": 0}


def test_a_funded_lane_admits_and_its_receipts_are_lane_receipts(world, lane_relay, origin):
    lanes = world.system.lanes
    lanes.allocate(world.node.address, 10 * 10**6, {"from": _consumer(world)})
    node = lane_relay(credit_bytes=CREDIT)

    async def run():
        session = await _open(world, node)
        result = await session.fetch(origin.url(2 * MIB))
        await session.close()
        return session, result

    session, result = asyncio.run(run())
    assert result.status == 200 and len(result.body) == 2 * MIB
    last = session.receipts[-1]
    verify_receipt(last, receipt_domain(world.chain_id, lanes.address))  # raises if signed for another domain
    # The receipt settles from the lane.
    tx = lanes.settleLanes(world.node.address, pack_signed_receipts(world.node.address, [last]), b"\x00" * 32,
                           {"from": world.operator})
    assert tx.return_value == last.cumulative_amount > 0


def test_a_closing_lane_admits_no_new_session(world, lane_relay):
    lanes = world.system.lanes
    consumer = _consumer(world)
    lanes.allocate(world.node.address, 10 * 10**6, {"from": consumer})
    lanes.requestClose(world.node.address, {"from": consumer})
    node = lane_relay(credit_bytes=CREDIT)
    with pytest.raises(RemoteError) as info:
        asyncio.run(_open(world, node))
    assert info.value.code == "insufficient_escrow" and "has 0 available" in info.value.reason
