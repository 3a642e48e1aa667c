"""PaymentEscrow and RewardPool keep the SETTLEMENT_ROLE holder granted last in a slot every settlement
reads anyway (beside the accrued fees; beside the latency curve), so the role check of a settlement
costs no cold AccessControl lookup. That is a cache of the role, not a second authority: these tests
hold it to exactly AccessControl's answers when holders are added, revoked and renounced, and show
that the cache is what a settlement uses (the warm settle stays cheap after the curve is rewritten).
"""

from __future__ import annotations

import brownie
import pytest
from brownie import MockFalseReturnToken, PaymentEscrow
from unit_helpers import UNIT, custom_error, plain, role, unauthorized

SETTLEMENT_ROLE = role("SETTLEMENT_ROLE")
UINT96_MAX = 2**96 - 1


@pytest.fixture(scope="module", autouse=True)
def setup(funded):
    return funded


def _settle(system, sign, key, node, step, submitter):
    signed = sign(key, node, 1_000 * step, step * UNIT, latency_ms=20)
    return system.settlement.settle(signed.args, signed.signature, {"from": submitter})


def test_every_holder_passes_and_only_holders_when_the_cache_moves(
    system, sign, consumer_key, node, deployer, auditor, stranger
):
    # A second holder takes the cache; the deployed settlement still passes (AccessControl's path).
    for contract in (system.escrow, system.rewards):
        contract.grantRole(SETTLEMENT_ROLE, auditor, {"from": deployer})
    tx = _settle(system, sign, consumer_key, node, 1, stranger)
    assert tx.return_value == UNIT
    assert system.escrow.collect(stranger, 1, {"from": auditor}).return_value == 0
    system.rewards.recordUsage(node, 0, 0, {"from": auditor})

    # Revoking the cached holder refuses it at once, with AccessControl's own error.
    for contract in (system.escrow, system.rewards):
        contract.revokeRole(SETTLEMENT_ROLE, auditor, {"from": deployer})
    with brownie.reverts(unauthorized(auditor, "SETTLEMENT_ROLE")):
        system.escrow.collect(stranger, 1, {"from": auditor})
    with brownie.reverts(unauthorized(auditor, "SETTLEMENT_ROLE")):
        system.escrow.creditNode(node, 1, 0, {"from": auditor})
    with brownie.reverts(unauthorized(auditor, "SETTLEMENT_ROLE")):
        system.rewards.recordUsage(node, 1, 1, {"from": auditor})
    assert _settle(system, sign, consumer_key, node, 2, stranger).return_value == UNIT


def test_renouncing_the_cached_role_refuses_the_renouncer(system, node, deployer, auditor, stranger):
    for contract in (system.escrow, system.rewards):
        contract.grantRole(SETTLEMENT_ROLE, auditor, {"from": deployer})
        contract.renounceRole(SETTLEMENT_ROLE, auditor, {"from": auditor})
    with brownie.reverts(unauthorized(auditor, "SETTLEMENT_ROLE")):
        system.escrow.collect(stranger, 1, {"from": auditor})
    with brownie.reverts(unauthorized(auditor, "SETTLEMENT_ROLE")):
        system.rewards.recordUsage(node, 1, 1, {"from": auditor})


def test_settlement_uses_the_cache_and_a_curve_change_keeps_it(
    system, sign, consumer_key, node, deployer, stranger
):
    _settle(system, sign, consumer_key, node, 1, stranger)  # channel, credit and epoch record warm
    warm = _settle(system, sign, consumer_key, node, 2, stranger).gas_used
    low, high, floor = plain(system.rewards.latencyCurve())
    system.rewards.setLatencyCurve(low + 1, high, floor, {"from": deployer})  # rewrites the shared slot
    after_curve = _settle(system, sign, consumer_key, node, 3, stranger).gas_used
    # Without the cache the same settle pays two cold AccessControl lookups (2,100 gas each).
    system.escrow.grantRole(SETTLEMENT_ROLE, stranger, {"from": deployer})
    system.rewards.grantRole(SETTLEMENT_ROLE, stranger, {"from": deployer})
    uncached = _settle(system, sign, consumer_key, node, 4, deployer).gas_used
    assert abs(after_curve - warm) < 300, (warm, after_curve)
    assert uncached - warm > 3_500, (warm, uncached)


def test_fees_past_96_bits_revert_until_swept(system, deployer, treasury, auditor, node):
    token = MockFalseReturnToken.deploy({"from": deployer})
    escrow = PaymentEscrow.deploy(deployer, token, system.registry, treasury, 600, {"from": deployer})
    escrow.grantRole(SETTLEMENT_ROLE, auditor, {"from": deployer})
    escrow.creditNode(node, 0, UINT96_MAX, {"from": auditor})
    with brownie.reverts(custom_error("EscrowFeesOverflow(uint256,uint256)", UINT96_MAX, 1)):
        escrow.creditNode(node, 5, 1, {"from": auditor})
    assert escrow.accruedFees() == UINT96_MAX and escrow.creditOf(node) == 0
    token.mint(escrow, UINT96_MAX, {"from": deployer})  # what settlements would have collected
    tx = escrow.sweepFees({"from": auditor})
    assert plain(tx.events["FeesSwept"].values()) == (treasury.address, UINT96_MAX)
    assert token.balanceOf(treasury) == UINT96_MAX
    escrow.creditNode(node, 5, 1, {"from": auditor})
    assert escrow.accruedFees() == 1 and escrow.creditOf(node) == 5
