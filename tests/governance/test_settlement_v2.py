"""ReceiptSettlementV2 on its own: it must name a predecessor on the same escrow, reads a channel it has
not written from the predecessor, and once it writes one, its own state is the channel's."""

from __future__ import annotations

import pytest
from brownie import ReceiptSettlementV2, chain
from integration.support import Actor, Receipt, anvil_key, node_key, register_node, reverts_with, sign_receipt

USD = 10**6


@pytest.fixture(scope="module")
def channel(kuota, deployer, accounts):
    """A node, a funded consumer, and 25 USD settled on their channel under the original module."""
    operator = accounts[3]
    stake = int(kuota.registry.minStakePerNode())
    kuota.token.transfer(operator, stake, {"from": deployer})
    kuota.token.approve(kuota.staking, stake, {"from": operator})
    kuota.staking.stake(stake, {"from": operator})
    key = node_key("v2-unit")
    register_node(kuota, operator, key, operator.address, chain.id)
    actor = Actor(accounts[5], anvil_key(5))
    kuota.payment_token.mint(actor.account, 100 * USD, {"from": actor.account})
    kuota.payment_token.approve(kuota.escrow, 100 * USD, {"from": actor.account})
    kuota.escrow.deposit(100 * USD, {"from": actor.account})
    receipt = Receipt(actor.address, key.address, b"\x33" * 32, 25_000, 25 * USD, 20, 1_700_000_000)
    signature = sign_receipt(receipt, actor.private_key, chain.id, kuota.settlement.address)
    kuota.settlement.settle(receipt.as_tuple(), signature, {"from": actor.account})
    return actor, key.address


def _deploy(kuota, deployer, escrow=None, predecessor=None):
    return ReceiptSettlementV2.deploy(
        deployer,
        escrow or kuota.escrow,
        kuota.registry,
        kuota.rewards,
        kuota.settlement.feeBps(),
        predecessor or kuota.settlement,
        {"from": deployer},
    )


def test_successor_requires_a_predecessor_on_the_same_escrow(kuota, deployer, stranger):
    with reverts_with("SettlementZeroAddress", "predecessor"):
        _deploy(kuota, deployer, predecessor="0x" + "00" * 20)
    with reverts_with(
        "SettlementPredecessorMismatch", kuota.settlement.address, kuota.escrow.address, stranger.address
    ):
        _deploy(kuota, deployer, escrow=stranger)


def test_unwritten_channel_reads_through_and_written_channel_supersedes(kuota, deployer, channel):
    from scripts.deploy_governance import role_id

    actor, node = channel
    new = _deploy(kuota, deployer)
    assert tuple(new.channelOf(actor.address, node)) == (25 * USD, 25_000)
    assert tuple(new.channelOf(actor.address, actor.address)) == (0, 0)
    kuota.escrow.grantRole(role_id("SETTLEMENT_ROLE"), new, {"from": deployer})
    kuota.rewards.grantRole(role_id("SETTLEMENT_ROLE"), new, {"from": deployer})
    receipt = Receipt(actor.address, node, b"\x33" * 32, 60_000, 60 * USD, 20, 1_700_000_100)
    tx = new.settle(
        receipt.as_tuple(),
        sign_receipt(receipt, actor.private_key, chain.id, new.address),
        {"from": actor.account},
    )
    assert tx.events["ReceiptSettled"]["paid"] == 35 * USD
    assert tuple(new.channelOf(actor.address, node)) == (60 * USD, 60_000)
    # The predecessor's own record is untouched: the successor's slot now decides.
    assert tuple(kuota.settlement.channelOf(actor.address, node)) == (25 * USD, 25_000)
