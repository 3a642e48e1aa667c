"""One consumer connection on a node: admission, then frames until either side ends it.

``NodeSession`` owns the connection and its lifecycle (time-outs, ERROR frames, teardown) and hands
each frame to the part that owns it: ``NodeStreams`` (OPEN, DATA, CLOSE), ``ReceiptIntake``
(RECEIPT), with ``CreditWindow`` gating every byte carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nodeclient.errors import KuotaError
from nodeclient.relay.admission import ChannelStart, ProbeEnded, admit
from nodeclient.relay.credit import CreditWindow
from nodeclient.relay.errors import (
    CapReachedError,
    CreditExhaustedError,
    HandshakeError,
    InsufficientEscrowError,
    ProtocolError,
    RelayError,
    SessionRefusedError,
)
from nodeclient.relay.framing import (
    Frame,
    FrameType,
    decode_control,
    decode_data,
    encode_control,
    encode_frame,
    read_frame,
)
from nodeclient.relay.handshake import Hello
from nodeclient.relay.host import SessionHost
from nodeclient.relay.intake import ReceiptIntake
from nodeclient.relay.link import Link
from nodeclient.relay.node_streams import NodeStreams

__all__ = ["NodeSession"]

log = logging.getLogger("kuota.relay.node")

# Failures after which a cooperative consumer answers the ERROR with its final receipt.
_FINAL_RECEIPT_FAILURES = (CreditExhaustedError, CapReachedError, InsufficientEscrowError)


class NodeSession:
    """One consumer connection: admission, then frames until either side ends it."""

    def __init__(self, host: SessionHost, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.host = host
        self.cfg = host.config
        # Plaintext until admission completes the link handshake, encrypted from the HELLO on.
        self.link = Link(reader, writer)
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.task: asyncio.Task[None] | None = None
        self.hello: Hello | None = None
        self.channel_key = ""
        self.credit = CreditWindow(self.cfg, host.usage, host.stats, host.bucket, self.send)
        self.streams = NodeStreams(self.cfg, host.stats, self.credit, self.send, self.fail, self._tag)
        self.intake: ReceiptIntake | None = None
        self._send_lock = asyncio.Lock()
        self._failure: RelayError | None = None
        self._end = asyncio.Event()
        self._closing = False
        self._end_reason = "closed"

    # -- bookkeeping ---------------------------------------------------------------------------

    @property
    def unpaid(self) -> int:
        """Carried bytes not yet covered by a stored receipt."""
        return self.credit.unpaid

    @property
    def metered(self) -> int:
        """Session bytes the node measured: sent to the consumer plus received from it."""
        return self.credit.down_sent + self.streams.up_received

    def describe(self) -> dict[str, Any]:
        """The status-file entry of this (admitted) session."""
        assert self.hello is not None
        return {
            "consumer": self.hello.consumer,
            "sessionId": self.hello.session_id,
            "peer": self.peer,
            "carried": self.credit.carried,
            "paid": self.credit.paid,
            "unpaid": self.credit.unpaid,
            "streams": len(self.streams.open),
        }

    def _tag(self) -> str:
        who = self.hello.consumer if self.hello else "unauthenticated"
        return f"session {self.hello.session_id[:10] if self.hello else '-'} {who} from {self.peer}"

    async def send(self, data: bytes, *more: bytes | memoryview) -> None:
        """Write one encoded frame (``data`` then ``more``); frames from concurrent tasks never interleave."""
        async with self._send_lock:
            self.link.write(data, *more)
            await self.link.drain()

    def fail(self, error: RelayError) -> None:
        """End the session because of ``error`` (first failure wins)."""
        if self._failure is None:
            self._failure = error
        self._end.set()
        self.credit.halt(self._failure)

    def abort(self, reason: str) -> None:
        """End the session from the node's side (shutdown)."""
        self.fail(SessionRefusedError(reason))

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Admit the consumer, serve it, tear down; never raises for the peer's faults."""
        if not await self._admit():
            return
        stats = self.host.stats
        stats.sessions_total += 1
        stats.sessions_active += 1
        try:
            await self._serve()
        finally:
            stats.sessions_active -= 1
            stats.sessions_ended[self._end_reason] += 1
            self.streams.close_all()
            await self._close_transport()
            await self.host.flush_usage(force=True)
            log.info(
                "%s ended (%s): carried %d bytes, paid %d, unpaid %d",
                self._tag(),
                self._end_reason,
                self.credit.carried,
                self.credit.paid,
                self.credit.unpaid,
            )

    async def _admit(self) -> bool:
        stats = self.host.stats
        try:
            try:
                start = await asyncio.wait_for(
                    admit(self.host, self.link, self.send, self), self.cfg.handshake_timeout
                )
            except TimeoutError:
                raise HandshakeError(f"no valid hello within {self.cfg.handshake_timeout:g} s") from None
        except ProbeEnded as exc:
            stats.probes += 1
            log.debug("latency probe from %s: %s", self.peer, exc)
            await self._close_transport()
            return False
        except KuotaError as exc:
            # RelayError subclasses carry their wire code; anything else (ChainError: the RPC is down)
            # means the node cannot check the consumer right now, which is not the consumer's fault.
            code = getattr(exc, "code", "unavailable")
            stats.sessions_refused[code] += 1
            log.warning("refused connection from %s (%s): %s", self.peer, code, exc)
            await self._send_error(code, str(exc))
            await self._close_transport()
            return False
        except (ConnectionError, OSError) as exc:
            stats.sessions_refused["connection"] += 1
            log.info("connection from %s lost during handshake: %s", self.peer, exc)
            await self._close_transport()
            return False
        self._opened(start)
        return True

    def _opened(self, start: ChannelStart) -> None:
        self.hello = start.hello
        self.channel_key = start.channel_key
        self.intake = ReceiptIntake(
            self.host, start, self.credit, lambda: self.metered, self.send, self.fail, self._tag
        )
        log.info(
            "%s opened: base %d bytes / %d, escrow available %d, credit %d bytes",
            self._tag(),
            start.base_bytes,
            start.base_amount,
            start.escrow_available,
            self.cfg.credit_bytes,
        )

    async def _serve(self) -> None:
        assert self.intake is not None
        reader_task = asyncio.create_task(self._read_loop())
        end_task = asyncio.create_task(self._end.wait())
        try:
            done, _ = await asyncio.wait({reader_task, end_task}, return_when=asyncio.FIRST_COMPLETED)
            if reader_task in done and reader_task.exception() is not None:
                exc = reader_task.exception()
                if isinstance(exc, RelayError):
                    self.fail(exc)
                elif isinstance(exc, (ConnectionError, OSError, asyncio.IncompleteReadError)):
                    self._end_reason = "connection_lost"
                else:
                    raise exc  # type: ignore[misc]
            if self._failure is not None:
                await self._end_with_failure(self._failure, reader_task)
        finally:
            end_task.cancel()
            reader_task.cancel()
            with contextlib.suppress(BaseException):
                await reader_task
            # Receipts verified before the end are still worth storing (they are the consumer's signed
            # debt); wait for the store task briefly, then stop it.
            await self.intake.drain(self.cfg.close_grace)
            await self.intake.stop()

    async def _end_with_failure(self, failure: RelayError, reader_task: asyncio.Task[None]) -> None:
        code = getattr(failure, "code", "refused")
        self._end_reason = code
        if isinstance(failure, CreditExhaustedError):
            self.host.stats.cutoffs += 1
        log.warning("%s ending (%s): %s", self._tag(), code, failure)
        await self._send_error(code, str(failure))
        if not isinstance(failure, _FINAL_RECEIPT_FAILURES) or reader_task.done():
            return
        # A cooperative consumer answers an ERROR with its final receipt: accept it for a short grace
        # time, carrying nothing more.
        self._closing = True
        try:
            await asyncio.wait_for(asyncio.shield(reader_task), self.cfg.close_grace)
        except TimeoutError:
            log.info("%s: no final receipt within %g s", self._tag(), self.cfg.close_grace)
        except RelayError as exc:
            log.warning("%s: final receipt refused: %s", self._tag(), exc)
        except (ConnectionError, OSError):
            pass

    async def _send_error(self, code: str, message: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.send(encode_control(FrameType.ERROR, {"code": code, "message": message[:500]})), 2
            )

    async def _close_transport(self) -> None:
        with contextlib.suppress(Exception):
            self.link.close()
            await asyncio.wait_for(self.link.wait_closed(), 2)

    # -- frames from the consumer ------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self.intake is not None
        while True:
            try:
                frame = await read_frame(
                    self.link,
                    max_frame=self.cfg.max_frame,
                    idle_timeout=self.cfg.idle_timeout,
                    body_timeout=self.cfg.frame_timeout,
                )
            except TimeoutError:
                raise ProtocolError(
                    f"no complete frame within {self.cfg.idle_timeout:g} s idle / {self.cfg.frame_timeout:g} s per frame"
                ) from None
            if frame is None:
                if self._failure is None and not self._end.is_set():
                    self._end_reason = "peer_closed"
                self._end.set()
                return
            if self._closing and frame.type != FrameType.RECEIPT:
                continue
            await self._dispatch(frame)
            if frame.type == FrameType.BYE:
                return
            if self._closing and frame.type == FrameType.RECEIPT and self.intake.covers_all():
                return

    async def _dispatch(self, frame: Frame) -> None:
        assert self.intake is not None
        t = frame.type
        if t == FrameType.DATA:
            self.streams.on_data(*decode_data(frame))
        elif t == FrameType.RECEIPT:
            await self.intake.on_receipt(decode_control(frame))
        elif t == FrameType.PING:
            if len(frame.payload) > 64:
                raise ProtocolError(f"PING payload of {len(frame.payload)} bytes exceeds 64")
            await self.send(encode_frame(FrameType.PONG, frame.payload))
        elif t == FrameType.OPEN:
            await self.streams.on_open(decode_control(frame))
        elif t == FrameType.CLOSE:
            self.streams.on_close(decode_control(frame))
        elif t == FrameType.BYE:
            self._end_reason = "bye"
            self._end.set()
        elif t == FrameType.ERROR:
            body = decode_control(frame)
            self._end_reason = "consumer_error"
            log.info("%s: consumer sent ERROR %r", self._tag(), str(body)[:300])
            self._end.set()
        else:
            raise ProtocolError(f"unexpected {t.name} frame from a consumer")
