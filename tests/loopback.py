"""A test HTTP server on 127.0.0.1 that serves from a daemon thread for the length of a ``with`` block."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """Base of the tests' RPC proxies: the handler reaches the proxy as ``self.server.proxy``."""

    def __init__(self, server_class: type[ThreadingHTTPServer], handler: type[BaseHTTPRequestHandler]) -> None:
        self._server: Any = server_class(("127.0.0.1", 0), handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
