"""Measure a relay endpoint before paying it: connect, read its CHALLENGE, time a few PINGs, leave.

A node answers PING frames between its CHALLENGE and the consumer's first LINK frame (docs/RELAY.md, "Probing"),
so a probe signs nothing, opens no channel and costs nobody anything. The CHALLENGE names the node,
chain and settlement contract: an endpoint that answers for another node or deployment counts as
unreachable (its claim is unsigned; the real session still checks the node's signed welcome).
Every step is bounded by ``timeout``, so an endpoint that accepts and then stalls costs at most
``timeout * (pings + 2)`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from nodeclient.discovery.metadata import Endpoint
from nodeclient.relay.errors import RelayError
from nodeclient.relay.framing import FrameType, decode_control, encode_frame, read_frame

__all__ = ["ProbeResult", "ProbeTarget", "probe_endpoint", "probe_many"]

_MAX_PROBE_FRAME = 16 * 1024


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What an endpoint must say it is: the node and deployment the consumer means to pay."""

    node: str
    chain_id: int
    settlement: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The PING round trips of one endpoint; ``error`` says why it fell short."""

    endpoint: Endpoint
    sent: int
    received: int
    rtts_ms: tuple[float, ...] = ()
    error: str | None = None

    @property
    def reachable(self) -> bool:
        """At least one PONG came back from an endpoint that answered as the expected node."""
        return self.received > 0

    @property
    def latency_ms(self) -> float | None:
        """Median round trip, or None when nothing came back."""
        return statistics.median(self.rtts_ms) if self.rtts_ms else None

    @property
    def success_rate(self) -> float:
        """PONGs received per PING meant (a failed connection is every PING lost)."""
        return self.received / self.sent if self.sent else 0.0

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        latency = self.latency_ms
        return {
            "endpoint": str(self.endpoint),
            "sent": self.sent,
            "received": self.received,
            "latencyMs": round(latency, 3) if latency is not None else None,
            "successRate": round(self.success_rate, 3),
            "error": self.error,
        }


class _WrongEndpointError(RelayError):
    """The endpoint answered, but not as the expected node and deployment."""


def _check_challenge(body: dict[str, Any], target: ProbeTarget) -> None:
    try:
        node = to_checksum_address(str(body.get("node")))
        settlement = to_checksum_address(str(body.get("settlement")))
    except ValueError:
        raise _WrongEndpointError(f"its CHALLENGE names no valid node/settlement address: {str(body)[:200]}") from None
    if node != target.node:
        raise _WrongEndpointError(f"it answers as node {node}, not {target.node}")
    if body.get("chainId") != target.chain_id or settlement != target.settlement:
        raise _WrongEndpointError(
            f"it serves chain {body.get('chainId')} settlement {settlement}, not chain {target.chain_id} "
            f"settlement {target.settlement}"
        )


async def _read_challenge(reader: asyncio.StreamReader, target: ProbeTarget, timeout: float) -> None:
    frame = await asyncio.wait_for(read_frame(reader, max_frame=_MAX_PROBE_FRAME), timeout)
    if frame is None:
        raise _WrongEndpointError("it closed the connection before its CHALLENGE")
    if frame.type == FrameType.ERROR:
        body = decode_control(frame)
        raise _WrongEndpointError(f"it refused: {body.get('code')}: {str(body.get('message'))[:200]}")
    if frame.type != FrameType.CHALLENGE:
        raise _WrongEndpointError(f"it sent {frame.type.name} instead of a CHALLENGE")
    _check_challenge(decode_control(frame), target)


async def _ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seq: int, timeout: float) -> float:
    token = struct.pack(">Q", seq)
    started = time.perf_counter()
    writer.write(encode_frame(FrameType.PING, token))
    await writer.drain()
    while True:
        frame = await asyncio.wait_for(read_frame(reader, max_frame=_MAX_PROBE_FRAME), timeout)
        if frame is None:
            raise ConnectionError("the node closed the connection")
        # A PONG of an earlier, timed-out PING may still arrive: only this one's token counts.
        if frame.type == FrameType.PONG and frame.payload == token:
            return (time.perf_counter() - started) * 1000


async def probe_endpoint(endpoint: Endpoint, target: ProbeTarget, *, pings: int = 3, timeout: float = 2.0) -> ProbeResult:
    """Connect to ``endpoint``, check its CHALLENGE against ``target`` and time ``pings`` PINGs."""
    rtts: list[float] = []
    writer: asyncio.StreamWriter | None = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(endpoint.host, endpoint.port), timeout)
        await _read_challenge(reader, target, timeout)
        for seq in range(1, pings + 1):
            try:
                rtts.append(await _ping(reader, writer, seq, timeout))
            except TimeoutError:
                continue
        error = None if len(rtts) == pings else f"{pings - len(rtts)} of {pings} PINGs unanswered within {timeout:g} s"
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except _WrongEndpointError as exc:
        error = str(exc)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, RelayError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout)
    return ProbeResult(endpoint, pings, len(rtts), tuple(rtts), error)


async def probe_many(
    jobs: Iterable[tuple[Endpoint, ProbeTarget]], *, pings: int = 3, timeout: float = 2.0, concurrency: int = 16
) -> list[ProbeResult]:
    """Probe every (endpoint, target), at most ``concurrency`` at a time; results in input order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(endpoint: Endpoint, target: ProbeTarget) -> ProbeResult:
        async with gate:
            return await probe_endpoint(endpoint, target, pings=pings, timeout=timeout)

    return list(await asyncio.gather(*(one(e, t) for e, t in jobs)))
