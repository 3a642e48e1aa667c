"""The relay's AsyncWeb3 view of the chain: the same facts the contracts report, clear refusals, closed sessions."""

from __future__ import annotations

import asyncio
import socket

import pytest
from relay.conftest import PRICE_PER_GIB

from nodeclient.chain.errors import ChainIdMismatchError, ChainUnreachableError
from nodeclient.errors import ChainError
from nodeclient.relay.chainview import NodeStatus, Web3ChainView


def _closed_port() -> int:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_chain_view_reads_what_the_contracts_report_and_closes_its_http_session(world):
    contracts = world.manifest["contracts"]

    async def run():
        async with await Web3ChainView.connect(world.rpc_url, contracts, world.chain_id) as view:
            info = await view.node_info(world.node.address)
            available = await view.escrow_available(world.consumer)
            settled = await view.channel_settled(world.consumer, world.node.address)
            sessions = dict(view.w3.provider._request_session_manager.session_cache.items())
        return view, info, available, settled, sessions

    view, info, available, settled, sessions = asyncio.run(run())
    assert info.node == world.node.address and info.signing_key == world.node.address
    assert info.status == NodeStatus.ACTIVE and info.price_per_gib == PRICE_PER_GIB
    assert available == world.system.escrow.availableOf(world.consumer)
    assert settled == tuple(
        int(v) for v in world.system.settlement.channelOf(world.consumer, world.node.address)
    )
    assert view.chain_id == world.chain_id and view.settlement_address == contracts["ReceiptSettlement"]
    # The reads went through one aiohttp session, and leaving the context closed it.
    assert len(sessions) == 1 and all(s.closed for s in sessions.values())
    assert not view.w3.provider._request_session_manager.session_cache.items()


def test_chain_view_connect_refuses_another_chain_and_an_unreachable_rpc(world):
    contracts = world.manifest["contracts"]
    dead = f"http://127.0.0.1:{_closed_port()}"

    with pytest.raises(ChainIdMismatchError) as wrong:
        asyncio.run(Web3ChainView.connect(world.rpc_url, contracts, world.chain_id + 1))
    assert f"serves chain id {world.chain_id}" in str(wrong.value)
    assert f"expects chain id {world.chain_id + 1}" in str(wrong.value)

    with pytest.raises(ChainUnreachableError) as down:
        asyncio.run(Web3ChainView.connect(dead, contracts, timeout=2))
    assert dead in str(down.value)


def test_chain_view_names_the_failed_read_and_a_missing_contract(world):
    contracts = world.manifest["contracts"]

    async def read_from_dead_rpc():
        from nodeclient.chain.rpc import connect_async

        async with Web3ChainView(
            connect_async(f"http://127.0.0.1:{_closed_port()}", timeout=2), 1, contracts
        ) as view:
            await view.channel_settled(world.consumer, world.node.address)

    with pytest.raises(ChainError, match=r"reading ReceiptSettlement\.channelOf\(0x[0-9a-fA-F]{40}, 0x"):
        asyncio.run(read_from_dead_rpc())

    partial = {k: v for k, v in contracts.items() if k != "PaymentEscrow"}
    with pytest.raises(ChainError, match="the deployment has no PaymentEscrow address"):
        asyncio.run(Web3ChainView.connect(world.rpc_url, partial, world.chain_id))
