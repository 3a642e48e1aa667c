"""Stateful test: random sequences of store operations against a plain Python model of the ledger.

Every rule is a real call on a real SQLite file (reopened at random, as after a restart); the model
says what must have happened. Invariants after every step: the integrity check is clean, and each
channel's latest receipt, settled amount and open batch equal the model's. Run for
``STATEFUL_EXAMPLES`` × ``STATEFUL_STEPS`` (see below; raise them with ``KUOTA_STATEFUL_EXAMPLES``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule
from receipt_helpers import NODE, SETTLEMENT, make_receipt, make_test_key

from nodeclient.errors import StoreError
from nodeclient.receipts import (
    BatchConflictError,
    BatchStateError,
    NothingOwedError,
    ReceiptOutcome,
    ReceiptSigner,
    ReceiptStore,
    StaleReceiptError,
    receipt_domain,
)

STATEFUL_EXAMPLES = int(os.environ.get("KUOTA_STATEFUL_EXAMPLES", "30"))
STATEFUL_STEPS = 25

DOMAIN = receipt_domain(31337, SETTLEMENT)
SIGNERS = [ReceiptSigner(make_test_key(f"stateful-{i}"), DOMAIN) for i in range(3)]


class StoreMachine(RuleBasedStateMachine):
    """Model: per consumer (amount, bytes, issued_at) of the latest receipt, settled amount, open batch."""

    batches = Bundle("batches")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "r.db"
        self.store = ReceiptStore(self.path)
        self.latest: dict[str, tuple[int, int, int]] = {}
        self.settled: dict[str, int] = {}
        self.open: dict[str, int] = {}  # consumer -> open batch id
        self.batch_state: dict[int, str] = {}
        self.batch_members: dict[int, list[tuple[str, int]]] = {}  # batch -> [(consumer, amount)]
        self.count = 0

    def teardown(self) -> None:
        self.store.close()
        self.tmp.cleanup()

    def _accept(self, signer: ReceiptSigner, amount: int, nbytes: int, issued: int):
        return self.store.accept(
            signer.sign(make_receipt(amount, consumer=signer.address, nbytes=nbytes, issued_at=issued)),
            expected_domain=DOMAIN,
            expected_node=NODE,
        )

    @rule(who=st.integers(0, 2), d_amount=st.integers(1, 10**6), d_bytes=st.integers(0, 10**9),
          d_time=st.integers(0, 100))
    def accept_advancing(self, who, d_amount, d_bytes, d_time):
        signer = SIGNERS[who]
        amount, nbytes, issued = self.latest.get(signer.address, (0, 0, 1_700_000_000))
        new = (amount + d_amount, nbytes + d_bytes, issued + d_time)
        stored = self._accept(signer, *new)
        assert stored.created
        self.latest[signer.address] = new
        self.count += 1

    @precondition(lambda self: self.latest)
    @rule(who=st.integers(0, 2), field=st.sampled_from(["amount", "bytes", "time"]), back=st.integers(1, 50))
    def accept_stale_is_refused(self, who, field, back):
        signer = SIGNERS[who]
        if signer.address not in self.latest:
            return
        amount, nbytes, issued = self.latest[signer.address]
        if field == "amount":
            candidate = (max(0, amount - back + 1) if back > 1 else amount, nbytes + 1, issued)
        elif field == "bytes":
            if nbytes < back:
                return
            candidate = (amount + 1, nbytes - back, issued)
        else:
            candidate = (amount + 1, nbytes, issued - back)
        with pytest.raises(StaleReceiptError):
            self._accept(signer, *candidate)

    @precondition(lambda self: self.latest)
    @rule(who=st.integers(0, 2))
    def duplicate_is_idempotent(self, who):
        signer = SIGNERS[who]
        if signer.address not in self.latest:
            return
        assert not self._accept(signer, *self.latest[signer.address]).created

    @rule(target=batches, picks=st.sets(st.integers(0, 2), min_size=1))
    def begin(self, picks):
        consumers = [SIGNERS[i].address for i in sorted(picks) if SIGNERS[i].address in self.latest]
        if not consumers:
            return -1
        latest = [self.store.latest(c, NODE) for c in consumers]
        conflict = any(c in self.open for c in consumers)
        nothing_owed = any(self.latest[c][0] <= self.settled.get(c, 0) for c in consumers)
        if conflict or nothing_owed:
            # Whichever check meets the first offending receipt answers; both leave the store as it was.
            with pytest.raises(BatchConflictError if not nothing_owed else (BatchConflictError, NothingOwedError)):
                self.store.begin_batch(latest)
            return -1
        batch_id = self.store.begin_batch(latest)
        self.batch_state[batch_id] = "pending"
        self.batch_members[batch_id] = [(c, self.latest[c][0]) for c in consumers]
        for c in consumers:
            self.open[c] = batch_id
        return batch_id

    @rule(batch=batches, bump=st.booleans())
    def submit(self, batch, bump):
        if batch < 0:
            return
        state = self.batch_state[batch]
        tx = "0x" + f"{batch:04x}{int(bump):02x}".rjust(64, "0")
        if state in ("pending", "submitted"):
            self.store.mark_submitted(batch, tx, nonce=batch)
            self.batch_state[batch] = "submitted"
            if state == "submitted":
                # A different nonce for a submitted batch is always refused.
                with pytest.raises(BatchStateError):
                    self.store.mark_submitted(batch, "0x" + "ee" * 32, nonce=batch + 1000)
        else:
            with pytest.raises(BatchStateError):
                self.store.mark_submitted(batch, tx, nonce=batch)

    @rule(batch=batches, share=st.integers(0, 100))
    def confirm(self, batch, share):
        if batch < 0:
            return
        state = self.batch_state[batch]
        members = self.batch_members[batch]
        outcomes = []
        for consumer, amount in members:
            owed = amount - self.settled.get(consumer, 0)
            paid = owed * share // 100
            outcomes.append(ReceiptOutcome("settled", paid, paid // 20))
        if state != "submitted":
            with pytest.raises(StoreError):
                self.store.mark_confirmed(batch, outcomes)
            return
        self.store.mark_confirmed(batch, outcomes)
        self.batch_state[batch] = "confirmed"
        for (consumer, _), outcome in zip(members, outcomes, strict=True):
            self.settled[consumer] = self.settled.get(consumer, 0) + outcome.paid
            del self.open[consumer]

    @rule(batch=batches, skip=st.booleans())
    def close_without_settling(self, batch, skip):
        if batch < 0:
            return
        state = self.batch_state[batch]
        allowed = ("pending",) if skip else ("pending", "submitted")
        call = self.store.mark_skipped if skip else self.store.mark_failed
        if state in allowed:
            call(batch, "test")
            self.batch_state[batch] = "skipped" if skip else "failed"
            for consumer, _ in self.batch_members[batch]:
                del self.open[consumer]
        elif state != ("skipped" if skip else "failed"):
            with pytest.raises(BatchStateError):
                call(batch, "test")

    @rule()
    def reopen(self):
        self.store.close()
        self.store = ReceiptStore(self.path)

    @invariant()
    def ledger_matches_model(self):
        assert self.store.integrity_problems() == []
        assert self.store.count() == self.count
        channels = {c.consumer: c for c in self.store.channels()}
        assert set(channels) == set(self.latest)
        for consumer, (amount, nbytes, issued) in self.latest.items():
            channel = channels[consumer]
            got = channel.latest.receipt
            assert (got.cumulative_amount, got.cumulative_bytes, got.issued_at) == (amount, nbytes, issued)
            assert channel.settled_amount == self.settled.get(consumer, 0)
            assert channel.open_batch_id == self.open.get(consumer)
        open_ids = sorted({b for b in self.open.values()})
        assert [b.id for b in self.store.pending_batches()] == open_ids


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=STATEFUL_EXAMPLES,
    stateful_step_count=STATEFUL_STEPS,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
