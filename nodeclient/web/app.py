"""The node's HTTP service: ``/metrics`` and the dashboard (``/``) for the operator, ``/bundles/`` for
auditors, ``/healthz``.

An aiohttp application in the relay's event loop, started and stopped with the relay by
``kuota node serve``. It binds loopback unless configured otherwise (``WebConfig`` refuses any other
address without a bearer token). With a token, ``/metrics`` needs ``Authorization: Bearer <token>``;
bundles stay public unless ``public_bundles`` is off, since they are published for anyone to audit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nodeclient._utils.bearer import bearer_authorized
from nodeclient.dashboard import DashboardSource, add_dashboard, is_public_path
from nodeclient.web.bundles_http import BundleLibrary, bundle_routes
from nodeclient.web.config import WebConfig
from nodeclient.web.errors import WebConfigError
from nodeclient.web.metrics import CONTENT_TYPE, MetricSources, NodeMetrics

__all__ = ["NodeWebService", "relay_web_service"]

log = logging.getLogger("kuota.web")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NodeWebService:
    """The HTTP service of one node; ``snapshot`` and ``rpc_errors`` are read on the event loop."""

    def __init__(
        self,
        config: WebConfig,
        metrics: NodeMetrics,
        *,
        snapshot: Callable[[], dict[str, Any]] | None = None,
        rpc_errors: Callable[[], dict[str, int]] | None = None,
        bundles: BundleLibrary | None = None,
        dashboard: DashboardSource | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._snapshot = snapshot
        self._rpc_errors = rpc_errors
        self.bundles = bundles
        self.dashboard = dashboard
        self._runner: web.AppRunner | None = None
        self._address: tuple[str, int] | None = None

    def build_app(self) -> web.Application:
        """The aiohttp application (routes and the bearer-token middleware)."""
        app = web.Application(middlewares=[self._auth_middleware])
        app.add_routes([web.get("/metrics", self._metrics), web.get("/healthz", self._health)])
        if self.bundles is not None:
            app.add_routes(bundle_routes(self.bundles, self.config.max_range_bytes))
        if self.dashboard is not None:
            # The middleware below checks the token for the dashboard's API as for /metrics.
            add_dashboard(app, self.dashboard)
        return app

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        token = self.config.token
        open_path = (
            request.path == "/healthz"
            or (request.path.startswith("/bundles/") and self.config.public_bundles)
            # The page and its assets hold no data, and a browser cannot send a header when it
            # first opens a page: the page then asks for the token and sends it to the API.
            or (self.dashboard is not None and is_public_path(request.path))
        )
        if token is not None and not open_path and not bearer_authorized(request, token):
            raise web.HTTPUnauthorized(text="a bearer token is required\n", headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    async def _metrics(self, request: web.Request) -> web.Response:
        snapshot = self._snapshot() if self._snapshot is not None else None
        rpc = self._rpc_errors() if self._rpc_errors is not None else {}
        body = await asyncio.to_thread(self.metrics.render, snapshot, rpc)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})

    async def start(self) -> tuple[str, int]:
        """Bind and serve; returns the bound (host, port)."""
        runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            address = f"{self.config.host}:{self.config.port}"
            raise WebConfigError("host:port", address, f"cannot be listened on ({exc.strerror or exc})") from None
        self._runner = runner
        sock = runner.addresses[0]
        self._address = (sock[0], sock[1])
        log.info("web service on http://%s:%s (metrics%s, bundles %s)", sock[0], sock[1],
                 " with bearer token" if self.config.token else "",
                 "off" if self.bundles is None else "public" if self.config.public_bundles else "with bearer token")
        return self._address

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        if self._address is None:
            raise RuntimeError("the web service is not started")
        return self._address

    async def close(self) -> None:
        """Stop serving (requests in flight get a few seconds to finish)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def relay_web_service(
    config: WebConfig,
    server: Any,
    *,
    store: Any | None,
    journal: Any | None,
    chain_id: int | None,
    bundle_dir: Any | None,
    dashboard: DashboardSource | None = None,
) -> NodeWebService:
    """The web service of ``server`` (a ``RelayServer``): its stats, chain view, store, bundles and dashboard."""
    sources = MetricSources(node=server.node, store=store, journal=journal, chain_id=chain_id)

    def rpc_errors() -> dict[str, int]:
        return {"relay_chain_view": int(getattr(server.chain, "rpc_errors", 0))}

    bundles = BundleLibrary(store, bundle_dir, server.node) if store is not None and bundle_dir is not None else None
    return NodeWebService(config, NodeMetrics(sources), snapshot=server.stats.snapshot, rpc_errors=rpc_errors,
                          bundles=bundles, dashboard=dashboard)
