"""Wash-trading economics under the default (local) parameters, across several epochs.

One person owns an operator with two nodes and the consumer that pays them, claims the best latency
(0 ms) in every receipt, and pushes volume through its own nodes next to honest traffic. Whatever it
does, its rewards valued at the reference price (1 KUOTA = 1 / rewardPerFeeUnit payment units) are
at most the protocol fees it burned: it breaks even at best when neither the per-node cap nor the
pro-rata scaling binds, and loses once either does. Gas is free on this chain (base fee 0), so the
bound holds before gas, i.e. in the self-dealer's most favourable case.
"""

from __future__ import annotations

from collections import defaultdict

from brownie import chain
from integration.support import BPS, Actor, anvil_key, ints

USD = 10**6
MAX_EPOCHS = 8


def test_self_dealer_rewards_never_exceed_fees_burned(
    system, accounts, operator, operator2, consumer2_actor, stranger, add_node, fund, signed, to_next_epoch
):
    fee_bps = int(system.settlement.feeBps())
    rpfu = int(system.rewards.rewardPerFeeUnit())
    cap = int(system.rewards.emissionPerEpoch()) * int(system.rewards.maxNodeShareBps()) // BPS

    dealer_operator = accounts[14]
    dealer_consumer = Actor(accounts[15], anvil_key(15))
    dealer_nodes = [add_node(dealer_operator, f"wash-{i}", payout=accounts[16]) for i in range(2)]
    honest_nodes = [
        add_node(op, f"honest-{op.address}-{i}") for op in (operator, operator2) for i in range(3)
    ]

    dealer_start_usd = 5_000_000 * USD
    system.payment_token.mint(dealer_consumer.account, dealer_start_usd, {"from": dealer_consumer.account})
    system.payment_token.approve(system.escrow, 2**256 - 1, {"from": dealer_consumer.account})
    system.escrow.deposit(dealer_start_usd, {"from": dealer_consumer.account})
    fund(consumer2_actor.account, 5_000_000 * USD)

    cumulative: dict[tuple[str, str], int] = defaultdict(int)
    dealer_fee_by_epoch: dict[int, int] = defaultdict(int)

    def pay(consumer: Actor, node, amount: int, latency_ms: int) -> int:
        key = (consumer.address, node.address)
        cumulative[key] += amount
        receipt, signature = signed(consumer, node, cumulative[key], latency_ms=latency_ms)
        tx = system.settlement.settle(receipt, signature, {"from": stranger})
        assert tx.events["ReceiptSettled"]["paid"] == amount
        return int(tx.events["ReceiptSettled"]["fee"])

    # Epoch 1: small volume, below the cap and the budget: the dealer exactly breaks even.
    # Later epochs: 100k USD per node per epoch: every node is capped, and once the carry from the
    # empty first epochs is used up the epoch is scaled pro rata.
    epochs = []
    seen_scaled = False
    epoch = to_next_epoch(1)
    for round_ in range(MAX_EPOCHS):
        epochs.append(epoch)
        volume = 100 * USD if round_ == 0 else 100_000 * USD
        for node in dealer_nodes:
            dealer_fee_by_epoch[epoch] += pay(dealer_consumer, node, volume, latency_ms=0)
        for node in honest_nodes:
            pay(consumer2_actor, node, volume, latency_ms=120)
        # Consecutive epochs (no empty one in between, whose schedule would refill the carry).
        next_epoch = to_next_epoch(1)
        system.rewards.finalizeEpochs(2**32, {"from": stranger})
        _, total_capped, budget, _, _, finalized = ints(system.rewards.epochInfo(epoch))
        assert finalized
        if round_ > 0 and total_capped > budget:
            seen_scaled = True
            break
        epoch = next_epoch
    assert seen_scaled, f"no epoch was scaled within {MAX_EPOCHS} epochs"

    # Claim everything the dealer's nodes earned and value it at the reference price.
    payout = accounts[16]
    rewards_by_epoch: dict[int, int] = defaultdict(int)
    for node in dealer_nodes:
        tx = system.rewards.claim(node.address, epochs, {"from": stranger})
        for event in tx.events["RewardClaimed"]:
            assert event["payout"] == payout
            rewards_by_epoch[int(event["epoch"])] += int(event["amount"])
    total_reward = sum(rewards_by_epoch.values())
    assert system.token.balanceOf(payout) == total_reward

    for epoch in epochs:
        fee = dealer_fee_by_epoch[epoch]
        reward = rewards_by_epoch[epoch]
        _, total_capped, budget, _, _, _ = ints(system.rewards.epochInfo(epoch))
        # The bound: reward × (1 / rewardPerFeeUnit) ≤ fee, i.e. reward ≤ rewardPerFeeUnit × fee.
        assert reward <= rpfu * fee, (epoch, reward, fee)
        if epoch == epochs[0]:
            # Nothing binds: reward equals the fee at the reference price (latency 0 → weight = fee).
            assert reward == rpfu * fee
        else:
            # Each node is capped (and maybe scaled): strictly below break-even.
            assert reward <= 2 * cap
            assert reward < rpfu * fee
        if total_capped > budget:
            assert reward < 2 * cap

    # In payment-token terms: the dealer lost exactly its fees, and the rewards are worth less.
    total_fee = sum(dealer_fee_by_epoch.values())
    assert total_reward // rpfu <= total_fee
    assert total_reward < rpfu * total_fee
    for node in dealer_nodes:
        system.escrow.withdrawEarnings(node.address, {"from": stranger})
    left = int(system.escrow.availableOf(dealer_consumer.account))
    system.escrow.requestThaw(left, {"from": dealer_consumer.account})
    chain.sleep(int(system.escrow.thawingPeriod()))
    system.escrow.withdraw({"from": dealer_consumer.account})
    usd_back = int(system.payment_token.balanceOf(dealer_consumer.account)) + int(
        system.payment_token.balanceOf(payout)
    )
    assert usd_back == dealer_start_usd - total_fee
    assert total_fee == sum(
        v * fee_bps // BPS for v in [100 * USD] * 2 + [100_000 * USD] * 2 * (len(epochs) - 1)
    )
