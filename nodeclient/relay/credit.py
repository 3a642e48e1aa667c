"""The node's credit window of one session: what it may carry before the consumer pays.

Invariant: the bytes carried (downstream sent to the consumer plus upstream written to destinations)
never exceed the bytes covered by the consumer's latest *durably stored* receipt plus
``credit_bytes``. Every carry reserves its bytes here first and waits (after one PAUSE frame) while
the window is full; only ``pay``, called after the receipt is on disk, moves the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from nodeclient.relay.config import RelayConfig
from nodeclient.relay.errors import CreditExhaustedError, RelayError
from nodeclient.relay.framing import FrameType, encode_control
from nodeclient.relay.limits import TokenBucket, UsageLedger
from nodeclient.relay.stats import RelayStats

__all__ = ["CreditWindow"]


class CreditWindow:
    """Carried versus paid bytes of one session, and the gate every carried chunk passes."""

    def __init__(
        self,
        config: RelayConfig,
        usage: UsageLedger,
        stats: RelayStats,
        bucket: TokenBucket | None,
        send: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self._cfg = config
        self._usage = usage
        self._stats = stats
        self._bucket = bucket
        self._send = send
        self.down_sent = 0
        """Payload bytes sent to the consumer."""
        self.up_carried = 0
        """Payload bytes written to destinations."""
        self.paid = 0
        """Session bytes covered by the latest stored receipt."""
        self._cond = asyncio.Condition()
        self._pause_sent = False
        self._halt: RelayError | None = None

    @property
    def carried(self) -> int:
        """Metered payload bytes carried in this session (both directions)."""
        return self.down_sent + self.up_carried

    @property
    def unpaid(self) -> int:
        """Carried bytes not yet covered by a stored receipt."""
        return max(0, self.carried - self.paid)

    def halt(self, error: RelayError) -> None:
        """Refuse every further reservation with ``error`` (the first one given) and wake waiting carriers."""
        if self._halt is None:
            self._halt = error

        async def _notify() -> None:
            async with self._cond:
                self._cond.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(_notify())

    async def reserve(self, nbytes: int, *, downstream: bool) -> None:
        """Reserve ``nbytes`` of carriage: wait for credit (PAUSE after the window fills), caps, rate."""
        deadline: float | None = None
        async with self._cond:
            while True:
                if self._halt is not None:
                    raise self._halt
                self._usage.check(nbytes, self.carried)
                if self.carried + nbytes <= self.paid + self._cfg.credit_bytes:
                    break
                await self._pause()
                now = time.monotonic()
                deadline = deadline or now + self._cfg.pause_timeout
                if now >= deadline:
                    raise CreditExhaustedError(self.unpaid, self._cfg.credit_bytes, self._cfg.pause_timeout)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), deadline - now)
            # Reserve now, inside the lock, so concurrent streams cannot overdraw the window.
            if downstream:
                self.down_sent += nbytes
                self._stats.bytes_down += nbytes
            else:
                self.up_carried += nbytes
                self._stats.bytes_up += nbytes
            self._usage.charge(nbytes)
        if self._bucket is not None:
            await self._bucket.take(nbytes)

    async def _pause(self) -> None:
        """Tell the consumer once per full window that the node waits for a receipt."""
        if self._pause_sent:
            return
        self._pause_sent = True
        self._stats.pauses += 1
        body = {"carriedBytes": self.carried, "paidBytes": self.paid, "creditBytes": self._cfg.credit_bytes}
        await self._send(encode_control(FrameType.PAUSE, body))

    async def pay(self, session_bytes: int) -> None:
        """A receipt covering ``session_bytes`` is durable: move the window and wake gated carriers."""
        async with self._cond:
            self.paid = max(self.paid, session_bytes)
            self._pause_sent = False
            self._cond.notify_all()
