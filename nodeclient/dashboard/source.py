"""``DashboardSource``: where the dashboard reads one node's figures, and how to wire it to a running node.

Every figure comes from what the node already records, nothing is counted twice: live relay counters
and today's / this month's bytes from the relay (``RelayServer.snapshot``, read on the event loop),
unsettled value, traffic history and settlement batches from the receipt store, gas from the
transaction journal, earnings and rewards from the chain (``nodeclient.earnings.node_earnings``,
which also folds in the journal's gas). The blocking readers (SQLite, RPC) are only ever called from a
worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodeclient.earnings import NodeEarnings, node_earnings
from nodeclient.relay.limits import Caps

__all__ = ["EXPLORERS", "DashboardSource", "TokenUnit", "explorer_for", "node_dashboard_source"]

#: Transaction pages of the public explorers of the chains Kuota is deployed on, by chain id.
EXPLORERS: dict[int, str] = {
    1: "https://etherscan.io/tx/{tx}",
    10: "https://optimistic.etherscan.io/tx/{tx}",
    8453: "https://basescan.org/tx/{tx}",
    42161: "https://arbiscan.io/tx/{tx}",
    84532: "https://sepolia.basescan.org/tx/{tx}",
    11155111: "https://sepolia.etherscan.io/tx/{tx}",
}


def explorer_for(chain_id: int) -> str | None:
    """The explorer transaction URL template of ``chain_id`` (``{tx}`` is the hash), None for local chains."""
    return EXPLORERS.get(chain_id)


@dataclass(frozen=True)
class TokenUnit:
    """How payment-token base units are shown: 6 decimals and "USD" for the local mock stablecoin."""

    symbol: str
    decimals: int


@dataclass
class DashboardSource:
    """One node's data for the dashboard. Any reader may be None (a relay without settlement, say)."""

    node: str
    chain_id: int
    token: TokenUnit
    reward_token: TokenUnit = TokenUnit("KUOTA", 18)
    store: Any | None = None
    """The receipt store (its own connection: it is read from worker threads)."""
    journal: Any | None = None
    """The transaction journal (gas of each settlement transaction)."""
    snapshot: Callable[[], dict[str, Any]] | None = None
    """The relay's ``RelayServer.snapshot`` (called on the event loop, where its counters change)."""
    caps: Caps | None = None
    """The operator's byte caps (the quota that today's and this month's bytes are shown against)."""
    earnings: Callable[[], NodeEarnings] | None = None
    """Builds the node's earnings ledger from the chain (blocking; cached for ``earnings_ttl_s``)."""
    explorer_tx_url: str | None = None
    """Transaction link template with ``{tx}``; None links to the node's own ``/api/tx/<hash>``."""
    earnings_ttl_s: float = 30.0


def node_dashboard_source(
    client: Any, server: Any, store: Any, *, explorer_tx_url: str | None = None
) -> DashboardSource:
    """The source of a running node: ``client`` a ChainClient, ``server`` its RelayServer, ``store`` a store connection."""
    from nodeclient.chain import ops

    escrow = client.deployment.address("PaymentEscrow")
    payment = ops.token_info(client, "PaymentToken", escrow)
    reward = ops.token_info(client, "KuotaToken", escrow)
    node = server.node
    return DashboardSource(
        node=node,
        chain_id=client.chain_id,
        token=TokenUnit(payment.symbol, payment.decimals),
        reward_token=TokenUnit(reward.symbol, reward.decimals),
        store=store,
        journal=client.journal,
        snapshot=server.snapshot,
        caps=server.usage.caps,
        earnings=lambda: node_earnings(client, node),
        explorer_tx_url=explorer_tx_url or explorer_for(client.chain_id),
    )
