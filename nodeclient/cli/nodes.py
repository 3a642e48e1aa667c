"""``kuota nodes list``: every registered node, filtered and ranked by what a consumer pays for.

Thin layer over ``nodeclient.discovery``: the options that choose a node (region, price, status,
latency and PING success) are shared with ``kuota consume``, which picks from the same ranking.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import click

from nodeclient.cli.options import CliContext, network_command, table
from nodeclient.discovery.catalog import (
    NODE_STATUSES,
    POLICIES,
    NodeFilter,
    NodeListing,
    load_listings,
    probe_listings,
    sort_listings,
)

__all__ = ["COMMANDS", "choice_options", "discover", "node_filter", "nodes"]

_CHOICE_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--region", "regions"), {"multiple": True, "help": "Only nodes in this region (repeatable)."}),
    (("--max-price",), {"type": click.IntRange(0), "default": None,
                        "help": "Only nodes whose price per GiB (payment-token base units) is at most this."}),
    (("--max-latency",), {"type": click.FloatRange(min=0, min_open=True), "default": None,
                          "help": "Only nodes whose PING round trip (ms, median) is at most this."}),
    (("--min-success",), {"type": click.FloatRange(0, 1), "default": None,
                          "help": "Only nodes that answered at least this share of PINGs (0..1)."}),
    (("--policy",), {"type": click.Choice(sorted(POLICIES)), "default": "cheapest", "show_default": True,
                     "help": "Ranking: cheapest (then lowest latency) or fastest (then cheapest)."}),
    (("--pings",), {"type": click.IntRange(1, 16), "default": 3, "show_default": True,
                    "help": "PINGs sent to each relay endpoint."}),
    (("--probe-timeout",), {"type": click.FloatRange(min=0.05), "default": 2.0, "show_default": True,
                            "help": "Seconds to wait for each connect, CHALLENGE and PONG."}),
]


def choice_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options that filter and rank nodes (shared by ``nodes list`` and ``consume``)."""
    for decls, attrs in reversed(_CHOICE_OPTIONS):
        fn = click.option(*decls, **attrs)(fn)
    return fn


def node_filter(opts: dict[str, Any], statuses: Sequence[str] = ()) -> NodeFilter:
    """The filter the choice options describe."""
    return NodeFilter(
        regions=frozenset(opts["regions"]),
        statuses=frozenset(statuses),
        max_price=opts["max_price"],
        max_latency_ms=opts["max_latency"],
        min_success=opts["min_success"],
    )


async def discover(cx: CliContext, opts: dict[str, Any], nodes: Sequence[str] | None = None, *, probe: bool = True) -> list[NodeListing]:
    """Registered nodes (or ``nodes``) read from the chain and, with ``probe``, their relays measured."""
    client = cx.client()
    listings = await asyncio.to_thread(load_listings, client, nodes)
    if not probe:
        return listings
    settlement = client.deployment.address("ReceiptSettlement")
    return await probe_listings(listings, client.chain_id, settlement, pings=opts["pings"], timeout=opts["probe_timeout"])


@click.group()
def nodes() -> None:
    """Find nodes to pay: registry records, published relays, measured quality."""


def _fmt_latency(entry: NodeListing) -> str:
    latency = entry.latency_ms
    return "-" if latency is None else f"{latency:.1f}"


def _human(listings: list[NodeListing]) -> Callable[[Any], None]:
    def show(console: Any) -> None:
        if not listings:
            console.print("no registered node matches")
            return
        rows = [
            [e.node, e.status, e.price_per_gib, e.region,
             str(e.best.endpoint) if e.best else (", ".join(map(str, e.metadata.relays)) or "-"),
             _fmt_latency(e), "-" if e.success_rate is None else f"{e.success_rate:.0%}",
             "yes" if e.ineligible() is None else "no"]
            for e in listings
        ]
        columns = ["node", "status", "price/GiB", "region", "relay", "ms", "pings", "eligible"]
        console.print(table("Nodes", columns, rows))
        # Reasons go below the table: they are sentences, a column would fold them unreadably.
        for e in listings:
            why = e.ineligible()
            if why is not None:
                console.print(f"{e.node} not eligible: {why}")
            for problem in e.metadata.problems:
                console.print(f"{e.node} metadata: {problem}")

    return show


@nodes.command("list")
@choice_options
@click.option("--status", "statuses", multiple=True, type=click.Choice(NODE_STATUSES),
              help="Only nodes with this registry status (repeatable; default: all).")
@click.option("--eligible", is_flag=True, help="Only nodes a consumer may pay (active, staked, reachable).")
@click.option("--probe/--no-probe", default=True, show_default=True, help="PING each published relay endpoint.")
@network_command
def list_(cx: CliContext, statuses: tuple[str, ...], eligible: bool, probe: bool, **opts: Any) -> None:
    """List registered nodes, filtered, ranked by --policy (eligible nodes first)."""
    accept = node_filter(opts, statuses)
    listings = asyncio.run(discover(cx, opts, probe=probe))
    shown = [e for e in listings if accept.rejects(e) is None and not (eligible and e.ineligible())]
    ranked = sort_listings(shown, opts["policy"])
    cx.emit(
        {"policy": opts["policy"], "probed": probe, "total": len(listings), "nodes": [e.to_json() for e in ranked]},
        _human(ranked),
    )


COMMANDS = [nodes]
