"""A settlement the chain takes back: the node's books follow the chain and end where the receipts say.

Blocks that carried a settlement are removed at depths 1, 2 and 5 (``anvil_reorg`` and
``evm_snapshot``/``evm_revert``), on the finalized-tag path (the test Anvil's ``finalized`` block
stays at 0, so every batch is still re-checked) and on the confirmation-depth path (depth 3: a
reorg of 5 removes a batch the node already counted as final, found through ``channelOf``), with a
batch of three channels and with later receipts arriving meanwhile. In every case the node ends with
chain-settled = signed cumulative amount per channel, the canonical chain's ReceiptSettled payments
add up to exactly that (no double payment), no batch left open, and a clean store.
"""

from __future__ import annotations

import pytest

from nodeclient.ledger import channel_views, finalized_block
from tests.ledger.conftest import CONSUMERS, LedgerNode

MILLION = 1_000_000


def _assert_books_match_chain(ln: LedgerNode, client, store, start: int) -> None:
    for role in CONSUMERS:
        signed = ln.cumulative[role]
        assert ln.channel_of(client, role) == signed, f"{role}: chain settled != signed cumulative"
        assert ln.paid_on_chain(client, role, start) == signed, f"{role}: canonical payments != signed (double pay?)"
    assert store.pending_batches() == []
    assert store.integrity_problems() == []
    views = channel_views(client, store, node=ln.node)
    assert len(views) == len(CONSUMERS)
    assert all(v.agrees and v.unsettled == 0 for v in views), [v.to_json() for v in views]


@pytest.mark.parametrize("method", ["anvil_reorg", "evm_revert"])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_settlement_reorged_out_is_settled_again(ledger_node, method, depth):
    ln = ledger_node
    client = ln.client()
    store = ln.store(client)
    start = ln.w3.eth.block_number
    for role in CONSUMERS:
        ln.receive(store, client, role, MILLION)
    snapshot = ln.snapshot()
    _, first = ln.settle(client, store)
    assert first is not None and first.paid == 3 * MILLION
    ln.mine(depth - 1)
    if method == "anvil_reorg":
        ln.reorg(depth)
    else:
        ln.revert(snapshot)
        ln.mine(depth)
    assert all(ln.channel_of(client, role) == 0 for role in CONSUMERS)
    # Receipts keep arriving while the node does not know yet.
    ln.receive(store, client, "consumer", MILLION)
    ln.receive(store, client, "consumer3", 250_000)

    report, second = ln.settle(client, store)

    assert report.reopened == [first.batch_id]
    assert second is not None
    _assert_books_match_chain(ln, client, store, start)
    assert store.batch(first.batch_id).reopened == 1


def test_reorg_beyond_the_confirmation_depth_is_found_through_channel_of(ledger_node):
    ln = ledger_node
    client = ln.client(confirmations=3, finality="depth")
    store = ln.store(client)
    start = ln.w3.eth.block_number
    for role in CONSUMERS:
        ln.receive(store, client, role, 2 * MILLION)
    with ln.miner():
        _, first = ln.settle(client, store)
    assert first is not None
    mined_in = store.batch(first.batch_id).block_number
    ln.mine(max(0, mined_in + 4 - ln.w3.eth.block_number))
    assert finalized_block(client) >= mined_in, "the batch counts as final before the reorg"
    ln.reorg(ln.w3.eth.block_number - mined_in + 1)  # 5 or more blocks: beyond the depth of 3
    ln.receive(store, client, "consumer2", MILLION)

    with ln.miner():
        report, second = ln.settle(client, store)

    assert first.batch_id in report.reopened
    assert second is not None
    _assert_books_match_chain(ln, client, store, start)


def test_batch_whose_nonce_went_elsewhere_is_rebuilt_from_the_latest_receipts(ledger_node):
    ln = ledger_node
    k = ln.k
    client = ln.client()
    store = ln.store(client)
    start = ln.w3.eth.block_number
    for role in CONSUMERS:
        ln.receive(store, client, role, MILLION)
    snapshot = ln.snapshot()
    _, first = ln.settle(client, store)
    ln.revert(snapshot)
    # The operator sends something else before the node settles again: the batch's nonce is gone.
    k.ok("stake", "add", "5", "--account", "operator", *k.pw(), "--yes")
    ln.receive(store, client, "consumer2", 3 * MILLION)

    report, second = ln.settle(client, store)

    assert report.reopened == [first.batch_id] and report.failed == [first.batch_id]
    assert store.batch(first.batch_id).state == "failed"
    assert "was mined by" in store.batch(first.batch_id).reason and "another transaction of this client" in store.batch(first.batch_id).reason
    assert second is not None and second.paid == 6 * MILLION
    _assert_books_match_chain(ln, client, store, start)


def test_confirmation_after_a_silent_reorg_catches_up_instead_of_wedging(ledger_node):
    """The issue's sequence through the real CLI: settle, revert, a later receipt, ``receipts list``, settle."""
    ln = ledger_node
    k = ln.k
    client = ln.client()
    store = ln.store(client)
    start = ln.w3.eth.block_number
    for role in CONSUMERS:
        ln.receive(store, client, role, MILLION)
    snapshot = ln.snapshot()
    k.ok("receipts", "settle", "--account", "operator", *k.pw(), "--yes", "--force", "--json")
    ln.revert(snapshot)
    ln.receive(store, client, "consumer", MILLION)

    listed = {c["consumer"]: c for c in k.ok("receipts", "list", "--json")["channels"]}
    first = listed[ln.signers["consumer"].address]
    assert (first["settledAmount"], first["storeSettledAmount"], first["agrees"]) == (0, MILLION, False)
    assert first["unsettledAmount"] == 2 * MILLION

    settled = k.ok("receipts", "settle", "--account", "operator", *k.pw(), "--yes", "--force", "--json")

    assert settled["reconciled"]["reopened"] == [1]
    _assert_books_match_chain(ln, client, store, start)
    listed = k.ok("receipts", "list", "--json")["channels"]
    assert all(c["agrees"] and c["unsettledAmount"] == 0 for c in listed)
