"""Emission accounting across epochs: empty epochs carry their whole schedule forward, carried emission
is paid out later (so caps and scaling lose nothing), and an emission change is never retroactive.

Conservation checked throughout: totalEmitted == Σ scheduled of finalised epochs == totalPaid + carry,
and Σ claimed + Σ claimable ≤ totalPaid with at most 1 wei of rounding dust per node per epoch.
"""

from __future__ import annotations

from brownie import chain
from integration.support import BPS, ints

USD = 10**6


def _conservation(system, nodes, epochs) -> None:
    emitted = int(system.rewards.totalEmitted())
    paid = int(system.rewards.totalPaid())
    carry = int(system.rewards.carry())
    finalized = int(system.rewards.finalizedThrough())
    scheduled = sum(ints(system.rewards.epochInfo(e))[0] for e in range(finalized))
    assert emitted == scheduled == paid + carry
    outstanding = sum(
        int(system.rewards.claimable(n.address, e)) for n in nodes for e in epochs if e < finalized
    )
    claimed = int(system.rewards.totalClaimed())
    dust = paid - claimed - outstanding
    assert 0 <= dust <= len(nodes) * len(epochs)


def test_empty_epochs_carry_their_whole_schedule(
    system, accounts, operator, operator2, stranger, consumer_actor, add_node, fund, signed, to_next_epoch
):
    emission = int(system.rewards.emissionPerEpoch())
    rpfu = int(system.rewards.rewardPerFeeUnit())
    cap = emission * int(system.rewards.maxNodeShareBps()) // BPS
    nodes = [
        add_node(operator if i < 3 else operator2, f"carry-{i}", payout=accounts[10 + i]) for i in range(5)
    ]
    fund(consumer_actor.account, 10_000_000 * USD)

    # Three whole epochs pass with no usage at all, then they are finalised.
    start = to_next_epoch(1)
    chain.sleep(3 * int(system.rewards.epochLength()))
    chain.mine()
    busy = int(system.rewards.currentEpoch())
    assert busy == start + 3
    system.rewards.finalizeEpochs(2**32, {"from": stranger})
    assert system.rewards.finalizedThrough() == busy
    # Nothing was paid, so the carry is every schedule since genesis.
    assert system.rewards.carry() == emission * busy
    assert system.rewards.totalPaid() == 0
    for e in range(start, busy):
        scheduled, total_capped, budget, paid, carry, finalized = ints(system.rewards.epochInfo(e))
        assert (scheduled, total_capped, paid, finalized) == (emission, 0, 0, 1)
        assert carry == budget == emission * (e + 1)

    # Five nodes hit the per-node cap in one epoch: Σ capped (5 × cap) exceeds that epoch's own
    # schedule, but the carried emission covers it, so nobody is scaled down.
    for i, node in enumerate(nodes):
        receipt, signature = signed(
            consumer_actor, node, 100_000 * USD, latency_ms=10, session=bytes([i]) * 32
        )
        system.settlement.settle(receipt, signature, {"from": stranger})
    assert 5 * cap > emission
    to_next_epoch(1)
    system.rewards.finalizeEpochs(2**32, {"from": stranger})
    scheduled, total_capped, budget, paid, carry, _ = ints(system.rewards.epochInfo(busy))
    assert total_capped == 5 * cap
    assert budget == emission * (busy + 1)
    assert paid == 5 * cap
    assert carry == budget - paid
    for node in nodes:
        _, weight, capped, _ = ints(system.rewards.nodeEpoch(node.address, busy))
        assert weight * rpfu > cap and capped == cap
        assert system.rewards.claimable(node.address, busy) == cap
    _conservation(system, nodes, [busy])

    # The carry keeps flowing: the next epochs (empty) add their schedule again.
    before = int(system.rewards.carry())
    chain.sleep(2 * int(system.rewards.epochLength()))
    chain.mine()
    system.rewards.finalizeEpochs(2**32, {"from": stranger})
    added = int(system.rewards.finalizedThrough()) - (busy + 1)
    assert added >= 2
    assert system.rewards.carry() == before + added * emission

    for node in nodes:
        system.rewards.claim(node.address, [busy], {"from": stranger})
        assert system.token.balanceOf(node.payout) == cap
    assert system.rewards.totalClaimed() == 5 * cap
    _conservation(system, nodes, [busy])


def test_scaled_epoch_pays_exactly_its_budget_and_carries_nothing(
    system, operator, operator2, stranger, consumer_actor, add_node, fund, signed, to_next_epoch
):
    emission = int(system.rewards.emissionPerEpoch())
    cap = emission * int(system.rewards.maxNodeShareBps()) // BPS
    nodes = [add_node(operator if i < 4 else operator2, f"scaled-{i}") for i in range(8)]
    fund(consumer_actor.account, 100_000_000 * USD)
    amounts = {node.address: 0 for node in nodes}

    # Keep every node at the cap in consecutive epochs until the carry is used up and one is scaled.
    epoch = to_next_epoch(1)
    for _ in range(6):
        for i, node in enumerate(nodes):
            amounts[node.address] += 100_000 * USD
            receipt, signature = signed(
                consumer_actor, node, amounts[node.address], latency_ms=0, session=bytes([i]) * 32
            )
            system.settlement.settle(receipt, signature, {"from": stranger})
        next_epoch = to_next_epoch(1)
        system.rewards.finalizeEpochs(2**32, {"from": stranger})
        _, total_capped, budget, paid, carry, _ = ints(system.rewards.epochInfo(epoch))
        assert total_capped == 8 * cap
        if total_capped > budget:
            break
        epoch = next_epoch
    assert total_capped > budget, "no scaled epoch"
    # Scaled: the whole budget is paid, nothing carries, and each node gets its pro-rata share.
    assert paid == budget and carry == 0
    shares = [int(system.rewards.claimable(n.address, epoch)) for n in nodes]
    assert all(share == cap * paid // total_capped for share in shares)
    assert 0 <= paid - sum(shares) <= len(nodes)
    _conservation(system, nodes, list(range(int(system.rewards.finalizedThrough()))))


def test_emission_change_is_not_retroactive(
    system, deployer, operator, stranger, consumer_actor, add_node, fund, signed, to_next_epoch
):
    old = int(system.rewards.emissionPerEpoch())
    new = old // 4 + 3
    node = add_node(operator, "emission-change")
    fund(consumer_actor.account, 1_000 * USD)

    current = to_next_epoch(1)
    receipt, signature = signed(consumer_actor, node, 100 * USD)
    system.settlement.settle(receipt, signature, {"from": stranger})
    tx = system.rewards.setEmissionPerEpoch(new, {"from": deployer})
    assert tx.events["ParameterUpdated"]["name"] == "emissionPerEpoch"
    assert (tx.events["ParameterUpdated"]["oldValue"], tx.events["ParameterUpdated"]["newValue"]) == (
        old,
        new,
    )
    # Every past epoch was finalised at the old schedule by the setter itself.
    assert system.rewards.finalizedThrough() == current
    assert all(ints(system.rewards.epochInfo(e))[0] == old for e in range(current))
    # The current epoch keeps the schedule it started with; the next ones get the new one.
    assert ints(system.rewards.epochInfo(current))[0] == old
    chain.sleep(2 * int(system.rewards.epochLength()))
    chain.mine()
    system.rewards.finalizeEpochs(2**32, {"from": stranger})
    assert ints(system.rewards.epochInfo(current))[0] == old
    assert ints(system.rewards.epochInfo(current + 1))[0] == new
    later = int(system.rewards.finalizedThrough()) - current - 1
    assert system.rewards.totalEmitted() == old * (current + 1) + new * later
    _conservation(system, [node], [current])
