"""A JSON-RPC proxy on 127.0.0.1 that injects transport faults in front of the test Anvil.

A test arms one fault for the n-th call of one JSON-RPC method; the proxy forwards everything else
untouched. The four kinds are what a flaky provider or network does to a client:

* ``http503``: answered 503 before anything is forwarded (the node never sees the request);
* ``reset``: the connection is reset before forwarding (never seen either);
* ``timeout``: held past the client's time-out, then forwarded (the node acts after the client
  has given up on the answer);
* ``drop``: forwarded and executed, then the client connection is reset instead of answered (the
  node acted; the client cannot know).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from tests.loopback import LoopbackServer

__all__ = ["FAULT_KINDS", "Fault", "FaultProxy"]

FAULT_KINDS = ("http503", "reset", "timeout", "drop")


@dataclass
class Fault:
    """Inject ``kind`` into call number ``occurrence`` (1-based) of ``method``."""

    method: str
    kind: str
    occurrence: int = 1
    fired: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a reset connection is the point of this server, not an error to print


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        proxy = self.server.proxy
        with proxy.in_flight():
            fault = proxy.fault_for(json.loads(body))
            if fault is None or fault.kind not in FAULT_KINDS:
                self._answer(200, proxy.forward(body))
            elif fault.kind == "http503":
                self._answer(503, b'{"error": "service unavailable"}')
            elif fault.kind == "reset":
                self._reset()
            elif fault.kind == "timeout":
                time.sleep(proxy.hold)
                proxy.forward(body)
                self._reset()
            else:  # drop: the node executes the request, the client never hears back
                proxy.forward(body)
                self._reset()

    def _answer(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends a TCP RST, what a dying load balancer does.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


class FaultProxy(LoopbackServer):
    """Forwards JSON-RPC to ``upstream``; counts calls per method and injects armed faults."""

    def __init__(self, upstream: str, *, hold: float) -> None:
        self.upstream = upstream
        self.hold = hold
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._busy = 0
        self._local = threading.local()  # one keep-alive upstream session per handler thread
        super().__init__(_Server, _Handler)

    def arm(self, fault: Fault) -> None:
        """Inject ``fault`` (counting the method's calls from now on)."""
        with self._lock:
            self.calls.clear()
            self._faults = [fault]

    def disarm(self) -> None:
        """Forward everything from now on."""
        with self._lock:
            self._faults = []

    def fault_for(self, request: Any) -> Fault | None:
        """The armed fault this request triggers, if any (batches are forwarded untouched)."""
        if isinstance(request, list):
            return None
        method = str(request.get("method"))
        with self._lock:
            self.calls[method] += 1
            for fault in self._faults:
                if not fault.fired and fault.method == method and fault.occurrence == self.calls[method]:
                    fault.fired = True
                    self.injected[fault.kind] += 1
                    return fault
        return None

    def forward(self, body: bytes) -> bytes:
        """Send ``body`` to the node and return its answer."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=30
        ).content

    def in_flight(self) -> _Busy:
        """Context marking a request as being handled (so a test can wait for held ones)."""
        return _Busy(self)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Return once no request is held or being forwarded (a held one may still act on the node)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._busy == 0:
                    return
            time.sleep(0.02)
        raise TimeoutError(f"fault proxy still busy after {timeout} s")


class _Busy:
    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy

    def __enter__(self) -> None:
        with self._proxy._lock:
            self._proxy._busy += 1

    def __exit__(self, *exc: object) -> None:
        with self._proxy._lock:
            self._proxy._busy -= 1
