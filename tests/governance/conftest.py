"""Fixtures for the governance tests: the system deployed by ``scripts/deploy.py`` and put under
KuotaGovernor + KuotaTimelock by ``scripts/deploy_governance.py``, and a helper that carries a
proposal from ``propose`` to ``execute`` on the real chain (blocks mined, time advanced)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from brownie import chain
from gov_helpers import MIN_DELAY, PROPOSAL_THRESHOLD, QUORUM_PERCENT, VOTING_DELAY, VOTING_PERIOD, state_of

from nodeclient.governance import Proposal


@pytest.fixture(scope="module")
def guardian(accounts):
    return accounts[9]


@pytest.fixture(scope="module")
def gov_params(guardian):
    from scripts.deploy_governance import GovernanceParams

    return GovernanceParams(
        voting_delay=VOTING_DELAY,
        voting_period=VOTING_PERIOD,
        proposal_threshold=PROPOSAL_THRESHOLD,
        quorum_percent=QUORUM_PERCENT,
        min_delay=MIN_DELAY,
        guardian=guardian.address,
    )


@pytest.fixture(scope="module")
def governed(kuota, deployer, gov_params):
    """The system with every admin role held by the timelock; the deployer votes with its supply."""
    from scripts.deploy_governance import ADMIN_ROLES, deploy_governance

    gov = deploy_governance(deployer, {name: kuota.contract(name) for name in ADMIN_ROLES}, gov_params)
    kuota.token.delegate(deployer, {"from": deployer})
    chain.mine()
    return gov


@pytest.fixture(scope="module")
def pass_proposal(governed, deployer) -> Callable[[Proposal], int]:
    """Propose, vote for with the deployer's votes, queue, wait out the timelock and execute."""
    governor = governed.governor

    def _pass(proposal: Proposal, voter: Any = None) -> int:
        voter = voter or deployer
        targets, values, calldatas = proposal.args()
        tx = governor.propose(targets, values, calldatas, proposal.description, {"from": voter})
        pid = int(tx.events["ProposalCreated"]["proposalId"])
        chain.mine(VOTING_DELAY + 1)
        governor.castVote(pid, 1, {"from": voter})
        chain.mine(VOTING_PERIOD + 1)
        assert state_of(governor, pid) == "Succeeded"
        governor.queue(targets, values, calldatas, proposal.description_hash, {"from": voter})
        chain.sleep(MIN_DELAY + 1)
        chain.mine()
        governor.execute(targets, values, calldatas, proposal.description_hash, {"from": voter})
        assert state_of(governor, pid) == "Executed"
        return pid

    return _pass
