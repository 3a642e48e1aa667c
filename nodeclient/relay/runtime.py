"""Running a relay node as a long-lived process: background settlement, status file, clean shutdown.

``serve_node`` starts the server, writes an optional ready file (``host port``, for supervisors and
tests), runs the settler, and on SIGTERM / SIGINT stops accepting, ends sessions and flushes
counters. A SIGKILL loses nothing acknowledged: receipts are durable before their ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from nodeclient._utils.files import atomic_write
from nodeclient.errors import KuotaError
from nodeclient.relay.errors import RelayConfigError
from nodeclient.relay.server import RelayServer

__all__ = ["BackgroundSettler", "serve_node"]

log = logging.getLogger("kuota.relay.node")

_SETTLE_SHUTDOWN_S = 120.0


class Service(Protocol):
    """Something that runs beside the relay for the life of the node (the HTTP service)."""

    async def start(self) -> Any: ...

    async def close(self) -> None: ...


class BackgroundSettler:
    """Calls ``settle_once`` (blocking; run in a thread) every ``interval`` seconds.

    ``settle_once`` applies the gas-aware policy (``nodeclient.settlement.settle_node``) and returns a
    JSON-ready summary: ``acted`` (bool), ``reason`` (the policy's words), and when it acted ``paid``.
    """

    def __init__(
        self, settle_once: Callable[[], dict[str, Any]], interval: float, server: RelayServer
    ) -> None:
        if interval <= 0:
            raise RelayConfigError("settle_interval", interval, "must be a positive number of seconds")
        self.settle_once = settle_once
        self.interval = interval
        self.server = server

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set; a run in progress is finished first (it may hold a sent transaction).

        A failed run is logged and counted, never fatal to the relay.
        """
        while not stop.is_set():
            try:
                async with asyncio.timeout(self.interval):
                    await stop.wait()
                return
            except TimeoutError:
                pass
            await self.run_once()

    async def run_once(self) -> None:
        """One settlement check in a worker thread, counted in the relay's stats."""
        stats = self.server.stats
        try:
            outcome = await asyncio.to_thread(self.settle_once)
        except KuotaError as exc:
            stats.settlement_errors += 1
            log.warning("background settlement failed: %s", exc)
            return
        except Exception:
            stats.settlement_errors += 1
            log.exception("background settlement crashed; the relay keeps serving and retries later")
            return
        if not outcome.get("acted"):
            log.info("background settlement: waiting (%s)", outcome.get("reason"))
            return
        stats.settlements += 1
        stats.settled_amount += int(outcome.get("paid", 0))
        stats.last_settlement = {**outcome, "at": int(time.time())}
        log.info("background settlement: %s", outcome)


async def serve_node(
    server: RelayServer,
    *,
    settler: BackgroundSettler | None = None,
    ready_file: Path | None = None,
    stop: asyncio.Event | None = None,
    services: Sequence[Service] = (),
) -> None:
    """Run ``server`` (and ``settler``) until ``stop`` is set or the process gets SIGTERM / SIGINT.

    ``services`` (the node's HTTP service) start after the relay and before the ready file is
    written, and stop before it.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    host, port = await server.start()
    started: list[Service] = []
    settle_task = None
    try:
        for service in services:
            await service.start()
            started.append(service)
        if ready_file is not None:
            atomic_write(ready_file, f"{host} {port} {os.getpid()}\n")
        settle_task = asyncio.create_task(settler.run(stop)) if settler is not None else None
        await stop.wait()
    finally:
        for service in reversed(started):
            await service.close()
        stop.set()
        log.info("relay stopping")
        if settle_task is not None:
            # Let a settlement in flight record its outcome (the store must learn what the chain did).
            done, _ = await asyncio.wait({settle_task}, timeout=_SETTLE_SHUTDOWN_S)
            if not done:
                log.warning("settlement still running after %g s; stopping without it", _SETTLE_SHUTDOWN_S)
                settle_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await settle_task
        await server.close()
