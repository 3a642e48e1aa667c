"""Lanes: part of a consumer's escrow allocated to one node and settled through LaneSettlement.

A consumer keeps its deposit in PaymentEscrow and allocates from it to a lane per node; the node's
receipts (signed over LaneSettlement's EIP-712 domain) are paid from that lane alone, one storage
slot per lane and one event per batch (docs/PROTOCOL.md, "Lanes"). This module holds the reads
(:func:`lane_of`, :func:`lanes_of`), the allocation policies (:func:`plan_allocation`) and the call
builders the ``kuota escrow allocate|lanes|close`` commands send; nothing here signs or sends.

Which settlement module a node uses is a setting (``settlement.module``): ``receipts`` (pooled
escrow, ReceiptSettlement) or ``lanes``. :func:`module_contract` maps it to the contract, which is
also the verifying contract of the receipts' domain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nodeclient.chain.client import ChainClient
from nodeclient.errors import ConfigError, RefusedError
from nodeclient.receipts.signing import ReceiptDomain

__all__ = [
    "LANES_CONTRACT",
    "MODULE_CONTRACTS",
    "AllocationPolicy",
    "Lane",
    "LanesNotDeployedError",
    "SettlementModule",
    "allocate_call",
    "finish_close_call",
    "lane_nodes",
    "lane_of",
    "lanes_of",
    "module_contract",
    "plan_allocation",
    "request_close_call",
    "settlement_of_domain",
]

SettlementModule = Literal["receipts", "lanes"]
"""``receipts``: pooled escrow through ReceiptSettlement; ``lanes``: per-node lanes through LaneSettlement."""

LANES_CONTRACT = "LaneSettlement"
MODULE_CONTRACTS: dict[str, str] = {"receipts": "ReceiptSettlement", "lanes": LANES_CONTRACT}

AllocationPolicy = Literal["each", "split", "top-up"]
"""``each``: AMOUNT to every node; ``split``: AMOUNT shared evenly; ``top-up``: each lane up to AMOUNT."""


class LanesNotDeployedError(ConfigError):
    """The deployment has no LaneSettlement (it is deployed only when ``laneCloseDelay`` is set)."""

    def __init__(self, chain_id: int) -> None:
        super().__init__(
            f"the deployment on chain {chain_id} has no LaneSettlement; deploy it (deploy parameter "
            "laneCloseDelay) or settle through ReceiptSettlement (settlement.module = \"receipts\")"
        )


def module_contract(client: ChainClient, module: str) -> str:
    """The contract name of settlement ``module``; refuses ``lanes`` on a deployment without it."""
    try:
        name = MODULE_CONTRACTS[module]
    except KeyError:
        raise ConfigError(f"settlement module {module!r} is not one of {', '.join(MODULE_CONTRACTS)}") from None
    if name not in client.deployment.contracts:
        raise LanesNotDeployedError(client.chain_id)
    return name


def settlement_of_domain(client: ChainClient, domain: ReceiptDomain | None) -> str:
    """The settlement contract receipts of ``domain`` are settled by: its verifying contract's name
    (ReceiptSettlement for a store not yet bound to a domain)."""
    if domain is None:
        return MODULE_CONTRACTS["receipts"]
    for name in MODULE_CONTRACTS.values():
        if client.deployment.contracts.get(name, "").lower() == domain.verifying_contract.lower():
            return name
    raise ConfigError(
        f"receipts signed for {domain.verifying_contract} belong to neither ReceiptSettlement nor LaneSettlement "
        f"of chain {client.chain_id}"
    )


@dataclass(frozen=True)
class Lane:
    """One lane as LaneSettlement holds it."""

    consumer: str
    node: str
    balance: int
    settled_amount: int
    settled_bytes: int
    closing: bool
    close_at: int

    def pays_at(self, timestamp: int) -> bool:
        """Whether a receipt settled at ``timestamp`` can be paid (before the close, if one is pending)."""
        return self.balance > 0 and (not self.closing or timestamp < self.close_at)

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "consumer": self.consumer,
            "node": self.node,
            "balance": self.balance,
            "settledAmount": self.settled_amount,
            "settledBytes": self.settled_bytes,
            "closing": self.closing,
            "closeAt": self.close_at,
        }


def _lanes(client: ChainClient) -> Any:
    module_contract(client, "lanes")
    return client.contract(LANES_CONTRACT)


def lane_of(client: ChainClient, consumer: str, node: str) -> Lane:
    """The lane (consumer, node); all zero when the consumer never allocated to it."""
    raw, close_at = client.call(_lanes(client).functions.laneOf(consumer, node), "LaneSettlement.laneOf()")
    balance, settled_amount, settled_bytes, closing = raw
    return Lane(consumer, node, int(balance), int(settled_amount), int(settled_bytes), bool(closing), int(close_at))


def lane_nodes(client: ChainClient, consumer: str) -> list[str]:
    """Every node ``consumer`` ever allocated a lane to, from the ``LaneAllocated`` events."""
    event = _lanes(client).events.LaneAllocated
    logs = client.guarded(
        lambda: event.get_logs(argument_filters={"consumer": consumer}, from_block=client.deployment.block_number),
        "LaneSettlement LaneAllocated logs",
    )
    return sorted({str(log["args"]["node"]) for log in logs}, key=str.lower)


def lanes_of(client: ChainClient, consumer: str, nodes: Sequence[str] | None = None) -> list[Lane]:
    """The consumer's lanes with ``nodes`` (default: every node it allocated to)."""
    return [lane_of(client, consumer, node) for node in (nodes if nodes is not None else lane_nodes(client, consumer))]


def plan_allocation(
    nodes: Sequence[str], amount: int, policy: AllocationPolicy = "each", balances: Mapping[str, int] | None = None
) -> list[tuple[str, int]]:
    """What to allocate to each of ``nodes`` (base units), nodes needing nothing left out.

    ``each`` gives ``amount`` to every node; ``split`` shares ``amount`` evenly (the remainder, a few
    base units, to the first nodes); ``top-up`` brings each lane's balance (``balances``) up to ``amount``.
    """
    if not nodes:
        raise RefusedError("no node to allocate to: name at least one")
    if len({n.lower() for n in nodes}) != len(nodes):
        raise RefusedError(f"a node is named twice in {', '.join(nodes)}")
    if amount <= 0:
        raise RefusedError(f"the amount to allocate must be positive, got {amount}")
    if policy == "each":
        plan = [(node, amount) for node in nodes]
    elif policy == "split":
        share, rest = divmod(amount, len(nodes))
        plan = [(node, share + (1 if i < rest else 0)) for i, node in enumerate(nodes)]
    elif policy == "top-up":
        held = balances or {}
        plan = [(node, max(0, amount - held.get(node, 0))) for node in nodes]
    else:
        raise RefusedError(f"allocation policy {policy!r} is not one of each, split, top-up")
    return [(node, value) for node, value in plan if value > 0]


def allocate_call(client: ChainClient, plan: Sequence[tuple[str, int]]) -> Any:
    """``allocate`` for one lane, ``allocateMany`` (one escrow debit) for several."""
    lanes = _lanes(client)
    if len(plan) == 1:
        return lanes.functions.allocate(plan[0][0], plan[0][1])
    return lanes.functions.allocateMany([n for n, _ in plan], [a for _, a in plan])


def request_close_call(client: ChainClient, node: str) -> Any:
    """``requestClose(node)``: the lane pays its node until now + closeDelay."""
    return _lanes(client).functions.requestClose(node)


def finish_close_call(client: ChainClient, node: str) -> Any:
    """``finishClose(node)``: after closeAt, the lane's balance returns to available escrow."""
    return _lanes(client).functions.finishClose(node)
