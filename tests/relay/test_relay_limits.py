"""Operator limits on a real relay: rate cap, per-session cap, persisted day/month counters, destination policy."""

from __future__ import annotations

import asyncio
import time

import pytest

from nodeclient.relay.client import open_session
from nodeclient.relay.errors import CapReachedError, RelayError, RemoteError, TargetRefusedError
from nodeclient.relay.limits import Caps, TokenBucket, UsageLedger
from nodeclient.relay.targets import TargetPolicy

MIB = 1024 * 1024


def _session(world, node, key=None):
    return open_session(
        node.host,
        node.port,
        node=world.node.address,
        consumer_key=key or world.consumer_key,
        chain=world.view(),
    )


def test_rate_cap_bounds_the_relay_throughput(world, relay, origin):
    rate = 4 * MIB
    node = relay(rate_bytes_per_s=rate)

    async def run():
        session = await _session(world, node)
        started = time.perf_counter()
        result = await session.fetch(origin.url(6 * MIB), sink=lambda data: None)
        elapsed = time.perf_counter() - started
        await session.close()
        return result, elapsed

    result, elapsed = asyncio.run(run())
    assert result.body_bytes == 6 * MIB
    burst = node.server.bucket.burst
    # The bucket starts full: at least (bytes - burst) / rate seconds, and not wildly more.
    assert elapsed >= (6 * MIB - burst) / rate * 0.95
    assert elapsed < 15


def test_per_session_cap_ends_the_session_and_the_final_receipt_pays_for_all_of_it(world, relay, origin):
    cap = 2 * MIB
    node = relay(caps=Caps(per_session_bytes=cap))

    async def run():
        session = await _session(world, node)
        with pytest.raises(RelayError):
            await session.fetch(origin.url(5 * MIB), sink=lambda data: None)
        await session.close()
        return session

    session = asyncio.run(run())
    assert isinstance(session.remote_error, RemoteError) and session.remote_error.code == "cap_reached"
    assert "per-session cap is reached" in session.remote_error.reason
    # The consumer's final receipt was acknowledged before close() returned; the node's teardown may lag.
    assert session.acked[-1] == session.receipts[-1]
    snap = node.wait_idle()
    carried = snap["bytes"]["up"] + snap["bytes"]["down"]
    assert carried <= cap
    # The consumer answered the node's ERROR with a final receipt: nothing carried is left unpaid.
    latest = node.store.latest(world.consumer, world.node.address)
    assert latest.cumulative_bytes == carried == session.metered_bytes
    assert snap["sessions"]["ended"] == {"cap_reached": 1}


def test_day_and_month_counters_persist_and_cap_across_restarts(tmp_path):
    path = tmp_path / "usage.sqlite"
    caps = Caps(per_day_bytes=10 * MIB, per_month_bytes=12 * MIB)
    ledger = UsageLedger(path, caps)
    ledger.charge(6 * MIB)
    ledger.close()
    reopened = UsageLedger(path, caps)
    assert reopened.used() == (6 * MIB, 6 * MIB)
    reopened.check(4 * MIB, session_bytes=0)  # exactly at the daily cap is allowed
    with pytest.raises(CapReachedError) as info:
        reopened.check(4 * MIB + 1, session_bytes=0)
    assert info.value.cap == "daily" and info.value.used == 6 * MIB and info.value.limit == 10 * MIB
    assert f"the node's daily cap is reached: {6 * MIB} of {10 * MIB} bytes used" == str(info.value)
    reopened.charge(4 * MIB)
    reopened.flush()
    monthly = UsageLedger(path, Caps(per_month_bytes=12 * MIB))
    with pytest.raises(CapReachedError) as info:
        monthly.check(2 * MIB + 1, session_bytes=0)
    assert info.value.cap == "monthly" and info.value.used == 10 * MIB
    monthly.close()
    reopened.close()


def test_token_bucket_paces_to_its_rate():
    async def run():
        bucket = TokenBucket(rate=2 * MIB, burst=256 * 1024)
        started = time.perf_counter()
        for _ in range(9):
            await bucket.take(256 * 1024)
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    # 9 × 256 KiB = 2.25 MiB, the first 256 KiB from the full bucket: 1 s at 2 MiB/s.
    assert 0.9 <= elapsed < 3


def test_private_destinations_are_refused_by_default(world, relay, origin):
    node = relay(targets=TargetPolicy())

    async def run():
        session = await _session(world, node)
        with pytest.raises(TargetRefusedError) as info:
            await session.open_stream("127.0.0.1", origin.server.server_address[1])
        with pytest.raises(TargetRefusedError) as info2:
            await session.open_stream("localhost", 22)
        with pytest.raises(TargetRefusedError) as info3:
            await session.open_stream("bad host name!", 80)
        await session.close()
        return info.value, info2.value, info3.value

    loopback, named, malformed = asyncio.run(run())
    assert "resolves to non-public address 127.0.0.1 (private targets are off)" in str(loopback)
    assert "non-public address" in str(named)
    assert "neither an IP address nor a valid DNS name" in str(malformed)
    assert origin.stats.requests == 0
    assert node.snapshot()["streamsOpened"] == 0


def test_port_allow_list_is_enforced(world, relay, origin):
    node = relay(targets=TargetPolicy(allow_private=True, allowed_ports=frozenset({443})))

    async def run():
        session = await _session(world, node)
        with pytest.raises(TargetRefusedError) as info:
            await session.open_stream("127.0.0.1", origin.server.server_address[1])
        await session.close()
        return info.value

    assert "is not in the node's allowed ports" in str(asyncio.run(run()))


def test_rpc_outage_refuses_new_sessions_with_a_clear_reason_and_the_relay_keeps_running(
    world, relay, origin
):
    import socket as socketlib

    from nodeclient.chain.rpc import connect_async
    from nodeclient.relay.chainview import Web3ChainView

    node = relay()
    live = node.server.chain
    with socketlib.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    dead = Web3ChainView(
        connect_async(f"http://127.0.0.1:{dead_port}", timeout=2), world.chain_id, world.manifest["contracts"]
    )
    node.server.chain = dead

    with pytest.raises(RemoteError) as info:
        asyncio.run(_session(world, node))
    assert info.value.code == "unavailable"
    assert "reading PaymentEscrow.availableOf" in info.value.reason
    assert node.snapshot()["sessions"]["refused"] == {"unavailable": 1}

    node.server.chain = live  # the RPC is back: the same relay serves again
    node.call(dead.close())

    async def run():
        session = await _session(world, node)
        result = await session.fetch(origin.url(MIB))
        await session.close()
        return result

    assert len(asyncio.run(run()).body) == MIB


def test_max_sessions_refuses_the_next_connection_and_frees_the_slot_when_a_session_ends(
    world, relay, origin
):
    node = relay(max_sessions=1)

    async def run():
        first = await _session(world, node)
        with pytest.raises(RemoteError) as info:
            await _session(world, node, key=world.attacker_key)
        await first.close()
        return info.value

    refused = asyncio.run(run())
    assert refused.code == "refused" and "the node is at its limit of 1 sessions" in refused.reason
    node.wait_idle()

    async def again():
        session = await _session(world, node, key=world.attacker_key)
        result = await session.fetch(origin.url(4096))
        await session.close()
        return result

    assert len(asyncio.run(again()).body) == 4096
