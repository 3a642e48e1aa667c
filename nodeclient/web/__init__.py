"""The node's HTTP service: Prometheus ``/metrics`` and content-addressed ``/bundles/`` beside the relay.

Modules by concern: ``config`` (bind address, bearer token, checked before binding), ``metrics``
(a per-node registry read from the relay's stats, the receipt store and the journal), ``ranges``
(bounded single Range requests), ``bundles_http`` (bundles by content hash and by on-chain root),
``app`` (the aiohttp application and its lifecycle).
"""

from __future__ import annotations

from nodeclient.web.app import NodeWebService, relay_web_service
from nodeclient.web.bundles_http import BundleLibrary
from nodeclient.web.config import WebConfig, is_loopback, resolve_web_config
from nodeclient.web.errors import WebConfigError
from nodeclient.web.metrics import MetricSources, NodeMetrics

__all__ = [
    "BundleLibrary",
    "MetricSources",
    "NodeMetrics",
    "NodeWebService",
    "WebConfig",
    "WebConfigError",
    "is_loopback",
    "relay_web_service",
    "resolve_web_config",
]
