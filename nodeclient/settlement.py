"""Settling a node's receipts: reconcile what is in flight, choose what is worth settling, settle it.

One run of :func:`settle_node`:

1. **Follow the chain** (:func:`nodeclient.ledger.follow_chain`): a confirmed batch the chain no
   longer has (a reorg, a dropped block) is reopened; every channel's ``channelOf`` is recorded.
   **Reconcile** every open batch of the store (a crash may have left one ``pending`` or
   ``submitted``). The rules follow the order in which a batch is sent — ``begin_batch`` →
   sign → ``mark_submitted`` → journal → broadcast:

   - ``pending`` (no transaction recorded): nothing was ever signed for it → ``mark_skipped``;
   - ``submitted``, hash in the transaction journal: the journal drives it to a final state at the
     same nonce (re-broadcast, fee bump, wait) → ``mark_confirmed`` from the receipt's events, or
     ``mark_failed`` if it reverted or its nonce went to another transaction;
   - ``submitted``, hash not journaled: it never left this machine (the journal is written before
     any broadcast) unless the chain has it mined → ``mark_failed`` / ``mark_confirmed``.

   A batch is therefore never re-sent under a new nonce, and receipts of an open batch are never
   put in a second batch (the store refuses it).
2. **Plan**: for each channel of the node with an unsettled latest receipt, read the chain's
   ``channelOf`` (the truth about what is settled) and the consumer's escrow; the value a batch
   collects is Σ min(owed, escrow). Apply the gas-aware policy (:mod:`nodeclient._utils.policy`):
   threshold and gas share, a channel whose consumer is thawing (settle before the funds leave),
   a value ceiling, or an age limit.
3. **Settle** through ``settleManyPacked`` (``settleMany`` with the receipts packed tightly) with
   the root of the batch's receipt bundle (built and written to ``<data dir>/bundles/<sha256>.json``
   for auditors by :func:`nodeclient.receipts.bundles.prepare_batch` before the batch is recorded),
   and record each receipt's outcome from the ``ReceiptSettled`` / ``ReceiptSkipped`` events.

A store opened for the ``lanes`` module (:func:`open_store` with ``module="lanes"``) holds receipts
signed over LaneSettlement's domain; every step above then talks to LaneSettlement instead: the
value a channel collects is bounded by its lane (not the pooled escrow), the batch is one
``settleLanes`` call, and since lanes emit one event per batch, each receipt's outcome is the
change of its channel's ``channelOf`` across the batch's block (a batch holds one receipt per channel).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3.logs import DISCARD

from nodeclient._utils.policy import Decision, decide
from nodeclient.chain.client import ChainClient, NonceConsumedError, TxResult
from nodeclient.chain.errors import ContractRevertError, TxTimeoutError
from nodeclient.config import PolicySettings
from nodeclient.errors import KuotaError, TransactionError
from nodeclient.lanes import LANES_CONTRACT, lane_of, module_contract, settlement_of_domain
from nodeclient.ledger import block_hash_of, follow_chain, follow_channels
from nodeclient.receipts.bundles import build_bundle, prepare_batch
from nodeclient.receipts.model import SignedReceipt
from nodeclient.receipts.packing import pack_signed_receipts
from nodeclient.receipts.signing import ReceiptDomain, receipt_domain
from nodeclient.receipts.store import BatchRecord, ChannelState, ReceiptOutcome, ReceiptStore, StoredReceipt
from nodeclient.receipts.store_batches import LedgerAheadError

__all__ = [
    "BatchSupersededError",
    "ChannelPlan",
    "ReconcileReport",
    "SettlementPlan",
    "SettlementResult",
    "deployment_domain",
    "execute_plan",
    "nodes_in_store",
    "open_store",
    "plan_settlement",
    "reconcile",
    "settle_node",
    "store_path",
]

log = logging.getLogger(__name__)

# Extra gas limit (not gas spent: only what the transaction uses is paid) for a settlement. If a
# reward epoch ends between the estimate and inclusion, the batch becomes the node's (or the
# epoch's) first usage record and costs ~80k more than estimated (docs/GAS.md, "settle, first in a
# new epoch"); without this margin such a batch runs out of gas and the node pays for a revert.
EPOCH_BOUNDARY_GAS = 100_000


class BatchSupersededError(NonceConsumedError):
    """A batch's nonce was mined by another transaction of this client (one signed after a reorg took the batch)."""

    def __init__(self, batch_id: int, nonce: int | None, winner: str) -> None:
        TransactionError.__init__(
            self,
            f"settlement batch {batch_id}: its nonce {nonce} was mined by {winner}, another transaction of this "
            "client; the batch had no effect and its channels settle again from their latest receipts",
        )


@dataclass(frozen=True)
class ChannelPlan:
    """One channel's candidate for settlement."""

    consumer: str
    receipt: StoredReceipt
    owed: int
    collectible: int
    thawing: bool
    oldest_unsettled_at: float

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "consumer": self.consumer,
            "digest": self.receipt.digest_hex,
            "cumulativeAmount": self.receipt.receipt.cumulative_amount,
            "owed": self.owed,
            "collectible": self.collectible,
            "thawing": self.thawing,
        }


@dataclass(frozen=True)
class SettlementPlan:
    """Channels chosen for one ``settleMany`` and the policy's verdict."""

    node: str
    channels: list[ChannelPlan]
    decision: Decision
    quote: Any
    skipped: list[str] = field(default_factory=list)

    @property
    def value(self) -> int:
        """Σ collectible over the channels."""
        return sum(c.collectible for c in self.channels)

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "node": self.node,
            "channels": [c.to_json() for c in self.channels],
            "value": self.value,
            "decision": self.decision.to_json(),
            "fee": self.quote.to_json() if self.quote is not None else None,
            "notes": self.skipped,
        }


@dataclass(frozen=True)
class SettlementResult:
    """A settled batch."""

    batch_id: int
    tx: TxResult
    settled: int
    skipped: int
    paid: int
    fee: int
    bundle_file: str

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "batchId": self.batch_id,
            "tx": self.tx.to_json(),
            "settledReceipts": self.settled,
            "skippedReceipts": self.skipped,
            "paid": self.paid,
            "fee": self.fee,
            "net": self.paid - self.fee,
            "bundle": self.bundle_file,
        }


@dataclass
class ReconcileReport:
    """What reconciliation did: batches reopened because the chain lost them, and open batches' fates."""

    confirmed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    still_open: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    reorged_txs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[Any]]:
        """Stable machine form."""
        return {
            "confirmed": self.confirmed,
            "failed": self.failed,
            "skipped": self.skipped,
            "stillOpen": self.still_open,
            "reopened": self.reopened,
            "reorgedTxs": self.reorged_txs,
        }


def store_path(data_dir: Path, chain_id: int, settlement: str) -> Path:
    """The receipt store of one deployment: ``<data dir>/receipts/<chainId>-<settlement>.sqlite``."""
    return Path(data_dir) / "receipts" / f"{chain_id}-{settlement.lower()}.sqlite"


def deployment_domain(client: ChainClient, module: str = "receipts") -> ReceiptDomain:
    """The EIP-712 receipt domain of the connected deployment's settlement ``module`` (receipts or lanes)."""
    return receipt_domain(client.chain_id, client.deployment.address(module_contract(client, module)))


def open_store(client: ChainClient, module: str = "receipts") -> ReceiptStore:
    """Open (creating if needed) the receipt store of the connected deployment's settlement ``module``."""
    path = store_path(client.data_dir, client.chain_id, client.deployment.address(module_contract(client, module)))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return ReceiptStore(path, domain=deployment_domain(client, module))


def _module_of(client: ChainClient, store: ReceiptStore) -> str:
    """The settlement contract the store's receipts are signed for (its domain's verifying contract)."""
    return settlement_of_domain(client, store.domain)


# -- reconciliation ---------------------------------------------------------------------------------


def _lane_outcomes(client: ChainClient, batch: BatchRecord, receipt: Any) -> dict[str, ReceiptOutcome]:
    """Per-receipt outcomes of a ``settleLanes`` batch: what each channel's ``channelOf`` gained in the
    batch's block, and the batch's fee shared in proportion (the remainder on the last paid receipt,
    so the outcomes add up to the ``LanesSettled`` totals)."""
    lanes = client.contract(LANES_CONTRACT)
    events = lanes.events.LanesSettled().process_receipt(receipt, errors=DISCARD)
    total_fee = int(events[0]["args"]["fee"]) if events else 0
    block = int(receipt["blockNumber"])
    paid: dict[str, int] = {}
    for item in batch.items:
        signed = item.receipt.receipt
        channel = lanes.functions.channelOf(signed.consumer, signed.node)
        after = int(client.call(channel, "LaneSettlement.channelOf()", block=block)[0])
        before = int(client.call(channel, "LaneSettlement.channelOf()", block=block - 1)[0])
        paid[item.receipt.digest_hex] = max(0, after - before)
    total_paid = sum(paid.values())
    outcomes: dict[str, ReceiptOutcome] = {}
    fee_left = total_fee
    settled = [d for d, p in paid.items() if p > 0]
    for digest, amount in paid.items():
        if amount == 0:
            outcomes[digest] = ReceiptOutcome("skipped")
            continue
        fee = fee_left if digest == settled[-1] else total_fee * amount // total_paid
        fee_left -= fee
        outcomes[digest] = ReceiptOutcome("settled", amount, fee)
    return outcomes


def _outcomes_from_receipt(
    client: ChainClient, store: ReceiptStore, batch: BatchRecord, receipt: Any
) -> dict[str, ReceiptOutcome]:
    if _module_of(client, store) == LANES_CONTRACT:
        return _lane_outcomes(client, batch, receipt)
    settlement = client.contract("ReceiptSettlement")
    outcomes: dict[str, ReceiptOutcome] = {}
    for ev in settlement.events.ReceiptSettled().process_receipt(receipt, errors=DISCARD):
        outcomes["0x" + bytes(ev["args"]["digest"]).hex()] = ReceiptOutcome("settled", int(ev["args"]["paid"]), int(ev["args"]["fee"]))
    for ev in settlement.events.ReceiptSkipped().process_receipt(receipt, errors=DISCARD):
        outcomes.setdefault("0x" + bytes(ev["args"]["digest"]).hex(), ReceiptOutcome("skipped"))
    # Exactly the batch's receipts: every item emitted one of the two events.
    return {item.receipt.digest_hex: outcomes.get(item.receipt.digest_hex, ReceiptOutcome("skipped")) for item in batch.items}


def _confirm(client: ChainClient, store: ReceiptStore, batch: BatchRecord, tx_hash: str, receipt: Any) -> None:
    outcomes = _outcomes_from_receipt(client, store, batch, receipt)
    where = {"tx_hash": tx_hash, "block_number": int(receipt["blockNumber"]), "block_hash": block_hash_of(receipt)}
    try:
        store.mark_confirmed(batch.id, outcomes, **where)
    except LedgerAheadError:
        # The chain paid more than the store thought was owed: a block that carried an earlier batch
        # was dropped after the run's reconciliation. Catch up with the chain, then record the truth.
        follow_channels(client, store, node=batch.node)
        store.mark_confirmed(batch.id, outcomes, **where)


def _await_open_batch(
    client: ChainClient,
    store: ReceiptStore,
    batch: BatchRecord,
    tx_hash: str,
    signer: Any | None,
    progress: Callable[[str], None] | None,
) -> tuple[str, Any] | None:
    """Drive a submitted batch's journaled transaction: ``(hash, receipt)`` once mined, None while in flight.

    Raises ContractRevertError / NonceConsumedError when the batch can no longer settle as recorded,
    including when its nonce was mined by a different transaction (after a reorg the client may have
    signed something else at that nonce: the journal groups it with the batch's, but it is not one
    of the batch's hashes).
    """
    if signer is not None and client.journal.get(tx_hash).sender == signer.address:  # type: ignore[union-attr]
        result = client.resume(
            signer, tx_hash, on_signed=lambda h, n, b=batch.id: store.mark_submitted(b, h, n), progress=progress
        )
        mined, receipt = result.tx_hash, result.receipt
    else:
        state, receipt = client.tx_state(tx_hash)
        if state in ("pending", "unknown"):
            return None
        if state == "dropped":
            raise NonceConsumedError(batch.node, batch.nonce or -1, f"settlement batch {batch.id}")
        if state == "failed":
            raise ContractRevertError(f"settlement batch {batch.id}", None, None)
        mined = "0x" + bytes(receipt["transactionHash"]).hex()
    if mined.lower() not in store.batch(batch.id).tx_hashes:
        raise BatchSupersededError(batch.id, batch.nonce, mined)
    return mined, receipt


def reconcile(
    client: ChainClient, store: ReceiptStore, signer: Any | None, *, progress: Callable[[str], None] | None = None
) -> ReconcileReport:
    """Follow the chain, then bring every open batch to a final state (see module docstring).

    ``signer`` enables re-sending and fee bumps; without it an open batch is only looked up.
    """
    followed = follow_chain(client, store)
    report = ReconcileReport(reopened=followed.reopened, reorged_txs=followed.reorged_txs)
    for batch in store.pending_batches():
        if batch.state == "pending":
            store.mark_skipped(batch.id, "never signed (interrupted before its transaction was signed)")
            report.skipped.append(batch.id)
            continue
        journaled = [h for h in batch.tx_hashes if client.journal.get(h) is not None]
        if not journaled:
            mined = [(h, r) for h in batch.tx_hashes if (r := client.receipt_of(h)) is not None]
            if mined and mined[0][1]["status"] == 1:
                _confirm(client, store, batch, mined[0][0], mined[0][1])
                report.confirmed.append(batch.id)
            else:
                store.mark_failed(batch.id, "its transaction was never broadcast (not in the journal, not on chain)")
                report.failed.append(batch.id)
            continue
        try:
            mined = _await_open_batch(client, store, batch, journaled[-1], signer, progress)
        except (ContractRevertError, NonceConsumedError) as exc:
            store.mark_failed(batch.id, str(exc))
            report.failed.append(batch.id)
            continue
        except TxTimeoutError:
            mined = None
        if mined is None:
            report.still_open.append(batch.id)
            continue
        tx_hash, receipt = mined
        _confirm(client, store, batch, tx_hash, receipt)
        report.confirmed.append(batch.id)
    return report


# -- planning -------------------------------------------------------------------------------------


def _collectible(client: ChainClient, module: str, consumer: str, node: str, owed: int) -> tuple[int, bool, str]:
    """What settling ``owed`` of the channel would collect now, whether it is urgent (funds about to
    leave: a thaw, or a lane's close), and why it would collect nothing (for the plan's notes)."""
    if module == LANES_CONTRACT:
        lane = lane_of(client, consumer, node)
        now = int(client.latest_block()["timestamp"])
        return (min(owed, lane.balance) if lane.pays_at(now) else 0), lane.closing, "lane pays nothing now"
    escrow = client.contract("PaymentEscrow")
    available, thawing, _ = client.call(escrow.functions.accountOf(consumer), "PaymentEscrow.accountOf()")
    return min(owed, int(available) + int(thawing)), int(thawing) > 0, "escrow is empty"


def _channel_plan(client: ChainClient, store: ReceiptStore, channel: ChannelState) -> tuple[ChannelPlan | None, str | None]:
    module = _module_of(client, store)
    settled_amount, settled_bytes = client.call(
        client.contract(module).functions.channelOf(channel.consumer, channel.node), f"{module}.channelOf()"
    )
    store.sync_channel(channel.consumer, channel.node, int(settled_amount), int(settled_bytes))
    latest = channel.latest.receipt
    owed = latest.cumulative_amount - max(int(settled_amount), channel.settled_amount)
    if owed <= 0 or latest.cumulative_bytes < int(settled_bytes):
        return None, f"channel {channel.consumer}: already settled on chain up to {int(settled_amount)}"
    collectible, urgent, where = _collectible(client, module, channel.consumer, channel.node, owed)
    if collectible == 0:
        return None, f"channel {channel.consumer}: owes {owed} but its {where}"
    unsettled = store.bundle_receipts([channel.latest])
    oldest = min((s.accepted_at for s in unsettled), default=channel.latest.accepted_at)
    return ChannelPlan(channel.consumer, channel.latest, owed, collectible, urgent, oldest), None


def _settle_call(client: ChainClient, store: ReceiptStore, signed: list[SignedReceipt], root: bytes) -> Any:
    """``settleManyPacked`` (or ``settleLanes`` for a lanes store): the receipts in 161 bytes each
    instead of settleMany's 384 (same checks, same events; ~1,400 gas less a receipt)."""
    node = signed[0].node
    packed = pack_signed_receipts(node, signed)
    if _module_of(client, store) == LANES_CONTRACT:
        return client.contract(LANES_CONTRACT).functions.settleLanes(node, packed, root)
    return client.contract("ReceiptSettlement").functions.settleManyPacked(node, packed, root)


def _store_domain(client: ChainClient, store: ReceiptStore) -> ReceiptDomain:
    return store.domain if store.domain is not None else deployment_domain(client)


def _provisional_root(client: ChainClient, store: ReceiptStore, node: str, channels: list[ChannelPlan]) -> bytes:
    # The root the batch will commit to, for an accurate gas estimate (nothing is written yet).
    return build_bundle(store.bundle_receipts([c.receipt for c in channels]), _store_domain(client, store), node).root


def plan_settlement(
    client: ChainClient,
    store: ReceiptStore,
    sender: str,
    node: str,
    policy: PolicySettings,
    *,
    force: bool = False,
) -> SettlementPlan:
    """Choose the channels of ``node`` to settle now (at most ``policy.max_batch``) and price it."""
    candidates: list[ChannelPlan] = []
    notes: list[str] = []
    for channel in store.unsettled_channels(node=node):
        plan, note = _channel_plan(client, store, channel)
        if plan is not None:
            candidates.append(plan)
        elif note:
            notes.append(note)
    open_batches = [b.id for b in store.pending_batches() if b.node == node]
    if open_batches:
        notes.append(f"batches {open_batches} are still in flight; their channels wait for them")
    # Most valuable first, so a capped batch carries what matters.
    candidates.sort(key=lambda c: (-c.collectible, c.consumer.lower()))
    chosen = candidates[: policy.max_batch]
    if len(candidates) > len(chosen):
        notes.append(f"{len(candidates) - len(chosen)} more channels wait for the next batch (max_batch {policy.max_batch})")
    if not chosen:
        return SettlementPlan(node, [], decide(0, 0, policy, force=force), None, notes)
    call = _settle_call(client, store, [c.receipt.receipt for c in chosen], _provisional_root(client, store, node, chosen))
    quote = client.estimate(sender, call, f"settle {len(chosen)} receipts of {node}")
    thawing = [c.consumer for c in chosen if c.thawing]
    leaving = "closing their lanes" if _module_of(client, store) == LANES_CONTRACT else "started thawing their escrow"
    urgent = f"consumer(s) {', '.join(thawing)} {leaving}" if thawing else None
    age = int(time.time() - min(c.oldest_unsettled_at for c in chosen))
    decision = decide(
        sum(c.collectible for c in chosen), quote.expected_cost, policy, age_seconds=age, urgent=urgent, force=force
    )
    return SettlementPlan(node, chosen, decision, quote, notes)


# -- executing --------------------------------------------------------------------------------------


def execute_plan(
    client: ChainClient,
    store: ReceiptStore,
    signer: Any,
    plan: SettlementPlan,
    *,
    progress: Callable[[str], None] | None = None,
) -> SettlementResult:
    """Settle ``plan``: bundle, ``begin_batch``, send ``settleManyPacked``, record outcomes."""
    if not plan.channels:
        raise KuotaError(f"nothing to settle for node {plan.node}")
    # The bundle file is durable before the batch that names it (receipts.bundles.prepare_batch).
    prepared = prepare_batch(
        store, [c.receipt for c in plan.channels], _store_domain(client, store), client.data_dir / "bundles"
    )
    batch_id, bundle_file = prepared.batch_id, prepared.path
    call = _settle_call(client, store, list(prepared.receipts), prepared.bundle.root)
    try:
        result = client.transact(
            signer,
            call,
            f"settle batch {batch_id} ({len(plan.channels)} receipts) of node {plan.node}",
            kind="settle",
            node=plan.node,
            gas_headroom=EPOCH_BOUNDARY_GAS,
            on_signed=lambda h, n: store.mark_submitted(batch_id, h, n),
            progress=progress,
        )
    except ContractRevertError as exc:
        batch = store.batch(batch_id)
        if batch.state == "pending":
            store.mark_skipped(batch_id, str(exc))  # reverted at estimation: nothing was signed
        else:
            store.mark_failed(batch_id, str(exc))
        raise
    except NonceConsumedError as exc:
        store.mark_failed(batch_id, str(exc))
        raise
    except KuotaError:
        batch = store.batch(batch_id)
        if batch.state == "pending":
            store.mark_skipped(batch_id, "not signed: the transaction could not be prepared")
        raise  # a submitted batch stays open: the next run reconciles it by hash
    batch = store.batch(batch_id)
    _confirm(client, store, batch, result.tx_hash, result.receipt)
    confirmed = store.batch(batch_id)
    outcomes = [i.outcome for i in confirmed.items if i.outcome is not None]
    return SettlementResult(
        batch_id=batch_id,
        tx=result,
        settled=sum(1 for o in outcomes if o.status == "settled"),
        skipped=sum(1 for o in outcomes if o.status == "skipped"),
        paid=sum(o.paid for o in outcomes),
        fee=sum(o.fee for o in outcomes),
        bundle_file=str(bundle_file),
    )


def settle_node(
    client: ChainClient,
    store: ReceiptStore,
    signer: Any,
    node: str,
    policy: PolicySettings,
    *,
    force: bool = False,
    confirm: Callable[[SettlementPlan], bool] | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[ReconcileReport, SettlementPlan, SettlementResult | None]:
    """Reconcile, plan and (if the policy and ``confirm`` agree) settle one node's receipts."""
    report = reconcile(client, store, signer, progress=progress)
    plan = plan_settlement(client, store, signer.address, node, policy, force=force)
    if not plan.decision.act:
        return report, plan, None
    if confirm is not None and not confirm(plan):
        return report, plan, None
    return report, plan, execute_plan(client, store, signer, plan, progress=progress)


def nodes_in_store(store: ReceiptStore) -> list[str]:
    """Every node with at least one channel in the store."""
    return sorted({c.node for c in store.channels()})

