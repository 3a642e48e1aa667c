"""Every privileged function called by every account that does not hold its role reverts with
OpenZeppelin's ``AccessControlUnauthorizedAccount(account, role)``, and changes nothing."""

from __future__ import annotations

import brownie
import pytest
from unit_helpers import role, unauthorized

ZERO32 = b"\x00" * 32


def _matrix(system, node, accounts):
    """(contract, function name, args, role name) for every role-gated entry point."""
    a = accounts[15]
    return [
        (system.token, "mint", (a, 1), "MINTER_ROLE"),
        (system.token, "grantRole", (role("MINTER_ROLE"), a), "DEFAULT_ADMIN_ROLE"),
        (system.staking, "slash", (a, 1, a), "SLASHER_ROLE"),
        (system.staking, "setRegistry", (a,), "DEFAULT_ADMIN_ROLE"),
        (system.staking, "setUnbondingPeriod", (1,), "PARAMETER_ROLE"),
        (system.staking, "setSlashReporterBps", (1,), "PARAMETER_ROLE"),
        (system.staking, "grantRole", (role("SLASHER_ROLE"), a), "DEFAULT_ADMIN_ROLE"),
        (system.registry, "jail", (node, "x"), "JAILER_ROLE"),
        (system.registry, "unjail", (node,), "JAILER_ROLE"),
        (system.registry, "setMinStakePerNode", (1,), "PARAMETER_ROLE"),
        (system.registry, "grantRole", (role("JAILER_ROLE"), a), "DEFAULT_ADMIN_ROLE"),
        (system.escrow, "collect", (a, 1), "SETTLEMENT_ROLE"),
        (system.escrow, "creditNode", (node, 1, 1), "SETTLEMENT_ROLE"),
        (system.escrow, "setTreasury", (a,), "DEFAULT_ADMIN_ROLE"),
        (system.escrow, "setThawingPeriod", (1,), "PARAMETER_ROLE"),
        (system.escrow, "grantRole", (role("SETTLEMENT_ROLE"), a), "DEFAULT_ADMIN_ROLE"),
        (system.settlement, "setFeeBps", (1,), "PARAMETER_ROLE"),
        (system.settlement, "pause", (), "PAUSER_ROLE"),
        (system.settlement, "unpause", (), "PAUSER_ROLE"),
        (system.settlement, "grantRole", (role("PAUSER_ROLE"), a), "DEFAULT_ADMIN_ROLE"),
        (system.rewards, "recordUsage", (node, 1, 1), "SETTLEMENT_ROLE"),
        (system.rewards, "setEmissionPerEpoch", (1,), "PARAMETER_ROLE"),
        (system.rewards, "setRewardPerFeeUnit", (1,), "PARAMETER_ROLE"),
        (system.rewards, "setMaxNodeShareBps", (1,), "PARAMETER_ROLE"),
        (system.rewards, "setLatencyCurve", (1, 2, 3), "PARAMETER_ROLE"),
        (system.rewards, "pause", (), "PAUSER_ROLE"),
        (system.rewards, "unpause", (), "PAUSER_ROLE"),
        (system.rewards, "grantRole", (role("SETTLEMENT_ROLE"), a), "DEFAULT_ADMIN_ROLE"),
    ]


MATRIX_SIZE = 28


@pytest.fixture(scope="module", autouse=True)
def setup(node):
    return node


@pytest.mark.parametrize("index", range(MATRIX_SIZE))
def test_privileged_function_rejects_every_non_role_account(system, node, accounts, index):
    entries = _matrix(system, node, accounts)
    assert len(entries) == MATRIX_SIZE
    contract, name, args, role_name = entries[index]
    candidates = list(accounts[:15])  # deployer, treasury, slasher, operators, consumers, auditor, stranger, payouts…
    outsiders = [acct for acct in candidates if not contract.hasRole(role(role_name), acct)]
    assert len(outsiders) >= 12, f"{role_name} on {contract._name} is held by too many test accounts"
    for acct in outsiders:
        with brownie.reverts(unauthorized(acct, role_name)):
            getattr(contract, name)(*args, {"from": acct})


def test_role_holders_are_as_deployed(system, deployer, slasher):
    """The matrix above is only meaningful if the roles sit where the deployment puts them."""
    assert system.token.hasRole(role("MINTER_ROLE"), system.rewards)
    assert system.escrow.hasRole(role("SETTLEMENT_ROLE"), system.settlement)
    assert system.rewards.hasRole(role("SETTLEMENT_ROLE"), system.settlement)
    assert system.staking.hasRole(role("SLASHER_ROLE"), slasher)
    assert system.registry.hasRole(role("JAILER_ROLE"), slasher)
    for contract in (system.settlement, system.rewards):
        assert contract.hasRole(role("PAUSER_ROLE"), deployer)
    for contract in (system.token, system.staking, system.registry, system.escrow, system.settlement, system.rewards):
        assert contract.hasRole(ZERO32, deployer)
