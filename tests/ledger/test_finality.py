"""Which settlements the node re-checks: finality by the RPC's ``finalized`` tag or by confirmation depth.

The test Anvil serves a ``finalized`` block that stays at 0 (it has no consensus layer), so on the
tag path nothing is final and every confirmed batch is re-read; on the depth path a batch is final
once it has the profile's confirmations, and a reorg beyond that is found through ``channelOf``
instead. A transaction that a reorg re-includes in another block is confirmed again from there.
"""

from __future__ import annotations

from nodeclient.ledger import finalized_block, follow_batches, follow_channels
from tests.ledger.conftest import CONSUMERS, LedgerNode

MILLION = 1_000_000


def test_finalized_block_follows_the_profile(ledger_node: LedgerNode):
    ln = ledger_node
    ln.mine(6)
    head = ln.w3.eth.block_number
    assert finalized_block(ln.client()) == int(ln.w3.eth.get_block("finalized")["number"]) == 0
    assert finalized_block(ln.client(confirmations=3, finality="depth")) == head - 2
    assert finalized_block(ln.client(confirmations=1, finality="depth")) == head


def test_only_unfinal_batches_are_rechecked_and_channel_of_catches_the_rest(ledger_node: LedgerNode):
    ln = ledger_node
    tag = ln.client()
    depth = ln.client(confirmations=1, finality="depth")
    store = ln.store(tag)
    for role in CONSUMERS:
        ln.receive(store, tag, role, MILLION)
    _, first = ln.settle(tag, store)
    ln.reorg(1)

    # Depth 1 with one confirmation: the batch is final, so the receipt check passes it over ...
    assert follow_batches(depth, store, finalized_block(depth)) == []
    assert store.batch(first.batch_id).state == "confirmed"
    # ... and the chain's channelOf, lower than the ledger, reopens it.
    report = follow_channels(depth, store)
    assert report.reopened == [first.batch_id]
    assert store.batch(first.batch_id).state == "submitted"
    assert all(c.chain_settled_amount == 0 and c.unsettled_amount == MILLION for c in store.channels())


def test_unfinal_batch_is_reopened_by_its_missing_receipt(ledger_node: LedgerNode):
    ln = ledger_node
    client = ln.client()
    store = ln.store(client)
    ln.receive(store, client, "consumer", MILLION)
    _, first = ln.settle(client, store)
    ln.reorg(1)

    assert follow_batches(client, store, finalized_block(client)) == [first.batch_id]
    assert "no longer on chain" in store.batch(first.batch_id).reason


def test_settlement_re_included_in_another_block_is_confirmed_there(ledger_node: LedgerNode):
    ln = ledger_node
    client = ln.client()
    store = ln.store(client)
    start = ln.w3.eth.block_number
    for role in CONSUMERS:
        ln.receive(store, client, role, MILLION)
    _, first = ln.settle(client, store)
    old = store.batch(first.batch_id)
    ln.mine(1)
    raw = client.journal.get(old.tx_hash).raw
    result = ln.w3.provider.make_request("anvil_reorg", [2, [[raw, 1]]])
    assert "error" not in result, result
    assert int(ln.w3.eth.get_transaction_receipt(old.tx_hash)["blockNumber"]) == old.block_number + 1

    report, second = ln.settle(client, store)

    assert report.reopened == [first.batch_id] and report.confirmed == [first.batch_id]
    assert second is None  # nothing more is owed: the same transaction still paid it all
    again = store.batch(first.batch_id)
    assert (again.state, again.block_number, again.reopened) == ("confirmed", old.block_number + 1, 1)
    assert again.block_hash != old.block_hash
    assert client.journal.get(old.tx_hash).block_number == old.block_number + 1
    for role in CONSUMERS:
        assert ln.channel_of(client, role) == ln.paid_on_chain(client, role, start) == MILLION
    assert store.pending_batches() == [] and store.integrity_problems() == []
