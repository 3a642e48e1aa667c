"""``deploy_system`` with a ``governance`` parameter object ends governed: the manifest records the
governor and the timelock, the timelock holds every admin role, the guardian pauses, and bad
governance parameters are refused by name before anything is sent."""

from __future__ import annotations

import pytest

from nodeclient.deployment import DeployParamsError
from scripts.deploy import deploy_system, validate_params
from scripts.deploy_governance import ADMIN_ROLES, role_id

GOVERNANCE = {
    "votingDelay": 1,
    "votingPeriod": 20,
    "proposalThreshold": 0,
    "quorumPercent": 4,
    "minDelay": 60,
}


@pytest.fixture(scope="module")
def governed_deploy(deployer, local_params, accounts, tmp_path_factory):
    params = {**local_params, "governance": {**GOVERNANCE, "guardian": accounts[9].address}}
    path = tmp_path_factory.mktemp("deploy") / "manifest.json"
    return deploy_system(deployer, params, manifest_path=path)


def test_deploy_with_governance_records_governor_and_hands_over(governed_deploy, deployer, accounts):
    contracts = governed_deploy.manifest["contracts"]
    timelock = governed_deploy.timelock
    assert contracts["KuotaTimelock"] == timelock.address and "KuotaGovernor" in contracts
    assert timelock.hasRole(role_id("PROPOSER_ROLE"), contracts["KuotaGovernor"])
    for name, roles in ADMIN_ROLES.items():
        for role in roles:
            assert governed_deploy.contract(name).hasRole(role_id(role), timelock)
            assert not governed_deploy.contract(name).hasRole(role_id(role), deployer)
    assert governed_deploy.settlement.hasRole(role_id("PAUSER_ROLE"), accounts[9])
    assert governed_deploy.manifest["params"]["governance"]["min_delay"] == 60


@pytest.mark.parametrize(
    ("governance", "message"),
    [
        ({**GOVERNANCE, "quorumPercent": 101}, "'quorum_percent' = 101 is outside [0, 100]"),
        ({k: v for k, v in GOVERNANCE.items() if k != "minDelay"}, "missing ['minDelay']"),
        ({**GOVERNANCE, "votingPeriod": 0}, "'voting_period' = 0 is outside"),
    ],
)
def test_bad_governance_parameters_are_refused_by_name(local_params, deployer, governance, message):
    with pytest.raises(DeployParamsError, match=None) as info:
        validate_params({**local_params, "governance": governance}, deployer.address)
    assert message in str(info.value)


def test_timelock_and_governance_exclude_each_other(local_params, deployer):
    params = {
        **local_params,
        "governance": GOVERNANCE,
        "timelock": {"minDelay": 1, "proposers": [deployer.address], "executors": []},
    }
    with pytest.raises(DeployParamsError) as info:
        validate_params(params, deployer.address)
    assert "exclude each other" in str(info.value)
