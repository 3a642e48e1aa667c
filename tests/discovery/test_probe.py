"""Probing a relay endpoint: PINGs before any hello, checked against the node it should be, bounded in time."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

from nodeclient.discovery.metadata import parse_endpoint
from nodeclient.discovery.probe import ProbeTarget, probe_endpoint
from nodeclient.relay.admission import MAX_PROBE_PINGS
from nodeclient.relay.framing import FrameType, decode_control, encode_frame, read_frame


def _target(fleet, name: str) -> ProbeTarget:
    return ProbeTarget(fleet.address(name), fleet.system.manifest["chainId"], fleet.system.manifest["contracts"]["ReceiptSettlement"])


def test_probe_times_pings_and_the_node_counts_it_as_a_probe_not_a_refusal(fleet):
    relay = fleet.relays["cheap"]
    before = relay.snapshot()["sessions"]
    result = asyncio.run(probe_endpoint(parse_endpoint(fleet.endpoints["cheap"]), _target(fleet, "cheap"), pings=5))
    assert result.error is None and result.sent == result.received == 5 and len(result.rtts_ms) == 5
    assert 0 < result.latency_ms < 100
    deadline = time.monotonic() + 5
    while relay.snapshot()["sessions"]["probes"] == before["probes"] and time.monotonic() < deadline:
        time.sleep(0.02)
    after = relay.snapshot()["sessions"]
    assert after["probes"] == before["probes"] + 1
    assert after["refused"] == before["refused"] and after["total"] == before["total"]


def test_probe_refuses_an_endpoint_that_answers_for_another_node(fleet):
    result = asyncio.run(probe_endpoint(parse_endpoint(fleet.endpoints["cheap"]), _target(fleet, "fast"), timeout=1))
    assert not result.reachable and result.received == 0
    assert result.error == f"it answers as node {fleet.address('cheap')}, not {fleet.address('fast')}"


def test_probe_of_a_silent_endpoint_is_bounded_by_its_timeout():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts into the backlog, never says a word
        endpoint = parse_endpoint(f"127.0.0.1:{listener.getsockname()[1]}")
        started = time.monotonic()
        result = asyncio.run(probe_endpoint(endpoint, ProbeTarget("0x" + "11" * 20, 1, "0x" + "22" * 20), pings=3, timeout=0.3))
        elapsed = time.monotonic() - started
    assert result.error == "no answer within 0.3 s" and result.success_rate == 0
    assert elapsed < 0.3 * 5 + 0.5


def test_node_refuses_more_pings_before_a_hello_than_a_probe_needs(fleet):
    host, port = fleet.endpoints["cheap"].rsplit(":", 1)

    async def flood() -> tuple[int, dict]:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            assert (await read_frame(reader)).type == FrameType.CHALLENGE
            pongs = 0
            for seq in range(MAX_PROBE_PINGS + 1):
                writer.write(encode_frame(FrameType.PING, struct.pack(">Q", seq)))
                await writer.drain()
                frame = await asyncio.wait_for(read_frame(reader), 5)
                if frame.type != FrameType.PONG:
                    return pongs, decode_control(frame)
                pongs += 1
            return pongs, {}
        finally:
            writer.close()

    pongs, error = asyncio.run(flood())
    assert pongs == MAX_PROBE_PINGS
    assert error["code"] == "handshake" and f"more than {MAX_PROBE_PINGS} PINGs before a hello" in error["message"]
