"""The node daemon: one relay server wired to the chain, the durable receipt store and settlement.

:func:`run_node` is what ``kuota node serve`` runs, usable as it is from a program: it opens the
per-node usage ledger and the receipt store in the data dir, connects the relay's own view of the
registry and escrow, serves until SIGTERM / SIGINT, and (given a settling wallet) settles in the
background with the gas-aware policy. Every acknowledged receipt is on disk before its ack (the
store's contract); the server's store and the usage ledger are closed on the way out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeclient import settlement
from nodeclient.config import PolicySettings
from nodeclient.dashboard import node_dashboard_source
from nodeclient.relay.chainview import Web3ChainView
from nodeclient.relay.limits import UsageLedger
from nodeclient.relay.runtime import BackgroundSettler, serve_node
from nodeclient.relay.server import RelayConfig, RelayServer
from nodeclient.relay.store import NodeReceiptStore
from nodeclient.web.app import relay_web_service
from nodeclient.web.config import WebConfig

__all__ = ["run_node", "settle_step"]


def settle_step(
    client: Any, store: Any, signer: Any, node: str, policy: PolicySettings
) -> Callable[[], dict[str, Any] | None]:
    """One background settlement round for ``node``: reconcile, plan, and settle if worth it.

    Returns what the round did, in the form the relay's status snapshot records.
    """

    def settle_once() -> dict[str, Any] | None:
        _report, plan, result = settlement.settle_node(client, store, signer, node, policy)
        if result is None:
            return {"acted": False, "reason": plan.decision.reason}
        return {
            "acted": True,
            "reason": plan.decision.reason,
            "batch": result.batch_id,
            "settled": result.settled,
            "paid": result.paid,
            "fee": result.fee,
        }

    return settle_once


async def run_node(
    client: Any,
    node_key: Any,
    node: str,
    config: RelayConfig,
    data_dir: Path,
    *,
    settle_signer: Any | None = None,
    policy: PolicySettings | None = None,
    settle_interval: float = 300.0,
    ready_file: Path | None = None,
    web: WebConfig | None = None,
    stop: asyncio.Event | None = None,
    module: str = "receipts",
) -> None:
    """Serve ``node``'s relay with ``node_key`` (the registry's signing key) until SIGTERM / SIGINT.

    ``settle_signer`` (the operator's wallet, which pays the gas) turns on background settlement
    every ``settle_interval`` seconds under ``policy``; ``web`` runs the node's HTTP service
    (``/metrics``, ``/bundles/``, the dashboard) beside the relay; ``ready_file`` receives ``host port pid`` once
    both listen. Setting ``stop`` ends the node as a signal would (for programs that embed it).
    ``module`` ``lanes`` serves receipts of LaneSettlement: consumers are admitted on their lane with
    this node, and the receipts settle from lanes.
    """
    if config.stats_path is not None:
        config.stats_path.parent.mkdir(parents=True, exist_ok=True)
    relay_dir = data_dir / "relay"
    relay_dir.mkdir(parents=True, exist_ok=True)
    contracts = dict(client.deployment.contracts)
    lane_node = node if module == "lanes" else None
    view = await Web3ChainView.connect(client.profile.rpc_url, contracts, client.chain_id, lane_node=lane_node)
    domain = settlement.deployment_domain(client, module)
    usage = UsageLedger(relay_dir / f"usage-{node.lower()}.sqlite", config.caps)
    opened = [usage]
    try:
        store = settlement.open_store(client, module)
        opened.append(store)
        server = RelayServer(
            config, view, node, node_key.private_key_bytes(), NodeReceiptStore(store, domain, node), usage=usage
        )
        settler = None
        if settle_signer is not None:
            # Its own connection to the store, since settlement runs in a worker thread beside the
            # server. Left open on the way out: a round still running when the relay stops (it may
            # hold a sent transaction) keeps using it until the process exits.
            settle_store = settlement.open_store(client, module)
            step = settle_step(client, settle_store, settle_signer, node, policy or PolicySettings())
            settler = BackgroundSettler(step, settle_interval, server)
        services = []
        if web is not None:
            # Its own connection too: a scrape reads from a worker thread and must never hold the
            # lock of the connection the relay acknowledges receipts through.
            web_store = settlement.open_store(client, module)
            opened.append(web_store)
            # Token details come from the chain (six calls): off the event loop.
            dashboard = await asyncio.to_thread(node_dashboard_source, client, server, web_store)
            services.append(relay_web_service(
                web, server, store=web_store, journal=client.journal, chain_id=client.chain_id,
                bundle_dir=client.data_dir / "bundles", dashboard=dashboard,
            ))
        await serve_node(server, settler=settler, ready_file=ready_file, stop=stop, services=services)
    finally:
        for resource in reversed(opened):
            resource.close()
        await view.close()
