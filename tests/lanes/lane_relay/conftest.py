"""The relay fixtures (``tests/relay/conftest.py``) against a deployment with LaneSettlement, and a
relay that serves for lanes: its chain view reads the node's lanes, its store holds lane receipts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lane_helpers import lane_view

from nodeclient.relay.server import RelayConfig, RelayServer
from nodeclient.relay.store import open_node_store
from tests.relay.conftest import RelayThread, origin, relay_config, world  # noqa: F401 - fixtures by import


class LaneRelayThread(RelayThread):
    """``RelayThread`` for a node settling through lanes."""

    def __init__(self, relay_world: Any, store_path: Path, config: RelayConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="relay-lanes", daemon=True)
        self.thread.start()
        w = relay_world
        self.store = open_node_store(store_path, w.chain_id, w.manifest["contracts"]["LaneSettlement"], w.node.address)
        self.view = lane_view(w)
        self.server = RelayServer(config, self.view, w.node.address, w.node.private_key, self.store)
        self.host, self.port = self.call(self.server.start())


@pytest.fixture
def lane_relay(world, tmp_path) -> Iterator[Any]:  # noqa: F811 - the imported fixture, requested
    started: list[LaneRelayThread] = []

    def start(**overrides: Any) -> LaneRelayThread:
        thread = LaneRelayThread(world, tmp_path / f"lane-receipts-{len(started)}.sqlite", relay_config(**overrides))
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()
