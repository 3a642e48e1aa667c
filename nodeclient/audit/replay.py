"""Replay every payment and reward from the contracts' events, in chain order, and check each step.

The replay is a pure function of ``ChainData`` (decoded events, block timestamps, the contracts'
parameters at the end block and, for a range that starts after the deployment, the state just before
it). It rebuilds what the contracts must hold — channels, escrow accounts, node credits, protocol
fees, per-epoch reward accounting — with the arithmetic of docs/dev/BRIEF.md, and records a finding
wherever an event disagrees with the rebuilt state. ``reconcile`` then compares the rebuilt state
with the contracts' views at the end block.

Per settlement it checks: the EIP-712 digest recomputed from the event's fields and the domain
(chain id, ReceiptSettlement) equals the event's digest; the event's signature recovers to the
consumer; the receipt was not stale; ``paid = min(owed, available + thawing)``; ``fee = paid ×
feeBps / 10000`` with ``feeBps`` as set by ``ParameterUpdated`` at that point; per transaction, the
node credit, the recorded usage (fee and latency-weighted weight, in the epoch of the block) and the
batch totals equal the sums of its receipts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from nodeclient.audit.crypto import domain_separator, receipt_digest, recover_address
from nodeclient.audit.events import Event
from nodeclient.audit.findings import Findings
from nodeclient.receipts.crypto import checksum_address

__all__ = [
    "BPS",
    "PARAMETERS",
    "Account",
    "BatchRecord",
    "ChainData",
    "Channel",
    "EpochState",
    "Ledger",
    "NodeEpoch",
    "NodeInfo",
    "ReceiptFields",
    "Seed",
    "SettlementRow",
    "latency_multiplier_bps",
    "preview_paid",
    "replay",
]

BPS = 10_000

#: (contract, ParameterUpdated name) of every parameter the replay's arithmetic depends on.
PARAMETERS: tuple[tuple[str, str], ...] = (
    ("ReceiptSettlement", "feeBps"),
    ("PaymentEscrow", "thawingPeriod"),
    ("RewardPool", "emissionPerEpoch"),
    ("RewardPool", "rewardPerFeeUnit"),
    ("RewardPool", "maxNodeShareBps"),
    ("RewardPool", "latencyLowMs"),
    ("RewardPool", "latencyHighMs"),
    ("RewardPool", "latencyFloorBps"),
)

_JAILED = "Jailed"
_ACTIVE = "Active"
#: RewardPool setters that snapshot the current epoch before they change a value.
_FREEZING = frozenset({"emissionPerEpoch", "rewardPerFeeUnit", "maxNodeShareBps"})


def latency_multiplier_bps(latency_ms: int, low_ms: int, high_ms: int, floor_bps: int) -> int:
    """``RewardMath.latencyMultiplierBps``: 10000 at or below ``low_ms``, linear to ``floor_bps`` at ``high_ms``."""
    if latency_ms <= low_ms:
        return BPS
    if latency_ms >= high_ms:
        return floor_bps
    return BPS - ((BPS - floor_bps) * (latency_ms - low_ms)) // (high_ms - low_ms)


@dataclass
class Channel:
    """Replayed state of one (consumer, node) channel."""

    settled_amount: int = 0
    settled_bytes: int = 0
    #: cumulativeAmount of the last receipt the contract settled (paid or not) on it.
    last_receipt_amount: int = 0


@dataclass
class Account:
    """Replayed escrow account of one consumer."""

    available: int = 0
    thawing: int = 0
    thaw_ends_at: int = 0


@dataclass
class NodeInfo:
    """What the registry's events say about a node."""

    operator: str = ""
    payout: str = ""
    capacity_mbps: int = 0
    status: str = "None"


@dataclass
class Seed:
    """State just before ``from_block`` for a range that does not start at the deployment (else empty)."""

    channels: dict[tuple[str, str], Channel] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    credits: dict[str, int] = field(default_factory=dict)
    accrued_fees: int = 0
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    node_epochs: dict[tuple[str, int], NodeEpoch] = field(default_factory=dict)
    epochs: dict[int, EpochState] = field(default_factory=dict)
    #: number of epochs finalised before ``from_block`` (``RewardPool.finalizedThrough``).
    finalized_through: int = 0


@dataclass
class ChainData:
    """Everything the replay reads, gathered by ``nodeclient.audit.source``."""

    chain_id: int
    contracts: dict[str, str]
    from_block: int
    to_block: int
    events: list[Event]
    timestamps: dict[int, int]
    genesis: int
    epoch_length: int
    params_end: dict[tuple[str, str], int]
    seed: Seed = field(default_factory=lambda: Seed())
    #: True when the range starts at the deployment block, so every account and total is in view.
    full_history: bool = True
    #: Settlement modules replaced by governance; channels carry over (the successor reads them through).
    retired_settlements: tuple[str, ...] = ()


@dataclass
class ReceiptFields:
    """The signed fields of one receipt: checksummed addresses, 0x-hex session id."""

    consumer: str
    node: str
    session_id: str
    cumulative_bytes: int
    cumulative_amount: int
    latency_ms: int
    issued_at: int


@dataclass
class SettlementRow(ReceiptFields):
    """One ``ReceiptSettled`` event with what the replay expected (a CSV row)."""

    block: int
    log_index: int
    tx_hash: str
    digest: str
    owed: int
    paid: int
    expected_paid: int
    fee: int
    expected_fee: int
    weight: int
    epoch: int
    batch_root: str
    ok: bool = True


@dataclass
class BatchRecord:
    """One ``settleMany`` transaction: its committed root and the receipts it settled or skipped."""

    node: str
    root: bytes
    block: int
    log_index: int
    tx_hash: str
    timestamp: int
    #: (consumer, digest, cumulativeAmount) of every settled or skipped receipt, in log order.
    receipts: list[tuple[str, bytes, int]]
    #: last settled receipt's cumulativeAmount per consumer before this batch.
    previous_amount: dict[str, int]


@dataclass
class NodeEpoch:
    """Replayed reward accounting of one node in one epoch (``RewardPool.nodeEpoch``)."""

    #: protocol fees of the node's receipts settled in the epoch.
    fee: int = 0
    #: latency-weighted fee (reward weight).
    weight: int = 0
    #: the node's reward before the epoch budget: min(weight × rate, cap).
    capped: int = 0
    #: its share of what the finalised epoch paid: capped × paid / totalCapped.
    reward: int = 0
    claimed: bool = False
    claimed_amount: int = 0


@dataclass
class EpochState:
    """Replayed accounting of one epoch (``RewardPool.epochInfo``)."""

    #: emission scheduled for the epoch.
    scheduled: int = 0
    #: Σ capped over the epoch's nodes.
    total_capped: int = 0
    #: scheduled + the previous epoch's carry, fixed at finalisation.
    budget: int = 0
    #: min(totalCapped, budget).
    paid: int = 0
    #: budget − paid, carried into the next epoch.
    carry: int = 0
    finalized: bool = False
    #: the epoch's schedule, cap and rate were fixed (first usage, or a parameter change during it).
    snapshotted: bool = False
    #: per-node reward cap: emission × maxNodeShareBps / 10000.
    cap: int = 0
    #: reward per unit of weight (rewardPerFeeUnit).
    rate: int = 0


@dataclass
class Ledger:
    """The replayed system at the end block, with the rows and findings of the replay."""

    data: ChainData
    findings: Findings
    channels: dict[tuple[str, str], Channel]
    accounts: dict[str, Account]
    credits: dict[str, int]
    accrued_fees: int
    nodes: dict[str, NodeInfo]
    node_epochs: dict[tuple[str, int], NodeEpoch]
    epochs: dict[int, EpochState]
    settlements: list[SettlementRow]
    batches: list[BatchRecord]
    params: dict[tuple[str, str], int]
    counts: dict[str, int]
    totals: dict[str, int]
    deposits: list[Event]
    finalized_through: int


class _Replayer:
    def __init__(self, data: ChainData) -> None:
        self.d = data
        self.f = Findings()
        seed = data.seed
        self.channels: dict[tuple[str, str], Channel] = defaultdict(Channel, {k: v for k, v in seed.channels.items()})
        self.accounts: dict[str, Account] = defaultdict(Account, {k: v for k, v in seed.accounts.items()})
        self.credits: dict[str, int] = defaultdict(int, seed.credits)
        self.accrued_fees = seed.accrued_fees
        self.nodes: dict[str, NodeInfo] = defaultdict(NodeInfo, {k: v for k, v in seed.nodes.items()})
        self.node_epochs: dict[tuple[str, int], NodeEpoch] = defaultdict(NodeEpoch, dict(seed.node_epochs))
        self.epochs: dict[int, EpochState] = defaultdict(EpochState, dict(seed.epochs))
        self.rows: list[SettlementRow] = []
        self.batches: list[BatchRecord] = []
        self.deposits: list[Event] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.totals: dict[str, int] = defaultdict(int)
        self.params = self._initial_params()
        settlement = data.contracts["ReceiptSettlement"]
        self.separator = domain_separator(data.chain_id, bytes.fromhex(settlement[2:]))
        # Receipts are signed for the module that settled them: one domain per settlement address.
        self.separators = {
            address.lower(): domain_separator(data.chain_id, bytes.fromhex(address[2:]))
            for address in (settlement, *data.retired_settlements)
        }
        self.finalized_through = seed.finalized_through
        self.last_finalized: int | None = seed.finalized_through - 1 if seed.finalized_through else None

    # ---------------------------------------------------------------- parameters
    def _initial_params(self) -> dict[tuple[str, str], int]:
        """Parameter values at ``from_block``: the first in-range update's old value, else the end value.

        Reading history this way needs no archive node: the ``ParameterUpdated`` chain itself carries
        the earlier values, and ``_on_parameter`` checks that the chain is unbroken.
        """
        values = dict(self.d.params_end)
        seen: set[tuple[str, str]] = set()
        for ev in self.d.events:
            if ev.name == "ParameterUpdated":
                key = (ev.contract, ev.args["name"])
                if key not in seen:
                    seen.add(key)
                    values[key] = int(ev.args["oldValue"])
        return values

    def _on_parameter(self, ev: Event) -> None:
        key = (ev.contract, ev.args["name"])
        old, new = int(ev.args["oldValue"]), int(ev.args["newValue"])
        current = self.params.get(key)
        if current is not None and current != old:
            self.f.mismatch(
                "parameter-chain",
                ev.where(),
                f"{ev.contract}.{key[1]} changed from {old} to {new}, but the previous update left it at {current}",
                position=ev.position,
            )
        self.params[key] = new
        self.counts["parameter_updates"] += 1

    def p(self, contract: str, name: str) -> int:
        return self.params.get((contract, name), 0)

    # ---------------------------------------------------------------- helpers
    def ts(self, block: int) -> int:
        return self.d.timestamps[block]

    def epoch_of(self, block: int) -> int:
        if self.d.epoch_length <= 0:
            return 0
        return (self.ts(block) - self.d.genesis) // self.d.epoch_length

    def check(self, ok: bool, code: str, ev: Event, message: str, **evidence: Any) -> bool:
        self.counts["checks"] += 1
        if not ok:
            self.f.mismatch(code, ev.where(), message, position=ev.position, evidence=_jsonable(evidence))
        return ok

    # ---------------------------------------------------------------- driver
    def run(self) -> Ledger:
        by_tx: list[list[Event]] = []
        for ev in self.d.events:
            if by_tx and by_tx[-1][0].tx_hash == ev.tx_hash and by_tx[-1][0].block_number == ev.block_number:
                by_tx[-1].append(ev)
            else:
                by_tx.append([ev])
        for group in by_tx:
            self._transaction(group)
        self.counts["events"] = len(self.d.events)
        self.counts["transactions"] = len(by_tx)
        return Ledger(
            data=self.d,
            findings=self.f,
            channels=dict(self.channels),
            accounts=dict(self.accounts),
            credits=dict(self.credits),
            accrued_fees=self.accrued_fees,
            nodes=dict(self.nodes),
            node_epochs=dict(self.node_epochs),
            epochs=dict(self.epochs),
            settlements=self.rows,
            batches=self.batches,
            params=dict(self.params),
            counts=dict(self.counts),
            totals=dict(self.totals),
            deposits=self.deposits,
            finalized_through=self.finalized_through,
        )

    def _transaction(self, group: list[Event]) -> None:
        settlement_events = [e for e in group if e.name in ("ReceiptSettled", "ReceiptSkipped")]
        if settlement_events:
            self._settlement_tx(group)
            return
        for ev in group:
            self._single(ev)

    def _single(self, ev: Event) -> None:
        handler = getattr(self, f"_on_{ev.name}", None)
        if handler is not None:
            handler(ev)
        else:
            self.counts["events_not_replayed"] += 1

    # ---------------------------------------------------------------- registry
    def _on_NodeRegistered(self, ev: Event) -> None:
        a = ev.args
        self.nodes[a["node"]] = NodeInfo(a["operator"], a["payout"], int(a["capacityMbps"]), _ACTIVE)
        self.counts["nodes_registered"] += 1

    def _on_NodeUpdated(self, ev: Event) -> None:
        info = self.nodes[ev.args["node"]]
        info.payout = ev.args["payout"]
        info.capacity_mbps = int(ev.args["capacityMbps"])

    def _on_NodeJailed(self, ev: Event) -> None:
        self.nodes[ev.args["node"]].status = _JAILED

    def _on_NodeUnjailed(self, ev: Event) -> None:
        self.nodes[ev.args["node"]].status = _ACTIVE

    def _on_NodeExitRequested(self, ev: Event) -> None:
        self.nodes[ev.args["node"]].status = "Exiting"

    # ---------------------------------------------------------------- escrow
    def _on_Deposited(self, ev: Event) -> None:
        self.accounts[ev.args["consumer"]].available += int(ev.args["amount"])
        self.totals["deposited"] += int(ev.args["amount"])
        self.counts["deposits"] += 1
        self.deposits.append(ev)

    def _on_ThawRequested(self, ev: Event) -> None:
        acct = self.accounts[ev.args["consumer"]]
        amount = int(ev.args["amount"])
        if self.check(
            amount <= acct.available,
            "escrow-thaw",
            ev,
            f"thaw of {amount} exceeds the replayed available balance {acct.available} of {ev.args['consumer']}",
        ):
            acct.available -= amount
        acct.thawing += amount
        expected_end = self.ts(ev.block_number) + self.p("PaymentEscrow", "thawingPeriod")
        self.check(
            int(ev.args["thawEndsAt"]) == expected_end,
            "escrow-thaw-end",
            ev,
            f"thawEndsAt {ev.args['thawEndsAt']} is not block time + thawingPeriod = {expected_end}",
        )
        acct.thaw_ends_at = int(ev.args["thawEndsAt"])
        self.counts["thaw_requests"] += 1

    def _on_ThawCancelled(self, ev: Event) -> None:
        acct = self.accounts[ev.args["consumer"]]
        amount = int(ev.args["amount"])
        self.check(
            amount == acct.thawing,
            "escrow-thaw-cancel",
            ev,
            f"cancelled {amount} but the replayed thawing balance of {ev.args['consumer']} is {acct.thawing}",
        )
        acct.available += amount
        acct.thawing -= min(amount, acct.thawing)
        acct.thaw_ends_at = 0
        self.counts["thaw_cancels"] += 1

    def _on_Withdrawn(self, ev: Event) -> None:
        acct = self.accounts[ev.args["consumer"]]
        amount = int(ev.args["amount"])
        self.check(
            amount == acct.thawing,
            "escrow-withdraw",
            ev,
            f"withdrew {amount} but the replayed thawing balance of {ev.args['consumer']} is {acct.thawing}",
        )
        self.check(
            self.ts(ev.block_number) >= acct.thaw_ends_at,
            "escrow-withdraw-early",
            ev,
            f"withdrawal at time {self.ts(ev.block_number)} before thawEndsAt {acct.thaw_ends_at}",
        )
        acct.thawing -= min(amount, acct.thawing)
        acct.thaw_ends_at = 0
        self.totals["withdrawn"] += amount
        self.counts["withdrawals"] += 1

    def _on_NodeCredited(self, ev: Event) -> None:
        # Only ReceiptSettlement may credit; outside a settlement transaction it is an anomaly.
        self.check(False, "credit-outside-settlement", ev, "NodeCredited outside a settlement transaction")
        self.credits[ev.args["node"]] += int(ev.args["net"])
        self.accrued_fees += int(ev.args["fee"])

    def _on_EarningsWithdrawn(self, ev: Event) -> None:
        node, amount = ev.args["node"], int(ev.args["amount"])
        self.check(
            amount == self.credits[node],
            "earnings-withdraw",
            ev,
            f"node {node} withdrew {amount} but its replayed credit is {self.credits[node]}",
        )
        expected_payout = self.nodes[node].payout if node in self.nodes else ""
        if expected_payout:
            self.check(
                ev.args["payout"] == expected_payout,
                "earnings-payout",
                ev,
                f"earnings of node {node} went to {ev.args['payout']}, not its registered payout {expected_payout}",
            )
        self.credits[node] = max(0, self.credits[node] - amount)
        self.totals["earnings_withdrawn"] += amount
        self.counts["earnings_withdrawals"] += 1

    def _on_FeesSwept(self, ev: Event) -> None:
        amount = int(ev.args["amount"])
        self.check(
            amount == self.accrued_fees,
            "fees-swept",
            ev,
            f"swept {amount} but the replayed accrued fees are {self.accrued_fees}",
        )
        self.accrued_fees = max(0, self.accrued_fees - amount)
        self.totals["fees_swept"] += amount

    # ---------------------------------------------------------------- parameters
    def _on_ParameterUpdated(self, ev: Event) -> None:
        if ev.contract == "RewardPool" and ev.args["name"] in _FREEZING:
            # The setter snapshots the current epoch with the old values first: no retroactive change.
            self._snapshot(self.epochs[self.epoch_of(ev.block_number)])
        self._on_parameter(ev)

    # ---------------------------------------------------------------- settlement
    def _settlement_tx(self, group: list[Event]) -> None:
        node_net: dict[str, int] = defaultdict(int)
        node_fee: dict[str, int] = defaultdict(int)
        node_weight: dict[str, int] = defaultdict(int)
        node_paid: dict[str, int] = defaultdict(int)
        settled = skipped = 0
        batch_receipts: list[tuple[str, bytes, int]] = []
        previous_amount: dict[str, int] = {}
        credited: list[Event] = []
        usage: list[Event] = []
        batch: list[Event] = []
        first = group[0]
        first_row = len(self.rows)
        for ev in group:
            if ev.name == "ReceiptSettled":
                consumer = ev.args["consumer"]
                previous_amount.setdefault(consumer, self.channels[(consumer, ev.args["node"])].last_receipt_amount)
                paid, fee, weight = self._receipt_settled(ev)
                node = ev.args["node"]
                node_paid[node] += paid
                node_fee[node] += fee
                node_net[node] += paid - fee
                node_weight[node] += weight
                settled += 1
                batch_receipts.append((consumer, ev.args["digest"], int(ev.args["cumulativeAmount"])))
            elif ev.name == "ReceiptSkipped":
                consumer = ev.args["consumer"]
                previous_amount.setdefault(consumer, self.channels[(consumer, ev.args["node"])].last_receipt_amount)
                self._receipt_skipped(ev)
                skipped += 1
                batch_receipts.append((consumer, ev.args["digest"], int(ev.args["cumulativeAmount"])))
            elif ev.name == "NodeCredited":
                credited.append(ev)
            elif ev.name == "UsageRecorded":
                usage.append(ev)
            elif ev.name == "BatchSettled":
                batch.append(ev)
            else:
                self._single(ev)

        nodes = sorted(set(node_paid) | {e.args["node"] for e in credited} | {e.args["node"] for e in usage})
        for node in nodes:
            self._check_credit(first, node, node_net[node], node_fee[node], [e for e in credited if e.args["node"] == node])
            self._check_usage(first, node, node_fee[node], node_weight[node], [e for e in usage if e.args["node"] == node])
        for ev in batch:
            a = ev.args
            node = a["node"]
            self.check(int(a["receiptCount"]) == settled + skipped, "batch-count", ev,
                       f"receiptCount {a['receiptCount']} but the transaction settled {settled} and skipped {skipped}")
            self.check(int(a["settledCount"]) == settled, "batch-settled-count", ev,
                       f"settledCount {a['settledCount']} but the transaction has {settled} ReceiptSettled events")
            self.check(int(a["paid"]) == node_paid[node], "batch-paid", ev,
                       f"batch paid {a['paid']} but its receipts paid {node_paid[node]}")
            self.check(int(a["fee"]) == node_fee[node], "batch-fee", ev,
                       f"batch fee {a['fee']} but its receipts' fees sum to {node_fee[node]}")
            self.batches.append(BatchRecord(
                node=node, root=a["bundleRoot"], block=ev.block_number, log_index=ev.log_index,
                tx_hash=ev.tx_hash, timestamp=self.ts(ev.block_number), receipts=batch_receipts,
                previous_amount=previous_amount,
            ))
            self.counts["batches"] += 1
            for row in self.rows[first_row:]:
                row.batch_root = _h(a["bundleRoot"])
        if len(batch) > 1:
            self.check(False, "batch-duplicate", batch[1], "more than one BatchSettled in one transaction")

    def _receipt_settled(self, ev: Event) -> tuple[int, int, int]:
        a = ev.args
        consumer, node = a["consumer"], a["node"]
        cum_bytes, cum_amount = int(a["cumulativeBytes"]), int(a["cumulativeAmount"])
        paid, fee = int(a["paid"]), int(a["fee"])
        self.counts["settlements"] += 1
        row_ok = self._check_receipt_signature(ev)

        channel = self.channels[(consumer, node)]
        acct = self.accounts[consumer]
        owed = cum_amount - channel.settled_amount
        row_ok = self.check(
            owed > 0 and cum_bytes >= channel.settled_bytes, "settlement-stale", ev,
            f"stale receipt settled: cumulativeAmount {cum_amount} vs settled {channel.settled_amount}, "
            f"cumulativeBytes {cum_bytes} vs settled {channel.settled_bytes}",
        ) and row_ok
        funds = acct.available + acct.thawing
        expected_paid = max(0, min(owed, funds))
        row_ok = self.check(
            paid == expected_paid, "settlement-paid", ev,
            f"paid {paid} but min(owed {max(owed, 0)}, escrow {funds} of {consumer}) = {expected_paid}",
        ) and row_ok
        fee_bps = self.p("ReceiptSettlement", "feeBps")
        expected_fee = paid * fee_bps // BPS
        row_ok = self.check(
            fee == expected_fee, "settlement-fee", ev,
            f"fee {fee} but paid {paid} × feeBps {fee_bps} / 10000 = {expected_fee}",
        ) and row_ok

        # Apply what the chain did (not what we expected): later checks then judge later events on
        # their own, instead of repeating this event's error in every one that follows.
        self.totals["bytes"] += max(0, cum_bytes - channel.settled_bytes)
        from_available = min(paid, acct.available)
        acct.available -= from_available
        acct.thawing -= min(paid - from_available, acct.thawing)
        channel.settled_amount += paid
        channel.settled_bytes = cum_bytes
        channel.last_receipt_amount = cum_amount
        weight = fee * self._reward_multiplier_bps(node, int(a["latencyMs"])) // BPS
        self.totals["paid"] += paid
        self.totals["fees"] += fee
        self.totals["net"] += paid - fee
        self.rows.append(SettlementRow(
            block=ev.block_number, log_index=ev.log_index, tx_hash=ev.tx_hash, consumer=consumer, node=node,
            session_id=_h(a["sessionId"]), cumulative_bytes=cum_bytes, cumulative_amount=cum_amount,
            latency_ms=int(a["latencyMs"]), issued_at=int(a["issuedAt"]), digest=_h(a["digest"]), owed=max(owed, 0),
            paid=paid, expected_paid=expected_paid, fee=fee, expected_fee=expected_fee, weight=weight,
            epoch=self.epoch_of(ev.block_number), batch_root="", ok=row_ok,
        ))
        return paid, fee, weight

    def _check_receipt_signature(self, ev: Event) -> bool:
        """The event's digest is the EIP-712 digest of its fields here, and its signature the consumer's."""
        a = ev.args
        digest: bytes = a["digest"]
        fields = (bytes.fromhex(a["consumer"][2:]), bytes.fromhex(a["node"][2:]), a["sessionId"],
                  int(a["cumulativeBytes"]), int(a["cumulativeAmount"]), int(a["latencyMs"]), int(a["issuedAt"]))
        ok = True
        try:
            # A settlement emitted by a retired module was signed over that module's domain.
            expected_digest = receipt_digest(fields, self.separators.get(ev.address.lower(), self.separator))
        except (OverflowError, ValueError) as exc:
            expected_digest = b""
            ok = self.check(False, "settlement-fields", ev, f"receipt fields out of range: {exc}")
        ok = self.check(
            expected_digest == digest, "settlement-digest", ev,
            f"digest {_h(digest)} differs from the EIP-712 digest {_h(expected_digest)} recomputed from the "
            f"event's fields for chain {self.d.chain_id} and ReceiptSettlement "
            f"{ev.address or self.d.contracts['ReceiptSettlement']}",
        ) and ok
        recovered = recover_address(expected_digest or digest, a["signature"])
        self.counts["signatures_recovered"] += 1
        signer = checksum_address(recovered) if recovered else "nothing (invalid or malleable signature)"
        return self.check(
            recovered is not None and signer == a["consumer"], "settlement-signature", ev,
            f"signature recovers to {signer}, not the consumer {a['consumer']}",
        ) and ok

    def _reward_multiplier_bps(self, node: str, latency: int) -> int:
        """The reward weight per fee unit (bps) of a receipt of ``node`` with ``latency`` ms."""
        low = self.p("RewardPool", "latencyLowMs")
        high = self.p("RewardPool", "latencyHighMs")
        # Only Active nodes earn reward weight; Jailed and Exiting nodes are paid at weight 0. A node
        # unknown to the replay (registered before a partial range, not seeded) is taken as Active.
        rewarded = self.nodes[node].status == _ACTIVE if node in self.nodes else True
        if not rewarded:
            return 0
        if high > low:
            return latency_multiplier_bps(latency, low, high, self.p("RewardPool", "latencyFloorBps"))
        return BPS  # unreachable with the contract's bounds (lowMs < highMs); keep the replay total

    def _receipt_skipped(self, ev: Event) -> None:
        a = ev.args
        channel = self.channels[(a["consumer"], a["node"])]
        self.counts["skipped"] += 1
        self.check(
            int(a["settledAmount"]) == channel.settled_amount, "skip-settled", ev,
            f"skipped receipt reports settledAmount {a['settledAmount']}, the replayed channel "
            f"({a['consumer']}, {a['node']}) has {channel.settled_amount}",
        )

    def _check_credit(self, ev: Event, node: str, net: int, fee: int, credited: list[Event]) -> None:
        got_net = sum(int(e.args["net"]) for e in credited)
        got_fee = sum(int(e.args["fee"]) for e in credited)
        where = credited[0] if credited else ev
        self.check(
            got_net == net and got_fee == fee, "settlement-credit", where,
            f"node {node} was credited net {got_net} and fee {got_fee}; its receipts in this transaction "
            f"sum to net {net} and fee {fee}",
        )
        self.credits[node] += got_net
        self.accrued_fees += got_fee

    def _check_usage(self, ev: Event, node: str, fee: int, weight: int, usage: list[Event]) -> None:
        got_fee = sum(int(e.args["fee"]) for e in usage)
        got_weight = sum(int(e.args["weight"]) for e in usage)
        where = usage[0] if usage else ev
        self.check(
            got_fee == fee and got_weight == weight, "usage-recorded", where,
            f"usage recorded for node {node} is fee {got_fee} weight {got_weight}; its receipts in this "
            f"transaction give fee {fee} weight {weight}",
        )
        epoch = self.epoch_of(ev.block_number)
        for u in usage:
            self.check(
                int(u.args["epoch"]) == epoch, "usage-epoch", u,
                f"usage recorded in epoch {u.args['epoch']} but the block's time puts it in epoch {epoch}",
            )
            self._record_usage(u)

    def _record_usage(self, ev: Event) -> None:
        node, epoch = ev.args["node"], int(ev.args["epoch"])
        fee, weight = int(ev.args["fee"]), int(ev.args["weight"])
        self.check(weight <= fee, "usage-weight", ev, f"weight {weight} exceeds fee {fee}")
        state = self.epochs[epoch]
        self.check(not state.finalized, "usage-after-finalize", ev, f"usage recorded into finalised epoch {epoch}")
        self._snapshot(state)
        ne = self.node_epochs[(node, epoch)]
        ne.fee += fee
        ne.weight += weight
        new_capped = min(ne.weight * state.rate, state.cap)
        state.total_capped += new_capped - ne.capped
        ne.capped = new_capped
        self.counts["usage_records"] += 1

    def _snapshot(self, state: EpochState) -> None:
        """Fix an epoch's schedule, cap and rate (RewardPool._snapshot) from the parameters in force."""
        if state.snapshotted:
            return
        emission = self.p("RewardPool", "emissionPerEpoch")
        state.scheduled = emission
        state.cap = emission * self.p("RewardPool", "maxNodeShareBps") // BPS
        state.rate = self.p("RewardPool", "rewardPerFeeUnit")
        state.snapshotted = True

    def _on_UsageRecorded(self, ev: Event) -> None:
        self.check(False, "usage-outside-settlement", ev, "UsageRecorded outside a settlement transaction")
        self._record_usage(ev)

    # ---------------------------------------------------------------- rewards
    def _on_EpochFinalized(self, ev: Event) -> None:
        a = ev.args
        epoch = int(a["epoch"])
        expected_epoch = 0 if self.last_finalized is None else self.last_finalized + 1
        self.check(epoch == expected_epoch, "epoch-order", ev, f"epoch {epoch} finalised, expected {expected_epoch}")
        state = self.epochs[epoch]
        previous_carry = self.epochs[epoch - 1].carry if epoch > 0 and (epoch - 1) in self.epochs else 0
        if not state.snapshotted:
            # Never snapshotted: its schedule is the emission in force when it is finalised.
            state.scheduled = self.p("RewardPool", "emissionPerEpoch")
        state.budget = state.scheduled + previous_carry
        state.paid = min(state.total_capped, state.budget)
        state.carry = state.budget - state.paid
        state.finalized = True
        self.check(int(a["budget"]) == state.budget, "epoch-budget", ev,
                   f"epoch {epoch} budget {a['budget']} but scheduled {state.scheduled} + carry {previous_carry} = {state.budget}")
        self.check(int(a["totalCapped"]) == state.total_capped, "epoch-total-capped", ev,
                   f"epoch {epoch} totalCapped {a['totalCapped']} but the replayed capped rewards sum to {state.total_capped}")
        self.check(int(a["paid"]) == state.paid, "epoch-paid", ev,
                   f"epoch {epoch} paid {a['paid']} but min(totalCapped, budget) = {state.paid}")
        self.check(int(a["carry"]) == state.carry, "epoch-carry", ev,
                   f"epoch {epoch} carry {a['carry']} but budget − paid = {state.carry}")
        for (node, e), ne in self.node_epochs.items():
            if e == epoch:
                ne.reward = ne.capped * state.paid // state.total_capped if state.total_capped else 0
        self.last_finalized = epoch
        self.finalized_through = epoch + 1
        self.totals["emitted"] += state.scheduled
        self.counts["epochs_finalized"] += 1

    def _on_RewardClaimed(self, ev: Event) -> None:
        a = ev.args
        node, epoch, amount = a["node"], int(a["epoch"]), int(a["amount"])
        ne = self.node_epochs[(node, epoch)]
        state = self.epochs.get(epoch)
        self.check(state is not None and state.finalized, "claim-unfinalized", ev, f"claim of epoch {epoch} before it was finalised")
        self.check(not ne.claimed, "claim-double", ev, f"node {node} claimed epoch {epoch} twice")
        self.check(amount == ne.reward, "claim-amount", ev,
                   f"node {node} claimed {amount} for epoch {epoch}; the replayed reward is {ne.reward}")
        if node in self.nodes and self.nodes[node].payout:
            self.check(a["payout"] == self.nodes[node].payout, "claim-payout", ev,
                       f"reward of node {node} minted to {a['payout']}, not its payout {self.nodes[node].payout}")
        ne.claimed = True
        ne.claimed_amount = amount
        self.totals["rewards_claimed"] += amount
        self.counts["claims"] += 1


def _h(value: bytes) -> str:
    return "0x" + value.hex()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return _h(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def preview_paid(ledger: Ledger, epoch: int) -> tuple[int, int]:
    """(paid, totalCapped) an unfinalised past ``epoch`` would get (RewardPool._preview)."""
    carry = 0
    if ledger.finalized_through:
        carry = ledger.epochs[ledger.finalized_through - 1].carry if (ledger.finalized_through - 1) in ledger.epochs else 0
    emission = ledger.params.get(("RewardPool", "emissionPerEpoch"), 0)
    paid = total = 0
    for e in range(ledger.finalized_through, epoch + 1):
        st = ledger.epochs.get(e)
        scheduled = st.scheduled if st is not None and st.snapshotted else emission
        total = st.total_capped if st is not None else 0
        budget = scheduled + carry
        paid = min(total, budget)
        carry = budget - paid
    return paid, total


def replay(data: ChainData) -> Ledger:
    """Replay ``data`` in chain order; the ledger holds the rebuilt state, rows and findings."""
    return _Replayer(data).run()
