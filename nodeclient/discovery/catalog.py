"""Every registered node with what a consumer chooses by: status, stake, price, region, relay, quality.

Nodes are enumerated from ``NodeRegistered`` events since the deployment block and read back with
``getNode`` (so the listing shows current status and price, not the registration's). A node is
*eligible* to be paid when it is active, its operator's bonded stake covers what the registry
requires, it publishes a relay endpoint and (once probed) an endpoint answered. ``NodeFilter`` and
``POLICIES`` turn the listing into the order ``kuota nodes list`` shows and ``kuota consume`` picks from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from nodeclient.discovery.metadata import MetadataReading, read_metadata_uri

if TYPE_CHECKING:
    from nodeclient.discovery.probe import ProbeResult

__all__ = [
    "NODE_STATUSES",
    "POLICIES",
    "NodeFilter",
    "NodeListing",
    "Pick",
    "load_listings",
    "pick_node",
    "probe_listings",
    "registered_nodes",
    "sort_listings",
]

NODE_STATUSES = ("active", "exiting", "jailed")
"""NodeRegistry statuses of registered nodes, as the listing names them."""


@dataclass(frozen=True, slots=True)
class NodeListing:
    """One registered node: registry record, operator stake, metadata and (if probed) quality."""

    node: str
    operator: str
    status: str
    price_per_gib: int
    region: str
    capacity_mbps: int
    bonded: int
    required_stake: int
    metadata: MetadataReading
    probes: tuple[ProbeResult, ...] | None = None
    """None until probed; then one result per published relay endpoint."""

    @property
    def staked(self) -> bool:
        """The operator's bonded stake covers the registry's requirement for its live nodes."""
        return self.bonded >= self.required_stake

    @property
    def best(self) -> ProbeResult | None:
        """The reachable endpoint with the lowest latency."""
        reachable = [p for p in self.probes or () if p.reachable]
        return min(reachable, key=lambda p: (p.latency_ms, -p.success_rate)) if reachable else None

    @property
    def latency_ms(self) -> float | None:
        """Latency of the best endpoint (None if not probed or unreachable)."""
        best = self.best
        return best.latency_ms if best is not None else None

    @property
    def success_rate(self) -> float | None:
        """PONGs per PING over every endpoint (None if not probed, or nothing was published to probe)."""
        sent = sum(p.sent for p in self.probes or ())
        return sum(p.received for p in self.probes or ()) / sent if sent else None

    def ineligible(self) -> str | None:
        """Why this node must not be paid, or None."""
        if self.status != "active":
            return f"status {self.status}"
        if not self.staked:
            return f"operator {self.operator} has {self.bonded} KUOTA base units bonded, below the required {self.required_stake}"
        if not self.metadata.relays:
            return "no relay endpoint: " + ("; ".join(self.metadata.problems) or "none published")
        if self.probes is not None and self.best is None:
            errors = "; ".join(f"{p.endpoint}: {p.error}" for p in self.probes)
            return f"unreachable ({errors})"
        return None

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        latency, rate, best = self.latency_ms, self.success_rate, self.best
        return {
            "node": self.node,
            "operator": self.operator,
            "status": self.status,
            "pricePerGiB": self.price_per_gib,
            "region": self.region,
            "capacityMbps": self.capacity_mbps,
            "staked": self.staked,
            "bonded": self.bonded,
            "requiredStake": self.required_stake,
            "metadata": self.metadata.to_json(),
            "relay": str(best.endpoint) if best is not None else None,
            "latencyMs": round(latency, 3) if latency is not None else None,
            "successRate": round(rate, 3) if rate is not None else None,
            "probes": [p.to_json() for p in self.probes] if self.probes is not None else None,
            "eligible": self.ineligible() is None,
            "ineligibleReason": self.ineligible(),
        }


def registered_nodes(client: Any) -> list[str]:
    """Every node ever registered in this deployment, in registration order."""
    return [ev["args"]["node"] for ev in client.events("NodeRegistry", "NodeRegistered")]


def load_listings(client: Any, nodes: Iterable[str] | None = None) -> list[NodeListing]:
    """Registry record, operator stake and metadata of ``nodes`` (default: every registered node)."""
    registry = client.contract("NodeRegistry")
    staking = client.contract("Staking")
    stakes: dict[str, tuple[int, int]] = {}
    listings = []
    for node in registered_nodes(client) if nodes is None else nodes:
        raw = client.call(registry.functions.getNode(node), "NodeRegistry.getNode()")
        operator, _payout, _key, price, capacity, _registered_at, status, region, uri = raw
        if int(status) == 0:
            continue
        if operator not in stakes:
            stakes[operator] = (
                int(client.call(staking.functions.bondedOf(operator), "Staking.bondedOf()")),
                int(client.call(registry.functions.requiredStake(operator), "NodeRegistry.requiredStake()")),
            )
        bonded, required = stakes[operator]
        listings.append(
            NodeListing(
                node=node,
                operator=operator,
                status=NODE_STATUSES[int(status) - 1] if int(status) <= len(NODE_STATUSES) else str(status),
                price_per_gib=int(price),
                region=region,
                capacity_mbps=int(capacity),
                bonded=bonded,
                required_stake=required,
                metadata=read_metadata_uri(uri, region=region, price_per_gib=int(price)),
            )
        )
    return listings


async def probe_listings(
    listings: Sequence[NodeListing], chain_id: int, settlement: str, *, pings: int = 3, timeout: float = 2.0
) -> list[NodeListing]:
    """The listings with every published relay endpoint probed (concurrently, each bounded)."""
    # Imported here: listing nodes without probing (and ``kuota --help``) never loads the relay wire code.
    from nodeclient.discovery.probe import ProbeTarget, probe_many

    jobs = [(e, ProbeTarget(entry.node, chain_id, settlement)) for entry in listings for e in entry.metadata.relays]
    results = iter(await probe_many(jobs, pings=pings, timeout=timeout))
    return [replace(entry, probes=tuple(next(results) for _ in entry.metadata.relays)) for entry in listings]


@dataclass(frozen=True, slots=True)
class NodeFilter:
    """What a consumer accepts; each ``rejects`` reason names the value that failed."""

    regions: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    max_price: int | None = None
    max_latency_ms: float | None = None
    min_success: float | None = None

    def rejects(self, entry: NodeListing) -> str | None:
        """Why ``entry`` is filtered out, or None."""
        if self.regions and entry.region not in self.regions:
            return f"region {entry.region!r} not in {sorted(self.regions)}"
        if self.statuses and entry.status not in self.statuses:
            return f"status {entry.status} not in {sorted(self.statuses)}"
        if self.max_price is not None and entry.price_per_gib > self.max_price:
            return f"price {entry.price_per_gib} per GiB above the maximum {self.max_price}"
        latency, rate = entry.latency_ms, entry.success_rate
        if self.max_latency_ms is not None and (latency is None or latency > self.max_latency_ms):
            shown = "unmeasured" if latency is None else f"{latency:.1f} ms"
            return f"latency {shown} above the bound {self.max_latency_ms:g} ms"
        if self.min_success is not None and (rate is None or rate < self.min_success):
            return f"PING success rate {rate if rate is not None else 0:.2f} below {self.min_success:g}"
        return None


def _latency_key(entry: NodeListing) -> float:
    latency = entry.latency_ms
    return math.inf if latency is None else latency


POLICIES: dict[str, tuple[str, Callable[[NodeListing], tuple[Any, ...]]]] = {
    "cheapest": ("cheapest", lambda e: (e.price_per_gib, _latency_key(e), e.node)),
    "fastest": ("lowest latency", lambda e: (_latency_key(e), e.price_per_gib, e.node)),
}
"""Policy name → (what it prefers, in words; sort key). Ties fall to the other figure, then the address."""


def sort_listings(listings: Iterable[NodeListing], policy: str) -> list[NodeListing]:
    """``listings`` in ``policy``'s order (eligible nodes first)."""
    key = POLICIES[policy][1]
    return sorted(listings, key=lambda e: (e.ineligible() is not None, key(e)))


@dataclass(frozen=True, slots=True)
class Pick:
    """The node a consumer will pay, why, and why every other node was passed over."""

    chosen: NodeListing | None
    reason: str
    skipped: tuple[tuple[str, str], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        chosen = self.chosen
        return {
            "node": chosen.node if chosen is not None else None,
            "relay": str(chosen.best.endpoint) if chosen is not None and chosen.best is not None else None,
            "reason": self.reason,
            "skipped": [{"node": node, "reason": why} for node, why in self.skipped],
        }


def _describe(entry: NodeListing) -> str:
    best = entry.best
    where = f"{best.latency_ms:.1f} ms at {best.endpoint}" if best is not None and best.latency_ms is not None else "unprobed"
    return f"{entry.price_per_gib} base units per GiB, {where}"


def pick_node(listings: Iterable[NodeListing], policy: str, accept: NodeFilter) -> Pick:
    """The first node of ``policy``'s order that is eligible and passes ``accept``."""
    chosen: NodeListing | None = None
    skipped: list[tuple[str, str]] = []
    for entry in sort_listings(listings, policy):
        why = entry.ineligible() or accept.rejects(entry)
        if why is None and chosen is not None:
            why = f"ranked after the chosen node ({_describe(entry)})"
        if why is None:
            chosen = entry
        else:
            skipped.append((entry.node, why))
    if chosen is None:
        return Pick(None, f"no eligible node among {len(skipped)} registered", tuple(skipped))
    bound = f" within {accept.max_latency_ms:g} ms" if accept.max_latency_ms is not None else ""
    reason = f"{POLICIES[policy][0]} eligible node{bound}: {_describe(chosen)}"
    return Pick(chosen, reason, tuple(skipped))
