"""A loopback HTTP server with deterministic content of any size: the "internet" the demo browses.

``GET /bytes/<n>`` answers ``n`` bytes (a repeating pattern, so the consumer can check what it got).
It binds 127.0.0.1 on a free port and runs in a daemon thread: nothing leaves the machine.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MAX_BYTES", "ContentServer"]

MAX_BYTES = 1 << 30
_CHUNK = bytes(range(256)) * 256  # 64 KiB


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "bytes" or not parts[1].isdigit() or int(parts[1]) > MAX_BYTES:
            self.send_error(404, "use /bytes/<n> with n <= 1 GiB")
            return
        size = int(parts[1])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        left = size
        while left > 0:
            piece = _CHUNK[: min(left, len(_CHUNK))]
            self.wfile.write(piece)
            left -= len(piece)

    def log_message(self, format: str, *args: object) -> None:
        return


class ContentServer:
    """Start with ``start()``; ``url(n)`` is a URL that serves ``n`` bytes; ``stop()`` shuts it down."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-content", daemon=True)

    def start(self) -> ContentServer:
        self._thread.start()
        return self

    def url(self, size: int) -> str:
        return f"http://127.0.0.1:{self.port}/bytes/{size}"

    def stop(self) -> None:
        # shutdown() waits for serve_forever to notice; it would wait forever if it never ran.
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
