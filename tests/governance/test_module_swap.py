"""A settlement module swap under governance with live state: nodes mid-epoch, a consumer thawing,
rewards pending. One proposal wires ReceiptSettlementV2 in and retires ReceiptSettlement; every
balance, thaw, credit, channel, stake, node record and unclaimed reward is the same after, the escrow
still holds exactly what it owes, and nothing settled under the old module is paid again."""

from __future__ import annotations

import pytest
from brownie import chain
from integration.support import Actor, Receipt, anvil_key, node_key, register_node, reverts_with, sign_receipt

from scripts.migrate_settlement import deploy_successor, settlement_swap_proposal, swapped_manifest

USD = 10**6


@pytest.fixture(scope="module")
def live(kuota, governed, deployer, accounts):
    """Two nodes, two consumers (one thawing), settled channels, a finished epoch left unclaimed."""
    consumers = [Actor(accounts[5], anvil_key(5)), Actor(accounts[6], anvil_key(6))]
    nodes = []
    for index, operator in enumerate((accounts[3], accounts[4])):
        stake = int(kuota.registry.minStakePerNode())
        kuota.token.transfer(operator, stake, {"from": deployer})
        kuota.token.approve(kuota.staking, stake, {"from": operator})
        kuota.staking.stake(stake, {"from": operator})
        key = node_key(f"swap-{index}")
        register_node(kuota, operator, key, operator.address, chain.id)
        nodes.append(key.address)
    for actor in consumers:
        kuota.payment_token.mint(actor.account, 500 * USD, {"from": actor.account})
        kuota.payment_token.approve(kuota.escrow, 500 * USD, {"from": actor.account})
        kuota.escrow.deposit(500 * USD, {"from": actor.account})
    _settle(kuota.settlement, consumers[0], nodes[0], 40 * USD)
    _settle(kuota.settlement, consumers[1], nodes[1], 30 * USD)
    finished = int(kuota.rewards.currentEpoch())
    chain.sleep(int(kuota.rewards.epochLength()))
    chain.mine()
    # Mid-epoch usage in the next epoch, and a thaw under way.
    _settle(kuota.settlement, consumers[0], nodes[0], 70 * USD)
    kuota.escrow.requestThaw(200 * USD, {"from": consumers[1].account})
    return {
        "consumers": consumers,
        "nodes": nodes,
        "operators": [accounts[3], accounts[4]],
        "finished": finished,
    }


def _receipt(actor: Actor, node: str, amount: int) -> Receipt:
    return Receipt(actor.address, node, b"\x22" * 32, amount * 1_000, amount, 20, 1_700_000_000)


def _settle(settlement, actor: Actor, node: str, amount: int, sender=None):
    receipt = _receipt(actor, node, amount)
    signature = sign_receipt(receipt, actor.private_key, chain.id, settlement.address)
    return settlement.settle(receipt.as_tuple(), signature, {"from": sender or actor.account})


def _snapshot(kuota, settlement, live) -> dict:
    escrow = kuota.escrow
    state = {
        "escrowBalance": kuota.payment_token.balanceOf(escrow),
        "fees": escrow.accruedFees(),
        "totalBonded": kuota.staking.totalBonded(),
    }
    for actor in live["consumers"]:
        state[f"account:{actor.address}"] = tuple(escrow.accountOf(actor.address))
        for node in live["nodes"]:
            state[f"channel:{actor.address}:{node}"] = tuple(settlement.channelOf(actor.address, node))
    for node in live["nodes"]:
        state[f"credit:{node}"] = escrow.creditOf(node)
        state[f"record:{node}"] = tuple(kuota.registry.getNode(node))
        state[f"claimable:{node}"] = kuota.rewards.claimable(node, live["finished"])
        state[f"usage:{node}"] = tuple(kuota.rewards.nodeEpoch(node, live["finished"] + 1))
    for operator in live["operators"]:
        state[f"bonded:{operator.address}"] = kuota.staking.bondedOf(operator)
    return state


def _owed(kuota, live) -> int:
    """What the escrow owes: Σ available + Σ thawing + Σ credits + unswept fees."""
    escrow = kuota.escrow
    total = int(escrow.accruedFees())
    for actor in live["consumers"]:
        available, thawing, _ = escrow.accountOf(actor.address)
        total += int(available) + int(thawing)
    return total + sum(int(escrow.creditOf(node)) for node in live["nodes"])


@pytest.fixture(scope="module")
def swapped(kuota, governed, live, deployer, guardian, pass_proposal):
    """The state before, the successor, and the proposal executed by governance."""
    before = _snapshot(kuota, kuota.settlement, live)
    assert _owed(kuota, live) == before["escrowBalance"]
    new = deploy_successor(deployer, kuota.settlement, governed.timelock)
    proposal = settlement_swap_proposal(kuota.escrow, kuota.rewards, kuota.settlement, new, guardian.address)
    pass_proposal(proposal)
    return {"before": before, "new": new}


def test_swap_keeps_every_balance_channel_stake_record_and_reward(kuota, live, swapped):
    after = _snapshot(kuota, swapped["new"], live)
    assert after == swapped["before"]
    assert _owed(kuota, live) == after["escrowBalance"]


def test_swap_moves_roles_and_retires_the_old_module(kuota, swapped, guardian):
    from scripts.deploy_governance import role_id

    new, old = swapped["new"], kuota.settlement
    settlement_role = role_id("SETTLEMENT_ROLE")
    for contract in (kuota.escrow, kuota.rewards):
        assert contract.hasRole(settlement_role, new)
        assert not contract.hasRole(settlement_role, old)
    assert old.paused()
    assert new.hasRole(role_id("PAUSER_ROLE"), guardian)
    assert not old.hasRole(role_id("PAUSER_ROLE"), guardian)
    assert new.predecessor() == old.address and new.feeBps() == old.feeBps()


def test_old_receipt_is_never_paid_again(kuota, live, swapped):
    new, old = swapped["new"], kuota.settlement
    actor, node = live["consumers"][0], live["nodes"][0]
    receipt = _receipt(actor, node, 70 * USD)
    old_signature = sign_receipt(receipt, actor.private_key, chain.id, old.address)
    with reverts_with("EnforcedPause"):
        old.settle(receipt.as_tuple(), old_signature, {"from": actor.account})
    # The old module's signature is for its own domain: it does not verify under the new module.
    with reverts_with("SettlementInvalidSigner"):
        new.settle(receipt.as_tuple(), old_signature, {"from": actor.account})
    # Re-signed for the new module, the same cumulative receipt is stale: read through, 70 settled.
    new_signature = sign_receipt(receipt, actor.private_key, chain.id, new.address)
    with reverts_with("SettlementStaleReceipt", actor.address, node, 70 * USD, 70 * USD):
        new.settle(receipt.as_tuple(), new_signature, {"from": actor.account})
    balance = kuota.payment_token.balanceOf(kuota.escrow)
    credit = kuota.escrow.creditOf(node)
    tx = _settle(new, actor, node, 100 * USD)
    assert tx.events["ReceiptSettled"]["paid"] == 30 * USD
    settled_amount, _ = new.channelOf(actor.address, node)
    assert settled_amount == 100 * USD
    assert kuota.escrow.creditOf(node) - credit + tx.events["ReceiptSettled"]["fee"] == 30 * USD
    assert kuota.payment_token.balanceOf(kuota.escrow) == balance
    assert _owed(kuota, live) == balance


def test_thaw_withdrawal_and_pending_rewards_work_after_swap(kuota, live, swapped):
    thawing_actor = live["consumers"][1]
    chain.sleep(int(kuota.escrow.thawingPeriod()) + 1)
    chain.mine()
    before = kuota.payment_token.balanceOf(thawing_actor.address)
    kuota.escrow.withdraw({"from": thawing_actor.account})
    assert kuota.payment_token.balanceOf(thawing_actor.address) - before == 200 * USD
    node = live["nodes"][0]
    claimable = kuota.rewards.claimable(node, live["finished"])
    assert claimable == swapped["before"][f"claimable:{node}"] and claimable > 0
    payout = kuota.registry.payoutOf(node)
    held = kuota.token.balanceOf(payout)
    kuota.rewards.claim(node, [live["finished"]], {"from": live["operators"][0]})
    assert kuota.token.balanceOf(payout) - held == claimable


def test_audit_replay_is_consistent_across_the_swap(kuota, live, swapped, rpc_url):
    from nodeclient.audit import AuditOptions, run_audit
    from nodeclient.deployment import Deployment

    new = swapped["new"]
    _settle(new, live["consumers"][1], live["nodes"][1], 45 * USD)
    manifest = swapped_manifest(kuota.manifest, new.address)
    options = AuditOptions(
        rpc_url=rpc_url, deployment=Deployment.model_validate(manifest), confirmations=0, jobs=1
    )
    result = run_audit(options)
    problems = [f for f in result.report["findings"] if f["severity"] != "warning"]
    assert problems == []
    assert (result.verdict, result.exit_code) == ("consistent", 0)
    # Three settlements under the old module, one under the new (15 USD after the 30 read through).
    assert result.report["counts"]["settlements"] == 4
    paid = [int(r["paid"]) for r in result.report["settlements"]]
    assert paid == [40 * USD, 30 * USD, 30 * USD, 15 * USD]
    # Without the retired module the history is incomplete, and the replay says so.
    manifest.pop("retiredSettlements")
    blind = run_audit(
        AuditOptions(rpc_url=rpc_url, deployment=Deployment.model_validate(manifest), confirmations=0, jobs=1)
    )
    assert blind.verdict != "consistent"
