"""Stake and escrow transactions the chain takes back: the journal puts them back in flight.

A reorg drops the blocks that carried ``kuota stake add`` / ``kuota escrow deposit``. Following the
chain finds their receipts gone: the journal no longer counts them as mined (nor their gas), and the
next transaction from that account re-broadcasts the signed bytes at the same nonces first, so the
chain ends with exactly what the operator asked for, once.
"""

from __future__ import annotations

import pytest

from nodeclient.ledger import follow_chain
from tests.ledger.conftest import LedgerNode


def _bonded(client, operator: str) -> int:
    return int(client.contract("Staking").functions.bondedOf(operator).call())


def _escrowed(client, consumer: str) -> int:
    return int(client.contract("PaymentEscrow").functions.accountOf(consumer).call()[0])


@pytest.mark.parametrize("command", ["stake", "escrow"])
def test_reorged_transactions_are_resent_once(ledger_node: LedgerNode, command):
    ln = ledger_node
    k = ln.k
    client = ln.client()
    store = ln.store(client)
    if command == "stake":
        who, args, read, unit = "operator", ("stake", "add"), _bonded, 10**18
    else:
        who, args, read, unit = "consumer", ("escrow", "deposit"), _escrowed, 10**6
    address = k.addresses[who]
    before = read(client, address)
    head = ln.w3.eth.block_number
    k.ok(*args, "50", "--account", who, *k.pw(), "--yes")
    sent = [r for r in client.journal.records(client.chain_id, sender=address) if r.block_number and r.block_number > head]
    assert sent and all(r.status == "mined" for r in sent)
    ln.reorg(ln.w3.eth.block_number - head)
    assert read(client, address) == before

    report = follow_chain(client, store)

    assert sorted(report.reorged_txs) == sorted(r.tx_hash for r in sent)
    reopened = [client.journal.get(r.tx_hash) for r in sent]
    assert all(r.status == "sent" and r.block_number is None and r.gas_cost == 0 for r in reopened)

    k.ok(*args, "1", "--account", who, *k.pw(), "--yes")

    assert read(client, address) == before + 51 * unit
    assert all(client.journal.get(r.tx_hash).status == "mined" for r in sent)


def test_reorged_reward_claim_is_resent_once_and_pays_once(ledger_node: LedgerNode, kuota):
    """A claim the chain takes back: the next ``rewards claim`` lands it once, the payout gets it once."""
    from brownie import chain

    ln = ledger_node
    k = ln.k
    client = ln.client()
    store = ln.store(client)
    ln.receive(store, client, "consumer", 2_000_000)
    _, settled = ln.settle(client, store)
    assert settled is not None and settled.paid == 2_000_000
    chain.sleep(kuota.rewards.epochLength() + 1)
    chain.mine()
    payout = kuota.registry.getNode(ln.node)[1]
    before = kuota.token.balanceOf(payout)
    claimable = k.ok("rewards", "show", "--node", ln.node, "--json")["claimableTotal"]
    assert claimable > 0

    head = ln.w3.eth.block_number
    k.ok("rewards", "claim", "--node", ln.node, "--force", "--account", "operator", *k.pw(), "--yes")
    assert kuota.token.balanceOf(payout) == before + claimable
    operator = k.addresses["operator"]
    sent = [r for r in client.journal.records(client.chain_id, sender=operator) if r.block_number and r.block_number > head]
    assert sent and all(r.status == "mined" for r in sent)

    ln.reorg(ln.w3.eth.block_number - head)
    assert kuota.token.balanceOf(payout) == before
    report = follow_chain(client, store)
    assert sorted(report.reorged_txs) == sorted(r.tx_hash for r in sent)

    k.ok("rewards", "claim", "--node", ln.node, "--force", "--account", "operator", *k.pw(), "--yes")

    assert kuota.token.balanceOf(payout) == before + claimable
    assert all(client.journal.get(r.tx_hash).status == "mined" for r in sent)
    assert k.ok("rewards", "show", "--node", ln.node, "--json")["claimableTotal"] == 0
