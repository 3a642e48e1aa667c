"""``/metrics``: the node's own Prometheus registry, parsed as Prometheus would, equal to its sources."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

MIB = 1024 * 1024


def _scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_equal_the_relays_own_counters(world):
    status = world.status()
    samples = _scrape(world.base)
    assert _value(samples, "kuota_relay_bytes_total", direction="down") == status["bytes"]["down"]
    assert _value(samples, "kuota_relay_bytes_total", direction="up") == status["bytes"]["up"]
    # Four paid fetches of 1 MiB bodies crossed the relay (headers and framing on top).
    assert 4 * MIB <= status["bytes"]["down"] < 4 * MIB + 64 * 1024
    assert _value(samples, "kuota_relay_paid_bytes_total") == status["bytes"]["paid"] > 0
    assert _value(samples, "kuota_relay_sessions_total") == status["sessions"]["total"] >= 4
    assert _value(samples, "kuota_relay_sessions_active") == 0
    assert _value(samples, "kuota_receipts_acknowledged_total") == status["receipts"]["stored"] > 0
    assert _value(samples, "kuota_rpc_errors_total", component="relay_chain_view") == 0


def test_metrics_count_refusals_by_reason(world):
    samples = _scrape(world.base)
    refusals = {dict(labels)["reason"]: v for (name, labels), v in samples.items() if name == "kuota_relay_refusals_total"}
    # One consumer without escrow was refused; the label is the relay's wire code for it.
    assert refusals == world.status()["sessions"]["refused"]
    assert sum(refusals.values()) == 1
    (reason,) = refusals
    assert reason in world.refused_reason.lower() or reason.replace("_", " ") in world.refused_reason.lower()


def test_metrics_read_unsettled_value_and_batches_from_the_store(world):
    samples = _scrape(world.base)
    channels = world.store.channels(node=world.node)
    unsettled = sum(c.unsettled_amount for c in channels)
    assert unsettled > 0  # the last session was never settled
    assert _value(samples, "kuota_unsettled_value") == unsettled
    assert _value(samples, "kuota_unsettled_channels") == 1
    assert _value(samples, "kuota_receipts_stored") == world.store.stats(node=world.node)["receipts"]
    # Every receipt this store holds for the node was acknowledged by this process.
    assert _value(samples, "kuota_receipts_stored") == _value(samples, "kuota_receipts_acknowledged_total")
    assert _value(samples, "kuota_settlement_batches", state="confirmed") == 2


def test_metrics_read_settlement_transactions_and_gas_from_the_journal(world):
    samples = _scrape(world.base)
    settles = [r for r in world.client.journal.records(world.client.chain_id, node=world.node) if r.kind == "settle"]
    assert [r.status for r in settles] == ["mined", "mined"]
    assert _value(samples, "kuota_settlement_transactions_total", status="mined") == 2
    gas = sum(r.gas_used for r in settles)
    assert gas > 50_000
    assert _value(samples, "kuota_settlement_gas_used_total") == gas
    assert _value(samples, "kuota_settlement_gas_cost_wei_total") == sum(r.gas_cost for r in settles)


def test_each_node_has_its_own_registry(world):
    from prometheus_client import REGISTRY

    from nodeclient.web.metrics import MetricSources, NodeMetrics

    # Nothing of the node is in the process-global registry, and a second node's registry is empty of it.
    assert REGISTRY.get_sample_value("kuota_unsettled_value") is None
    other = NodeMetrics(MetricSources(node="0x" + "11" * 20))
    families = list(text_string_to_metric_families(other.render(None, {}).decode()))
    assert [f.name for f in families] == ["kuota_rpc_errors"]
    assert families[0].samples == []  # no component has reported


def test_failed_chain_reads_of_the_relay_are_counted(world):
    import asyncio

    from nodeclient.chain.rpc import connect_async
    from nodeclient.errors import ChainError
    from nodeclient.relay.chainview import Web3ChainView
    from nodeclient.relay.server import RelayConfig, RelayServer
    from nodeclient.web import WebConfig, relay_web_service
    from tests.conftest import anvil_private_key
    from tests.web.conftest import free_port

    async def run() -> tuple[float, float]:
        # A chain view whose RPC is gone: every read fails, as when the node's provider is down.
        dead = Web3ChainView(connect_async(f"http://127.0.0.1:{free_port()}", timeout=2), world.client.chain_id,
                             world.k.contracts)
        server = RelayServer(RelayConfig(), dead, world.node, anvil_private_key(10), sink=None)
        service = relay_web_service(WebConfig(port=0), server, store=None, journal=None, chain_id=None, bundle_dir=None)
        host, port = await service.start()
        try:
            before = await asyncio.to_thread(_scrape, f"http://{host}:{port}")
            for _ in range(2):
                try:
                    await dead.escrow_available(world.node)
                except ChainError:
                    pass
            after = await asyncio.to_thread(_scrape, f"http://{host}:{port}")
        finally:
            await service.close()
            await dead.close()
        key = ("kuota_rpc_errors_total", (("component", "relay_chain_view"),))
        return before[key], after[key]

    assert asyncio.run(run()) == (0, 2)

