"""``add_dashboard``: the node dashboard's page, static assets and JSON API on an aiohttp application.

The page and its assets hold no data and are public, so a browser can load them without a header;
every ``/api/`` answer needs ``Authorization: Bearer <token>`` when a token is set (the node's web
service requires one off loopback). The page takes the token from the URL fragment
(``/#token=...``; a fragment never reaches the server or its logs) or asks for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from nodeclient._utils.bearer import bearer_authorized
from nodeclient.dashboard.source import DashboardSource
from nodeclient.dashboard.traffic import TrafficSeries
from nodeclient.dashboard.views import earnings_view, settlements_view, status_view, traffic_view
from nodeclient.earnings import NodeEarnings
from nodeclient.errors import KuotaError

__all__ = ["API_PREFIX", "STATIC_PREFIX", "Dashboard", "add_dashboard", "is_public_path"]

log = logging.getLogger("kuota.dashboard")

API_PREFIX = "/api/"
#: Settlement batches the history shows by default, and at most (``/api/settlements?limit=``).
DEFAULT_SETTLEMENTS = 100
MAX_SETTLEMENTS = 1000
STATIC_PREFIX = "/dashboard/static/"
_STATIC_DIR = Path(str(resources.files("nodeclient.dashboard") / "static"))
_TX_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_JSON = Callable[[], Any]
# The page loads only its own files and talks only to its own origin.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def is_public_path(path: str) -> bool:
    """True for the page and its assets (no data in them); an app-wide auth check may let these through."""
    return path in ("/", "/dashboard", "/dashboard/") or path.startswith(STATIC_PREFIX)


class _EarningsCache:
    """The chain-built ledger, rebuilt at most every ``ttl`` seconds (it reads every event of the node)."""

    def __init__(self, build: Callable[[], NodeEarnings], ttl: float) -> None:
        self._build, self._ttl = build, ttl
        self._lock = threading.Lock()
        self._value: tuple[float, NodeEarnings] | None = None

    def get(self) -> NodeEarnings:
        with self._lock:
            if self._value is None or time.monotonic() - self._value[0] >= self._ttl:
                self._value = (time.monotonic(), self._build())
            return self._value[1]


class Dashboard:
    """The dashboard of one node: request handlers over a ``DashboardSource``."""

    def __init__(self, source: DashboardSource, token: str | None = None) -> None:
        self.source = source
        self._token = token
        self.traffic = TrafficSeries(source.store, source.node) if source.store is not None else None
        self._earnings = _EarningsCache(source.earnings, source.earnings_ttl_s) if source.earnings else None

    def routes(self) -> list[web.AbstractRouteDef]:
        """The page, its assets and the API."""
        return [
            web.get("/", self._page),
            web.get("/dashboard", self._page),
            web.get("/dashboard/", self._page),
            web.get(STATIC_PREFIX + "{name:.+}", self._asset),
            web.get(API_PREFIX + "status", self._guard(self._status)),
            web.get(API_PREFIX + "traffic", self._guard(self._traffic)),
            web.get(API_PREFIX + "earnings", self._guard(self._earnings_api)),
            web.get(API_PREFIX + "settlements", self._guard(self._settlements)),
            web.get(API_PREFIX + "tx/{tx_hash}", self._guard(self._tx)),
        ]

    # -- page and assets -----------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(_STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        # Resolve inside the static directory only: a name with ".." or a symlink out is not served.
        path = (_STATIC_DIR / request.match_info["name"]).resolve()
        if not path.is_file() or not path.is_relative_to(_STATIC_DIR.resolve()):
            raise web.HTTPNotFound(text="no such dashboard asset\n")
        return web.FileResponse(path, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

    # -- API -----------------------------------------------------------------------------------

    def _guard(self, handler: Callable[[web.Request], Awaitable[Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def guarded(request: web.Request) -> web.Response:
            if self._token is not None and not bearer_authorized(request, self._token):
                raise web.HTTPUnauthorized(text="a bearer token is required\n", headers={"WWW-Authenticate": "Bearer"})
            try:
                body = await handler(request)
            except KuotaError as exc:
                # A chain or store read failed: say which, so the page can show it beside the stale figure.
                log.warning("dashboard %s: %s", request.path, exc)
                return web.json_response({"error": str(exc)}, status=503, headers={"Cache-Control": "no-store"})
            return web.json_response(body, headers={"Cache-Control": "no-store"})

        return guarded

    async def _status(self, request: web.Request) -> Any:
        snap = self.source.snapshot() if self.source.snapshot is not None else None
        store = self.source.store
        channels = await asyncio.to_thread(store.channels, node=self.source.node) if store is not None else None
        return status_view(self.source, snap, channels)

    async def _traffic(self, request: web.Request) -> Any:
        points = await asyncio.to_thread(self.traffic.refresh) if self.traffic is not None else []
        return traffic_view(points)

    async def _earnings_api(self, request: web.Request) -> Any:
        if self._earnings is None:
            raise web.HTTPNotFound(text="this node's dashboard has no chain connection for earnings\n")
        return earnings_view(await asyncio.to_thread(self._earnings.get))

    async def _settlements(self, request: web.Request) -> Any:
        raw = request.query.get("limit", str(DEFAULT_SETTLEMENTS))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_SETTLEMENTS:
            raise web.HTTPBadRequest(text=f"limit={raw!r} is not a number of batches in 1..{MAX_SETTLEMENTS}\n")
        return await asyncio.to_thread(self._read_settlements, int(raw))

    def _read_settlements(self, limit: int) -> Any:
        store, journal, source = self.source.store, self.source.journal, self.source
        batches = [b for b in store.batches() if b.node == source.node] if store is not None else []
        batches = sorted(batches, key=lambda b: b.id, reverse=True)[:limit]
        records = {}
        if journal is not None:
            records = {r.tx_hash: r for r in journal.records(source.chain_id, node=source.node) if r.kind == "settle"}
        return settlements_view(source, batches, records)

    async def _tx(self, request: web.Request) -> Any:
        tx_hash = request.match_info["tx_hash"].lower()
        if not _TX_HASH.match(tx_hash) or self.source.journal is None:
            raise web.HTTPNotFound(text=f"{tx_hash!r} is not a transaction of this node\n")
        record = await asyncio.to_thread(self.source.journal.get, tx_hash)
        if record is None or record.chain_id != self.source.chain_id:
            raise web.HTTPNotFound(text=f"transaction {tx_hash} is not in this node's journal\n")
        return record.to_json()


def add_dashboard(app: web.Application, source: DashboardSource, *, token: str | None = None) -> Dashboard:
    """Add the dashboard's routes to ``app``; ``token`` (the web service's bearer token) guards the API."""
    dashboard = Dashboard(source, token)
    app.add_routes(dashboard.routes())
    return dashboard
