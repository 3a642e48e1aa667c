"""The node's books follow the chain: finality, reorgs, and each channel as the chain shows it.

The receipt store and the transaction journal record what this client sent and what the chain did
with it, but the chain is the authority. A block that carried a settlement can be dropped (a reorg
deeper than the confirmation depth, Anvil's ``evm_revert``, an RPC provider that served a block it
later lost), and a third party may settle a node's receipt. :func:`follow_chain` brings both books
back in line, and runs at the start of every settlement run (``settlement.reconcile``), so the
``node serve`` settler does it on every interval too:

1. **Finality.** A mined transaction is final once its block is at or below the chain's
   ``finalized`` block (where the RPC serves that tag and the profile says ``finality =
   "finalized"``), else once it has the profile's confirmation depth. Until then its receipt is
   re-read on every run.
2. **Journal.** A journaled transaction (settle, claim, stake, escrow…) whose receipt is gone is in
   flight again (its nonce group goes back to ``sent``, its gas no longer counts); the next send
   from that account re-broadcasts the signed bytes at the same nonce, or learns the nonce went to
   another transaction.
3. **Batches.** A confirmed settlement batch that is not final and whose receipt is gone or now in
   another block is reopened (``ReceiptStore.reopen_batch``): its payments leave the ledger and
   reconciliation re-sends it as recorded, or fails it (nonce consumed) so its channels are rebuilt
   from their latest receipts in a new batch.
4. **Channels.** Every channel's ``channelOf`` is read and recorded. Where the chain shows less than
   the store's ledger (a reorg beyond finality), the channel's confirmed batches are re-checked,
   final or not, and those the chain lost are reopened. Where it shows more (settled elsewhere),
   the recorded chain figure is what planning and ``kuota receipts list`` use.

Because receipts are cumulative and the contract pays only what a receipt adds to the channel, a
re-sent or rebuilt batch never pays twice: whatever happens, the chain ends at the latest signed
cumulative amount.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import requests
from web3.exceptions import BlockNotFound, Web3RPCError

from nodeclient.chain.client import ChainClient
from nodeclient.chain.errors import ChainUnreachableError
from nodeclient.lanes import settlement_of_domain
from nodeclient.receipts.store import BatchRecord, ChannelState, ReceiptStore

__all__ = [
    "ChannelView",
    "FollowReport",
    "block_hash_of",
    "channel_views",
    "finalized_block",
    "follow_batches",
    "follow_chain",
    "follow_channels",
    "follow_journal",
]

log = logging.getLogger(__name__)


@dataclass
class FollowReport:
    """What following the chain changed in the node's books."""

    finalized_block: int = 0
    reopened: list[int] = field(default_factory=list)
    reorged_txs: list[str] = field(default_factory=list)
    settled_elsewhere: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "finalizedBlock": self.finalized_block,
            "reopened": self.reopened,
            "reorgedTxs": self.reorged_txs,
            "settledElsewhere": self.settled_elsewhere,
        }


@dataclass(frozen=True)
class ChannelView:
    """One channel as the chain shows it, with the store's view beside it."""

    consumer: str
    node: str
    latest_amount: int
    latest_bytes: int
    latest_digest: str
    chain_settled: int
    store_settled: int
    awaiting_finality: int
    open_batch: int | None

    @property
    def unsettled(self) -> int:
        """What the latest receipt can still collect on chain (before escrow limits)."""
        return max(0, self.latest_amount - self.chain_settled)

    @property
    def agrees(self) -> bool:
        """The store's ledger says what the chain says."""
        return self.chain_settled == self.store_settled

    def to_json(self) -> dict[str, Any]:
        """Stable machine form (``settledAmount`` is the chain's figure)."""
        return {
            "consumer": self.consumer,
            "node": self.node,
            "latestAmount": self.latest_amount,
            "latestBytes": self.latest_bytes,
            "settledAmount": self.chain_settled,
            "unsettledAmount": self.unsettled,
            "storeSettledAmount": self.store_settled,
            "awaitingFinality": self.awaiting_finality,
            "agrees": self.agrees,
            "openBatch": self.open_batch,
            "latestDigest": self.latest_digest,
        }


def finalized_block(client: ChainClient) -> int:
    """The highest block a reorg can no longer remove, as far as this client trusts the chain."""
    by_depth = max(0, client.block_number() - client.profile.confirmations + 1)
    if client.profile.finality == "depth":
        return by_depth
    try:
        return int(client.w3.eth.get_block("finalized")["number"])
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ChainUnreachableError(client.profile.rpc_url, type(exc).__name__) from None
    except (Web3RPCError, BlockNotFound, ValueError, KeyError, TypeError):
        # The RPC has no 'finalized' tag (pre-merge chains, some providers): the depth decides.
        return by_depth


def block_hash_of(receipt: Any) -> str:
    """0x-hex lowercase hash of the block a transaction receipt names."""
    value = receipt["blockHash"]
    return "0x" + bytes(value).hex() if not isinstance(value, str) else value.lower()


def _lost(client: ChainClient, batch: BatchRecord) -> str | None:
    """Why the chain no longer backs ``batch``'s confirmation, or None if it still does."""
    receipt = client.receipt_of(batch.tx_hash) if batch.tx_hash else None
    if receipt is None:
        return f"transaction {batch.tx_hash} of block {batch.block_number} is no longer on chain (reorg)"
    if batch.block_hash is not None and block_hash_of(receipt) != batch.block_hash:
        return f"transaction {batch.tx_hash} moved from block {batch.block_number} to {int(receipt['blockNumber'])} (reorg)"
    return None


def follow_journal(client: ChainClient, finalized: int) -> list[str]:
    """Re-read every journaled transaction mined above ``finalized``; reopen those the chain lost."""
    reorged: list[str] = []
    for record in client.journal.mined_above(client.chain_id, finalized):
        receipt = client.receipt_of(record.tx_hash)
        if receipt is None:
            log.warning("%s: %s left the chain (block %s); in flight again", record.description, record.tx_hash,
                        record.block_number)
            client.journal.reopen_group(record)
            reorged.append(record.tx_hash)
        elif int(receipt["blockNumber"]) != record.block_number:
            client.journal.move_block(record.tx_hash, int(receipt["blockNumber"]))
    return reorged


def follow_batches(client: ChainClient, store: ReceiptStore, finalized: int) -> list[int]:
    """Reopen every confirmed, not yet final batch whose transaction the chain lost or moved."""
    reopened: list[int] = []
    for batch in store.confirmed_batches(above_block=finalized):
        reason = _lost(client, batch)
        if reason is not None:
            log.warning("settlement batch %d: %s; reopening it", batch.id, reason)
            store.reopen_batch(batch.id, reason)
            reopened.append(batch.id)
    return reopened


def _chain_channel(client: ChainClient, store: ReceiptStore, channel: ChannelState) -> tuple[int, int]:
    name = settlement_of_domain(client, store.domain)
    amount, nbytes = client.call(client.contract(name).functions.channelOf(channel.consumer, channel.node), f"{name}.channelOf()")
    return int(amount), int(nbytes)


def _reopen_lost(client: ChainClient, store: ReceiptStore, channel: ChannelState, chain_amount: int) -> list[int]:
    """The chain shows less than the ledger: reopen the channel's confirmed batches it no longer has."""
    reopened: list[int] = []
    batches = [
        b for b in store.confirmed_batches(node=channel.node)
        if any(i.receipt.receipt.consumer == channel.consumer for i in b.items)
    ]
    for batch in reversed(batches):
        reason = _lost(client, batch)
        if reason is not None:
            log.warning("settlement batch %d: %s (channelOf shows %d); reopening it", batch.id, reason, chain_amount)
            store.reopen_batch(batch.id, reason)
            reopened.append(batch.id)
    if not reopened:
        log.warning(
            "channel (%s, %s): channelOf shows %d settled, less than the %d this store's confirmed batches paid, "
            "yet every batch's transaction is on chain; the RPC may serve an inconsistent view",
            channel.consumer, channel.node, chain_amount, channel.settled_amount,
        )
    return reopened


def follow_channels(
    client: ChainClient, store: ReceiptStore, *, node: str | None = None, report: FollowReport | None = None
) -> FollowReport:
    """Read every channel's ``channelOf``, record it, and reopen batches the chain shows it lost."""
    report = report if report is not None else FollowReport()
    for channel in store.channels(node=node):
        amount, nbytes = _chain_channel(client, store, channel)
        store.sync_channel(channel.consumer, channel.node, amount, nbytes)
        if amount < channel.settled_amount:
            report.reopened.extend(_reopen_lost(client, store, channel, amount))
        elif amount > channel.settled_amount:
            report.settled_elsewhere.append(channel.consumer)
    return report


def follow_chain(client: ChainClient, store: ReceiptStore) -> FollowReport:
    """Bring the journal and the store in line with the chain (see module docstring)."""
    finalized = finalized_block(client)
    report = FollowReport(finalized_block=finalized)
    report.reorged_txs = follow_journal(client, finalized)
    report.reopened = follow_batches(client, store, finalized)
    return follow_channels(client, store, report=report)


def channel_views(client: ChainClient, store: ReceiptStore, *, node: str | None = None) -> list[ChannelView]:
    """Every channel (optionally of one node) as the chain shows it now, with the store's figures."""
    awaiting: dict[tuple[str, str], int] = {}
    for batch in store.confirmed_batches(above_block=finalized_block(client), node=node):
        for item in batch.items:
            if item.outcome is not None:
                key = item.receipt.receipt.channel
                awaiting[key] = awaiting.get(key, 0) + item.outcome.paid
    views = []
    for channel in store.channels(node=node):
        chain_amount, _ = _chain_channel(client, store, channel)
        latest = channel.latest
        views.append(ChannelView(
            consumer=channel.consumer,
            node=channel.node,
            latest_amount=latest.receipt.cumulative_amount,
            latest_bytes=latest.receipt.cumulative_bytes,
            latest_digest=latest.digest_hex,
            chain_settled=chain_amount,
            store_settled=channel.settled_amount,
            awaiting_finality=awaiting.get((channel.consumer, channel.node), 0),
            open_batch=channel.open_batch_id,
        ))
    return views
