"""Reward epochs of a node: what it earned per epoch, what it can claim, and claiming it.

Epochs with usage are found from the RewardPool's ``UsageRecorded`` events for the node (indexed),
so a node that has run for months does not cost one RPC call per empty epoch. Only finished epochs
(``< currentEpoch``) can be claimed. A claim is worth it under the same gas-aware policy as
settlement, with rewards valued at the protocol's reference price (``amount / rewardPerFeeUnit``
payment-token units).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodeclient._utils.policy import Decision, decide
from nodeclient.chain.client import ChainClient, TxResult
from nodeclient.chain.ops import get_node
from nodeclient.config import PolicySettings
from nodeclient.errors import KuotaError, RefusedError

__all__ = [
    "ClaimPlan",
    "EpochNotClaimableError",
    "EpochReward",
    "FinalizationBacklogError",
    "RewardsSummary",
    "claim",
    "finalize_backlog",
    "pending_finalizations",
    "plan_claim",
    "rewards_summary",
]


class EpochNotClaimableError(KuotaError):
    """An epoch asked for is unfinished, already claimed, or holds nothing for the node."""

    def __init__(self, node: str, epoch: int, reason: str) -> None:
        super().__init__(f"epoch {epoch} cannot be claimed for node {node}: {reason}")


class FinalizationBacklogError(KuotaError):
    """More epochs wait for finalisation than one claim may finalise (RewardPool.MAX_FINALIZE_PER_CALL)."""

    def __init__(self, pending: int, per_call: int) -> None:
        super().__init__(
            f"{pending} reward epochs wait to be finalised, more than the {per_call} one claim may finalise; "
            "run `kuota rewards finalize` first (anyone may, in bounded steps), then claim"
        )


def pending_finalizations(client: ChainClient, through_epoch: int) -> tuple[int, int]:
    """Return (epochs still to finalise so that ``through_epoch`` is final, the pool's per-call limit)."""
    pool = client.contract("RewardPool").functions
    done = int(pool.finalizedThrough().call())
    return max(0, through_epoch + 1 - done), int(pool.MAX_FINALIZE_PER_CALL().call())


def finalize_backlog(client: ChainClient, signer: Any, *, progress: Any = None) -> list[TxResult]:
    """Finalise every finished epoch, ``MAX_FINALIZE_PER_CALL`` per transaction (bounded gas each)."""
    pool = client.contract("RewardPool").functions
    current = int(pool.currentEpoch().call())
    results: list[TxResult] = []
    while True:
        pending, per_call = pending_finalizations(client, current - 1)
        if pending == 0:
            return results
        step = min(pending, per_call)
        results.append(
            client.transact(signer, pool.finalizeEpochs(step), f"finalise {step} reward epochs", kind="finalize", progress=progress)
        )


@dataclass(frozen=True)
class EpochReward:
    """One epoch of one node."""

    epoch: int
    fee: int
    weight: int
    capped: int
    claimed: bool
    claimable: int
    finished: bool

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "epoch": self.epoch,
            "fee": self.fee,
            "weight": self.weight,
            "capped": self.capped,
            "claimed": self.claimed,
            "claimable": self.claimable,
            "finished": self.finished,
        }


@dataclass(frozen=True)
class RewardsSummary:
    """A node's reward position."""

    node: str
    payout: str
    current_epoch: int
    epoch_length: int
    reward_per_fee_unit: int
    epochs: list[EpochReward]
    claimed_total: int

    @property
    def claimable_total(self) -> int:
        """Σ claimable over finished, unclaimed epochs."""
        return sum(e.claimable for e in self.epochs if e.finished and not e.claimed)

    @property
    def claimable_epochs(self) -> list[int]:
        """Finished, unclaimed epochs with something to claim."""
        return [e.epoch for e in self.epochs if e.finished and not e.claimed and e.claimable > 0]

    def value_in_payment_units(self, amount: int) -> int:
        """``amount`` of reward-token wei at the reference price, in payment-token base units."""
        return amount // self.reward_per_fee_unit if self.reward_per_fee_unit else 0

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "node": self.node,
            "payout": self.payout,
            "currentEpoch": self.current_epoch,
            "epochLength": self.epoch_length,
            "rewardPerFeeUnit": self.reward_per_fee_unit,
            "epochs": [e.to_json() for e in self.epochs],
            "claimableTotal": self.claimable_total,
            "claimableEpochs": self.claimable_epochs,
            "claimedTotal": self.claimed_total,
        }


@dataclass(frozen=True)
class ClaimPlan:
    """What a claim would do and whether the policy says it is worth it."""

    node: str
    epochs: list[int]
    amount: int
    decision: Decision
    quote: Any

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "node": self.node,
            "epochs": self.epochs,
            "amount": self.amount,
            "decision": self.decision.to_json(),
            "fee": self.quote.to_json() if self.quote is not None else None,
        }


def rewards_summary(client: ChainClient, node: str) -> RewardsSummary:
    """Per-epoch rewards of ``node`` for every epoch in which it recorded usage."""
    info = get_node(client, node)
    pool = client.contract("RewardPool")
    current = int(client.call(pool.functions.currentEpoch(), "RewardPool.currentEpoch()"))
    epochs = sorted({int(ev["args"]["epoch"]) for ev in client.events("RewardPool", "UsageRecorded", {"node": node})})
    rows: list[EpochReward] = []
    for epoch in epochs:
        fee, weight, capped, claimed = client.call(pool.functions.nodeEpoch(node, epoch), "RewardPool.nodeEpoch()")
        finished = epoch < current
        claimable = 0
        if finished and not claimed:
            claimable = int(client.call(pool.functions.claimable(node, epoch), "RewardPool.claimable()"))
        rows.append(EpochReward(epoch, int(fee), int(weight), int(capped), bool(claimed), claimable, finished))
    claimed_total = sum(int(ev["args"]["amount"]) for ev in client.events("RewardPool", "RewardClaimed", {"node": node}))
    return RewardsSummary(
        node=node,
        payout=info.payout,
        current_epoch=current,
        epoch_length=int(client.call(pool.functions.epochLength(), "RewardPool.epochLength()")),
        reward_per_fee_unit=int(client.call(pool.functions.rewardPerFeeUnit(), "RewardPool.rewardPerFeeUnit()")),
        epochs=rows,
        claimed_total=claimed_total,
    )


def plan_claim(
    client: ChainClient,
    sender: str,
    node: str,
    policy: PolicySettings,
    *,
    epochs: list[int] | None = None,
    force: bool = False,
) -> ClaimPlan:
    """Choose epochs to claim (default: all claimable), estimate the claim and apply the policy.

    Raises:
        EpochNotClaimableError: an epoch given explicitly is unfinished, claimed, or empty.
    """
    summary = rewards_summary(client, node)
    by_epoch = {e.epoch: e for e in summary.epochs}
    if epochs is None:
        chosen = summary.claimable_epochs
    else:
        chosen = sorted(set(epochs))
        for epoch in chosen:
            row = by_epoch.get(epoch)
            if epoch >= summary.current_epoch:
                raise EpochNotClaimableError(node, epoch, f"it is not finished (current epoch {summary.current_epoch})")
            if row is None or (row.claimable == 0 and not row.claimed):
                raise EpochNotClaimableError(node, epoch, "the node has nothing to claim in it")
            if row.claimed:
                raise EpochNotClaimableError(node, epoch, "it was already claimed")
    amount = sum(by_epoch[e].claimable for e in chosen)
    quote = None
    gas_cost = 0
    if chosen:
        # A claim finalises the epochs it needs, but at most MAX_FINALIZE_PER_CALL of them (a bounded
        # gas cost after a long idle period); beyond that its estimate would only show a revert.
        pending, per_call = pending_finalizations(client, max(chosen))
        if pending > per_call:
            raise FinalizationBacklogError(pending, per_call)
        quote = client.estimate(sender, client.contract("RewardPool").functions.claim(node, chosen), f"claim rewards of {node}")
        gas_cost = quote.expected_cost
    decision = decide(summary.value_in_payment_units(amount), gas_cost, policy, force=force or epochs is not None)
    return ClaimPlan(node=node, epochs=chosen, amount=amount, decision=decision, quote=quote)


def claim(client: ChainClient, signer: Any, plan: ClaimPlan, *, progress: Any = None) -> TxResult:
    """Send the claim of ``plan`` (the CLI confirms first). Rewards are minted to the payout address."""
    if not plan.epochs:
        raise RefusedError(f"node {plan.node} has no finished, unclaimed epoch with rewards")
    call = client.contract("RewardPool").functions.claim(plan.node, plan.epochs)
    return client.transact(
        signer, call, f"claim rewards of {plan.node} for epochs {plan.epochs}", kind="claim", node=plan.node, progress=progress
    )
