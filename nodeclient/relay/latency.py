"""Round trips of PING frames: the latency a consumer's receipts report.

Every receipt carries ``latencyMs``, which the rewards curve turns into a multiplier, so the figure is
the consumer's own measurement (the median of its PING/PONG round trips), never the node's claim.
"""

from __future__ import annotations

import asyncio
import statistics
import struct
import time
from collections.abc import Awaitable, Callable

from nodeclient.relay.errors import RelayError
from nodeclient.relay.framing import FrameType, encode_frame

__all__ = ["PingMeter"]


class PingMeter:
    """Sends PINGs, matches PONGs by token, keeps the round trips."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], timeout: float) -> None:
        self._send = send
        self._timeout = timeout
        self.rtts_ms: list[float] = []
        self._sent: dict[bytes, float] = {}
        self._waiters: dict[bytes, asyncio.Future[float]] = {}
        self._seq = 0

    @property
    def median_ms(self) -> int:
        """Median round trip so far, in whole milliseconds (rounded up); 0 before the first PONG."""
        if not self.rtts_ms:
            return 0
        return int(-(-statistics.median(self.rtts_ms) // 1))

    async def ping(self) -> float:
        """Send one PING and wait for its PONG; returns the round trip in ms."""
        self._seq += 1
        token = struct.pack(">Q", self._seq)
        self._sent[token] = time.perf_counter()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[token] = waiter
        await self._send(encode_frame(FrameType.PING, token))
        return await asyncio.wait_for(waiter, self._timeout)

    def on_pong(self, token: bytes) -> None:
        """A PONG arrived; unknown tokens are ignored (a PONG after its PING timed out)."""
        sent = self._sent.pop(token, None)
        if sent is None:
            return
        rtt = (time.perf_counter() - sent) * 1000
        self.rtts_ms.append(rtt)
        waiter = self._waiters.pop(token, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(rtt)

    def stop(self) -> None:
        """The session ended: every waiting ``ping`` raises."""
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(RelayError("session ended"))
