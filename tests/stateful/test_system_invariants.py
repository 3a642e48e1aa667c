"""Stateful (hypothesis) test of the whole Kuota system: escrow, settlement, staking and rewards.

Three consumers and three nodes (two operators) act in random order: deposits, thaw requests,
cancels and withdrawals, receipts signed and settled one by one or in batches (fresh, resubmitted,
stale, lower-bytes and under-funded ones), node earnings withdrawals, fee sweeps, stake, stake-for,
unbond, withdraw and slash, node exit, jail/unjail, time travel across thaw, unbonding and epoch boundaries,
epoch finalisation, claims, and an emission change. A Python model predicts every outcome
(including the exact custom error of every refused call) and the invariants compare model and chain
after every step:

- escrow conservation: payment-token balance of PaymentEscrow == Σ available + Σ thawing + Σ node
  credits + accruedFees == deposits − withdrawals − earnings withdrawn − fees swept;
- stake conservation: KUOTA balance of Staking == totalBonded + totalUnbonding == Σ bonded + Σ
  unbonding of the operators; Σ slashed == Σ reporter rewards + Σ burned, and KUOTA's total supply
  moves by exactly the rewards claimed minus what slashing burned;
- reward conservation: Σ claimed + Σ claimable + carry + dust == Σ emitted (scheduled of finalised
  epochs), with dust ≤ 1 wei per node per epoch; every epoch's budget, paid and carry, and every
  node's reward, equal the model's;
- channel monotonicity: settledAmount never decreases and never exceeds the largest cumulative
  amount the consumer signed for the channel;
- per-node reward ≤ rewardPerFeeUnit × fee and ≤ the epoch's per-node cap.

Every example opens with traffic on every node (``initialize_traffic``) and closes, if all its steps
and invariants passed, with an epilogue that ends the epoch, finalises and claims everything and
checks the books again, so each example's usage goes through caps, scaling, dust and claims
whichever rules hypothesis enabled for it (it enables a random subset per example: swarm testing).

Size: ``KUOTA_STATEFUL_EXAMPLES`` examples × up to ``KUOTA_STATEFUL_STEPS`` steps, default 25 × 12
(2–4 minutes on a shared 2-core machine). Hypothesis keeps its first ~10 examples tiny (1–3 steps)
and runs extra short examples while it explores; the test prints the examples, steps and outcomes
it actually ran (``-s``). Raise both for a soak, e.g. ``KUOTA_STATEFUL_EXAMPLES=300 KUOTA_STATEFUL_STEPS=40``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field

from brownie import chain
from brownie.exceptions import VirtualMachineError
from brownie.test import strategy
from eth_utils import keccak
from integration.support import BPS, Receipt, check_error, event_list, latency_multiplier_bps, sign_receipt

from nodeclient.receipts.packing import pack_receipt

EXAMPLES = int(os.environ.get("KUOTA_STATEFUL_EXAMPLES", "25"))
STEPS = int(os.environ.get("KUOTA_STATEFUL_STEPS", "12"))

MAX_DEPOSIT = 5 * 10**9  # 5000 USD (6 decimals)
MAX_RECEIPT_STEP = 3 * 10**9  # big enough to hit the per-node cap in one receipt
# NodeRegistry.NodeStatus values.
ACTIVE, EXITING, JAILED = 1, 2, 3
# What ran, by rule name (plus "examples"): reported by the test and checked to be non-trivial.
STATS: Counter[str] = Counter()
# Calls whose outcome depends on a deadline are kept this far from it (Anvil's clock is wall time).
TIME_MARGIN = 3


def expect_error(call, args: tuple, sender, name: str, values: tuple | None = None) -> None:
    """``call(*args)`` from ``sender`` must revert with custom error ``name`` (and ``values``, if given)."""
    try:
        call.call(*args, {"from": sender})
    except VirtualMachineError as exc:
        check_error(str(exc.revert_msg), name, values)
    else:
        raise AssertionError(f"expected the call to revert with {name}, it succeeded")


@dataclass
class Channel:
    """One (consumer, node) channel: what was signed and what the chain has settled."""

    signed_amount: int = 0
    signed_bytes: int = 0
    max_signed_amount: int = 0
    settled_amount: int = 0
    settled_bytes: int = 0
    last_seen_settled: int = 0
    receipts: list[tuple[Receipt, bytes]] = field(default_factory=list)


@dataclass
class EpochModel:
    """A reward epoch as the model sees it."""

    scheduled: int | None = None
    fee: dict[int, int] = field(default_factory=dict)
    weight: dict[int, int] = field(default_factory=dict)


class SystemMachine:
    """Hypothesis rules over the deployed system; the model lives on the instance, reset per example."""

    st_consumer = strategy("uint8", max_value=2)
    st_node = strategy("uint8", max_value=2)
    st_operator = strategy("uint8", max_value=1)
    st_deposit = strategy("uint256", min_value=1, max_value=MAX_DEPOSIT)
    st_step = strategy("uint256", min_value=1, max_value=MAX_RECEIPT_STEP)
    st_bytes = strategy("uint256", min_value=0, max_value=2**40)
    st_latency = strategy("uint32", max_value=1_000)
    st_bps = strategy("uint16", min_value=1, max_value=BPS)
    st_seconds = strategy("uint32", min_value=1, max_value=700)
    st_stake = strategy("uint256", min_value=1, max_value=1_500 * 10**18)
    st_kinds = strategy("uint8[]", min_length=1, max_length=5, max_value=3)
    st_count = strategy("uint8", min_value=1, max_value=20)
    st_emission = strategy("uint256", min_value=0, max_value=50 * 10**18)
    st_wait = strategy("bool")
    st_flag = strategy("bool")
    st_traffic = strategy("uint256[9]", max_value=300 * 10**6)
    st_kind = strategy("uint8", max_value=2)

    def __init__(cls, world) -> None:
        cls.world = world
        cls.s = world.system
        cls.n_consumers = len(world.consumers)
        cls.n_nodes = len(world.nodes)
        cls.genesis = int(world.system.rewards.genesis())
        cls.epoch_length = int(world.system.rewards.epochLength())
        cls.rpfu = int(world.system.rewards.rewardPerFeeUnit())
        cls.max_share_bps = int(world.system.rewards.maxNodeShareBps())
        cls.fee_bps = int(world.system.settlement.feeBps())
        cls.curve = tuple(int(v) for v in world.system.rewards.latencyCurve())
        cls.min_stake = int(world.system.registry.minStakePerNode())
        cls.reporter_bps = int(world.system.staking.slashReporterBps())

    def setup(self) -> None:
        """Per example: read the starting state (the chain was reverted to the fixture's snapshot)."""
        s, w = self.s, self.world
        STATS["examples"] += 1
        self.escrow_base = int(s.payment_token.balanceOf(s.escrow))
        self.deposited = self.withdrawn = self.earnings_paid = self.fees_swept = 0
        self.accounts = [list(s.escrow.accountOf(c.address)) for c in w.consumers]
        self.credits = [int(s.escrow.creditOf(n.address)) for n in w.nodes]
        self.fees = int(s.escrow.accruedFees())
        self.channels = {(c, n): Channel() for c in range(self.n_consumers) for n in range(self.n_nodes)}
        self.status = [ACTIVE] * self.n_nodes
        self.bonded = [int(s.staking.bondedOf(op)) for op in w.operators]
        self.unbonding = [list(s.staking.unbondingOf(op)) for op in w.operators]
        self.slashed = self.reporter_rewards = self.burned = 0
        self.supply_base = int(s.token.totalSupply())
        self.emission = int(s.rewards.emissionPerEpoch())
        self.epochs: dict[int, EpochModel] = {}
        self.finalized = int(s.rewards.finalizedThrough())
        self.carry = int(s.rewards.carry())
        self.emitted = int(s.rewards.totalEmitted())
        self.paid_total = int(s.rewards.totalPaid())
        self.claimed_total = int(s.rewards.totalClaimed())
        self.rewards: dict[tuple[int, int], int] = {}  # (node, epoch) -> reward, once finalised
        self.claimed: set[tuple[int, int]] = set()
        self.dust = 0
        self.steps = 0
        self.verified: dict[str, int] = {}

    def _count(self) -> None:
        """Tally the calling action, so the test can state (and check) what actually ran."""
        name = sys._getframe(1).f_code.co_name
        STATS[name.removeprefix("_do_").removeprefix("rule_")] += 1
        STATS["~steps"] += 1
        self.steps += 1

    # ------------------------------------------------------------------ rules (one action each)

    def initialize_traffic(self, st_traffic, st_latency) -> None:
        """Every example opens with traffic: each consumer pays each node 0–300 USD, settled in one
        batch per node, so every example has usage to finalise, cap, scale and claim. Odd nodes
        settle through settleManyPacked (the node client's call), even ones through settleMany."""
        self._count()
        for n in range(self.n_nodes):
            items = [
                (self._sign_next(c, n, amount, amount * 1_000, st_latency), c)
                for c in range(self.n_consumers)
                if (amount := st_traffic[n * self.n_consumers + c]) > 0
            ]
            if items:
                self._settle_batch(
                    n,
                    [i[0][0] for i in items],
                    [i[0][1] for i in items],
                    [i[1] for i in items],
                    packed=n % 2 == 1,
                )

    def rule_deposit(self, st_consumer, st_deposit, st_flag) -> None:
        """A consumer deposits, or a third party deposits for it."""
        (self._do_deposit_for if st_flag else self._do_deposit)(st_consumer, st_deposit)

    def rule_request_thaw(self, st_consumer, st_bps, st_flag) -> None:
        """A consumer thaws a share of its available balance, or asks for more than it has."""
        if st_flag:
            self._do_request_thaw_too_much(st_consumer)
        else:
            self._do_request_thaw(st_consumer, st_bps)

    def rule_cancel_or_withdraw(self, st_consumer, st_flag, st_wait) -> None:
        """A consumer cancels its thaw, or withdraws what is thawing (maybe after waiting)."""
        if st_flag:
            self._do_cancel_thaw(st_consumer)
        else:
            self._do_withdraw(st_consumer, st_wait)

    def rule_settle(self, st_consumer, st_node, st_kind, st_step, st_bytes, st_latency) -> None:
        """One receipt settled alone: a fresh one, the latest again, or one with fewer bytes."""
        if st_kind == 0:
            self._do_settle_fresh(st_consumer, st_node, st_step, st_bytes, st_latency)
        elif st_kind == 1:
            self._do_resettle_latest(st_consumer, st_node)
        else:
            self._do_settle_lower_bytes(st_consumer, st_node, st_step)

    def rule_pay_out(self, st_node, st_flag) -> None:
        """Anyone pushes a node's earnings to its payout, or the fees to the treasury."""
        if st_flag:
            self._do_sweep_fees()
        else:
            self._do_withdraw_earnings(st_node)

    def rule_stake(self, st_operator, st_stake, st_flag) -> None:
        """An operator bonds more stake, or a stranger bonds it for the operator."""
        (self._do_stake_for if st_flag else self._do_stake)(st_operator, st_stake)

    def rule_rewards(self, st_node, st_count, st_wait, st_flag) -> None:
        """Anyone finalises epochs, or claims a node's rewards (maybe after the epoch ends)."""
        if st_flag:
            self._do_finalize(st_count)
        else:
            self._do_claim(st_node, st_count, st_wait)

    # ------------------------------------------------------------------ escrow

    def _do_deposit(self, st_consumer, st_deposit) -> None:
        """A consumer mints mock USD and deposits it."""
        self._count()
        consumer = self.world.consumers[st_consumer].account
        self.s.payment_token.mint(consumer, st_deposit, {"from": consumer})
        tx = self.s.escrow.deposit(st_deposit, {"from": consumer})
        assert tx.events["Deposited"]["amount"] == st_deposit
        self.accounts[st_consumer][0] += st_deposit
        self.deposited += st_deposit

    def _do_deposit_for(self, st_consumer, st_deposit) -> None:
        """A third party funds a consumer's escrow."""
        self._count()
        payer = self.world.stranger
        self.s.payment_token.mint(payer, st_deposit, {"from": payer})
        self.s.payment_token.approve(self.s.escrow, st_deposit, {"from": payer})
        consumer = self.world.consumers[st_consumer].account
        self.s.escrow.depositFor(consumer, st_deposit, {"from": payer})
        self.accounts[st_consumer][0] += st_deposit
        self.deposited += st_deposit

    def _do_request_thaw(self, st_consumer, st_bps) -> None:
        """A consumer moves a share of its available balance to thawing (restarting the timer)."""
        self._count()
        consumer = self.world.consumers[st_consumer].account
        available = self.accounts[st_consumer][0]
        amount = available * st_bps // BPS
        if amount == 0:
            expect_error(self.s.escrow.requestThaw, (0,), consumer, "EscrowZeroAmount")
            return
        tx = self.s.escrow.requestThaw(amount, {"from": consumer})
        ends = tx.timestamp + int(self.s.escrow.thawingPeriod())
        assert tx.events["ThawRequested"]["thawEndsAt"] == ends
        self.accounts[st_consumer][0] -= amount
        self.accounts[st_consumer][1] += amount
        self.accounts[st_consumer][2] = ends

    def _do_request_thaw_too_much(self, st_consumer) -> None:
        """Asking to thaw more than is available is refused with the balance in the error."""
        self._count()
        consumer = self.world.consumers[st_consumer].account
        available = self.accounts[st_consumer][0]
        expect_error(
            self.s.escrow.requestThaw,
            (available + 1,),
            consumer,
            "EscrowInsufficientAvailable",
            (consumer.address, available, available + 1),
        )

    def _do_cancel_thaw(self, st_consumer) -> None:
        """A consumer cancels its thaw: thawing goes back to available."""
        self._count()
        consumer = self.world.consumers[st_consumer].account
        account = self.accounts[st_consumer]
        if account[1] == 0:
            expect_error(self.s.escrow.cancelThaw, (), consumer, "EscrowNothingThawing", (consumer.address,))
            return
        self.s.escrow.cancelThaw({"from": consumer})
        account[0] += account[1]
        account[1] = 0
        account[2] = 0

    def _do_withdraw(self, st_consumer, st_wait) -> None:
        """A consumer withdraws what is still thawing (waiting for the thaw to end first, or not)."""
        self._count()
        consumer = self.world.consumers[st_consumer].account
        account = self.accounts[st_consumer]
        if account[1] == 0:
            expect_error(self.s.escrow.withdraw, (), consumer, "EscrowNothingThawing", (consumer.address,))
            return
        if st_wait:
            chain.sleep(max(account[2] - chain.time(), 0) + TIME_MARGIN)
        if abs(chain.time() - account[2]) < TIME_MARGIN:
            chain.sleep(2 * TIME_MARGIN)
        if chain.time() < account[2]:
            expect_error(self.s.escrow.withdraw, (), consumer, "EscrowThawNotFinished")
            return
        before = int(self.s.payment_token.balanceOf(consumer))
        self.s.escrow.withdraw({"from": consumer})
        assert int(self.s.payment_token.balanceOf(consumer)) - before == account[1]
        self.withdrawn += account[1]
        account[1] = 0
        account[2] = 0

    def _do_withdraw_earnings(self, st_node) -> None:
        """Anyone pushes a node's credited earnings to its payout address."""
        self._count()
        node = self.world.nodes[st_node].address
        caller = self.world.stranger
        if self.credits[st_node] == 0:
            expect_error(self.s.escrow.withdrawEarnings, (node,), caller, "EscrowNothingToWithdraw", (node,))
            return
        payout = self.world.payouts[st_node]
        before = int(self.s.payment_token.balanceOf(payout))
        self.s.escrow.withdrawEarnings(node, {"from": caller})
        assert int(self.s.payment_token.balanceOf(payout)) - before == self.credits[st_node]
        self.earnings_paid += self.credits[st_node]
        self.credits[st_node] = 0

    def _do_sweep_fees(self) -> None:
        """Anyone sweeps the accrued protocol fees to the treasury."""
        self._count()
        if self.fees == 0:
            expect_error(self.s.escrow.sweepFees, (), self.world.stranger, "EscrowZeroAmount")
            return
        before = int(self.s.payment_token.balanceOf(self.world.treasury))
        self.s.escrow.sweepFees({"from": self.world.stranger})
        assert int(self.s.payment_token.balanceOf(self.world.treasury)) - before == self.fees
        self.fees_swept += self.fees
        self.fees = 0

    # ------------------------------------------------------------------ settlement

    def _sign(self, c: int, n: int, amount: int, nbytes: int, latency: int) -> tuple[Receipt, bytes]:
        consumer = self.world.consumers[c]
        receipt = Receipt(
            consumer=consumer.address,
            node=self.world.nodes[n].address,
            session_id=keccak(text=f"session-{c}-{n}-{len(self.channels[c, n].receipts) // 4}"),
            cumulative_bytes=nbytes,
            cumulative_amount=amount,
            latency_ms=latency,
            issued_at=chain.time(),
        )
        signature = sign_receipt(
            receipt, consumer.private_key, self.world.chain_id, self.s.settlement.address
        )
        channel = self.channels[c, n]
        channel.receipts.append((receipt, signature))
        channel.max_signed_amount = max(channel.max_signed_amount, amount)
        return receipt, signature

    def _sign_next(self, c: int, n: int, step: int, extra_bytes: int, latency: int) -> tuple[Receipt, bytes]:
        channel = self.channels[c, n]
        channel.signed_amount += step
        channel.signed_bytes += extra_bytes
        return self._sign(c, n, channel.signed_amount, channel.signed_bytes, latency)

    def _apply(self, receipt: Receipt, c: int, n: int) -> tuple[bool, int, int, int]:
        """Model one receipt: (settled?, paid, fee, weight); updates balances and the channel."""
        channel = self.channels[c, n]
        if (
            receipt.cumulative_amount <= channel.settled_amount
            or receipt.cumulative_bytes < channel.settled_bytes
        ):
            return False, 0, 0, 0
        owed = receipt.cumulative_amount - channel.settled_amount
        account = self.accounts[c]
        from_available = min(owed, account[0])
        from_thawing = min(owed - from_available, account[1])
        account[0] -= from_available
        account[1] -= from_thawing
        paid = from_available + from_thawing
        STATS["~receipts paid partly (escrow short)"] += paid < owed
        STATS["~receipts paid from thawing funds"] += from_thawing > 0
        channel.settled_amount += paid
        channel.settled_bytes = receipt.cumulative_bytes
        fee = paid * self.fee_bps // BPS
        multiplier = latency_multiplier_bps(receipt.latency_ms, *self.curve)
        # Only Active nodes earn reward weight; Exiting and Jailed nodes are paid without it.
        weight = fee * multiplier // BPS if self.status[n] == ACTIVE else 0
        return True, paid, fee, weight

    def _book(self, n: int, tx, paid: int, fee: int, weight: int) -> None:
        """Book a settlement transaction's credit, fee and reward usage in the model and check them."""
        self.credits[n] += paid - fee
        self.fees += fee
        if fee == 0 and weight == 0:
            return
        epoch = (tx.timestamp - self.genesis) // self.epoch_length
        record = self.epochs.setdefault(epoch, EpochModel())
        record.fee[n] = record.fee.get(n, 0) + fee
        record.weight[n] = record.weight.get(n, 0) + weight
        scheduled = int(self.s.rewards.epochInfo(epoch)[0])
        if record.scheduled is None:
            # Snapshotted at the epoch's first usage record: the emission in force right now.
            assert scheduled == self.emission, (epoch, scheduled, self.emission)
            record.scheduled = scheduled
        assert scheduled == record.scheduled
        chain_fee, chain_weight, chain_capped, claimed = self.s.rewards.nodeEpoch(
            self.world.nodes[n].address, epoch
        )
        assert (chain_fee, chain_weight) == (record.fee[n], record.weight[n])
        assert chain_capped == self._capped(record, n)
        assert not claimed

    def _capped(self, record: EpochModel, n: int) -> int:
        cap = record.scheduled * self.max_share_bps // BPS
        return min(record.weight.get(n, 0) * self.rpfu, cap)

    def _do_settle_fresh(self, st_consumer, st_node, st_step, st_bytes, st_latency) -> None:
        """The consumer signs a higher cumulative receipt and the node settles it (maybe under-funded)."""
        self._count()
        receipt, signature = self._sign_next(st_consumer, st_node, st_step, st_bytes, st_latency)
        self._settle_one(st_consumer, st_node, receipt, signature)

    def _do_resettle_latest(self, st_consumer, st_node) -> None:
        """A stranger resubmits the channel's latest receipt: pays the rest after a top-up, else stale."""
        self._count()
        channel = self.channels[st_consumer, st_node]
        if not channel.receipts:
            return
        receipt, signature = max(channel.receipts, key=lambda item: item[0].cumulative_amount)
        self._settle_one(st_consumer, st_node, receipt, signature)

    def _do_settle_lower_bytes(self, st_consumer, st_node, st_step) -> None:
        """A receipt with a higher amount but fewer bytes than settled is refused as stale."""
        self._count()
        channel = self.channels[st_consumer, st_node]
        if channel.settled_bytes == 0:
            return
        receipt, signature = self._sign(
            st_consumer, st_node, channel.settled_amount + st_step, channel.settled_bytes - 1, 10
        )
        self._settle_one(st_consumer, st_node, receipt, signature)

    def _settle_one(self, c: int, n: int, receipt: Receipt, signature: bytes) -> None:
        channel = self.channels[c, n]
        before = channel.settled_amount
        ok, paid, fee, weight = self._apply(receipt, c, n)
        if not ok:
            expect_error(
                self.s.settlement.settle,
                (receipt.as_tuple(), signature),
                self.world.stranger,
                "SettlementStaleReceipt",
                (receipt.consumer, receipt.node, receipt.cumulative_amount, before),
            )
            STATS["~stale receipts refused"] += 1
            return
        tx = self.s.settlement.settle(receipt.as_tuple(), signature, {"from": self.world.stranger})
        event = tx.events["ReceiptSettled"]
        assert (event["paid"], event["fee"]) == (paid, fee)
        assert event["cumulativeAmount"] == receipt.cumulative_amount
        self._book(n, tx, paid, fee, weight)
        STATS["~settled receipts"] += 1

    def rule_settle_many(self, st_node, st_kinds, st_step, st_bytes, st_latency, st_flag) -> None:
        """A batch for one node mixing fresh, resubmitted, old (stale) and lower-bytes receipts, sent
        through settleMany or (st_flag) the node client's settleManyPacked: one model for both."""
        self._count()
        receipts, signatures, owners = [], [], []
        for i, kind in enumerate(st_kinds):
            c = (st_node + i) % self.n_consumers
            channel = self.channels[c, st_node]
            if kind == 0 or not channel.receipts:
                item = self._sign_next(c, st_node, st_step // (i + 1) + 1, st_bytes // (i + 1), st_latency)
            elif kind == 1:
                item = max(channel.receipts, key=lambda pair: pair[0].cumulative_amount)
            elif kind == 2:
                item = channel.receipts[0]
            else:
                low = max(channel.settled_bytes, channel.signed_bytes)
                item = self._sign(c, st_node, channel.signed_amount + 1, max(low - 1, 0), st_latency)
            receipts.append(item[0])
            signatures.append(item[1])
            owners.append(c)
        self._settle_batch(st_node, receipts, signatures, owners, packed=st_flag)

    def _settle_batch(
        self,
        node: int,
        receipts: list[Receipt],
        signatures: list[bytes],
        owners: list[int],
        packed: bool = False,
    ) -> None:
        """settleMany (or settleManyPacked) for ``node``: the model predicts which receipts settle, pay
        and skip."""
        total_paid = total_fee = total_weight = settled = 0
        expected_skips = 0
        for receipt, c in zip(receipts, owners):
            ok, paid, fee, weight = self._apply(receipt, c, node)
            settled += ok
            expected_skips += not ok
            total_paid += paid
            total_fee += fee
            total_weight += weight
        root = keccak(b"".join(bytes(self.s.settlement.hashReceipt(r.as_tuple())) for r in receipts))
        if packed:
            data = b"".join(
                pack_receipt(
                    r.consumer, r.session_id, r.cumulative_bytes, r.cumulative_amount, r.latency_ms,
                    r.issued_at, bytes(sig),
                )
                for r, sig in zip(receipts, signatures)
            )  # fmt: skip
            tx = self.s.settlement.settleManyPacked(
                receipts[0].node, data, root, {"from": self.world.stranger}
            )
            STATS["~packed batches"] += 1
        else:
            tx = self.s.settlement.settleMany(
                [r.as_tuple() for r in receipts], signatures, root, {"from": self.world.stranger}
            )
        assert len(event_list(tx, "ReceiptSkipped")) == expected_skips
        assert len(event_list(tx, "ReceiptSettled")) == settled
        batch = tx.events["BatchSettled"]
        assert (batch["receiptCount"], batch["settledCount"]) == (len(receipts), settled)
        assert (batch["paid"], batch["fee"]) == (total_paid, total_fee)
        assert bytes(batch["bundleRoot"]) == root
        self._book(node, tx, total_paid, total_fee, total_weight)
        STATS["~batch receipts settled"] += settled
        STATS["~batch receipts skipped"] += expected_skips

    def rule_node_status(self, st_node, st_flag) -> None:
        """The operator asks to exit an Active node (its stake stops being required), or the jailer
        jails a node (an Exiting one counts toward the required stake again) or unjails it (Active)."""
        if st_flag:
            self._do_request_exit(st_node)
        else:
            self._do_jail_toggle(st_node)

    def _do_request_exit(self, n: int) -> None:
        self._count()
        node = self.world.nodes[n].address
        operator = self.world.operators[self.world.node_operator[n]]
        if self.status[n] != ACTIVE:
            expect_error(
                self.s.registry.requestExit,
                (node,),
                operator,
                "RegistryInvalidStatus",
                (node, self.status[n]),
            )
            return
        self.s.registry.requestExit(node, {"from": operator})
        self.status[n] = EXITING

    def _do_jail_toggle(self, n: int) -> None:
        self._count()
        node = self.world.nodes[n].address
        if self.status[n] == JAILED:
            self.s.registry.unjail(node, {"from": self.world.slasher})
            self.status[n] = ACTIVE
        else:
            self.s.registry.jail(node, "stateful test", {"from": self.world.slasher})
            self.status[n] = JAILED

    # ------------------------------------------------------------------ staking

    def _required(self, op: int) -> int:
        """minStake × the operator's nodes that have not exited (a jailed node still counts)."""
        live = [
            n for n, owner in enumerate(self.world.node_operator) if owner == op and self.status[n] != EXITING
        ]
        required = self.min_stake * len(live)
        assert int(self.s.registry.requiredStake(self.world.operators[op])) == required
        return required

    def _do_stake(self, st_operator, st_stake) -> None:
        """An operator bonds more stake."""
        self._count()
        self.s.staking.stake(st_stake, {"from": self.world.operators[st_operator]})
        self.bonded[st_operator] += st_stake

    def _do_stake_for(self, st_operator, st_stake) -> None:
        """A stranger bonds stake for an operator: it never touches the unbonding bucket or timer."""
        self._count()
        op = self.world.operators[st_operator]
        self.s.staking.stakeFor(op, st_stake, {"from": self.world.stranger})
        self.bonded[st_operator] += st_stake
        assert list(self.s.staking.unbondingOf(op)) == self.unbonding[st_operator]

    def rule_request_unbond(self, st_operator, st_stake) -> None:
        """An operator unbonds; refused if what stays bonded is below what its nodes require."""
        self._count()
        op = self.world.operators[st_operator]
        bonded, required = self.bonded[st_operator], self._required(st_operator)
        if st_stake > bonded:
            expect_error(
                self.s.staking.requestUnbond,
                (st_stake,),
                op,
                "StakingInsufficientStake",
                (op.address, bonded, st_stake),
            )
            return
        if bonded - st_stake < required:
            expect_error(
                self.s.staking.requestUnbond,
                (st_stake,),
                op,
                "StakingStakeLocked",
                (op.address, bonded - st_stake, required),
            )
            return
        tx = self.s.staking.requestUnbond(st_stake, {"from": op})
        ends = tx.timestamp + int(self.s.staking.unbondingPeriod())
        self.bonded[st_operator] -= st_stake
        self.unbonding[st_operator] = [self.unbonding[st_operator][0] + st_stake, ends]

    def rule_withdraw_stake(self, st_operator, st_wait) -> None:
        """An operator withdraws its unbonded stake (waiting for the unbonding period first, or not)."""
        self._count()
        op = self.world.operators[st_operator]
        amount, ends = self.unbonding[st_operator]
        if amount == 0:
            expect_error(self.s.staking.withdraw, (), op, "StakingNothingToWithdraw", (op.address,))
            return
        if st_wait:
            chain.sleep(max(ends - chain.time(), 0) + TIME_MARGIN)
        if abs(chain.time() - ends) < TIME_MARGIN:
            chain.sleep(2 * TIME_MARGIN)
        if chain.time() < ends:
            expect_error(self.s.staking.withdraw, (), op, "StakingUnbondingNotFinished")
            return
        before = int(self.s.token.balanceOf(op))
        self.s.staking.withdraw({"from": op})
        assert int(self.s.token.balanceOf(op)) - before == amount
        self.unbonding[st_operator] = [0, 0]

    def rule_slash(self, st_operator, st_stake) -> None:
        """The slasher slashes an operator: bonded first, then unbonding; reporter share, rest burned."""
        self._count()
        op = self.world.operators[st_operator]
        bonded, (unbonding, ends) = self.bonded[st_operator], self.unbonding[st_operator]
        if bonded + unbonding == 0:
            expect_error(
                self.s.staking.slash,
                (op, st_stake, self.world.reporter),
                self.world.slasher,
                "StakingInsufficientStake",
            )
            return
        from_bonded = min(st_stake, bonded)
        from_unbonding = min(st_stake - from_bonded, unbonding)
        slashed = from_bonded + from_unbonding
        reward = slashed * self.reporter_bps // BPS
        reporter_before = int(self.s.token.balanceOf(self.world.reporter))
        tx = self.s.staking.slash(op, st_stake, self.world.reporter, {"from": self.world.slasher})
        event = tx.events["Slashed"]
        assert (event["amount"], event["reporterReward"], event["burned"]) == (
            slashed,
            reward,
            slashed - reward,
        )
        assert int(self.s.token.balanceOf(self.world.reporter)) - reporter_before == reward
        self.bonded[st_operator] -= from_bonded
        self.unbonding[st_operator] = [unbonding - from_unbonding, ends]
        self.slashed += slashed
        self.reporter_rewards += reward
        self.burned += slashed - reward

    # ------------------------------------------------------------------ time and rewards

    def rule_advance_time(self, st_seconds) -> None:
        """Time passes (across thaw, unbonding and epoch boundaries)."""
        self._count()
        chain.sleep(st_seconds)
        chain.mine()

    def _to_next_epoch(self) -> None:
        now = chain.time()
        next_start = self.genesis + ((now - self.genesis) // self.epoch_length + 1) * self.epoch_length
        chain.sleep(next_start - now + 1)
        chain.mine()

    def _do_finalize(self, st_count) -> None:
        """Anyone finalises up to ``st_count`` finished epochs, in order."""
        self._count()
        before = self.finalized
        tx = self.s.rewards.finalizeEpochs(st_count, {"from": self.world.stranger})
        epoch_at_tx = (tx.timestamp - self.genesis) // self.epoch_length
        self._sync_finalized()
        assert self.finalized == min(before + st_count, max(epoch_at_tx, before))
        assert len(event_list(tx, "EpochFinalized")) == self.finalized - before

    def _do_claim(self, st_node, st_count, st_wait) -> None:
        """Anyone claims a node's rewards for its finished, unclaimed epochs (minted to the payout),
        maybe after waiting for the current epoch to end."""
        self._count()
        if st_wait:
            self._to_next_epoch()
        n = st_node
        node = self.world.nodes[n].address
        current = int(self.s.rewards.currentEpoch())
        epochs = sorted(
            e
            for e, record in self.epochs.items()
            if e < current and n in record.fee and (n, e) not in self.claimed
        )[:st_count]
        if not epochs:
            expect_error(
                self.s.rewards.claim, (node, [current + 1]), self.world.stranger, "RewardsEpochNotFinished"
            )
            return
        # claimable() projects epochs that have ended but are not finalised yet.
        if sum(int(self.s.rewards.claimable(node, e)) for e in epochs) == 0:
            expect_error(
                self.s.rewards.claim, (node, epochs), self.world.stranger, "RewardsNothingToClaim", (node,)
            )
            return
        payout = self.world.payouts[n]
        before = int(self.s.token.balanceOf(payout))
        tx = self.s.rewards.claim(node, epochs, {"from": self.world.stranger})
        self._sync_finalized()
        expected = sum(self.rewards[n, e] for e in epochs)
        assert expected > 0
        assert int(self.s.token.balanceOf(payout)) - before == expected
        paid_events = {int(ev["epoch"]): int(ev["amount"]) for ev in event_list(tx, "RewardClaimed")}
        assert sum(paid_events.values()) == expected
        for e in epochs:
            assert paid_events.get(e, 0) == self.rewards[n, e]
            assert self.s.rewards.nodeEpoch(node, e)[3], f"epoch {e} not marked claimed"
            self.claimed.add((n, e))
        self.claimed_total += expected
        STATS["~epoch rewards claimed"] += len(epochs)
        # A second claim of the same epoch is refused.
        expect_error(
            self.s.rewards.claim,
            (node, epochs[:1]),
            self.world.stranger,
            "RewardsAlreadyClaimed",
            (node, epochs[0]),
        )

    def rule_set_emission(self, st_emission) -> None:
        """Governance changes the emission: past epochs are finalised and the current one keeps its schedule."""
        self._count()
        tx = self.s.rewards.setEmissionPerEpoch(st_emission, {"from": self.world.deployer})
        self._sync_finalized()
        epoch = (tx.timestamp - self.genesis) // self.epoch_length
        assert self.finalized == epoch
        record = self.epochs.setdefault(epoch, EpochModel())
        if record.scheduled is None:
            record.scheduled = self.emission
        assert int(self.s.rewards.epochInfo(epoch)[0]) == record.scheduled
        self.emission = st_emission

    def _sync_finalized(self) -> None:
        """Check every newly finalised epoch against the model and record each node's reward."""
        rewards, read = self.s.rewards, self.world.read
        now_finalized = int(rewards.finalizedThrough())
        new_epochs = list(range(self.finalized, now_finalized))
        infos = read([(rewards.epochInfo, (e,)) for e in new_epochs])
        to_check: list[tuple[int, int]] = []
        for e, (scheduled, total_capped, budget, paid, carry, finalized) in zip(new_epochs, infos):
            assert finalized
            record = self.epochs.get(e)
            capped = {n: self._capped(record, n) for n in record.fee} if record else {}
            # An epoch nobody used or froze is finalised with the emission in force.
            assert scheduled == (
                record.scheduled if record is not None and record.scheduled is not None else self.emission
            )
            assert total_capped == sum(capped.values())
            assert budget == scheduled + self.carry
            assert paid == min(total_capped, budget)
            assert carry == budget - paid
            self.carry = carry
            self.emitted += scheduled
            self.paid_total += paid
            rewarded = 0
            for n, value in capped.items():
                reward = value * paid // total_capped if total_capped else 0
                self.rewards[n, e] = reward
                rewarded += reward
                # The wash-trading bound and the per-node cap.
                assert reward <= self.rpfu * record.fee[n]
                assert reward <= record.scheduled * self.max_share_bps // BPS
                to_check.append((n, e))
            dust = paid - rewarded
            assert 0 <= dust <= len([v for v in capped.values() if v > 0])
            self.dust += dust
        self.finalized = max(self.finalized, now_finalized)
        STATS["~epochs finalised"] += len(new_epochs)
        STATS["~epochs scaled pro rata"] += sum(1 for info in infos if info[1] > info[2])
        # What the chain says each node may claim equals the model (pairs claimed in this very
        # transaction read 0 and are checked against their RewardClaimed events by rule_claim).
        nodes = [self.world.nodes[n].address for n, _ in to_check]
        records = read([(rewards.nodeEpoch, (node, e)) for node, (_, e) in zip(nodes, to_check)])
        claimables = read([(rewards.claimable, (node, e)) for node, (_, e) in zip(nodes, to_check)])
        for (n, e), record, claimable in zip(to_check, records, claimables):
            assert claimable == (0 if record[3] else self.rewards[n, e]), (n, e)

    # ------------------------------------------------------------------ invariants

    def invariant_escrow_conservation(self) -> None:
        """Escrow's token balance equals its liabilities, and deposits minus everything paid out."""
        s, w = self.s, self.world
        consumers, nodes = w.consumers, w.nodes
        values = w.read(
            [(s.payment_token.balanceOf, (s.escrow.address,)), (s.escrow.accruedFees, ())]
            + [(s.escrow.accountOf, (c.address,)) for c in consumers]
            + [(s.escrow.creditOf, (n.address,)) for n in nodes]
        )
        balance, chain_fees = values[0], values[1]
        chain_accounts = [list(a) for a in values[2 : 2 + len(consumers)]]
        chain_credits = list(values[2 + len(consumers) :])
        assert chain_accounts == self.accounts
        assert chain_credits == self.credits
        assert chain_fees == self.fees
        liabilities = sum(a[0] + a[1] for a in chain_accounts) + sum(chain_credits) + chain_fees
        assert balance == liabilities
        flows = self.escrow_base + self.deposited - self.withdrawn - self.earnings_paid - self.fees_swept
        assert balance == flows
        self.verified["escrow"] = self.steps

    def invariant_stake_conservation(self) -> None:
        """Staking holds exactly the bonded plus unbonding stake; slashes split into reward plus burn."""
        s, w = self.s, self.world
        ops = w.operators
        values = w.read(
            [
                (s.token.balanceOf, (s.staking.address,)),
                (s.staking.totalBonded, ()),
                (s.staking.totalUnbonding, ()),
            ]
            + [(s.staking.bondedOf, (op.address,)) for op in ops]
            + [(s.staking.unbondingOf, (op.address,)) for op in ops]
        )
        held, total_bonded, total_unbonding = values[:3]
        bonded = list(values[3 : 3 + len(ops)])
        unbonding = [list(u) for u in values[3 + len(ops) :]]
        assert bonded == self.bonded
        assert unbonding == self.unbonding
        assert held == total_bonded + total_unbonding
        assert total_bonded == sum(bonded)
        assert total_unbonding == sum(u[0] for u in unbonding)
        assert self.slashed == self.reporter_rewards + self.burned
        self.verified["stake"] = self.steps

    def invariant_reward_conservation(self) -> None:
        """Σ claimed + Σ claimable + carry + dust == Σ emitted; KUOTA supply moves only by claims and burns."""
        s = self.s
        self._sync_finalized()
        emitted, paid, claimed, carry, supply = self.world.read(
            [
                (s.rewards.totalEmitted, ()),
                (s.rewards.totalPaid, ()),
                (s.rewards.totalClaimed, ()),
                (s.rewards.carry, ()),
                (s.token.totalSupply, ()),
            ]
        )
        unclaimed = sum(r for pair, r in self.rewards.items() if pair not in self.claimed)
        assert emitted == self.emitted
        assert paid == self.paid_total
        assert claimed == self.claimed_total
        assert carry == self.carry
        assert self.claimed_total + unclaimed + self.carry + self.dust == self.emitted
        assert self.dust <= len(self.rewards)
        assert supply == self.supply_base + self.claimed_total - self.burned
        self.verified["reward"] = self.steps

    def invariant_channel_monotonicity(self) -> None:
        """settledAmount never decreases and never exceeds what the consumer signed."""
        w = self.world
        used = [(key, channel) for key, channel in self.channels.items() if channel.receipts]
        values = w.read(
            [
                (self.s.settlement.channelOf, (w.consumers[c].address, w.nodes[n].address))
                for (c, n), _ in used
            ]
        )
        for ((c, n), channel), (amount, nbytes) in zip(used, values):
            assert amount == channel.settled_amount
            assert nbytes == channel.settled_bytes
            assert amount <= channel.max_signed_amount
            assert amount >= channel.last_seen_settled
            channel.last_seen_settled = amount
        self.verified["channel"] = self.steps

    # ------------------------------------------------------------------ epilogue

    def teardown(self) -> None:
        """After an example whose every step and invariant passed: end the epoch, finalise, claim
        every reward still claimable, and check the books once more. This puts every example's usage
        through finalisation, scaling, dust and claims, whichever rules hypothesis enabled."""
        if self.steps == 0 or set(self.verified.values()) != {self.steps} or len(self.verified) != 4:
            return  # an earlier failure is being reported; do not pile more chain calls on it
        if not any(record.fee for record in self.epochs.values()):
            return
        self._to_next_epoch()
        self.s.rewards.finalizeEpochs(2**64, {"from": self.world.stranger})
        self._sync_finalized()
        for n in range(self.n_nodes):
            node = self.world.nodes[n].address
            epochs = sorted(
                e for (m, e), r in self.rewards.items() if m == n and r > 0 and (m, e) not in self.claimed
            )
            if not epochs:
                continue
            payout = self.world.payouts[n]
            before = int(self.s.token.balanceOf(payout))
            self.s.rewards.claim(node, epochs, {"from": self.world.stranger})
            expected = sum(self.rewards[n, e] for e in epochs)
            assert int(self.s.token.balanceOf(payout)) - before == expected
            self.claimed.update((n, e) for e in epochs)
            self.claimed_total += expected
            STATS["~epoch rewards claimed"] += len(epochs)
        self.invariant_reward_conservation()
        self.invariant_escrow_conservation()
        # Everything finalised is now claimed: only the carry and the rounding dust remain unminted.
        assert self.claimed_total + self.carry + self.dust == self.emitted
        STATS["~examples closed by the epilogue"] += 1


def test_system_invariants(state_machine, world):
    settings = {"max_examples": EXAMPLES, "stateful_step_count": STEPS}
    STATS.clear()
    state_machine(SystemMachine, world, settings=settings)
    stats = STATS
    steps = stats["~steps"]
    print(f"\n[stateful] {stats['examples']} examples (max {EXAMPLES}), {steps} steps (max {STEPS} each):")
    for name, count in sorted(stats.items()):
        print(f"[stateful]   {name}: {count}")
    # The run must have exercised the system, not just passed vacuously.
    assert stats["examples"] >= EXAMPLES
    assert steps > 0
    assert stats["~settled receipts"] + stats["~batch receipts settled"] > 0
    assert stats["~examples closed by the epilogue"] > 0
    assert stats["~epochs finalised"] > 0
