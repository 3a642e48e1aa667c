"""PaymentEscrow: deposits, thawing, collection order, node earnings, fees, odd tokens, conservation."""

from __future__ import annotations

import brownie
import pytest
from brownie import (
    MockFalseReturnToken,
    MockFeeOnTransferToken,
    MockNoBoolToken,
    PaymentEscrow,
    chain,
)
from unit_helpers import ANY_UINT, UNIT, custom_error, custom_error_pattern, plain, role

SETTLEMENT_ROLE = role("SETTLEMENT_ROLE")


@pytest.fixture(scope="module", autouse=True)
def setup(funded):
    return funded


@pytest.fixture(scope="module")
def settler(auditor):
    """An account that plays ReceiptSettlement for escrows deployed in these tests."""
    return auditor


def _escrow_with(token, deployer, registry, treasury, settler):
    escrow = PaymentEscrow.deploy(deployer, token, registry, treasury, 600, {"from": deployer})
    escrow.grantRole(SETTLEMENT_ROLE, settler, {"from": deployer})
    return escrow


def _conserved(escrow, token, consumers, nodes):
    held = sum(escrow.availableOf(c) + escrow.thawingOf(c) for c in consumers)
    held += sum(escrow.creditOf(n) for n in nodes) + escrow.accruedFees()
    return token.balanceOf(escrow) == held


def test_deposit_and_deposit_for(system, consumer, consumer2):
    tx = system.escrow.depositFor(consumer2, 5 * UNIT, {"from": consumer})
    assert plain(tx.events["Deposited"].values()) == (consumer2.address, consumer.address, 5 * UNIT)
    assert system.escrow.availableOf(consumer2) == 1_005 * UNIT
    with brownie.reverts(custom_error("EscrowZeroAmount()")):
        system.escrow.deposit(0, {"from": consumer})
    with brownie.reverts(custom_error("EscrowZeroAddress(string)", "consumer")):
        system.escrow.depositFor(brownie.ZERO_ADDRESS, 1, {"from": consumer})


def test_thaw_cancel_and_withdraw(system, consumer, params):
    with brownie.reverts(
        custom_error("EscrowInsufficientAvailable(address,uint256,uint256)", consumer, 1_000 * UNIT, 1_001 * UNIT)
    ):
        system.escrow.requestThaw(1_001 * UNIT, {"from": consumer})
    with brownie.reverts(custom_error("EscrowZeroAmount()")):
        system.escrow.requestThaw(0, {"from": consumer})
    with brownie.reverts(custom_error("EscrowNothingThawing(address)", consumer)):
        system.escrow.cancelThaw({"from": consumer})

    tx = system.escrow.requestThaw(400 * UNIT, {"from": consumer})
    ends = tx.timestamp + params["thawingPeriod"]
    assert plain(tx.events["ThawRequested"].values()) == (consumer.address, 400 * UNIT, ends)
    assert plain(system.escrow.accountOf(consumer)) == (600 * UNIT, 400 * UNIT, ends)
    tx = system.escrow.cancelThaw({"from": consumer})
    assert plain(tx.events["ThawCancelled"].values()) == (consumer.address, 400 * UNIT)
    assert plain(system.escrow.accountOf(consumer)) == (1_000 * UNIT, 0, 0)

    tx = system.escrow.requestThaw(300 * UNIT, {"from": consumer})
    ends = tx.events["ThawRequested"]["thawEndsAt"]
    with brownie.reverts(
        revert_pattern=custom_error_pattern("EscrowThawNotFinished(address,uint64,uint256)", consumer, ends, ANY_UINT)
    ):
        system.escrow.withdraw({"from": consumer})
    chain.sleep(params["thawingPeriod"] + 1)
    before = system.payment_token.balanceOf(consumer)
    tx = system.escrow.withdraw({"from": consumer})
    assert plain(tx.events["Withdrawn"].values()) == (consumer.address, 300 * UNIT)
    assert system.payment_token.balanceOf(consumer) == before + 300 * UNIT
    with brownie.reverts(custom_error("EscrowNothingThawing(address)", consumer)):
        system.escrow.withdraw({"from": consumer})


def test_second_thaw_request_adds_and_restarts(system, consumer, params):
    system.escrow.requestThaw(100 * UNIT, {"from": consumer})
    chain.sleep(params["thawingPeriod"] - 5)
    tx = system.escrow.requestThaw(50 * UNIT, {"from": consumer})
    assert plain(system.escrow.accountOf(consumer)) == (850 * UNIT, 150 * UNIT, tx.timestamp + params["thawingPeriod"])


def test_collect_takes_available_then_thawing_and_never_reverts(
    system, deployer, registry_only, consumer, consumer2, settler, node
):
    escrow, token = registry_only
    token.mint(consumer, 100 * UNIT, {"from": deployer})
    token.approve(escrow, 2**256 - 1, {"from": consumer})
    escrow.deposit(100 * UNIT, {"from": consumer})
    escrow.requestThaw(60 * UNIT, {"from": consumer})
    assert escrow.collect(consumer, 30 * UNIT, {"from": settler}).return_value == 30 * UNIT
    assert plain(escrow.accountOf(consumer))[:2] == (10 * UNIT, 60 * UNIT)
    assert escrow.collect(consumer, 50 * UNIT, {"from": settler}).return_value == 50 * UNIT
    assert plain(escrow.accountOf(consumer))[:2] == (0, 20 * UNIT)
    # More than there is: pays what is left, no revert.
    assert escrow.collect(consumer, 500 * UNIT, {"from": settler}).return_value == 20 * UNIT
    assert escrow.collect(consumer, 1, {"from": settler}).return_value == 0
    assert escrow.collect(consumer2, 1, {"from": settler}).return_value == 0
    tx = escrow.creditNode(node, 95 * UNIT, 5 * UNIT, {"from": settler})
    assert plain(tx.events["NodeCredited"].values()) == (node, 95 * UNIT, 5 * UNIT)
    assert _conserved(escrow, token, [consumer, consumer2], [node])


@pytest.fixture
def registry_only(system, deployer, treasury, settler):
    """A fresh escrow over a fresh MockUSD-like token (OZ ERC20) with ``settler`` as settlement."""
    token = MockFalseReturnToken.deploy({"from": deployer})
    return _escrow_with(token, deployer, system.registry, treasury, settler), token


def test_withdraw_earnings_goes_to_payout_whoever_calls(system, registry_only, deployer, settler, node, payout, stranger):
    escrow, token = registry_only
    token.mint(stranger, 10 * UNIT, {"from": deployer})
    token.approve(escrow, 2**256 - 1, {"from": stranger})
    escrow.deposit(10 * UNIT, {"from": stranger})
    escrow.collect(stranger, 10 * UNIT, {"from": settler})
    escrow.creditNode(node, 9 * UNIT, UNIT, {"from": settler})
    tx = escrow.withdrawEarnings(node, {"from": stranger})
    assert plain(tx.events["EarningsWithdrawn"].values()) == (node, payout.address, 9 * UNIT)
    assert token.balanceOf(payout) == 9 * UNIT and token.balanceOf(stranger) == 0
    with brownie.reverts(custom_error("EscrowNothingToWithdraw(address)", node)):
        escrow.withdrawEarnings(node, {"from": stranger})
    with brownie.reverts(custom_error("EscrowUnknownNode(address)", stranger)):
        escrow.withdrawEarnings(stranger, {"from": stranger})


def test_sweep_fees_pays_treasury(system, sign, consumer, consumer_key, node, treasury, stranger):
    signed = sign(consumer_key, node, 1_000, 40 * UNIT)
    system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    fees = system.escrow.accruedFees()
    assert fees == 2 * UNIT
    before = system.payment_token.balanceOf(treasury)
    tx = system.escrow.sweepFees({"from": stranger})
    assert plain(tx.events["FeesSwept"].values()) == (treasury.address, fees)
    assert system.payment_token.balanceOf(treasury) == before + fees
    with brownie.reverts(custom_error("EscrowZeroAmount()")):
        system.escrow.sweepFees({"from": stranger})


def test_treasury_and_thawing_period_setters(system, deployer, stranger, treasury):
    with brownie.reverts(custom_error("EscrowZeroAddress(string)", "treasury")):
        system.escrow.setTreasury(brownie.ZERO_ADDRESS, {"from": deployer})
    tx = system.escrow.setTreasury(stranger, {"from": deployer})
    assert plain(tx.events["TreasuryUpdated"].values()) == (treasury.address, stranger.address)
    assert system.escrow.treasury() == stranger
    bound = 30 * 86400
    with brownie.reverts(
        custom_error("EscrowParameterOutOfBounds(string,uint256,uint256,uint256)", "thawingPeriod", bound + 1, 0, bound)
    ):
        system.escrow.setThawingPeriod(bound + 1, {"from": deployer})
    tx = system.escrow.setThawingPeriod(bound, {"from": deployer})
    assert plain(tx.events["ParameterUpdated"].values()) == ("thawingPeriod", 600, bound)


def test_conservation_through_a_settlement_cycle(
    system, sign, consumer, consumer2, consumer_key, consumer2_key, node, params
):
    token, escrow = system.payment_token, system.escrow
    system.escrow.requestThaw(990 * UNIT, {"from": consumer})
    for key, amount in ((consumer_key, 995 * UNIT), (consumer2_key, 3 * UNIT)):
        s = sign(key, node, 10, amount)
        system.settlement.settle(s.args, s.signature, {"from": consumer})
        assert _conserved(escrow, token, [consumer, consumer2], [node])
    chain.sleep(params["thawingPeriod"] + 1)
    system.escrow.withdraw({"from": consumer})
    system.escrow.withdrawEarnings(node, {"from": consumer})
    system.escrow.sweepFees({"from": consumer})
    assert _conserved(escrow, token, [consumer, consumer2], [node])
    assert token.balanceOf(escrow) == 997 * UNIT  # consumer2's remaining 997 mUSD


# --------------------------------------------------------------------------------------------
# Odd tokens


def test_fee_on_transfer_token_is_credited_by_what_arrived(system, deployer, treasury, settler, consumer, node, payout):
    token = MockFeeOnTransferToken.deploy(100, {"from": deployer})  # 1 % burned per transfer
    escrow = _escrow_with(token, deployer, system.registry, treasury, settler)
    token.mint(consumer, 1_000 * UNIT, {"from": deployer})
    token.approve(escrow, 2**256 - 1, {"from": consumer})
    tx = escrow.deposit(1_000 * UNIT, {"from": consumer})
    assert tx.events["Deposited"]["amount"] == 990 * UNIT
    assert escrow.availableOf(consumer) == 990 * UNIT == token.balanceOf(escrow)
    paid = escrow.collect(consumer, 500 * UNIT, {"from": settler}).return_value
    escrow.creditNode(node, paid - 25 * UNIT, 25 * UNIT, {"from": settler})
    assert _conserved(escrow, token, [consumer], [node])
    escrow.withdrawEarnings(node, {"from": settler})
    # The escrow sends 475; the token burns 1 % on the way, the escrow's books stay exact.
    assert token.balanceOf(payout) == 475 * UNIT * 99 // 100
    escrow.sweepFees({"from": settler})
    assert _conserved(escrow, token, [consumer], [node])
    assert token.balanceOf(escrow) == 490 * UNIT


def test_no_bool_token_works_through_safe_erc20(system, deployer, treasury, settler, consumer, node, payout, params):
    token = MockNoBoolToken.deploy({"from": deployer})
    escrow = _escrow_with(token, deployer, system.registry, treasury, settler)
    token.mint(consumer, 100 * UNIT, {"from": deployer})
    token.approve(escrow, 2**256 - 1, {"from": consumer})
    escrow.deposit(100 * UNIT, {"from": consumer})
    escrow.collect(consumer, 10 * UNIT, {"from": settler})
    escrow.creditNode(node, 10 * UNIT, 0, {"from": settler})
    escrow.withdrawEarnings(node, {"from": settler})
    assert token.balanceOf(payout) == 10 * UNIT
    escrow.requestThaw(90 * UNIT, {"from": consumer})
    chain.sleep(params["thawingPeriod"] + 1)
    escrow.withdraw({"from": consumer})
    assert token.balanceOf(consumer) == 90 * UNIT and token.balanceOf(escrow) == 0
    # A failing transfer of such a token reverts with its own error, never silently.
    with brownie.reverts(custom_error("MockNoBoolInsufficient(uint256,uint256)", 90 * UNIT, 91 * UNIT)):
        escrow.deposit(91 * UNIT, {"from": consumer})


def test_false_returning_token_is_rejected(system, deployer, treasury, settler, consumer):
    token = MockFalseReturnToken.deploy({"from": deployer})
    escrow = _escrow_with(token, deployer, system.registry, treasury, settler)
    token.mint(consumer, 100 * UNIT, {"from": deployer})
    token.approve(escrow, 2**256 - 1, {"from": consumer})
    token.setFailing(True, {"from": deployer})
    with brownie.reverts(custom_error("SafeERC20FailedOperation(address)", token)):
        escrow.deposit(UNIT, {"from": consumer})
    assert escrow.availableOf(consumer) == 0
