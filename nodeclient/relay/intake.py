"""Receipt intake of one node session: verify as they arrive, store the newest durably, then acknowledge.

Receipts are cumulative, so when several arrive while the previous one is being fsynced only the
newest needs storing: the store task always takes the latest verified receipt. Nothing moves the
credit window or is acknowledged before ``ReceiptSink.accept`` returned for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nodeclient.errors import KuotaError, ReceiptError
from nodeclient.receipts.model import SignedReceipt
from nodeclient.receipts.signing import verify_receipt
from nodeclient.relay.admission import ChannelStart
from nodeclient.relay.credit import CreditWindow
from nodeclient.relay.errors import (
    InsufficientEscrowError,
    ReceiptRejectedError,
    RelayError,
    SessionRefusedError,
)
from nodeclient.relay.framing import FrameType, encode_control
from nodeclient.relay.host import SessionHost
from nodeclient.relay.pricing import cumulative_amount

__all__ = ["ReceiptIntake"]

log = logging.getLogger("kuota.relay.node")


class ReceiptIntake:
    """The receipts of one admitted session, from RECEIPT frame to durable store and ACK."""

    def __init__(
        self,
        host: SessionHost,
        start: ChannelStart,
        credit: CreditWindow,
        metered: Callable[[], int],
        send: Callable[[bytes], Awaitable[None]],
        fail: Callable[[RelayError], None],
        tag: Callable[[], str],
    ) -> None:
        """``metered`` returns the session bytes the node has measured (sent plus received)."""
        self._host = host
        self._hello = start.hello
        self._credit = credit
        self._metered = metered
        self._send = send
        self._fail = fail
        self._tag = tag
        self.price = start.price
        self.base_bytes = start.base_bytes
        self.base_amount = start.base_amount
        self.credit_amount = start.credit_amount
        self.latest: SignedReceipt | None = start.base_receipt
        """The latest durably stored receipt of the channel."""
        self._escrow_available = start.escrow_available
        self._settled_amount = start.settled_amount
        self._last_verified: SignedReceipt | None = None
        self._pending: SignedReceipt | None = None
        self._pending_event = asyncio.Event()
        self._store_idle = asyncio.Event()
        self._store_idle.set()
        self._store_task: asyncio.Task[None] | None = None

    def covers_all(self) -> bool:
        """True when the latest verified receipt covers every byte metered in this session."""
        last = self._last_verified
        covered = last.cumulative_bytes - self.base_bytes if last is not None else 0
        return covered >= self._metered()

    async def on_receipt(self, body: dict[str, Any]) -> None:
        """Check a receipt as it arrives (cheap, in order) and hand it to the store task."""
        try:
            receipt = SignedReceipt.model_validate(body)
        except ReceiptError as exc:
            raise self._reject(str(exc)) from None
        self._check_channel(receipt)
        self._check_figures(receipt)
        try:
            verify_receipt(receipt, self._host.domain)
        except ReceiptError as exc:
            raise self._reject(str(exc)) from None
        self._last_verified = receipt
        if self._pending is not None:
            self._host.stats.receipts_coalesced += 1
        self._pending = receipt
        self._pending_event.set()
        if self._store_task is None:
            self._store_task = asyncio.create_task(self._store_loop())

    def _check_channel(self, receipt: SignedReceipt) -> None:
        hello = self._hello
        if receipt.consumer != hello.consumer:
            raise self._reject(f"consumer {receipt.consumer} is not this session's consumer {hello.consumer}")
        if receipt.node != self._host.node:
            raise self._reject(f"node {receipt.node} is not this node {self._host.node}")
        if receipt.session_id != hello.session_id:
            raise self._reject(f"sessionId {receipt.session_id} is not this session's {hello.session_id}")

    def _check_figures(self, receipt: SignedReceipt) -> None:
        session_bytes = receipt.cumulative_bytes - self.base_bytes
        last = self._last_verified
        prev_bytes = last.cumulative_bytes if last is not None else self.base_bytes
        if receipt.cumulative_bytes <= prev_bytes:
            raise self._reject(
                f"cumulativeBytes {receipt.cumulative_bytes} does not exceed the last accepted {prev_bytes}"
            )
        metered = self._metered()
        if session_bytes > metered:
            raise self._reject(
                f"cumulativeBytes {receipt.cumulative_bytes} covers {session_bytes} session bytes but the node "
                f"metered only {metered}"
            )
        expected = cumulative_amount(self.base_bytes, self.base_amount, receipt.cumulative_bytes, self.price)
        if receipt.cumulative_amount != expected:
            raise self._reject(
                f"cumulativeAmount {receipt.cumulative_amount} is not {expected} (price {self.price} per GiB "
                f"× {session_bytes} bytes over base {self.base_amount})"
            )
        now = int(time.time())
        if abs(receipt.issued_at - now) > self._host.config.receipt_skew_s:
            raise self._reject(
                f"issuedAt {receipt.issued_at} is {receipt.issued_at - now:+d} s from the node's clock"
            )
        if last is not None and receipt.issued_at < last.issued_at:
            raise self._reject(
                f"issuedAt {receipt.issued_at} is before the previous receipt's {last.issued_at}"
            )

    def _reject(self, reason: str) -> ReceiptRejectedError:
        self._host.stats.receipts_rejected += 1
        return ReceiptRejectedError(reason)

    async def _store_loop(self) -> None:
        try:
            while True:
                await self._pending_event.wait()
                self._pending_event.clear()
                receipt, self._pending = self._pending, None
                if receipt is not None:
                    await self._store(receipt)
                self._store_idle.set()
        except RelayError as exc:
            self._fail(exc)
        except KuotaError as exc:  # the escrow re-check could not reach the chain
            log.error("%s: %s", self._tag(), exc)
            self._fail(
                SessionRefusedError(
                    f"the node cannot reach the chain to re-check escrow ({type(exc).__name__})"
                )
            )

    async def _store(self, receipt: SignedReceipt) -> None:
        host = self._host
        self._store_idle.clear()
        prev_amount = self.latest.cumulative_amount if self.latest is not None else self.base_amount
        prev_bytes = self.latest.cumulative_bytes if self.latest is not None else self.base_bytes
        try:
            # A receipt that adds bytes but not a whole payment unit is worth nothing on chain (settle
            # pays by amount) and the store refuses it as stale: it moves the byte window, it is not stored.
            if receipt.cumulative_amount > prev_amount:
                await asyncio.to_thread(host.sink.accept, receipt)
                host.stats.receipts_stored += 1
        except ReceiptError as exc:
            raise self._reject(str(exc)) from None
        except KuotaError as exc:
            # The store refused a write (disk full, corrupt): the receipt is not durable, so it is not
            # acknowledged and the window does not move; end the session rather than carry on credit.
            log.error("%s: receipt store refused a valid receipt: %s", self._tag(), exc)
            raise SessionRefusedError(
                f"the node cannot store receipts right now ({type(exc).__name__})"
            ) from None
        # Durable from here on: move the window, wake gated carriers, then acknowledge.
        self.latest = receipt
        await self._credit.pay(receipt.cumulative_bytes - self.base_bytes)
        host.stats.paid_bytes += receipt.cumulative_bytes - prev_bytes
        host.stats.amount_receipted += receipt.cumulative_amount - prev_amount
        ack = {"cumulativeBytes": receipt.cumulative_bytes, "cumulativeAmount": receipt.cumulative_amount}
        with contextlib.suppress(ConnectionError, OSError):
            await self._send(encode_control(FrameType.ACK, ack))
        await host.flush_usage()
        await self._check_headroom(receipt)

    async def _check_headroom(self, receipt: SignedReceipt) -> None:
        """End the session before the consumer's receipts outgrow its escrow.

        The consumer must keep ``available - owed >= credit`` (owed = accepted but unsettled), so the
        next credit window is always payable. Checked on cached figures; the chain is re-read only
        when they say no (a settlement lowers available and owed alike, a deposit raises available).
        """
        owed = receipt.cumulative_amount - self._settled_amount
        if self._escrow_available - owed >= self.credit_amount:
            return
        consumer, chain = self._hello.consumer, self._host.chain
        self._escrow_available = await chain.escrow_available(consumer)
        self._settled_amount, _ = await chain.channel_settled(consumer, self._host.node)
        owed = receipt.cumulative_amount - self._settled_amount
        if self._escrow_available - owed < self.credit_amount:
            self._fail(InsufficientEscrowError(consumer, self._escrow_available, owed + self.credit_amount))

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until every verified receipt is stored and acknowledged."""
        deadline = time.monotonic() + timeout
        while (self._pending is not None or not self._store_idle.is_set()) and self._store_task is not None:
            if self._store_task.done() or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop the store task (after ``drain``: receipts not stored by then are not acknowledged either)."""
        if self._store_task is not None:
            self._store_task.cancel()
            with contextlib.suppress(BaseException):
                await self._store_task
