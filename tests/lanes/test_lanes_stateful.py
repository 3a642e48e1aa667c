"""Stateful (hypothesis) test of lanes: two consumers, two nodes, random allocations, top-ups, batches
of fresh, stale and replayed receipts, forged receipts, close requests, finished closes and time travel.

A Python model predicts every lane, every available balance, every node credit and the fees, and
the refusal of every refused call; after every step the invariants compare it with the chain:

- escrow conservation: payment token held by PaymentEscrow == Σ available + Σ thawing + lane funds
  + Σ credits + accrued fees, and the lane funds == Σ lane balances;
- lane accounting: every lane's balance + settled amount == what was allocated to it − what its
  closes returned; the settled amount never decreases;
- the model equals the chain for every lane, balance and credit.

Size: ``KUOTA_STATEFUL_EXAMPLES`` × ``KUOTA_STATEFUL_STEPS`` (default 15 × 10).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import pytest
from brownie import chain
from brownie.exceptions import VirtualMachineError
from brownie.test import strategy
from lane_helpers import packed

EXAMPLES = int(os.environ.get("KUOTA_STATEFUL_EXAMPLES", "15"))
STEPS = int(os.environ.get("KUOTA_STATEFUL_STEPS", "10"))
BPS = 10_000
# A call whose outcome depends on closeAt is not made this close to it (Anvil's clock is wall time).
TIME_MARGIN = 5
STATS: Counter[str] = Counter()
ROOT = b"\x0b" * 32


@dataclass
class LaneModel:
    balance: int = 0
    settled: int = 0
    settled_bytes: int = 0
    close_at: int = 0  # 0: not closing
    allocated: int = 0
    returned: int = 0
    signed_amount: int = 0
    signed_bytes: int = 0


def _reverts(call, args: tuple, sender, name: str) -> None:
    try:
        call.call(*args, {"from": sender})
    except VirtualMachineError as exc:
        got = str(exc.revert_msg).partition(": ")[0]
        assert got == name, f"expected {name}, got {exc.revert_msg!r}"
    else:
        raise AssertionError(f"expected {name}, the call succeeded")


class LanesMachine:
    st_consumer = strategy("uint8", max_value=1)
    st_node = strategy("uint8", max_value=1)
    st_amount = strategy("uint256", min_value=1, max_value=600 * 10**6)
    st_step = strategy("uint256", min_value=1, max_value=200 * 10**6)
    st_kinds = strategy("uint8[]", min_length=1, max_length=4, max_value=2)
    st_seconds = strategy("uint32", min_value=1, max_value=900)

    def __init__(cls, system, lanes, sign_lane, consumers, keys, nodes) -> None:
        cls.s, cls.lanes = system, lanes
        cls.sign = staticmethod(sign_lane)  # a plain function on the class would be bound as a method
        cls.consumers, cls.keys, cls.nodes = consumers, keys, nodes
        cls.fee_bps = int(lanes.feeBps())
        cls.delay = int(lanes.closeDelay())

    def setup(self) -> None:
        STATS["examples"] += 1
        self.available = [int(self.s.escrow.availableOf(c)) for c in self.consumers]
        self.credits = [int(self.s.escrow.creditOf(n)) for n in self.nodes]
        self.fees = int(self.s.escrow.accruedFees())
        self.lane = {(c, n): LaneModel() for c in range(2) for n in range(2)}

    def _now(self) -> int:
        return int(chain.time())

    def _pays(self, model: LaneModel) -> bool | None:
        """Whether the lane pays at the next block; None too close to its closeAt to tell."""
        if not model.close_at:
            return True
        now = self._now()
        if abs(now - model.close_at) <= TIME_MARGIN:
            return None
        return now < model.close_at

    def initialize_lanes(self, st_amount) -> None:
        """Every example starts with all four lanes funded, so settling and closing have work to do."""
        for c in range(2):
            amount = min(st_amount, self.available[c] // 2)
            self.lanes.allocateMany(self.nodes, [amount, amount], {"from": self.consumers[c]})
            self.available[c] -= 2 * amount
            for n in range(2):
                self.lane[(c, n)].balance += amount
                self.lane[(c, n)].allocated += amount

    def rule_allocate(self, st_consumer, st_node, st_amount) -> None:
        """Allocate (or top up); refused while closing or beyond the available funds."""
        c, n = st_consumer, st_node
        model, who = self.lane[(c, n)], self.consumers[st_consumer]
        if model.close_at:
            _reverts(self.lanes.allocate, (self.nodes[n], st_amount), who, "LaneClosing")
            STATS["allocate refused: closing"] += 1
            return
        if st_amount > self.available[c]:
            _reverts(self.lanes.allocate, (self.nodes[n], st_amount), who, "EscrowInsufficientAvailable")
            STATS["allocate refused: funds"] += 1
            return
        self.lanes.allocate(self.nodes[n], st_amount, {"from": who})
        self.available[c] -= st_amount
        model.balance += st_amount
        model.allocated += st_amount
        STATS["allocate"] += 1

    def rule_settle(self, st_node, st_kinds, st_step) -> None:
        """A batch of node ``st_node``: per kind 0 fresh, 1 replayed, 2 stale (a lower amount)."""
        n = st_node
        batch, expected, touched = [], 0, {}
        for i, kind in enumerate(st_kinds):
            c = i % 2
            model = self.lane[(c, n)]
            if kind == 0 or model.signed_amount == 0:
                amount, nbytes = model.signed_amount + st_step, model.signed_bytes + 1_000
                model.signed_amount, model.signed_bytes = amount, nbytes
            elif kind == 1:
                amount, nbytes = model.signed_amount, model.signed_bytes
            else:
                amount, nbytes = max(1, model.settled // 2), model.settled_bytes
            pays = self._pays(model)
            if pays is None:
                STATS["settle skipped: near closeAt"] += 1
                return
            batch.append(self.sign(self.keys[c], self.nodes[n], nbytes, amount, session=c + 1))
            touched[(c, amount, nbytes)] = pays
        tx = self.lanes.settleLanes(self.nodes[n], packed(batch), ROOT, {"from": self.consumers[0]})
        for (c, amount, nbytes), pays in touched.items():
            model = self.lane[(c, n)]
            if not pays or amount <= model.settled or nbytes < model.settled_bytes:
                continue
            pay = min(amount - model.settled, model.balance)
            if pay == 0:
                continue
            model.balance -= pay
            model.settled += pay
            model.settled_bytes = nbytes
            expected += pay
        fee = expected * self.fee_bps // BPS
        assert tx.return_value == expected
        self.credits[n] += expected - fee
        self.fees += fee
        STATS["settle paid" if expected else "settle paid nothing"] += 1

    def rule_forged(self, st_consumer, st_node, st_step) -> None:
        """The other consumer's key signs this consumer's receipt: refused, nothing moves."""
        c, n = st_consumer, st_node
        forged = self.sign(self.keys[1 - c], self.nodes[n], 10**12, st_step, consumer=self.consumers[c].address)
        _reverts(self.lanes.settleLanes, (self.nodes[n], packed([forged]), ROOT), self.consumers[0], "LaneInvalidSigner")
        STATS["forged refused"] += 1

    def rule_request_close(self, st_consumer, st_node) -> None:
        c, n = st_consumer, st_node
        model, who = self.lane[(c, n)], self.consumers[c]
        if model.close_at or model.balance == 0:
            _reverts(self.lanes.requestClose, (self.nodes[n],), who, "LaneClosing" if model.close_at else "LaneEmpty")
            STATS["close refused"] += 1
            return
        tx = self.lanes.requestClose(self.nodes[n], {"from": who})
        model.close_at = tx.timestamp + self.delay
        assert tx.return_value == model.close_at
        STATS["close requested"] += 1

    def rule_finish_close(self, st_consumer, st_node) -> None:
        c, n = st_consumer, st_node
        model, who = self.lane[(c, n)], self.consumers[c]
        if not model.close_at:
            _reverts(self.lanes.finishClose, (self.nodes[n],), who, "LaneNotClosing")
            return
        pays = self._pays(model)
        if pays is None:
            return
        if pays:
            _reverts(self.lanes.finishClose, (self.nodes[n],), who, "LaneCloseNotDue")
            STATS["finish refused: not due"] += 1
            return
        tx = self.lanes.finishClose(self.nodes[n], {"from": who})
        assert tx.return_value == model.balance
        self.available[c] += model.balance
        model.returned += model.balance
        model.balance, model.close_at = 0, 0
        STATS["close finished"] += 1

    def rule_advance_time(self, st_seconds) -> None:
        chain.sleep(int(st_seconds))
        chain.mine()

    def invariant_escrow_conservation(self) -> None:
        escrow = self.s.escrow
        held = sum(sum(int(v) for v in escrow.accountOf(c)[:2]) for c in self.consumers)
        credits = sum(int(escrow.creditOf(n)) for n in self.nodes)
        lane_funds = int(escrow.laneFundsOf(self.lanes))
        assert int(self.s.payment_token.balanceOf(escrow)) == held + lane_funds + credits + int(escrow.accruedFees())
        assert lane_funds == sum(m.balance for m in self.lane.values())

    def invariant_model_equals_chain(self) -> None:
        for (c, n), model in self.lane.items():
            (balance, settled, settled_bytes, closing), close_at = self.lanes.laneOf(self.consumers[c], self.nodes[n])
            assert (int(balance), int(settled), int(settled_bytes)) == (model.balance, model.settled, model.settled_bytes)
            assert bool(closing) == bool(model.close_at) and int(close_at) == model.close_at
            assert model.balance + model.settled == model.allocated - model.returned
        assert [int(self.s.escrow.availableOf(c)) for c in self.consumers] == self.available
        assert [int(self.s.escrow.creditOf(n)) for n in self.nodes] == self.credits
        assert int(self.s.escrow.accruedFees()) == self.fees


@pytest.fixture(scope="module", autouse=True)
def setup(funded, node2, lanes):
    return funded


def test_lanes_state_machine(state_machine, system, lanes, sign_lane, consumer, consumer2, consumer_key, consumer2_key, node, node2):
    STATS.clear()
    state_machine(
        LanesMachine, system, lanes, sign_lane, [consumer, consumer2], [consumer_key, consumer2_key], [node, node2],
        settings={"max_examples": EXAMPLES, "stateful_step_count": STEPS},
    )
    print(f"\n[lanes stateful] {dict(sorted(STATS.items()))}")
    assert STATS["examples"] >= 1 and STATS["settle paid"] >= 1 and STATS["close requested"] >= 1
