"""A node's itemised earnings ledger, built from chain events and this client's transaction journal.

Entries:

- ``settlement``: one per ``ReceiptSettled`` event for the node — gross (``paid``, what the consumer's
  escrow paid), protocol fee, net (credited to the node in escrow);
- ``withdrawal``: ``EarningsWithdrawn`` — net credit paid out to the payout address;
- ``reward``: ``RewardClaimed`` — KuotaToken minted to the payout address for an epoch;
- ``gas``: every transaction this client journaled for the node (register, settle, claim…), with
  ``gasUsed × effectiveGasPrice``.

The totals reconcile with the chain by construction, and :attr:`NodeEarnings.consistent` checks it:
Σ net = escrow credit now + Σ withdrawn.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from nodeclient.chain.client import ChainClient
from nodeclient.chain.ops import get_node
from nodeclient.rewards import rewards_summary

__all__ = ["CSV_COLUMNS", "LedgerEntry", "NodeEarnings", "node_earnings", "to_csv"]

CSV_COLUMNS = (
    "kind", "block", "timestamp", "tx_hash", "consumer", "epoch", "gross", "fee", "net", "reward", "gas_wei", "note",
)


@dataclass(frozen=True)
class LedgerEntry:
    """One line of the ledger. Amounts: payment-token base units; ``reward`` in KuotaToken wei; gas in wei."""

    kind: str
    block: int | None
    timestamp: int | None
    tx_hash: str
    consumer: str = ""
    epoch: int | None = None
    gross: int = 0
    fee: int = 0
    net: int = 0
    reward: int = 0
    gas_wei: int = 0
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "kind": self.kind,
            "block": self.block,
            "timestamp": self.timestamp,
            "txHash": self.tx_hash,
            "consumer": self.consumer or None,
            "epoch": self.epoch,
            "gross": self.gross,
            "fee": self.fee,
            "net": self.net,
            "reward": self.reward,
            "gasWei": self.gas_wei,
            "note": self.note,
        }


@dataclass(frozen=True)
class NodeEarnings:
    """The ledger of one node and its totals."""

    node: str
    payout: str
    entries: list[LedgerEntry]
    credit: int
    rewards_claimable: int
    claimable_epochs: list[int] = field(default_factory=list)

    @property
    def gross(self) -> int:
        """Σ paid by consumers."""
        return sum(e.gross for e in self.entries if e.kind == "settlement")

    @property
    def fee(self) -> int:
        """Σ protocol fees."""
        return sum(e.fee for e in self.entries if e.kind == "settlement")

    @property
    def net(self) -> int:
        """Σ net credited to the node."""
        return sum(e.net for e in self.entries if e.kind == "settlement")

    @property
    def withdrawn(self) -> int:
        """Σ credit paid out to the payout address."""
        return sum(e.net for e in self.entries if e.kind == "withdrawal")

    @property
    def rewards_claimed(self) -> int:
        """Σ rewards minted to the payout address."""
        return sum(e.reward for e in self.entries if e.kind == "reward")

    @property
    def gas_wei(self) -> int:
        """Σ gas this client paid for the node's transactions."""
        return sum(e.gas_wei for e in self.entries if e.kind == "gas")

    @property
    def consistent(self) -> bool:
        """Σ net == credit still in escrow + Σ withdrawn (the escrow's own accounting)."""
        return self.net == self.credit + self.withdrawn

    def totals(self) -> dict[str, Any]:
        """Stable machine form of the totals."""
        return {
            "gross": self.gross,
            "fee": self.fee,
            "net": self.net,
            "withdrawn": self.withdrawn,
            "credit": self.credit,
            "rewardsClaimed": self.rewards_claimed,
            "rewardsClaimable": self.rewards_claimable,
            "claimableEpochs": self.claimable_epochs,
            "gasWei": self.gas_wei,
            "settlements": sum(1 for e in self.entries if e.kind == "settlement"),
            "consistent": self.consistent,
        }

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "node": self.node,
            "payout": self.payout,
            "totals": self.totals(),
            "entries": [e.to_json() for e in self.entries],
        }


def _tx(ev: Any) -> str:
    return "0x" + bytes(ev["transactionHash"]).hex()


def node_earnings(client: ChainClient, node: str) -> NodeEarnings:
    """Build the ledger of ``node`` from the deployment block to the latest block."""
    info = get_node(client, node)
    timestamps: dict[int, int] = {}

    def when(block: int) -> int:
        if block not in timestamps:
            timestamps[block] = client.block_timestamp(block)
        return timestamps[block]

    entries: list[LedgerEntry] = []
    for ev in client.events("ReceiptSettlement", "ReceiptSettled", {"node": node}):
        a = ev["args"]
        entries.append(
            LedgerEntry(
                "settlement", ev["blockNumber"], when(ev["blockNumber"]), _tx(ev), consumer=a["consumer"],
                gross=int(a["paid"]), fee=int(a["fee"]), net=int(a["paid"]) - int(a["fee"]),
                note=f"cumulative {int(a['cumulativeAmount'])} for {int(a['cumulativeBytes'])} bytes",
            )
        )
    for ev in client.events("PaymentEscrow", "EarningsWithdrawn", {"node": node}):
        entries.append(
            LedgerEntry("withdrawal", ev["blockNumber"], when(ev["blockNumber"]), _tx(ev), net=int(ev["args"]["amount"]),
                        note=f"to {ev['args']['payout']}")
        )
    for ev in client.events("RewardPool", "RewardClaimed", {"node": node}):
        entries.append(
            LedgerEntry("reward", ev["blockNumber"], when(ev["blockNumber"]), _tx(ev), epoch=int(ev["args"]["epoch"]),
                        reward=int(ev["args"]["amount"]), note=f"to {ev['args']['payout']}")
        )
    for record in client.journal.records(client.chain_id, node=node):
        if record.status in ("mined", "failed"):
            entries.append(
                LedgerEntry("gas", record.block_number,
                            when(record.block_number) if record.block_number is not None else None,
                            record.tx_hash, gas_wei=record.gas_cost,
                            note=f"{record.kind}: {record.description}" + (" (reverted)" if record.status == "failed" else ""))
            )
    entries.sort(key=lambda e: (e.block or 0, e.kind, e.tx_hash, e.consumer))
    summary = rewards_summary(client, node)
    return NodeEarnings(
        node=node, payout=info.payout, entries=entries, credit=info.credit,
        rewards_claimable=summary.claimable_total, claimable_epochs=summary.claimable_epochs,
    )


def to_csv(earnings: NodeEarnings) -> str:
    """The ledger as CSV (header + one row per entry), amounts as integers in base units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in earnings.entries:
        writer.writerow(
            [e.kind, e.block if e.block is not None else "", e.timestamp if e.timestamp is not None else "", e.tx_hash,
             e.consumer, e.epoch if e.epoch is not None else "", e.gross, e.fee, e.net, e.reward, e.gas_wei, e.note]
        )
    return out.getvalue()
