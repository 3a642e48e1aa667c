"""Rewards fixtures: a standalone RewardPool whose SETTLEMENT_ROLE is held by a test account, so the
reward arithmetic (caps, scaling, carry, dust) is driven with exact fees and weights."""

from __future__ import annotations

import pytest
from brownie import KuotaToken, RewardPool
from unit_helpers import role


@pytest.fixture(scope="module")
def settler(auditor):
    return auditor


@pytest.fixture(scope="module")
def make_pool(system, deployer, settler):
    """``make_pool(emission, reward_per_fee_unit, max_share_bps, epoch_length=60)`` → (pool, token)."""

    def _make(emission: int, reward_per_fee_unit: int, max_share_bps: int, epoch_length: int = 60):
        token = KuotaToken.deploy(deployer, 10**30, 0, deployer, {"from": deployer})
        pool = RewardPool.deploy(
            deployer,
            token,
            system.registry,
            epoch_length,
            emission,
            reward_per_fee_unit,
            max_share_bps,
            50,
            500,
            2_000,
            {"from": deployer},
        )
        token.grantRole(role("MINTER_ROLE"), pool, {"from": deployer})
        pool.grantRole(role("SETTLEMENT_ROLE"), settler, {"from": deployer})
        return pool, token

    return _make
