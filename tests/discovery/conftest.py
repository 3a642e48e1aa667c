"""Fixtures for discovery: several real nodes on the test Anvil, each with its published metadata, and
real relay servers on 127.0.0.1 (one behind a proxy that delays every byte it returns).

The fleet, registered once per module (``fn_isolation`` reverts what a test changes):

=========  ===========  ========  ==============================================================
node       price/GiB    region    what a consumer should make of it
=========  ===========  ========  ==============================================================
jailed     100          eu-west   cheapest, relay up, but jailed: never picked
unstaked   200          eu-west   relay up, operator slashed below requiredStake: never picked
dead       300          eu-west   publishes a relay port nothing listens on: unreachable
broken     400          eu-west   metadata is not JSON: listed with the problem, never picked
slow       500_000      eu-west   reachable, ``DELAY_S`` more round trip than the others
cheap      1_000_000    eu-west   reachable, fast
fast       2_000_000    us-east   reachable, fast, dearest
=========  ===========  ========  ==============================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from brownie import chain as brownie_chain
from client.conftest import KuotaEnv, make_home
from integration.support import NodeKey, node_key, register_node
from relay.conftest import RelayThread, origin, relay_config  # noqa: F401 - origin is a fixture

from nodeclient.chain.rpc import connect_async
from nodeclient.discovery.metadata import build_metadata, encode_metadata_uri
from nodeclient.relay.chainview import Web3ChainView

STAKE_PER_NODE = 10**21  # local.json minStakePerNode
DELAY_S = 0.12
DEPOSIT = 1_000 * 10**6
FLEET = {
    "jailed": (100, "eu-west"),
    "unstaked": (200, "eu-west"),
    "dead": (300, "eu-west"),
    "broken": (400, "eu-west"),
    "slow": (500_000, "eu-west"),
    "cheap": (1_000_000, "eu-west"),
    "fast": (2_000_000, "us-east"),
}


@dataclass
class _NodeWorld:
    """What ``RelayThread`` needs of one node: the chain, the manifest and the node's key."""

    chain_id: int
    rpc_url: str
    manifest: dict[str, Any]
    node: NodeKey

    def view(self) -> Web3ChainView:
        return Web3ChainView(connect_async(self.rpc_url), self.chain_id, self.manifest["contracts"])


class DelayProxy:
    """A TCP forwarder on 127.0.0.1 that holds every chunk coming back from ``upstream`` for ``delay`` s."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="delay-proxy", daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self.loop
        ).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        await asyncio.gather(self._pipe(reader, up_writer, 0), self._pipe(up_reader, writer, self.delay))

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def inline(endpoints: list[str], region: str, price: int) -> str:
    """The data: metadata URI the client writes for these endpoints."""
    return encode_metadata_uri(build_metadata(endpoints, region=region, price_per_gib=price))


@dataclass
class Fleet:
    """The registered nodes, their relays and a client installation to drive the CLI."""

    system: Any
    kenv: KuotaEnv
    keys: dict[str, NodeKey]
    endpoints: dict[str, str]
    relays: dict[str, RelayThread] = field(default_factory=dict)
    proxies: list[DelayProxy] = field(default_factory=list)

    def address(self, name: str) -> str:
        return self.keys[name].address

    def name_of(self, address: str) -> str:
        return next(name for name, key in self.keys.items() if key.address == address)


def _start_relays(world_of: Any, keys: dict[str, NodeKey], tmp: Path, fleet: Fleet) -> None:
    for name in ("jailed", "unstaked", "slow", "cheap", "fast"):
        thread = RelayThread(world_of(keys[name]), tmp / f"{name}.sqlite", relay_config())
        fleet.relays[name] = thread
        if name == "slow":
            proxy = DelayProxy((thread.host, thread.port), DELAY_S)
            fleet.proxies.append(proxy)
            fleet.endpoints[name] = f"127.0.0.1:{proxy.port}"
        else:
            fleet.endpoints[name] = f"{thread.host}:{thread.port}"
    fleet.endpoints["dead"] = f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def fleet(kuota, deployer, operator, operator2, slasher, consumer, rpc_url, tmp_path_factory) -> Iterator[Fleet]:
    system = kuota
    chain_id = brownie_chain.id
    tmp = tmp_path_factory.mktemp("discovery")
    for who, nodes in ((operator, 6), (operator2, 1)):
        system.token.transfer(who, STAKE_PER_NODE * nodes, {"from": deployer})
        system.token.approve(system.staking, STAKE_PER_NODE * nodes, {"from": who})
        system.staking.stake(STAKE_PER_NODE * nodes, {"from": who})
    keys = {name: node_key(f"discovery-{name}") for name in FLEET}
    for name, (price, region) in FLEET.items():
        owner = operator2 if name == "unstaked" else operator
        register_node(system, owner, keys[name], owner.address, chain_id, price_per_gib=price, region=region)
    fleet = Fleet(system, make_home(tmp / "client", rpc_url, system.manifest), keys, {})

    def world_of(key: NodeKey) -> _NodeWorld:
        return _NodeWorld(chain_id, rpc_url, system.manifest, key)

    try:
        _start_relays(world_of, keys, tmp, fleet)
        for name, (price, region) in FLEET.items():
            uri = "data:application/json,{not json" if name == "broken" else inline([fleet.endpoints[name]], region, price)
            owner = operator2 if name == "unstaked" else operator
            system.registry.update(keys[name].address, owner.address, price, 100, region, uri, {"from": owner})
        system.registry.jail(keys["jailed"].address, "discovery test", {"from": slasher})
        system.staking.slash(operator2, STAKE_PER_NODE // 2, slasher, {"from": slasher})
        assert fleet.kenv.addresses["consumer"] == consumer.address
        system.payment_token.mint(consumer, DEPOSIT, {"from": deployer})
        system.payment_token.approve(system.escrow, DEPOSIT, {"from": consumer})
        system.escrow.deposit(DEPOSIT, {"from": consumer})
        yield fleet
    finally:
        for proxy in fleet.proxies:
            proxy.stop()
        for thread in fleet.relays.values():
            thread.stop()
