"""Patterns worth a human look: warnings with their evidence, never verdicts.

None of these proves fraud, and none changes the exit code. Each is a cheap, explainable signal that
a reviewer can check from the evidence printed with it:

- ``funded-by-operator``: a consumer of a node received payment tokens from (or had escrow deposited
  by) that node's operator, payout or key address — the shape of wash trading;
- ``over-capacity``: bytes a channel's receipts claim over their time span exceed the node's declared
  capacity;
- ``receipt-burst``: many receipts of one channel signed within one second;
- ``latency-inconsistent``: one consumer claims much lower latency from a node than its other
  consumers see (latency drives reward weight, and a self-dealer signs its own).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from statistics import median

from nodeclient.audit.bundles import Bundle
from nodeclient.audit.events import Event
from nodeclient.audit.findings import Findings
from nodeclient.audit.replay import Ledger

__all__ = ["HeuristicLimits", "find_warnings"]


@dataclass(frozen=True)
class HeuristicLimits:
    """Thresholds of the warnings (documented in the report's parameters)."""

    burst_receipts_per_second: int = 20
    latency_ratio: float = 4.0
    latency_min_gap_ms: int = 100


def find_warnings(
    ledger: Ledger, transfers: list[Event], bundles: list[Bundle], limits: HeuristicLimits = HeuristicLimits()
) -> tuple[Findings, dict[str, int]]:
    """Warnings over the replayed ledger, the funding transfers and the bundles' receipts."""
    f = Findings()
    counts: dict[str, int] = defaultdict(int)
    _funding(ledger, transfers, f, counts)
    _capacity(ledger, bundles, f, counts)
    _bursts(bundles, f, counts)
    _latency(ledger, bundles, f, counts)
    return f, dict(counts)


def _funding(ledger: Ledger, transfers: list[Event], f: Findings, counts: dict[str, int]) -> None:
    consumers_of: dict[str, set[str]] = defaultdict(set)
    for row in ledger.settlements:
        consumers_of[row.node].add(row.consumer)
    for node in sorted(consumers_of):
        info = ledger.nodes.get(node)
        side = {node.lower()}
        if info is not None:
            side |= {a.lower() for a in (info.operator, info.payout) if a}
        for consumer in sorted(consumers_of[node]):
            counts["funding_pairs_checked"] += 1
            evidence = []
            for ev in transfers:
                if ev.args["to"].lower() == consumer.lower() and ev.args["from"].lower() in side:
                    evidence.append({"tx": ev.tx_hash, "block": ev.block_number, "kind": "transfer",
                                     "from": ev.args["from"], "amount": str(ev.args["value"])})
            for ev in ledger.deposits:
                if ev.args["consumer"] == consumer and ev.args["payer"].lower() in side:
                    evidence.append({"tx": ev.tx_hash, "block": ev.block_number, "kind": "depositFor",
                                     "from": ev.args["payer"], "amount": str(ev.args["amount"])})
            if evidence:
                first = min(evidence, key=lambda e: (e["block"], e["tx"]))
                f.warning("funded-by-operator", f"node {node} consumer {consumer}",
                          f"consumer {consumer} of node {node} was funded by the node's own side "
                          f"({len(evidence)} payment(s), first {first['kind']} of {first['amount']} from {first['from']} "
                          f"in tx {first['tx']})", position=(first["block"],), evidence={"payments": evidence})


def _mbps(delta_bytes: int, seconds: int) -> float:
    return delta_bytes * 8 / max(seconds, 1) / 1_000_000


def _capacity(ledger: Ledger, bundles: list[Bundle], f: Findings, counts: dict[str, int]) -> None:
    spans: dict[tuple[str, str], list[tuple[int, int, str]]] = defaultdict(list)
    for row in ledger.settlements:
        spans[(row.node, row.consumer)].append((row.issued_at, row.cumulative_bytes, f"settlement tx {row.tx_hash}"))
    for bundle in bundles:
        for r in bundle.receipts:
            spans[(r.node, r.consumer)].append((r.issued_at, r.cumulative_bytes, f"bundle {bundle.name}"))
    for (node, consumer), points in sorted(spans.items()):
        info = ledger.nodes.get(node)
        if info is None or not info.capacity_mbps or len(points) < 2:
            continue
        counts["capacity_channels_checked"] += 1
        points = sorted(set(points))
        worst = None
        for (t0, b0, _), (t1, b1, src) in pairwise(points):
            if b1 <= b0:
                continue
            rate = _mbps(b1 - b0, t1 - t0)
            if rate > info.capacity_mbps and (worst is None or rate > worst[0]):
                worst = (rate, t0, t1, b1 - b0, src)
        if worst is not None:
            rate, t0, t1, delta, src = worst
            f.warning("over-capacity", f"node {node} consumer {consumer}",
                      f"channel ({consumer}, {node}) claims {delta} bytes between issuedAt {t0} and {t1} "
                      f"({rate:.1f} Mbit/s), above the node's declared capacity of {info.capacity_mbps} Mbit/s ({src})",
                      evidence={"from": t0, "to": t1, "bytes": str(delta), "mbps": f"{rate:.1f}",
                                "capacityMbps": info.capacity_mbps})


def _bursts(bundles: list[Bundle], f: Findings, counts: dict[str, int]) -> None:
    for bundle in bundles:
        per_second: dict[tuple[str, int], int] = defaultdict(int)
        for r in bundle.receipts:
            per_second[(r.consumer, r.issued_at)] += 1
        counts["burst_windows_checked"] += len(per_second)
        flagged: dict[str, tuple[int, int]] = {}
        for (consumer, second), n in sorted(per_second.items()):
            if n >= HeuristicLimits.burst_receipts_per_second and n > flagged.get(consumer, (0, 0))[1]:
                flagged[consumer] = (second, n)
        for consumer, (second, n) in sorted(flagged.items()):
            f.warning("receipt-burst", f"bundle {bundle.name} consumer {consumer}",
                      f"bundle {bundle.name}: consumer {consumer} signed {n} receipts within second {second}",
                      evidence={"second": second, "receipts": n})


def _latency(ledger: Ledger, bundles: list[Bundle], f: Findings, counts: dict[str, int]) -> None:
    samples: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in ledger.settlements:
        samples[row.node][row.consumer].append(row.latency_ms)
    for bundle in bundles:
        for r in bundle.receipts:
            samples[r.node][r.consumer].append(r.latency_ms)
    limits = HeuristicLimits()
    for node in sorted(samples):
        per_consumer = {c: median(v) for c, v in samples[node].items()}
        if len(per_consumer) < 2:
            continue
        counts["latency_nodes_checked"] += 1
        low_c = min(per_consumer, key=lambda c: (per_consumer[c], c))
        high_c = max(per_consumer, key=lambda c: (per_consumer[c], c))
        low, high = per_consumer[low_c], per_consumer[high_c]
        if high - low >= limits.latency_min_gap_ms and high >= limits.latency_ratio * max(low, 1):
            f.warning("latency-inconsistent", f"node {node}",
                      f"node {node}: consumer {low_c} claims a median latency of {low:g} ms while consumer {high_c} "
                      f"measures {high:g} ms", evidence={c: f"{m:g}" for c, m in sorted(per_consumer.items())})
