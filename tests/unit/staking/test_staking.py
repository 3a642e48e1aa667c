"""Staking: bonding, stake-for griefing, unbonding locks, withdrawal timing and slashing."""

from __future__ import annotations

import brownie
import pytest
from brownie import chain
from unit_helpers import ANY_UINT, custom_error, custom_error_pattern, plain

MIN = 1_000 * 10**18


@pytest.fixture(scope="module", autouse=True)
def setup(node):
    """Operator has 2 × MIN bonded and one registered node (requires MIN)."""
    return node


@pytest.fixture(scope="module")
def stranger_funded(system, deployer, stranger):
    system.token.transfer(stranger, 10 * MIN, {"from": deployer})
    system.token.approve(system.staking, 2**256 - 1, {"from": stranger})
    return stranger


def test_stake_bonds_and_emits(system, operator):
    tx = system.staking.stake(5 * 10**18, {"from": operator})
    assert system.staking.bondedOf(operator) == 2 * MIN + 5 * 10**18
    assert plain(tx.events["Staked"].values()) == (operator.address, operator.address, 5 * 10**18)
    assert system.staking.totalBonded() == 4 * MIN + 5 * 10**18  # two operators bonded 2 × MIN each


def test_stake_rejects_zero(system, operator):
    with brownie.reverts(custom_error("StakingZeroAmount()")):
        system.staking.stake(0, {"from": operator})


def test_zero_amount_stake_for_cannot_grief(system, operator, stranger_funded, params):
    system.staking.requestUnbond(MIN // 2, {"from": operator})
    before = plain(system.staking.unbondingOf(operator))
    with brownie.reverts(custom_error("StakingZeroAmount()")):
        system.staking.stakeFor(operator, 0, {"from": stranger_funded})
    # A non-zero stake-for only adds bonded stake: the unbonding bucket and its timer are untouched.
    chain.sleep(100)
    system.staking.stakeFor(operator, 1, {"from": stranger_funded})
    assert plain(system.staking.unbondingOf(operator)) == before
    assert system.staking.bondedOf(operator) == 2 * MIN - MIN // 2 + 1
    chain.sleep(params["unbondingPeriod"])
    system.staking.withdraw({"from": operator})
    assert plain(system.staking.unbondingOf(operator)) == (0, 0)
    # The stranger's wei is the operator's to unbond: nothing is locked by it.
    system.staking.requestUnbond(1, {"from": operator})


def test_stake_for_zero_address_is_rejected(system, stranger_funded):
    with brownie.reverts(custom_error("StakingZeroAddress(string)", "operator")):
        system.staking.stakeFor(brownie.ZERO_ADDRESS, 1, {"from": stranger_funded})


def test_stake_for_credits_operator_and_charges_payer(system, operator, stranger_funded):
    before = system.token.balanceOf(stranger_funded)
    tx = system.staking.stakeFor(operator, 7, {"from": stranger_funded})
    assert plain(tx.events["Staked"].values()) == (operator.address, stranger_funded.address, 7)
    assert system.token.balanceOf(stranger_funded) == before - 7
    assert system.staking.bondedOf(stranger_funded) == 0


def test_unbond_is_locked_by_registered_nodes(system, operator):
    assert system.registry.requiredStake(operator) == MIN
    with brownie.reverts(custom_error("StakingStakeLocked(address,uint256,uint256)", operator, MIN - 1, MIN)):
        system.staking.requestUnbond(MIN + 1, {"from": operator})
    tx = system.staking.requestUnbond(MIN, {"from": operator})
    assert tx.events["UnbondRequested"]["amount"] == MIN
    assert system.staking.bondedOf(operator) == MIN


def test_unbond_more_than_bonded_is_rejected(system, operator):
    with brownie.reverts(
        custom_error("StakingInsufficientStake(address,uint256,uint256)", operator, 2 * MIN, 2 * MIN + 1)
    ):
        system.staking.requestUnbond(2 * MIN + 1, {"from": operator})
    with brownie.reverts(custom_error("StakingZeroAmount()")):
        system.staking.requestUnbond(0, {"from": operator})


def test_exit_releases_the_lock(system, operator, node):
    system.registry.requestExit(node, {"from": operator})
    assert system.registry.requiredStake(operator) == 0
    system.staking.requestUnbond(2 * MIN, {"from": operator})
    assert system.staking.bondedOf(operator) == 0


def test_withdraw_waits_for_the_unbonding_period(system, operator, params):
    tx = system.staking.requestUnbond(MIN, {"from": operator})
    withdrawable_at = tx.events["UnbondRequested"]["withdrawableAt"]
    assert withdrawable_at == tx.timestamp + params["unbondingPeriod"]
    with brownie.reverts(
        revert_pattern=custom_error_pattern(
            "StakingUnbondingNotFinished(address,uint64,uint256)", operator, withdrawable_at, ANY_UINT
        )
    ):
        system.staking.withdraw({"from": operator})
    chain.sleep(params["unbondingPeriod"] + 1)
    before = system.token.balanceOf(operator)
    tx = system.staking.withdraw({"from": operator})
    assert tx.events["StakeWithdrawn"]["amount"] == MIN
    assert system.token.balanceOf(operator) == before + MIN
    assert system.staking.totalUnbonding() == 0
    with brownie.reverts(custom_error("StakingNothingToWithdraw(address)", operator)):
        system.staking.withdraw({"from": operator})


def test_new_unbond_request_adds_and_restarts_the_timer(system, operator, params):
    system.staking.requestUnbond(MIN // 4, {"from": operator})
    chain.sleep(params["unbondingPeriod"] - 10)
    tx = system.staking.requestUnbond(MIN // 4, {"from": operator})
    amount, withdrawable_at = plain(system.staking.unbondingOf(operator))
    assert amount == MIN // 2 and withdrawable_at == tx.timestamp + params["unbondingPeriod"]
    chain.sleep(20)
    with brownie.reverts(
        revert_pattern=custom_error_pattern(
            "StakingUnbondingNotFinished(address,uint64,uint256)", operator, withdrawable_at, ANY_UINT
        )
    ):
        system.staking.withdraw({"from": operator})


def test_unbond_then_slash_still_slashes(system, operator, slasher, auditor, params):
    system.staking.requestUnbond(MIN, {"from": operator})
    supply = system.token.totalSupply()
    reporter_before = system.token.balanceOf(auditor)
    # 1.5 × MIN: all of the remaining bonded MIN, then half of the unbonding bucket.
    amount = MIN + MIN // 2
    tx = system.staking.slash(operator, amount, auditor, {"from": slasher})
    reward = amount * params["slashReporterBps"] // 10_000
    assert plain(tx.events["Slashed"].values()) == (operator.address, auditor.address, amount, reward, amount - reward)
    assert system.staking.bondedOf(operator) == 0
    assert plain(system.staking.unbondingOf(operator))[0] == MIN // 2
    assert system.token.balanceOf(auditor) == reporter_before + reward
    assert system.token.totalSupply() == supply - (amount - reward)
    # After the period only what was not slashed can be withdrawn.
    chain.sleep(params["unbondingPeriod"] + 1)
    assert system.staking.withdraw({"from": operator}).events["StakeWithdrawn"]["amount"] == MIN // 2


def test_slash_caps_at_what_is_staked(system, operator, slasher):
    tx = system.staking.slash(operator, 10 * MIN, brownie.ZERO_ADDRESS, {"from": slasher})
    # No reporter: everything slashed is burned.
    assert plain(tx.events["Slashed"].values()) == (operator.address, brownie.ZERO_ADDRESS, 2 * MIN, 0, 2 * MIN)
    with brownie.reverts(custom_error("StakingInsufficientStake(address,uint256,uint256)", operator, 0, 1)):
        system.staking.slash(operator, 1, brownie.ZERO_ADDRESS, {"from": slasher})
    with brownie.reverts(custom_error("StakingZeroAmount()")):
        system.staking.slash(operator, 0, brownie.ZERO_ADDRESS, {"from": slasher})


def test_stake_conservation(system, operator, operator2, slasher, params):
    system.staking.requestUnbond(MIN // 3, {"from": operator})
    system.staking.slash(operator2, MIN // 7, slasher, {"from": slasher})
    chain.sleep(params["unbondingPeriod"] + 1)
    system.staking.withdraw({"from": operator})
    balance = system.token.balanceOf(system.staking)
    assert balance == system.staking.totalBonded() + system.staking.totalUnbonding()
    assert system.staking.totalBonded() == sum(system.staking.bondedOf(a) for a in (operator, operator2))


def test_registry_is_set_once(system, deployer, stranger):
    assert system.staking.registry() == system.registry.address
    with brownie.reverts(custom_error("StakingRegistryAlreadySet(address)", system.registry)):
        system.staking.setRegistry(stranger, {"from": deployer})


def test_parameters_are_bounded_and_evented(system, deployer):
    with brownie.reverts(
        custom_error(
            "StakingParameterOutOfBounds(string,uint256,uint256,uint256)", "unbondingPeriod", 90 * 86400 + 1, 0, 90 * 86400
        )
    ):
        system.staking.setUnbondingPeriod(90 * 86400 + 1, {"from": deployer})
    with brownie.reverts(
        custom_error("StakingParameterOutOfBounds(string,uint256,uint256,uint256)", "slashReporterBps", 5_001, 0, 5_000)
    ):
        system.staking.setSlashReporterBps(5_001, {"from": deployer})
    tx = system.staking.setUnbondingPeriod(90 * 86400, {"from": deployer})
    assert plain(tx.events["ParameterUpdated"].values()) == ("unbondingPeriod", 600, 90 * 86400)
    tx = system.staking.setSlashReporterBps(5_000, {"from": deployer})
    assert plain(tx.events["ParameterUpdated"].values()) == ("slashReporterBps", 1_000, 5_000)
