"""A node with a real history for the dashboard: traffic through its relay, a settlement, a finished epoch.

On the test Anvil, inside the test's chain snapshot: the operator stakes and registers the node and
three consumers fund escrow through the real ``kuota`` CLI (``tests/ledger`` fixture). A real
``RelayServer`` with the node's registered key carries HTTP traffic for two consumers from a local
origin; their receipts go to the real receipt store. The first consumer's receipts are settled on
chain by ``settle_node`` with the operator's keystore (journaled, gas paid), the reward epoch ends,
and the second consumer's traffic stays unsettled. The dashboard is then served on 127.0.0.1 from
that data, in the relay's own event loop, exactly as the node serves it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from nodeclient.chain import ChainClient
from nodeclient.chain.rpc import connect_async
from nodeclient.config import NetworkProfile
from nodeclient.dashboard import add_dashboard, node_dashboard_source
from nodeclient.relay.chainview import Web3ChainView
from nodeclient.relay.client import ConsumerConfig, open_session
from nodeclient.relay.limits import Caps, UsageLedger
from nodeclient.relay.server import RelayServer
from nodeclient.relay.store import NodeReceiptStore
from nodeclient.settlement import deployment_domain, open_store
from tests.conftest import ROOT, anvil_private_key
from tests.dashboard.cdp import Browser, chromium_path
from tests.ledger.conftest import CONSUMERS, LedgerNode, funded, kenv, ledger_node  # noqa: F401 - fixtures
from tests.relay.conftest import origin, relay_config  # noqa: F401 - fixture

MIB = 1024 * 1024
CAPS = Caps(per_day_bytes=256 * MIB, per_month_bytes=4096 * MIB)
SETTLED_MIB, UNSETTLED_MIB = 24, 8
REPORTS = ROOT / "reports" / "dashboard"
TOKEN = "dashboard-test-token-0123456789abcdef"


@dataclass
class DashboardNode:
    """The node's relay (in its own event loop thread), its data, and the dashboards served from it."""

    ledger: LedgerNode
    client: ChainClient
    server: RelayServer
    loop: asyncio.AbstractEventLoop
    settle_epoch: int = -1
    delivered: dict[str, int] = field(default_factory=dict)
    _runners: list[web.AppRunner] = field(default_factory=list)
    _closers: list[Callable[[], Any]] = field(default_factory=list)

    @property
    def node(self) -> str:
        return self.ledger.node

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def carry(self, role: str, size: int, origin_url: Callable[[int], str]) -> None:
        """One consumer session through the relay fetching ``size`` bytes; counts what crossed the relay."""
        host, port = self.server.address

        async def run() -> int:
            async with Web3ChainView(connect_async(self.ledger.k.rpc_url), self.client.chain_id,
                                     dict(self.client.deployment.contracts)) as view:
                session = await open_session(host, port, node=self.node, consumer_key=anvil_private_key(CONSUMERS[role]),
                                             chain=view, config=ConsumerConfig())
                try:
                    result = await session.fetch(origin_url(size))
                finally:
                    await session.close()
                assert result.status == 200 and result.body_bytes == size
                return session.sent_bytes + session.received_bytes

        self.delivered[role] = asyncio.run(run())

    def serve(self, token: str | None = None, rpc_url: str | None = None) -> str:
        """Serve the dashboard of this node on 127.0.0.1 (a port of its own); returns its base URL.

        With ``rpc_url`` its chain reads go there (one try each, never cached) instead of to Anvil directly.
        """
        client = self.ledger.client() if rpc_url is None else self._client_via(rpc_url)
        store = open_store(client)
        self._closers.append(store.close)
        source = node_dashboard_source(client, self.server, store)
        if rpc_url is not None:
            source.earnings_ttl_s = 0.0

        async def start() -> str:
            app = web.Application()
            add_dashboard(app, source, token=token)
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            host, port = runner.addresses[0][:2]
            return f"http://{host}:{port}"

        return self.call(start())

    def _client_via(self, rpc_url: str) -> ChainClient:
        k = self.ledger.k
        profile = NetworkProfile(name="dashboard", rpc_url=rpc_url, chain_id=k.chain_id, manifest=k.manifest,
                                 request_timeout=2.0, rpc_retries=0)
        client = ChainClient.connect(profile, k.home / "data", verify=False)
        self._closers.append(client.journal.close)
        return client

    def close(self) -> None:
        for runner in self._runners:
            self.call(runner.cleanup(), timeout=10)
        for close in self._closers:
            close()


def _relay_loop() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dashboard-node", daemon=True)
    thread.start()
    return loop, thread


@pytest.fixture
def dashboard_node(ledger_node, origin, tmp_path) -> Iterator[DashboardNode]:  # noqa: F811 - fixtures
    ln = ledger_node
    client = ln.client()
    domain = deployment_domain(client)
    relay_store = open_store(client)
    usage = UsageLedger(tmp_path / "usage.sqlite", CAPS)
    loop, thread = _relay_loop()
    view = Web3ChainView(connect_async(ln.k.rpc_url), client.chain_id, dict(client.deployment.contracts))
    server = RelayServer(relay_config(caps=CAPS), view, ln.node, anvil_private_key(10),
                         NodeReceiptStore(relay_store, domain, ln.node), usage=usage)
    node = DashboardNode(ln, client, server, loop)
    node.call(server.start())
    try:
        node.carry("consumer", SETTLED_MIB * MIB, origin.url)
        settle_store = open_store(client)
        pool = client.contract("RewardPool").functions
        node.settle_epoch = int(pool.currentEpoch().call())
        _report, result = ln.settle(client, settle_store)
        assert result is not None and result.settled == 1
        settle_store.close()
        # End the settlement's reward epoch, so its reward is claimable.
        ln.w3.provider.make_request("evm_increaseTime", [int(pool.epochLength().call()) + 1])
        ln.mine(1)
        node.carry("consumer2", UNSETTLED_MIB * MIB, origin.url)
        yield node
    finally:
        node.close()
        node.call(server.close(), timeout=30)
        node.call(view.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        relay_store.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Debian Chromium (skipped, with the reason, when it is not installed)."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed (tools/setup.sh installs Debian's chromium when run as root)")
    with Browser(executable) as b:
        yield b


@pytest.fixture
def reports() -> Path:
    """Where the screenshots go (test artefacts, not committed)."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    return REPORTS
