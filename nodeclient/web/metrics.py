"""Prometheus metrics of one node, read at scrape time from what the node already records.

Nothing is counted twice: relay traffic, sessions, refusals and acknowledged receipts come from the
relay's ``RelayStats`` (this process's counters, reset on restart, as Prometheus counters may be);
unsettled value and settlement batches from the receipt store; settlement transactions and their
gas from the transaction journal; RPC errors from the relay's chain view. Each node has its own
``CollectorRegistry`` (never the process-global one), so two nodes, or two tests, never mix.

A scrape takes the stats snapshot on the event loop (where the counters change) and renders in a
worker thread (the SQLite reads), through ``NodeMetrics.render``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "MetricSources", "NodeMetrics"]

#: Content type of the text exposition format ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class MetricSources:
    """Where a node's metrics are read: store and journal may be None (e.g. a relay without settlement)."""

    node: str
    store: Any | None = None
    journal: Any | None = None
    chain_id: int | None = None
    #: RPC errors so far, by component (read on the event loop with the stats snapshot).
    rpc_errors: Callable[[], dict[str, int]] | None = None


def _counter(name: str, doc: str, value: float, unit: str = "") -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value, unit=unit)


def _labelled(family: CounterMetricFamily | GaugeMetricFamily, values: dict[str, int]) -> Metric:
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family


def _relay_families(snap: dict[str, Any]) -> Iterator[Metric]:
    sessions, receipts, settlements = snap["sessions"], snap["receipts"], snap["settlements"]
    yield _labelled(CounterMetricFamily("kuota_relay_bytes", "Bytes the relay carried.", labels=["direction"]),
                    {"up": snap["bytes"]["up"], "down": snap["bytes"]["down"]})
    yield _counter("kuota_relay_paid_bytes", "Carried bytes covered by an acknowledged receipt.", snap["bytes"]["paid"])
    yield GaugeMetricFamily("kuota_relay_sessions_active", "Consumer sessions open now.", value=sessions["active"])
    yield _counter("kuota_relay_sessions", "Consumer sessions admitted.", sessions["total"])
    yield _labelled(CounterMetricFamily("kuota_relay_refusals", "Sessions refused, by reason.", labels=["reason"]),
                    sessions["refused"])
    yield _labelled(CounterMetricFamily("kuota_relay_sessions_ended", "Sessions ended, by reason.", labels=["reason"]),
                    sessions["ended"])
    yield GaugeMetricFamily("kuota_relay_unpaid_exposure_bytes", "Carried bytes not yet covered by a receipt.",
                            value=snap["unpaidExposureBytes"])
    yield _counter("kuota_receipts_acknowledged", "Receipts stored durably and acknowledged.", receipts["stored"])
    yield _counter("kuota_receipts_rejected", "Receipts refused (bad signature, counters, domain).", receipts["rejected"])
    yield _counter("kuota_receipts_amount", "Payment-token base units the acknowledged receipts added.", receipts["amount"])
    yield _counter("kuota_settlements", "Background settlement rounds that sent a batch.", settlements["count"])
    yield _counter("kuota_settlement_errors", "Background settlement rounds that failed.", settlements["errors"])
    yield GaugeMetricFamily("kuota_relay_uptime_seconds", "Seconds since the relay started.", value=snap["uptimeS"])


def _store_families(store: Any, node: str) -> Iterator[Metric]:
    channels = store.channels(node=node)
    yield GaugeMetricFamily("kuota_unsettled_value", "Payment-token base units the node's receipts can still collect.",
                            value=sum(c.unsettled_amount for c in channels))
    yield GaugeMetricFamily("kuota_unsettled_channels", "Channels with value left to settle.",
                            value=sum(1 for c in channels if c.unsettled_amount > 0))
    counts = store.stats(node=node)
    yield GaugeMetricFamily("kuota_receipts_stored", "Receipts of the node in the store.", value=counts["receipts"])
    yield _labelled(GaugeMetricFamily("kuota_settlement_batches", "Settlement batches in the store, by state.",
                                      labels=["state"]),
                    {k.removeprefix("batches_"): v for k, v in counts.items() if k.startswith("batches_")})


def _journal_families(journal: Any, chain_id: int, node: str) -> Iterator[Metric]:
    records = [r for r in journal.records(chain_id, node=node) if r.kind == "settle"]
    by_status: dict[str, int] = {}
    for record in records:
        by_status[record.status] = by_status.get(record.status, 0) + 1
    yield _labelled(CounterMetricFamily("kuota_settlement_transactions", "Settlement transactions signed, by status.",
                                        labels=["status"]), by_status)
    yield _counter("kuota_settlement_gas_used", "Gas used by mined settlement transactions.",
                   sum(r.gas_used or 0 for r in records))
    yield _counter("kuota_settlement_gas_cost_wei", "Wei paid for the gas of settlement transactions.",
                   sum(r.gas_cost for r in records))


class _NodeCollector(Collector):
    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources
        self.snapshot: dict[str, Any] | None = None
        self.rpc_errors: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        src = self.sources
        if self.snapshot is not None:
            yield from _relay_families(self.snapshot)
        yield _labelled(CounterMetricFamily("kuota_rpc_errors", "Failed RPC reads, by component.", labels=["component"]),
                        self.rpc_errors)
        if src.store is not None:
            yield from _store_families(src.store, src.node)
        if src.journal is not None and src.chain_id is not None:
            yield from _journal_families(src.journal, src.chain_id, src.node)


class NodeMetrics:
    """A node's own registry and the collector that reads its sources at each scrape."""

    def __init__(self, sources: MetricSources) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _NodeCollector(sources)
        self.registry.register(self._collector)
        self._lock = threading.Lock()

    def render(self, snapshot: dict[str, Any] | None, rpc_errors: dict[str, int]) -> bytes:
        """The exposition text, from the relay ``snapshot`` taken on the event loop (blocking: a thread)."""
        with self._lock:
            self._collector.snapshot = snapshot
            self._collector.rpc_errors = dict(rpc_errors)
            return generate_latest(self.registry)
