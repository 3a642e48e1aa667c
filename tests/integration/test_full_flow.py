"""End to end across every contract: register → stake → deposit → settle → epochs → claim → withdrawals.

Every figure is recomputed from the BRIEF's formulas and compared with balances, not just events, and
the run ends with every contract holding exactly what is still owed (nothing stuck, nothing missing).
"""

from __future__ import annotations

from brownie import chain
from eth_utils import keccak
from integration.support import BPS, event_list, ints, latency_multiplier_bps

USD = 10**6


def test_full_operator_and_consumer_lifecycle(
    system,
    deployer,
    treasury,
    operator,
    stranger,
    accounts,
    consumer_actor,
    add_node,
    fund,
    signed,
    to_next_epoch,
):
    payout = accounts[13]
    consumer = consumer_actor.account
    fee_bps = int(system.settlement.feeBps())
    rpfu = int(system.rewards.rewardPerFeeUnit())
    curve = tuple(int(v) for v in system.rewards.latencyCurve())
    escrow_start = int(system.payment_token.balanceOf(system.escrow))
    staking_start = int(system.token.balanceOf(system.staking))

    # Operator bonds the minimum and registers a node whose earnings go to a separate payout wallet.
    node = add_node(operator, "full-flow", payout=payout)
    assert system.registry.statusOf(node.address) == 1  # Active
    assert system.registry.payoutOf(node.address) == payout
    min_stake = int(system.registry.minStakePerNode())
    assert system.staking.bondedOf(operator) == min_stake
    assert system.registry.requiredStake(operator) == min_stake

    # Consumer funds escrow with 100 USD.
    fund(consumer, 100 * USD)
    assert ints(system.escrow.accountOf(consumer)) == (100 * USD, 0, 0)

    epoch = to_next_epoch(1)
    # Receipt 1 (10 USD, 20 ms) settled alone by a stranger: the node is paid, not the submitter.
    r1, s1 = signed(consumer_actor, node, 10 * USD, latency_ms=20)
    tx1 = system.settlement.settle(r1, s1, {"from": stranger})
    fee1 = 10 * USD * fee_bps // BPS
    assert tx1.events["ReceiptSettled"]["paid"] == 10 * USD
    assert tx1.events["ReceiptSettled"]["fee"] == fee1
    assert tx1.events["ReceiptSettled"]["digest"] == system.settlement.hashReceipt(r1)
    # Receipts 2 and 3 in one batch (25 then 40 USD cumulative, 300 ms latency); the batch
    # commits to a bundle root and pays the difference to the last one.
    r2, s2 = signed(consumer_actor, node, 25 * USD, latency_ms=300)
    r3, s3 = signed(consumer_actor, node, 40 * USD, latency_ms=300)
    root = keccak(b"bundle")
    tx2 = system.settlement.settleMany([r2, r3], [s2, s3], root, {"from": stranger})
    fee2, fee3 = 15 * USD * fee_bps // BPS, 15 * USD * fee_bps // BPS
    batch = tx2.events["BatchSettled"]
    assert (batch["receiptCount"], batch["settledCount"], batch["paid"], batch["fee"]) == (
        2,
        2,
        30 * USD,
        fee2 + fee3,
    )
    assert batch["bundleRoot"] == "0x" + root.hex()
    assert ints(system.settlement.channelOf(consumer, node.address)) == (40 * USD, 40 * USD * 1_000)

    fees = fee1 + fee2 + fee3
    assert system.escrow.creditOf(node.address) == 40 * USD - fees
    assert system.escrow.accruedFees() == fees
    assert ints(system.escrow.accountOf(consumer)) == (60 * USD, 0, 0)

    # Rewards: weight = Σ fee_i × multiplier(latency_i); a lone node is neither capped nor scaled.
    weight = (
        fee1 * latency_multiplier_bps(20, *curve) // BPS
        + (fee2 + fee3) * latency_multiplier_bps(300, *curve) // BPS
    )
    assert ints(system.rewards.nodeEpoch(node.address, epoch)) == (fees, weight, weight * rpfu, 0)
    expected_reward = weight * rpfu

    # Not claimable before the epoch ends; then claimable, claimed once, minted to the payout.
    assert system.rewards.claimable(node.address, epoch) == 0
    to_next_epoch(1)
    assert system.rewards.claimable(node.address, epoch) == expected_reward
    tx = system.rewards.claim(node.address, [epoch], {"from": stranger})
    assert tx.events["RewardClaimed"]["payout"] == payout
    assert system.token.balanceOf(payout) == expected_reward
    assert system.rewards.totalClaimed() == expected_reward

    # Withdrawals: node earnings to its payout, fees to the treasury, consumer's rest after a thaw.
    treasury_before = int(system.payment_token.balanceOf(treasury))
    system.escrow.withdrawEarnings(node.address, {"from": stranger})
    assert system.payment_token.balanceOf(payout) == 40 * USD - fees
    system.escrow.sweepFees({"from": stranger})
    assert system.payment_token.balanceOf(treasury) - treasury_before == fees
    system.escrow.requestThaw(60 * USD, {"from": consumer})
    chain.sleep(int(system.escrow.thawingPeriod()))
    system.escrow.withdraw({"from": consumer})
    assert system.payment_token.balanceOf(consumer) == 60 * USD

    # The operator exits the node, unbonds everything and withdraws it after the unbonding period.
    system.registry.requestExit(node.address, {"from": operator})
    assert system.registry.requiredStake(operator) == 0
    system.staking.requestUnbond(min_stake, {"from": operator})
    chain.sleep(int(system.staking.unbondingPeriod()))
    tx = system.staking.withdraw({"from": operator})
    assert event_list(tx, "StakeWithdrawn")[0]["amount"] == min_stake
    assert system.token.balanceOf(operator) == min_stake

    # Nothing left behind: escrow and staking hold exactly what they held before this test.
    assert system.payment_token.balanceOf(system.escrow) == escrow_start
    assert system.token.balanceOf(system.staking) == staking_start
    assert system.escrow.creditOf(node.address) == 0
    assert system.escrow.accruedFees() == 0
