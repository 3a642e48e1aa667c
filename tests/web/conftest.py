"""A node that really earned and settled, serving its HTTP service on 127.0.0.1.

Module-scoped: the operator stakes and registers the node through the real ``kuota`` CLI, consumers
fund escrow, the node runs in-process (``run_node``: relay, receipt store, journal and web service
in one event loop thread), consumers pay for traffic from a local origin through real relay
sessions, and the operator settles twice with the real ``settle_node`` (two ``BatchSettled`` with
their bundles). A last session is left unsettled, and one consumer without escrow is refused, so
every metric has something to count. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from brownie import chain, web3
from eth_utils import to_checksum_address

from nodeclient.chain import ChainClient
from nodeclient.config import NetworkProfile, PolicySettings
from nodeclient.keys import KeyManager, Secret
from nodeclient.receipts.store import ReceiptStore
from nodeclient.relay.chainview import Web3ChainView
from nodeclient.relay.client import open_session
from nodeclient.relay.daemon import run_node
from nodeclient.relay.server import RelayConfig
from nodeclient.relay.stats import read_snapshot
from nodeclient.relay.targets import TargetPolicy
from nodeclient.settlement import open_store, settle_node
from nodeclient.web.config import WebConfig
from tests.client.conftest import PASSWORD, KuotaEnv, funded, kenv  # noqa: F401 - fixtures
from tests.conftest import anvil_private_key

MIB = 1024 * 1024
#: Small, so the range tests can exceed it with a real bundle.
MAX_RANGE = 1024


def free_port() -> int:
    """A port nothing listens on right now (the tests bind it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metadata_uri(document: dict[str, Any]) -> str:
    """An inline ``data:application/json`` metadata URI."""
    return "data:application/json," + quote(json.dumps(document, separators=(",", ":")))


class _Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        size = int(self.path.rsplit("/", 1)[-1])
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(b"k" * size)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class NodeThread:
    """``run_node`` in its own event loop thread, stopped through its ``stop`` event."""

    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    stop: asyncio.Event
    future: Any
    ready: Path

    def relay_address(self) -> tuple[str, int]:
        host, port, _pid = self.ready.read_text().split()
        return host, int(port)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.future.result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def start_node(client: ChainClient, node_key: Any, node: str, data_dir: Path, web: WebConfig) -> NodeThread:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="web-node", daemon=True)
    thread.start()
    stop = asyncio.run_coroutine_threadsafe(_event(), loop).result(10)
    ready = data_dir / "ready"
    config = RelayConfig(targets=TargetPolicy(allow_private=True), credit_bytes=2 * MIB,
                         receipt_interval_bytes=256 * 1024, handshake_timeout=5.0, close_grace=1.0,
                         stats_path=data_dir / "relay" / "status.json", stats_interval=0.2)
    future = asyncio.run_coroutine_threadsafe(
        run_node(client, node_key, node, config, data_dir, ready_file=ready, web=web, stop=stop), loop
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if future.done():
            future.result()  # raises what stopped the node
        assert time.monotonic() < deadline, "the node did not start"
        time.sleep(0.05)
    return NodeThread(loop, thread, stop, future, ready)


async def _event() -> asyncio.Event:
    return asyncio.Event()


@dataclass
class WebWorld:
    """The settled node, its running services, and the client pieces tests read the truth from."""

    k: KuotaEnv
    node: str
    client: ChainClient
    store: ReceiptStore
    node_thread: NodeThread
    web_port: int
    origin_port: int
    system: Any
    refused_reason: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def bundle_dir(self) -> Path:
        return self.client.data_dir / "bundles"

    def status(self) -> dict[str, Any]:
        """The relay's own counters, from the status file it rewrites every 0.2 s."""
        time.sleep(0.5)
        return read_snapshot(self.client.data_dir / "relay" / "status.json")

    def set_metadata(self, uri: str, operator: Any) -> None:
        """Point the node's registry metadata at ``uri`` (Brownie; reverted after the test by fn_isolation)."""
        info = self.system.registry.getNode(self.node)
        self.system.registry.update(self.node, info[1], info[3], info[4], info[7], uri, {"from": operator})


def _pay_for(host: str, port: int, node: str, key: str, view_args: tuple[str, dict[str, str], int], url: str) -> int:
    """One consumer session that fetches ``url`` through the relay; returns the body bytes."""

    async def run() -> int:
        view = await Web3ChainView.connect(*view_args)
        try:
            session = await open_session(host, port, node=node, consumer_key=key, chain=view)
            try:
                result = await session.fetch(url, sink=lambda data: None)
            finally:
                await session.close()
            return int(result.body_bytes)
        finally:
            await view.close()

    return asyncio.run(run())


def _refused(host: str, port: int, node: str, key: str, view_args: tuple[str, dict[str, str], int]) -> str:
    async def run() -> str:
        view = await Web3ChainView.connect(*view_args)
        try:
            await open_session(host, port, node=node, consumer_key=key, chain=view)
        except Exception as exc:  # noqa: BLE001 - the refusal is what this returns
            return str(exc)
        finally:
            await view.close()
        raise AssertionError("a consumer without escrow was admitted")

    return asyncio.run(run())


@pytest.fixture(scope="module")
def world(funded, kuota, rpc_url, accounts) -> Iterator[WebWorld]:  # noqa: F811 - fixture from tests.client
    k = funded
    # Consumers sign receipts with the wall clock and the auditor refuses a receipt issued after the
    # block that settled it: an earlier test's snapshot revert can leave the chain's clock behind.
    if chain[-1].timestamp < time.time():
        web3.provider.make_request("evm_setNextBlockTimestamp", [int(time.time()) + 1])
        web3.provider.make_request("evm_mine", [])
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1000",
         "--capacity", "100", "--region", "test", *k.pw(), "--yes")
    for role in ("consumer", "consumer2"):
        k.ok("escrow", "deposit", "900", "--account", role, *k.pw(), "--yes")
    node = to_checksum_address(k.addresses["node"])
    web_port = free_port()
    operator = accounts.at(k.addresses["operator"], force=True)
    info = kuota.registry.getNode(node)
    kuota.registry.update(node, info[1], info[3], info[4], info[7],
                          metadata_uri({"v": 1, "bundles": f"http://127.0.0.1:{web_port}/bundles/"}), {"from": operator})

    profile = NetworkProfile(name="web", rpc_url=rpc_url, chain_id=k.chain_id, manifest=k.manifest, confirmations=1)
    client = ChainClient.connect(profile, k.home / "data", verify=False)
    keys = KeyManager(k.home / "data")
    node_key = keys.unlock(keys.find("node"), Secret(PASSWORD))
    operator_signer = keys.unlock(keys.find("operator"), Secret(PASSWORD))
    node_thread = start_node(client, node_key, node, k.home / "data",
                             WebConfig(host="127.0.0.1", port=web_port, max_range_bytes=MAX_RANGE))

    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    origin_port = origin.server_address[1]
    host, port = node_thread.relay_address()
    view_args = (rpc_url, dict(k.contracts), k.chain_id)
    url = f"http://127.0.0.1:{origin_port}/bytes/{MIB}"
    store = open_store(client)
    try:
        for key_index in (5, 6):  # consumer, consumer2: the first batch settles both channels
            _pay_for(host, port, node, anvil_private_key(key_index), view_args, url)
        settle_node(client, store, operator_signer, node, PolicySettings(), force=True)
        _pay_for(host, port, node, anvil_private_key(5), view_args, url)
        settle_node(client, store, operator_signer, node, PolicySettings(), force=True)
        _pay_for(host, port, node, anvil_private_key(6), view_args, url)  # left unsettled
        refused = _refused(host, port, node, anvil_private_key(12), view_args)  # newkey: no escrow
        w = WebWorld(k=k, node=node, client=client, store=store, node_thread=node_thread, web_port=web_port,
                     origin_port=origin_port, system=kuota, refused_reason=refused)
        yield w
    finally:
        node_thread.close()
        origin.shutdown()
        origin.server_close()
        store.close()
        client.journal.close()
