"""KuotaToken's ERC20Votes: delegation gives voting power, transfers move it, past votes are checkpointed
per block, holders that never delegate write no checkpoint, and the cap must fit the checkpoints."""

from __future__ import annotations

from brownie import KuotaToken, chain
from integration.support import reverts_with

UNIT = 10**18


def test_votes_follow_delegation_and_transfers(kuota, deployer, stranger, operator):
    token = kuota.token
    assert token.getVotes(stranger) == 0
    token.transfer(stranger, 100 * UNIT, {"from": deployer})
    assert token.getVotes(stranger) == 0  # a balance votes only once delegated
    token.delegate(stranger, {"from": stranger})
    assert token.getVotes(stranger) == 100 * UNIT
    block = chain.height
    token.transfer(operator, 40 * UNIT, {"from": stranger})
    chain.mine()
    assert token.getVotes(stranger) == 60 * UNIT
    assert token.getPastVotes(stranger, block) == 100 * UNIT
    assert token.delegates(stranger) == stranger.address


def test_undelegated_holder_writes_no_checkpoint(kuota, deployer, operator2):
    kuota.token.transfer(operator2, 5 * UNIT, {"from": deployer})
    assert kuota.token.numCheckpoints(operator2) == 0


def test_total_supply_is_checkpointed_for_quorum(kuota, deployer):
    block = chain.height
    supply = kuota.token.totalSupply()
    chain.mine()
    assert kuota.token.getPastTotalSupply(block) == supply
    assert kuota.token.CLOCK_MODE() == "mode=blocknumber&from=default"


def test_cap_above_checkpoint_width_is_refused(deployer):
    limit = 2**208 - 1
    with reverts_with("KuotaTokenCapAboveVotesLimit", limit + 1, limit):
        KuotaToken.deploy(deployer, limit + 1, 0, deployer, {"from": deployer})
    token = KuotaToken.deploy(deployer, limit, 0, deployer, {"from": deployer})
    assert token.cap() == limit
