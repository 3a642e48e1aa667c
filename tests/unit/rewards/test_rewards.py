"""RewardPool: epoch edges, claims, carry-over, caps and scaling, precision, wash trading, pause."""

from __future__ import annotations

import brownie
import pytest
from brownie import web3
from unit_helpers import UNIT, custom_error, mine_at, plain, set_next_timestamp

FEE_BPS = 500
RPF = 10**13  # reward wei per payment-token base unit of fee (local default)
EMISSION = 10_000 * 10**18
CAP = EMISSION * 2_500 // 10_000


@pytest.fixture(scope="module", autouse=True)
def setup(node2, funded):
    return funded


def _settle(system, sign, key, node, amount, *, latency_ms=20, nbytes=1_000, sender=None):
    signed = sign(key, node, nbytes, amount, latency_ms=latency_ms)
    return system.settlement.settle(signed.args, signed.signature, {"from": sender or signed.args[0]})


def _next_epoch(pool):
    """Move the chain to the first second of the next epoch; returns that epoch."""
    epoch = pool.currentEpoch() + 1
    mine_at(pool.epochStart(epoch))
    return epoch


def _mined(fn, *args, sender):
    """Sends ``fn(*args)`` and waits for its receipt through web3; returns (return value, receipt).

    Brownie's own wait races Anvil after long runs of heavy transactions ("Tx dropped without known
    replacement" although the tx was mined), so the receipt is read directly; the return value is
    the same call simulated just before, on the same state."""
    expected = fn.call(*args, {"from": sender})
    sent = fn(*args, {"from": sender, "required_confs": 0})
    receipt = web3.eth.wait_for_transaction_receipt(sent.txid, timeout=60)
    assert receipt["status"] == 1
    return expected, receipt


# --------------------------------------------------------------------------------------------
# Epoch edges and claims through the deployed system


def test_claim_at_epoch_edges(system, sign, consumer_key, node, payout, stranger):
    rewards = system.rewards
    epoch = _next_epoch(rewards)
    _settle(system, sign, consumer_key, node, 100 * UNIT)
    fee = 100 * UNIT * FEE_BPS // 10_000
    end = rewards.epochStart(epoch + 1)

    set_next_timestamp(end - 1)
    with brownie.reverts(custom_error("RewardsEpochNotFinished(uint256,uint256)", epoch, epoch)):
        rewards.claim(node, [epoch], {"from": stranger})
    assert rewards.currentEpoch() == epoch and rewards.claimable(node, epoch) == 0

    set_next_timestamp(end)
    tx = rewards.claim(node, [epoch], {"from": stranger})
    assert tx.timestamp == end
    # Uncapped and within budget: exactly rewardPerFeeUnit × fee.
    assert tx.return_value == fee * RPF
    assert plain(tx.events["RewardClaimed"].values()) == (node, epoch, payout.address, fee * RPF)
    assert system.token.balanceOf(payout) == fee * RPF

    set_next_timestamp(end + 1)
    with brownie.reverts(custom_error("RewardsAlreadyClaimed(address,uint256)", node, epoch)):
        rewards.claim(node, [epoch], {"from": stranger})


def test_claim_rejects_future_and_duplicate_epochs(system, sign, consumer_key, node, stranger):
    rewards = system.rewards
    epoch = _next_epoch(rewards)
    _settle(system, sign, consumer_key, node, 10 * UNIT)
    with brownie.reverts(custom_error("RewardsEpochNotFinished(uint256,uint256)", epoch + 5, epoch)):
        rewards.claim(node, [epoch + 5], {"from": stranger})
    _next_epoch(rewards)
    with brownie.reverts(custom_error("RewardsAlreadyClaimed(address,uint256)", node, epoch)):
        rewards.claim(node, [epoch, epoch], {"from": stranger})
    with brownie.reverts(custom_error("RewardsNothingToClaim(address)", node)):
        rewards.claim(node, [], {"from": stranger})
    with brownie.reverts(custom_error("RewardsNothingToClaim(address)", node)):
        rewards.claim(node, [epoch - 1], {"from": stranger})  # an epoch without usage


def test_claimable_matches_claim_before_and_after_finalisation(system, sign, consumer_key, consumer2_key, node, node2):
    rewards = system.rewards
    epoch = _next_epoch(rewards)
    _settle(system, sign, consumer_key, node, 300 * UNIT, latency_ms=275)
    _settle(system, sign, consumer2_key, node2, 70 * UNIT)
    _next_epoch(rewards)
    before_a, before_b = rewards.claimable(node, epoch), rewards.claimable(node2, epoch)
    assert rewards.finalizedThrough() <= epoch  # not finalised yet: claimable() previews
    rewards.finalizeEpochs(2**32, {"from": brownie.accounts[0]})
    assert rewards.finalizedThrough() == epoch + 1
    assert rewards.claimable(node, epoch) == before_a
    fee_a = 300 * UNIT * FEE_BPS // 10_000
    assert before_a == fee_a * 6_000 // 10_000 * RPF
    assert rewards.claim(node, [epoch], {"from": brownie.accounts[0]}).return_value == before_a
    assert rewards.claim(node2, [epoch], {"from": brownie.accounts[0]}).return_value == before_b
    assert rewards.claimable(node, epoch) == 0


def test_empty_epochs_carry_over(system, sign, consumer_key, node, stranger):
    rewards = system.rewards
    epoch = _next_epoch(rewards)
    assert epoch >= 1
    _settle(system, sign, consumer_key, node, 100 * UNIT)
    _next_epoch(rewards)
    rewards.claim(node, [epoch], {"from": stranger})
    paid = 100 * UNIT * FEE_BPS // 10_000 * RPF
    # Every epoch before `epoch` was empty: each carried its whole schedule forward.
    for e in range(epoch):
        scheduled, total_capped, budget, e_paid, carry, finalized = plain(rewards.epochInfo(e))
        assert (scheduled, total_capped, budget, e_paid, carry, finalized) == (
            EMISSION,
            0,
            EMISSION * (e + 1),
            0,
            EMISSION * (e + 1),
            True,
        )
    scheduled, total_capped, budget, e_paid, carry, finalized = plain(rewards.epochInfo(epoch))
    assert (budget, e_paid, carry) == (EMISSION * (epoch + 1), paid, EMISSION * (epoch + 1) - paid)
    assert rewards.carry() == carry
    assert rewards.totalEmitted() == EMISSION * (epoch + 1) == rewards.totalPaid() + rewards.carry()
    assert rewards.totalClaimed() == paid


def test_finalize_epochs_is_bounded(system, stranger):
    rewards = system.rewards
    mine_at(rewards.epochStart(rewards.currentEpoch() + 5))
    current = rewards.currentEpoch()
    tx = rewards.finalizeEpochs(2, {"from": stranger})
    assert tx.return_value == 2 and rewards.finalizedThrough() == 2
    assert len(tx.events["EpochFinalized"]) == 2
    tx = rewards.finalizeEpochs(1_000, {"from": stranger})
    assert tx.return_value == current - 2 and rewards.finalizedThrough() == current
    assert rewards.finalizeEpochs(1_000, {"from": stranger}).return_value == 0


def test_finalize_epochs_accepts_the_largest_count(system, stranger):
    rewards = system.rewards
    mine_at(rewards.epochStart(rewards.currentEpoch() + 3))
    rewards.finalizeEpochs(1, {"from": stranger})
    # `through + maxCount` must not overflow once something is finalised.
    tx = rewards.finalizeEpochs(2**256 - 1, {"from": stranger})
    assert rewards.finalizedThrough() == rewards.currentEpoch()
    assert tx.return_value == rewards.currentEpoch() - 1


def test_pause_blocks_claims_only(system, sign, consumer_key, node, deployer, stranger):
    rewards = system.rewards
    epoch = _next_epoch(rewards)
    _settle(system, sign, consumer_key, node, 100 * UNIT)
    _next_epoch(rewards)
    rewards.pause({"from": deployer})
    with brownie.reverts(custom_error("EnforcedPause()")):
        rewards.claim(node, [epoch], {"from": stranger})
    # Settlement keeps recording usage while claims are paused; finalisation still runs.
    _settle(system, sign, consumer_key, node, 200 * UNIT, nbytes=2_000)
    rewards.finalizeEpochs(100, {"from": stranger})
    rewards.unpause({"from": deployer})
    assert rewards.claim(node, [epoch], {"from": stranger}).return_value > 0


def test_wash_trading_earns_at_most_the_fees_burned(system, sign, deployer, consumer2, consumer2_key, node2, payout2, stranger):
    """A self-dealer (consumer2 and node2 owned by one person) under the default parameters."""
    rewards = system.rewards
    system.payment_token.mint(consumer2, 2_000_000 * UNIT, {"from": deployer})
    system.escrow.deposit(2_000_000 * UNIT, {"from": consumer2})
    cases = [(100 * UNIT, 0), (10_000 * UNIT, 0), (1_000_000 * UNIT, 0)]
    for volume, latency in cases:
        epoch = _next_epoch(rewards)
        before = system.escrow.creditOf(node2)
        cumulative = int(system.settlement.channelOf(consumer2, node2)[0]) + volume
        signed = sign(consumer2_key, node2, cumulative, cumulative, latency_ms=latency)
        system.settlement.settle(signed.args, signed.signature, {"from": consumer2})
        fee = volume * FEE_BPS // 10_000
        assert system.escrow.creditOf(node2) - before == volume - fee  # the node side gets the rest back
        _next_epoch(rewards)
        reward = rewards.claim(node2, [epoch], {"from": stranger}).return_value
        # Reward ≤ rewardPerFeeUnit × fee: worth at most the fee at the reference price 1 / RPF.
        assert reward <= fee * RPF
        assert reward // RPF <= fee
        if fee * RPF <= CAP:
            assert reward == fee * RPF  # below the cap the self-dealer exactly breaks even
        else:
            assert reward == CAP  # above it, the per-node cap makes wash trading a loss


def test_six_decimal_fee_resolution(system, sign, consumer_key, node, stranger):
    rewards = system.rewards
    epoch = _next_epoch(rewards)
    # 20 base units (0.00002 mUSD) pay a 1-unit fee; at ≥ 500 ms its weight rounds to 0.
    tx = _settle(system, sign, consumer_key, node, 20, latency_ms=500)
    assert (tx.events["ReceiptSettled"]["fee"], tx.events["UsageRecorded"]["weight"]) == (1, 0)
    tx = _settle(system, sign, consumer_key, node, 40, latency_ms=0, nbytes=2_000)
    assert (tx.events["ReceiptSettled"]["fee"], tx.events["UsageRecorded"]["weight"]) == (1, 1)
    _next_epoch(rewards)
    assert plain(rewards.nodeEpoch(node, epoch)) == (2, 1, RPF, False)
    assert rewards.claim(node, [epoch], {"from": stranger}).return_value == RPF


def test_emission_change_is_not_retroactive(system, deployer, stranger):
    rewards = system.rewards
    epoch = rewards.currentEpoch()
    tx = rewards.setEmissionPerEpoch(EMISSION // 2, {"from": deployer})
    assert plain(tx.events["ParameterUpdated"].values()) == ("emissionPerEpoch", EMISSION, EMISSION // 2)
    assert rewards.finalizedThrough() == epoch  # past epochs were finalised with the old schedule
    assert rewards.epochInfo(epoch)[0] == EMISSION  # the current epoch keeps its schedule
    _next_epoch(rewards)
    assert rewards.epochInfo(epoch + 1)[0] == EMISSION // 2
    rewards.finalizeEpochs(100, {"from": stranger})
    assert rewards.totalEmitted() == EMISSION * (epoch + 1) + EMISSION // 2 * (rewards.currentEpoch() - epoch - 1)


def test_parameters_are_bounded_and_evented(system, deployer):
    rewards = system.rewards
    bounds = "RewardsParameterOutOfBounds(string,uint256,uint256,uint256)"
    with brownie.reverts(custom_error(bounds, "emissionPerEpoch", 10**30 + 1, 0, 10**30)):
        rewards.setEmissionPerEpoch(10**30 + 1, {"from": deployer})
    with brownie.reverts(custom_error(bounds, "rewardPerFeeUnit", 0, 1, 10**24)):
        rewards.setRewardPerFeeUnit(0, {"from": deployer})
    with brownie.reverts(custom_error(bounds, "rewardPerFeeUnit", 10**24 + 1, 1, 10**24)):
        rewards.setRewardPerFeeUnit(10**24 + 1, {"from": deployer})
    with brownie.reverts(custom_error(bounds, "maxNodeShareBps", 0, 1, 10_000)):
        rewards.setMaxNodeShareBps(0, {"from": deployer})
    with brownie.reverts(custom_error(bounds, "maxNodeShareBps", 10_001, 1, 10_000)):
        rewards.setMaxNodeShareBps(10_001, {"from": deployer})
    curve = "RewardsInvalidLatencyCurve(uint32,uint32,uint16)"
    for low, high, floor in ((500, 500, 0), (600, 500, 0), (0, 60_001, 0), (0, 100, 10_001)):
        with brownie.reverts(custom_error(curve, low, high, floor)):
            rewards.setLatencyCurve(low, high, floor, {"from": deployer})
    tx = rewards.setRewardPerFeeUnit(10**24, {"from": deployer})
    assert plain(tx.events["ParameterUpdated"].values()) == ("rewardPerFeeUnit", RPF, 10**24)
    tx = rewards.setMaxNodeShareBps(10_000, {"from": deployer})
    assert plain(tx.events["ParameterUpdated"].values()) == ("maxNodeShareBps", 2_500, 10_000)
    tx = rewards.setLatencyCurve(0, 60_000, 10_000, {"from": deployer})
    assert [plain(e.values()) for e in tx.events["ParameterUpdated"]] == [
        ("latencyLowMs", 50, 0),
        ("latencyHighMs", 500, 60_000),
        ("latencyFloorBps", 2_000, 10_000),
    ]
    assert plain(rewards.latencyCurve()) == (0, 60_000, 10_000)


def test_latency_multiplier_curve(system):
    m = system.rewards.latencyMultiplierBps
    assert [m(x) for x in (0, 50, 51, 275, 499, 500, 60_000, 2**32 - 1)] == [
        10_000,
        10_000,
        10_000 - 8_000 * 1 // 450,
        6_000,
        10_000 - 8_000 * 449 // 450,
        2_000,
        2_000,
        2_000,
    ]


# --------------------------------------------------------------------------------------------
# Reward arithmetic on a standalone pool (exact fees and weights)


def test_record_usage_rejects_weight_above_fee(make_pool, settler, node):
    pool, _ = make_pool(EMISSION, RPF, 2_500)
    with brownie.reverts(custom_error("RewardsWeightExceedsFee(uint256,uint256)", 11, 10)):
        pool.recordUsage(node, 10, 11, {"from": settler})


def test_cap_and_pro_rata_scaling(make_pool, settler, node, node2, stranger, payout, payout2):
    emission = 1_000
    pool, token = make_pool(emission, 1, 6_000)  # cap = 600 per node
    epoch = pool.currentEpoch()
    pool.recordUsage(node, 900, 900, {"from": settler})  # raw 900 → capped 600
    pool.recordUsage(node2, 500, 500, {"from": settler})  # raw 500 → capped 500
    assert pool.nodeEpoch(node, epoch)[2] == 600
    mine_at(pool.epochStart(epoch + 1))
    # Epochs before `epoch` were empty (carry), so fix the budget by reading it.
    pool.finalizeEpochs(1_000, {"from": stranger})
    _scheduled, total_capped, budget, paid, carry, _finalized = plain(pool.epochInfo(epoch))
    assert total_capped == 1_100 and budget == emission * (epoch + 1)
    assert paid == min(1_100, budget) and carry == budget - paid
    r_a = pool.claim(node, [epoch], {"from": stranger}).return_value
    r_b = pool.claim(node2, [epoch], {"from": stranger}).return_value
    assert r_a == 600 * paid // 1_100 and r_b == 500 * paid // 1_100
    assert 0 <= paid - (r_a + r_b) <= 2  # dust ≤ 1 wei per node
    assert token.balanceOf(payout) == r_a and token.balanceOf(payout2) == r_b


def test_budget_scaling_when_demand_exceeds_schedule(make_pool, settler, node, node2, stranger):
    pool, _ = make_pool(1_000, 1, 10_000, epoch_length=3_600)
    assert pool.currentEpoch() == 0  # epoch 0: no carry in
    pool.recordUsage(node, 3_000, 1_500, {"from": settler})
    pool.recordUsage(node2, 1_000, 1_000, {"from": settler})
    mine_at(pool.epochStart(1))
    # Σ capped = min(1500,1000) + min(1000,1000) = 2000 > budget 1000: everyone scaled by 1/2.
    assert pool.claimable(node, 0) == 500 and pool.claimable(node2, 0) == 500
    assert pool.claim(node, [0], {"from": stranger}).return_value == 500
    assert plain(pool.epochInfo(0)) == (1_000, 2_000, 1_000, 1_000, 0, True)


def test_precision_extremes_one_wei_against_1e27(make_pool, settler, node, node2, stranger):
    pool, token = make_pool(10**27, 1, 10_000, epoch_length=3_600)
    pool.recordUsage(node, 1, 1, {"from": settler})
    pool.recordUsage(node2, 10**27, 10**27, {"from": settler})
    mine_at(pool.epochStart(1))
    # Σ capped = 1e27 + 1 > budget 1e27: node gets ⌊1e27/(1e27+1)⌋ = 0, node2 ⌊1e54/(1e27+1)⌋ = 1e27 − 1.
    assert pool.claimable(node, 0) == 0
    assert pool.claimable(node2, 0) == 10**27 - 1
    with brownie.reverts(custom_error("RewardsNothingToClaim(address)", node)):
        pool.claim(node, [0], {"from": stranger})
    assert pool.claim(node2, [0], {"from": stranger}).return_value == 10**27 - 1
    assert pool.totalPaid() - pool.totalClaimed() == 1  # the 1-wei dust stays in the pool's books
    assert token.totalSupply() == 10**27 - 1


def test_reward_never_exceeds_fee_times_rate(make_pool, settler, node, node2, stranger):
    pool, _ = make_pool(10**24, RPF, 10_000, epoch_length=3_600)
    fees = {node: 7, node2: 123_456_789}
    for n, fee in fees.items():
        pool.recordUsage(n, fee, fee, {"from": settler})
    mine_at(pool.epochStart(1))
    for n, fee in fees.items():
        assert pool.claim(n, [0], {"from": stranger}).return_value <= fee * RPF


def test_reward_rate_change_applies_from_next_epoch(make_pool, settler, node, deployer, stranger):
    pool, _ = make_pool(10**24, 10, 10_000, epoch_length=3_600)
    pool.recordUsage(node, 5, 5, {"from": settler})
    pool.setRewardPerFeeUnit(1_000, {"from": deployer})
    pool.recordUsage(node, 5, 5, {"from": settler})  # same epoch: still the old rate
    mine_at(pool.epochStart(1))
    pool.recordUsage(node, 5, 5, {"from": settler})
    mine_at(pool.epochStart(2))
    assert pool.claim(node, [0], {"from": stranger}).return_value == 10 * 10
    assert pool.claim(node, [1], {"from": stranger}).return_value == 5 * 1_000


def test_claim_for_unregistered_node_is_rejected(make_pool, settler, stranger):
    pool, _ = make_pool(10**24, 1, 10_000, epoch_length=3_600)
    pool.recordUsage(stranger, 5, 5, {"from": settler})
    mine_at(pool.epochStart(1))
    with brownie.reverts(custom_error("RewardsUnknownNode(address)", stranger)):
        pool.claim(stranger, [0], {"from": stranger})


def test_claim_after_long_idle_backlog_is_worked_off_in_bounded_chunks(
    make_pool, settler, node, node2, deployer, stranger
):
    emission = 1_000
    pool, token = make_pool(emission, 1, 10_000)  # cap = 1000 per node, epoch 60 s
    max_per_call = pool.MAX_FINALIZE_PER_CALL()
    assert max_per_call == 200
    pool.recordUsage(node, 300, 300, {"from": settler})  # epoch 0
    late = 5_199  # 5200 epochs: 25 chunks by finalizeEpochs, the last 200 by the claim itself
    mine_at(pool.epochStart(late))
    pool.recordUsage(node, 5_000, 5_000, {"from": settler})  # capped 1000
    pool.recordUsage(node2, 2_000, 2_000, {"from": settler})  # capped 1000
    mine_at(pool.epochStart(late + 1))
    assert pool.currentEpoch() == late + 1 and pool.finalizedThrough() == 0
    # A claim (or a setter) that would finalise the whole idle backlog refuses with the way out.
    error = custom_error("RewardsTooManyPendingEpochs(uint256,uint256)", late + 1, max_per_call)
    with brownie.reverts(error):
        pool.claim(node, [0, late], {"from": stranger})
    with brownie.reverts(error):
        pool.setEmissionPerEpoch(2_000, {"from": deployer})
    # Anyone works the backlog off in chunks, each far below a block (30M gas).
    chunks = 0
    while pool.currentEpoch() - pool.finalizedThrough() > max_per_call:
        before = pool.finalizedThrough()
        count, receipt = _mined(pool.finalizeEpochs, max_per_call, sender=stranger)
        assert count == max_per_call and receipt["gasUsed"] < 8_000_000
        assert pool.finalizedThrough() == before + max_per_call
        chunks += 1
    assert chunks == 25 and pool.currentEpoch() - pool.finalizedThrough() == max_per_call
    # The claim finalises the rest itself (≤ MAX_FINALIZE_PER_CALL epochs) within a sane gas.
    amount, receipt = _mined(pool.claim, node, [0, late], sender=stranger)
    assert amount == 300 + 1_000 and receipt["gasUsed"] < 8_000_000
    assert pool.finalizedThrough() == late + 1
    amount, _ = _mined(pool.claim, node2, [late], sender=stranger)
    assert amount == 1_000
    # Idle epochs carried their whole schedule forward; nothing was created or lost.
    emitted = emission * (late + 1)
    assert pool.totalEmitted() == emitted
    assert pool.carry() == emitted - 300 - 2_000
    assert plain(pool.epochInfo(late - 1)) == (emission, 0, emission * late - 300, 0, emission * late - 300, True)
    assert pool.totalClaimed() == token.totalSupply() == 2_300
    dust = pool.totalPaid() - pool.totalClaimed()
    assert dust == 0
    assert pool.totalClaimed() + pool.carry() + dust == pool.totalEmitted()
