"""The node dashboard: a web page on the node's HTTP service with its figures, charts and settlements.

Modules by concern: ``source`` (where a node's figures are read), ``traffic`` (paid bytes per hour
from the receipts), ``views`` (the API's JSON documents), ``routes`` (page, assets and API on an
aiohttp application). The page (``static/``) polls the API and draws its charts with uPlot, vendored
in ``static/vendor/uplot`` by ``tools/vendor_uplot.sh`` so that a plain ``pip install`` serves it.
"""

from __future__ import annotations

from nodeclient.dashboard.routes import API_PREFIX, STATIC_PREFIX, Dashboard, add_dashboard, is_public_path
from nodeclient.dashboard.source import DashboardSource, TokenUnit, explorer_for, node_dashboard_source
from nodeclient.dashboard.traffic import TrafficPoint, TrafficSeries

__all__ = [
    "API_PREFIX",
    "STATIC_PREFIX",
    "Dashboard",
    "DashboardSource",
    "TokenUnit",
    "TrafficPoint",
    "TrafficSeries",
    "add_dashboard",
    "explorer_for",
    "is_public_path",
    "node_dashboard_source",
]
