"""After deploy_governance: the timelock holds every admin and parameter role, the deployer none, the
governor is the timelock's only proposer, and a parameter changes only through a passed proposal."""

from __future__ import annotations

import brownie
import pytest
from brownie import chain
from gov_helpers import MIN_DELAY, VOTING_DELAY, VOTING_PERIOD, state_of

from nodeclient.governance import Proposal
from scripts.deploy_governance import ADMIN_ROLES, role_id


def _proposal(contract, function, *args, description="set a parameter"):
    data = getattr(contract, function).encode_input(*args)
    return Proposal((contract.address,), (0,), (bytes.fromhex(data[2:]),), description)


def test_timelock_holds_every_admin_role_and_deployer_none(kuota, governed, deployer):
    timelock = governed.timelock
    for name, roles in ADMIN_ROLES.items():
        contract = kuota.contract(name)
        for role in roles:
            assert contract.hasRole(role_id(role), timelock), (name, role)
            assert not contract.hasRole(role_id(role), deployer), (name, role)
    assert not timelock.hasRole(role_id("DEFAULT_ADMIN_ROLE"), deployer)
    assert timelock.hasRole(role_id("PROPOSER_ROLE"), governed.governor)
    assert not timelock.hasRole(role_id("PROPOSER_ROLE"), deployer)
    # Anyone executes: the open executor role is held by address(0).
    assert timelock.hasRole(role_id("EXECUTOR_ROLE"), "0x" + "00" * 20)
    assert timelock.getMinDelay() == MIN_DELAY


def test_deployer_can_no_longer_set_parameters(kuota, governed, deployer):
    with brownie.reverts():
        kuota.rewards.setEmissionPerEpoch(1, {"from": deployer})


def test_proposal_sets_parameter_after_vote_and_delay(kuota, governed, pass_proposal):
    proposal = _proposal(kuota.rewards, "setEmissionPerEpoch", 1234 * 10**18)
    pass_proposal(proposal)
    assert kuota.rewards.emissionPerEpoch() == 1234 * 10**18


def test_queued_proposal_cannot_execute_before_delay(kuota, governed, deployer):
    governor = governed.governor
    proposal = _proposal(kuota.escrow, "setThawingPeriod", 1_200, description="thaw 20 min")
    targets, values, calldatas = proposal.args()
    pid = governor.propose(targets, values, calldatas, proposal.description, {"from": deployer}).events[
        "ProposalCreated"
    ]["proposalId"]
    chain.mine(VOTING_DELAY + 1)
    governor.castVote(pid, 1, {"from": deployer})
    chain.mine(VOTING_PERIOD + 1)
    governor.queue(targets, values, calldatas, proposal.description_hash, {"from": deployer})
    assert state_of(governor, pid) == "Queued"
    with brownie.reverts():
        governor.execute(targets, values, calldatas, proposal.description_hash, {"from": deployer})
    assert kuota.escrow.thawingPeriod() != 1_200


def test_proposal_below_quorum_is_defeated(kuota, governed, deployer, stranger):
    governor = governed.governor
    # The stranger holds 1 % of the supply (under the 4 % quorum) and enough for the threshold.
    supply = kuota.token.totalSupply()
    kuota.token.transfer(stranger, supply // 100, {"from": deployer})
    kuota.token.delegate(stranger, {"from": stranger})
    chain.mine()
    proposal = _proposal(kuota.rewards, "setEmissionPerEpoch", 1, description="tiny emission")
    targets, values, calldatas = proposal.args()
    pid = governor.propose(targets, values, calldatas, proposal.description, {"from": stranger}).events[
        "ProposalCreated"
    ]["proposalId"]
    chain.mine(VOTING_DELAY + 1)
    governor.castVote(pid, 1, {"from": stranger})
    chain.mine(VOTING_PERIOD + 1)
    assert state_of(governor, pid) == "Defeated"


def test_proposer_below_threshold_is_refused(kuota, governed, stranger):
    proposal = _proposal(kuota.rewards, "setEmissionPerEpoch", 1, description="no votes")
    targets, values, calldatas = proposal.args()
    with brownie.reverts():
        governed.governor.propose(targets, values, calldatas, proposal.description, {"from": stranger})


@pytest.mark.parametrize("name", ["RewardPool", "ReceiptSettlement"])
def test_guardian_pauses_and_unpauses_but_holds_no_other_role(kuota, governed, guardian, name):
    contract = kuota.contract(name)
    contract.pause({"from": guardian})
    assert contract.paused()
    contract.unpause({"from": guardian})
    for role in ("DEFAULT_ADMIN_ROLE", "PARAMETER_ROLE"):
        assert not contract.hasRole(role_id(role), guardian)
    with brownie.reverts():
        contract.grantRole(role_id("PAUSER_ROLE"), guardian, {"from": guardian})
