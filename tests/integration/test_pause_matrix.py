"""Pause matrix: with settlement and rewards paused, settling and claiming stop, and every way for
users to get their own money out keeps working (thawed escrow, node earnings, fees, unbonded stake).

After unpausing, the very receipts and epochs that were blocked settle and claim normally.
"""

from __future__ import annotations

from brownie import chain
from eth_utils import keccak
from integration.support import reverts_with

USD = 10**6
# Brownie renders a bytes32 error argument as Python bytes, so compare with the raw role id.
PAUSER_ROLE = keccak(text="PAUSER_ROLE")


def test_only_the_pauser_pauses(system, stranger):
    for contract in (system.settlement, system.rewards):
        with reverts_with("AccessControlUnauthorizedAccount", stranger.address, PAUSER_ROLE):
            contract.pause({"from": stranger})
        assert not contract.paused()


def test_pause_blocks_settle_and_claim_but_not_withdrawals(
    system, deployer, treasury, operator, stranger, consumer_actor, add_node, fund, signed, to_next_epoch
):
    consumer = consumer_actor.account
    node = add_node(operator, "pause-matrix", extra_stake=500 * 10**18)
    fund(consumer, 200 * USD)

    # Usage before the pause: credits, fees and a finished reward epoch to claim later.
    epoch = to_next_epoch(1)
    first, first_sig = signed(consumer_actor, node, 50 * USD)
    system.settlement.settle(first, first_sig, {"from": stranger})
    later, later_sig = signed(consumer_actor, node, 80 * USD)
    to_next_epoch(1)
    claimable = int(system.rewards.claimable(node.address, epoch))
    assert claimable > 0
    system.escrow.requestThaw(100 * USD, {"from": consumer})
    system.staking.requestUnbond(500 * 10**18, {"from": operator})

    system.settlement.pause({"from": deployer})
    system.rewards.pause({"from": deployer})
    assert system.settlement.paused() and system.rewards.paused()

    # Blocked: settle, settleMany and claim (OpenZeppelin's EnforcedPause).
    with reverts_with("EnforcedPause"):
        system.settlement.settle(later, later_sig, {"from": stranger})
    with reverts_with("EnforcedPause"):
        system.settlement.settleMany([later], [later_sig], b"\x00" * 32, {"from": stranger})
    with reverts_with("EnforcedPause"):
        system.rewards.claim(node.address, [epoch], {"from": stranger})
    assert int(system.settlement.channelOf(consumer, node.address)[0]) == 50 * USD

    # Still working: node earnings, fee sweep, deposits, thaw/cancel, thawed withdrawal,
    # stake, unbonded stake withdrawal, and epoch finalisation.
    credit = int(system.escrow.creditOf(node.address))
    system.escrow.withdrawEarnings(node.address, {"from": stranger})
    assert system.payment_token.balanceOf(node.payout) == credit
    fees = int(system.escrow.accruedFees())
    before = int(system.payment_token.balanceOf(treasury))
    system.escrow.sweepFees({"from": stranger})
    assert int(system.payment_token.balanceOf(treasury)) - before == fees
    fund(consumer, 10 * USD)
    system.escrow.requestThaw(10 * USD, {"from": consumer})
    chain.sleep(max(int(system.escrow.thawingPeriod()), int(system.staking.unbondingPeriod())))
    system.escrow.withdraw({"from": consumer})
    assert system.payment_token.balanceOf(consumer) == 110 * USD
    system.staking.withdraw({"from": operator})
    assert system.token.balanceOf(operator) == 500 * 10**18
    system.token.approve(system.staking, 1, {"from": operator})
    system.staking.stake(1, {"from": operator})
    system.rewards.finalizeEpochs(2**32, {"from": stranger})
    assert int(system.rewards.finalizedThrough()) > epoch

    # Unpaused: the blocked receipt settles (from what is left) and the blocked epoch is claimed.
    system.settlement.unpause({"from": deployer})
    system.rewards.unpause({"from": deployer})
    tx = system.settlement.settle(later, later_sig, {"from": stranger})
    assert tx.events["ReceiptSettled"]["paid"] == 30 * USD
    before = int(system.token.balanceOf(node.payout))
    tx = system.rewards.claim(node.address, [epoch], {"from": stranger})
    assert tx.events["RewardClaimed"]["amount"] == claimable
    assert int(system.token.balanceOf(node.payout)) - before == claimable
