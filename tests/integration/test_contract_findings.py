"""Regression tests for issues found in the contracts while writing the integration and stateful tests.

Both failed on the first version of the contracts and pass since the fixes:

- RewardPool.finalizeEpochs computed ``through + maxCount``, which overflowed (Panic 0x11) for a
  keeper's "finalise everything" call with ``maxCount = 2**256 - 1`` once one epoch was finalised.
- ReceiptSettlement rewarded every node status except Jailed, so a node whose operator had
  requested exit, unbonded and withdrawn all stake kept earning full reward weight with nothing left
  to slash; now only Active nodes earn weight (Exiting and Jailed nodes are still paid).
"""

from __future__ import annotations

from brownie import chain

USD = 10**6


def test_finalize_epochs_accepts_max_uint_after_a_first_finalisation(system, stranger):
    length = int(system.rewards.epochLength())
    chain.sleep(2 * length)
    chain.mine()
    system.rewards.finalizeEpochs(1, {"from": stranger})
    assert system.rewards.finalizedThrough() == 1
    # "Finalise everything" with the largest count a keeper can pass.
    system.rewards.finalizeEpochs(2**256 - 1, {"from": stranger})
    assert system.rewards.finalizedThrough() == system.rewards.currentEpoch()


def test_finalize_epochs_with_a_bounded_count_finalises_everything(system, stranger):
    length = int(system.rewards.epochLength())
    chain.sleep(3 * length)
    chain.mine()
    system.rewards.finalizeEpochs(1, {"from": stranger})
    system.rewards.finalizeEpochs(2**128, {"from": stranger})
    assert system.rewards.finalizedThrough() == system.rewards.currentEpoch()


def test_exited_node_with_no_stake_left_earns_no_rewards(
    system, operator, stranger, consumer_actor, add_node, fund, signed, to_next_epoch
):
    node = add_node(operator, "exit-then-earn")
    min_stake = int(system.registry.minStakePerNode())
    # The operator exits the node, unbonds all its stake and withdraws it: nothing is left to slash.
    system.registry.requestExit(node.address, {"from": operator})
    system.staking.requestUnbond(min_stake, {"from": operator})
    chain.sleep(int(system.staking.unbondingPeriod()))
    system.staking.withdraw({"from": operator})
    assert system.staking.bondedOf(operator) == 0
    assert system.staking.unbondingOf(operator)[0] == 0

    # New traffic after the exit is still paid (the consumer owes it) ...
    fund(consumer_actor.account, 1_000 * USD)
    epoch = to_next_epoch(1)
    receipt, signature = signed(consumer_actor, node, 500 * USD, latency_ms=0)
    tx = system.settlement.settle(receipt, signature, {"from": stranger})
    assert tx.events["ReceiptSettled"]["paid"] == 500 * USD
    # ... but a node with no stake behind it should earn no reward weight (as a jailed node does).
    assert system.rewards.nodeEpoch(node.address, epoch)[1] == 0
