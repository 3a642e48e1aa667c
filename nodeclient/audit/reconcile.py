"""Compare the replayed ledger with the contracts' own views at the end block.

Every figure the replay rebuilt is read back from the chain (``channelOf``, ``accountOf``,
``creditOf``, ``accruedFees``, the escrow's token balance, ``nodeEpoch``, ``epochInfo``, ``claimable``,
``finalizedThrough``, ``totalClaimed``), all pinned to the end block; each disagreement is a
``mismatch`` finding that names the view and both values.
"""

from __future__ import annotations

from typing import Any

from nodeclient.audit.findings import Findings
from nodeclient.audit.replay import Ledger, preview_paid
from nodeclient.audit.source import EndState

__all__ = ["reconcile"]


class _Checks:
    """Findings and the count of comparisons, all at one end block."""

    def __init__(self, block: int) -> None:
        self.block = block
        self.findings = Findings()
        self.count = 0

    def __call__(self, ok: bool, code: str, record: str, message: str) -> None:
        self.count += 1
        if not ok:
            self.findings.mismatch(code, record, f"{message} at block {self.block}", position=(self.block,))


def reconcile(ledger: Ledger, state: EndState) -> tuple[Findings, dict[str, Any]]:
    """Findings for every view that differs from the replay, and the on-chain totals read."""
    check = _Checks(state.block)
    _check_channels(ledger, state, check)
    total_available, total_thawing = _check_accounts(ledger, state, check)
    total_credits = _check_credits(ledger, state, check)
    fees = state.accrued_fees()
    check(fees == ledger.accrued_fees, "state-fees", "PaymentEscrow.accruedFees",
          f"accruedFees = {fees}, replayed {ledger.accrued_fees}")
    balance = state.escrow_token_balance()
    replayed_sum = (sum(a.available + a.thawing for a in ledger.accounts.values())
                    + sum(ledger.credits.values()) + ledger.accrued_fees)
    if ledger.data.full_history:
        # Conservation is checkable only when every account is known, i.e. over the full history.
        check(balance == replayed_sum, "state-escrow-balance", "PaymentEscrow token balance",
              f"the escrow holds {balance} of the payment token; replayed Σ available + Σ thawing + Σ credits "
              f"+ accrued fees = {replayed_sum}")
    finalized_through = int(state.reward_view("finalizedThrough"))
    check(finalized_through == ledger.finalized_through, "state-finalized-through", "RewardPool.finalizedThrough",
          f"finalizedThrough = {finalized_through}, replayed {ledger.finalized_through}")
    _check_epochs(ledger, state, check)
    _check_node_epochs(ledger, state, check)
    total_claimed = int(state.reward_view("totalClaimed"))
    claimed = ledger.totals.get("rewards_claimed", 0)
    if ledger.data.full_history:
        check(total_claimed == claimed, "state-total-claimed", "RewardPool.totalClaimed",
              f"totalClaimed = {total_claimed}, replayed {claimed}")
    onchain_totals = {
        "escrow_token_balance": balance,
        "accrued_fees": fees,
        "available": total_available,
        "thawing": total_thawing,
        "credits": total_credits,
        "total_claimed": total_claimed,
        "finalized_through": finalized_through,
    }
    return check.findings, {"counts": {"state_checks": check.count}, "onchain": onchain_totals}


def _check_channels(ledger: Ledger, state: EndState, check: _Checks) -> None:
    for (consumer, node), ch in sorted(ledger.channels.items()):
        amount, nbytes = state.channel_of(consumer, node)
        check(
            (int(amount), int(nbytes)) == (ch.settled_amount, ch.settled_bytes),
            "state-channel",
            f"channel ({consumer}, {node})",
            f"channelOf = (settledAmount {amount}, settledBytes {nbytes}), replayed "
            f"({ch.settled_amount}, {ch.settled_bytes})",
        )


def _check_accounts(ledger: Ledger, state: EndState, check: _Checks) -> tuple[int, int]:
    """Compare every escrow account; return the on-chain (Σ available, Σ thawing)."""
    total_available = total_thawing = 0
    for consumer, acct in sorted(ledger.accounts.items()):
        available, thawing, ends = state.account_of(consumer)
        total_available += int(available)
        total_thawing += int(thawing)
        ok = (int(available), int(thawing)) == (acct.available, acct.thawing)
        # thawEndsAt only means something while funds are thawing.
        if acct.thawing:
            ok = ok and int(ends) == acct.thaw_ends_at
        check(ok, "state-account", f"escrow account {consumer}",
              f"accountOf = (available {available}, thawing {thawing}, thawEndsAt {ends}), replayed "
              f"({acct.available}, {acct.thawing}, {acct.thaw_ends_at})")
    return total_available, total_thawing


def _check_credits(ledger: Ledger, state: EndState, check: _Checks) -> int:
    """Compare every node credit; return the on-chain Σ credits."""
    total_credits = 0
    for node, credit in sorted(ledger.credits.items()):
        onchain = state.credit_of(node)
        total_credits += onchain
        check(onchain == credit, "state-credit", f"node credit {node}", f"creditOf = {onchain}, replayed {credit}")
    return total_credits


def _check_epochs(ledger: Ledger, state: EndState, check: _Checks) -> None:
    for epoch, ep in sorted(ledger.epochs.items()):
        scheduled, total, budget, paid, carry, finalized = state.epoch_info(epoch)
        onchain = (int(scheduled), int(total), int(budget), int(paid), int(carry), bool(finalized))
        if ep.finalized:
            replayed: tuple[Any, ...] = (ep.scheduled, ep.total_capped, ep.budget, ep.paid, ep.carry, True)
        else:
            # An open epoch has no budget yet; its schedule is the snapshot, or the emission in force.
            scheduled_now = ep.scheduled if ep.snapshotted else ledger.params.get(("RewardPool", "emissionPerEpoch"), 0)
            replayed = (scheduled_now, ep.total_capped, 0, 0, 0, False)
        check(onchain == replayed, "state-epoch", f"epoch {epoch}", f"epochInfo = {onchain}, replayed {replayed}")


def _check_node_epochs(ledger: Ledger, state: EndState, check: _Checks) -> None:
    length = ledger.data.epoch_length
    end_time = ledger.data.timestamps[state.block]
    current_epoch = (end_time - ledger.data.genesis) // length if length else 0
    for (node, epoch), ne in sorted(ledger.node_epochs.items()):
        fee, weight, capped, claimed = state.node_epoch(node, epoch)
        check(
            (int(fee), int(weight), int(capped), bool(claimed)) == (ne.fee, ne.weight, ne.capped, ne.claimed),
            "state-node-epoch", f"node {node} epoch {epoch}",
            f"nodeEpoch = (fee {fee}, weight {weight}, capped {capped}, claimed {claimed}), replayed "
            f"({ne.fee}, {ne.weight}, {ne.capped}, {ne.claimed})",
        )
        if epoch >= current_epoch:
            continue
        ep = ledger.epochs.get(epoch)
        if ep is not None and ep.finalized:
            expected = ne.reward
        else:
            # Ended but not finalised: the view previews finalisation, and so does the replay.
            paid, total = preview_paid(ledger, epoch)
            expected = ne.capped * paid // total if total and paid else 0
        expected = 0 if ne.claimed or ne.weight == 0 else expected
        claimable = state.claimable(node, epoch)
        check(claimable == expected, "state-claimable", f"node {node} epoch {epoch}",
              f"claimable = {claimable}, replayed {expected}")
