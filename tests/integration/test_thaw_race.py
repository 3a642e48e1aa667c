"""The consumer thaw-and-drain race: a consumer who signed receipts tries to pull its escrow out
before the node settles.

Funds that are thawing still pay settlements that land first; once drained, a receipt pays what
is there and advances the channel only by that, so the same receipt settles the rest after a top-up.
"""

from __future__ import annotations

from brownie import chain
from integration.support import BPS, ints, reverts_with

USD = 10**6


def test_node_settles_during_thaw_from_thawing_funds(
    system, operator, stranger, consumer_actor, add_node, fund, signed
):
    consumer = consumer_actor.account
    node = add_node(operator, "thaw-race-a")
    fund(consumer, 100 * USD)
    receipt, signature = signed(consumer_actor, node, 60 * USD)

    # The consumer starts thawing everything right after signing for 60 USD of traffic.
    tx = system.escrow.requestThaw(100 * USD, {"from": consumer})
    thaw_ends = tx.events["ThawRequested"]["thawEndsAt"]
    assert ints(system.escrow.accountOf(consumer)) == (0, 100 * USD, thaw_ends)

    # The node settles during the thaw: paid in full, from the thawing bucket.
    tx = system.settlement.settle(receipt, signature, {"from": stranger})
    assert tx.events["ReceiptSettled"]["paid"] == 60 * USD
    assert ints(system.escrow.accountOf(consumer)) == (0, 40 * USD, thaw_ends)

    # After the thaw the consumer withdraws only what was not spent.
    with reverts_with("EscrowThawNotFinished"):
        system.escrow.withdraw({"from": consumer})
    chain.sleep(int(system.escrow.thawingPeriod()))
    system.escrow.withdraw({"from": consumer})
    assert system.payment_token.balanceOf(consumer) == 40 * USD
    fee = 60 * USD * int(system.settlement.feeBps()) // BPS
    assert system.escrow.creditOf(node.address) == 60 * USD - fee


def test_drained_consumer_pays_partially_then_rest_after_top_up(
    system, operator, stranger, consumer_actor, add_node, fund, signed
):
    consumer = consumer_actor.account
    node = add_node(operator, "thaw-race-b")
    fund(consumer, 100 * USD)
    receipt, signature = signed(consumer_actor, node, 80 * USD)

    # The consumer thaws 70 and withdraws it before the node settles: 30 USD are left.
    system.escrow.requestThaw(70 * USD, {"from": consumer})
    chain.sleep(int(system.escrow.thawingPeriod()))
    system.escrow.withdraw({"from": consumer})
    assert ints(system.escrow.accountOf(consumer)) == (30 * USD, 0, 0)

    # The settlement pays what is there and advances the channel only by that.
    tx = system.settlement.settle(receipt, signature, {"from": stranger})
    assert tx.events["ReceiptSettled"]["paid"] == 30 * USD
    assert ints(system.settlement.channelOf(consumer, node.address)) == (30 * USD, 80 * USD * 1_000)
    assert ints(system.escrow.accountOf(consumer)) == (0, 0, 0)

    # With nothing in escrow the same receipt pays nothing (and does not revert).
    tx = system.settlement.settle(receipt, signature, {"from": stranger})
    assert tx.events["ReceiptSettled"]["paid"] == 0
    assert ints(system.settlement.channelOf(consumer, node.address))[0] == 30 * USD

    # The consumer tops up 20, then 100: the same signed receipt settles the rest in two steps.
    fund(consumer, 20 * USD)
    tx = system.settlement.settle(receipt, signature, {"from": stranger})
    assert tx.events["ReceiptSettled"]["paid"] == 20 * USD
    fund(consumer, 100 * USD)
    tx = system.settlement.settle(receipt, signature, {"from": stranger})
    assert tx.events["ReceiptSettled"]["paid"] == 30 * USD
    assert ints(system.settlement.channelOf(consumer, node.address))[0] == 80 * USD
    assert ints(system.escrow.accountOf(consumer)) == (70 * USD, 0, 0)

    # Fully settled now: a fourth submission is stale.
    with reverts_with("SettlementStaleReceipt", consumer.address, node.address, 80 * USD, 80 * USD):
        system.settlement.settle(receipt, signature, {"from": stranger})

    fee_bps = int(system.settlement.feeBps())
    total_fee = sum(p * fee_bps // BPS for p in (30 * USD, 20 * USD, 30 * USD))
    assert system.escrow.creditOf(node.address) == 80 * USD - total_fee


def test_thawed_funds_still_pay_a_batch_that_lands_first(
    system, operator, stranger, consumer_actor, consumer2_actor, add_node, fund, signed
):
    node = add_node(operator, "thaw-race-c")
    fund(consumer_actor.account, 50 * USD)
    fund(consumer2_actor.account, 50 * USD)
    r1, s1 = signed(consumer_actor, node, 45 * USD)
    r2, s2 = signed(consumer2_actor, node, 10 * USD)
    # Consumer 1 thaws everything and tries to withdraw before the thaw ends: refused.
    system.escrow.requestThaw(50 * USD, {"from": consumer_actor.account})
    chain.sleep(int(system.escrow.thawingPeriod()) // 2)
    with reverts_with("EscrowThawNotFinished"):
        system.escrow.withdraw({"from": consumer_actor.account})
    tx = system.settlement.settleMany([r1, r2], [s1, s2], b"\x00" * 32, {"from": stranger})
    assert tx.events["BatchSettled"]["paid"] == 55 * USD
    chain.sleep(int(system.escrow.thawingPeriod()))
    system.escrow.withdraw({"from": consumer_actor.account})
    assert system.payment_token.balanceOf(consumer_actor.account) == 5 * USD
    assert system.escrow.availableOf(consumer2_actor.account) == 40 * USD
