"""LaneSettlement: allocation, top-up, close, and settlement from lanes on the real system.

Every test ends with the escrow's conservation check: the payment token the escrow holds equals the
consumers' available and thawing funds, the lane funds, the node credits and the accrued fees, and
the lane funds equal the sum of the lane balances.
"""

from __future__ import annotations

import brownie
import pytest
from brownie import chain
from lane_helpers import CLOSE_DELAY, escrow_conservation, packed
from unit_helpers import (
    ANY_UINT,
    UNIT,
    custom_error,
    custom_error_pattern,
    plain,
    role,
    set_next_timestamp,
    unauthorized,
)

from nodeclient.receipts.signing import receipt_digest, receipt_domain

ROOT = b"\x05" * 32


@pytest.fixture(scope="module", autouse=True)
def setup(funded, node2, lanes):
    return funded


@pytest.fixture(autouse=True)
def conserved(system, consumer, consumer2, node, node2):
    yield
    escrow_conservation(system, [consumer.address, consumer2.address], [node, node2])


def _lane(lanes, consumer, node):
    (balance, settled_amount, settled_bytes, closing), close_at = plain(lanes.laneOf(consumer, node))
    return {"balance": balance, "settled": settled_amount, "bytes": settled_bytes, "closing": closing, "closeAt": close_at}


# --- allocation --------------------------------------------------------------------------------


def test_allocate_moves_available_funds_into_the_lane(system, lanes, consumer, node):
    tx = lanes.allocate(node, 100 * UNIT, {"from": consumer})
    assert system.escrow.availableOf(consumer) == 900 * UNIT
    assert system.escrow.laneFundsOf(lanes) == 100 * UNIT
    assert _lane(lanes, consumer, node) == {"balance": 100 * UNIT, "settled": 0, "bytes": 0, "closing": False, "closeAt": 0}
    assert plain(list(tx.events["LaneAllocated"][0].values())) == (consumer.address, node, 100 * UNIT, 100 * UNIT)
    assert plain(list(tx.events["LaneFundsAllocated"][0].values())) == (consumer.address, lanes.address, 100 * UNIT)


def test_allocate_again_tops_the_lane_up(lanes, consumer, node):
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    tx = lanes.allocate(node, 50 * UNIT, {"from": consumer})
    assert tx.events["LaneAllocated"]["balance"] == 150 * UNIT
    assert _lane(lanes, consumer, node)["balance"] == 150 * UNIT


def test_allocate_refuses_more_than_available(system, lanes, consumer, node):
    with brownie.reverts(custom_error("EscrowInsufficientAvailable(address,uint256,uint256)", consumer, 1_000 * UNIT, 1_001 * UNIT)):
        lanes.allocate(node, 1_001 * UNIT, {"from": consumer})


def test_allocate_refuses_zero_and_unknown_nodes(lanes, consumer, stranger):
    with brownie.reverts(custom_error("LaneZeroAmount()")):
        lanes.allocate(stranger, 0, {"from": consumer})
    with brownie.reverts(custom_error("LaneUnknownNode(address)", stranger)):
        lanes.allocate(stranger, UNIT, {"from": consumer})


def test_allocate_many_debits_the_escrow_once(system, lanes, consumer, node, node2):
    tx = lanes.allocateMany([node, node2], [10 * UNIT, 20 * UNIT], {"from": consumer})
    assert _lane(lanes, consumer, node)["balance"] == 10 * UNIT
    assert _lane(lanes, consumer, node2)["balance"] == 20 * UNIT
    assert len(tx.events["LaneFundsAllocated"]) == 1
    assert tx.events["LaneFundsAllocated"]["amount"] == 30 * UNIT
    assert system.escrow.availableOf(consumer) == 970 * UNIT
    with brownie.reverts(custom_error("LaneLengthMismatch(uint256,uint256)", 2, 1)):
        lanes.allocateMany([node, node2], [UNIT], {"from": consumer})


def test_only_the_lane_module_moves_lane_funds(system, lanes, stranger, consumer, node):
    with brownie.reverts(unauthorized(stranger, "LANES_ROLE")):
        system.escrow.allocateToLanes(consumer, UNIT, {"from": stranger})
    lanes.allocate(node, 10 * UNIT, {"from": consumer})
    # Spending needs lane funds booked to the caller: a stranger has none, whatever the lanes hold.
    with brownie.reverts(custom_error("EscrowInsufficientLaneFunds(address,uint256,uint256)", stranger, 0, UNIT)):
        system.escrow.payFromLanes(node, UNIT, 0, {"from": stranger})
    with brownie.reverts(custom_error("EscrowInsufficientLaneFunds(address,uint256,uint256)", stranger, 0, UNIT)):
        system.escrow.releaseFromLanes(consumer, UNIT, {"from": stranger})


def test_allocated_funds_cannot_be_thawed_but_the_rest_withdraws_as_before(system, lanes, consumer, node):
    lanes.allocate(node, 400 * UNIT, {"from": consumer})
    with brownie.reverts(custom_error("EscrowInsufficientAvailable(address,uint256,uint256)", consumer, 600 * UNIT, 601 * UNIT)):
        system.escrow.requestThaw(601 * UNIT, {"from": consumer})
    system.escrow.requestThaw(600 * UNIT, {"from": consumer})
    chain.sleep(system.escrow.thawingPeriod() + 1)
    before = system.payment_token.balanceOf(consumer)
    system.escrow.withdraw({"from": consumer})
    assert system.payment_token.balanceOf(consumer) - before == 600 * UNIT
    assert _lane(lanes, consumer, node)["balance"] == 400 * UNIT


# --- settlement --------------------------------------------------------------------------------


def test_settle_pays_each_receipt_from_its_lane_with_one_event(
    system, lanes, sign_lane, consumer, consumer2, consumer_key, consumer2_key, node, stranger
):
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    lanes.allocate(node, 100 * UNIT, {"from": consumer2})
    batch = [
        sign_lane(consumer_key, node, 4_000, 4 * UNIT, session=1, latency_ms=20),
        sign_lane(consumer2_key, node, 6_000, 6 * UNIT, session=2, latency_ms=20),
    ]
    fees_before = system.escrow.accruedFees()
    tx = lanes.settleLanes(node, packed(batch), ROOT, {"from": stranger})
    assert tx.return_value == 10 * UNIT
    fee = 10 * UNIT * 500 // 10_000
    assert plain(list(tx.events["LanesSettled"][0].values())) == (node, ROOT, 2, 2, 10 * UNIT, fee)
    assert "ReceiptSettled" not in tx.events
    assert len(tx.events["NodeCredited"]) == 1 and len(tx.events["UsageRecorded"]) == 1
    assert system.escrow.creditOf(node) == 10 * UNIT - fee
    assert system.escrow.accruedFees() - fees_before == fee
    assert _lane(lanes, consumer, node) == {"balance": 96 * UNIT, "settled": 4 * UNIT, "bytes": 4_000, "closing": False, "closeAt": 0}
    assert _lane(lanes, consumer2, node)["balance"] == 94 * UNIT
    # The pooled balances are untouched: lanes pay from lanes only.
    assert system.escrow.availableOf(consumer) == 900 * UNIT


def test_usage_weight_follows_each_receipts_latency(system, lanes, sign_lane, consumer, consumer2, consumer_key, consumer2_key, node):
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    lanes.allocate(node, 100 * UNIT, {"from": consumer2})
    batch = [
        sign_lane(consumer_key, node, 1, 10 * UNIT, session=1, latency_ms=20),  # full weight
        sign_lane(consumer2_key, node, 1, 10 * UNIT, session=2, latency_ms=900),  # floor 2000 bps
    ]
    tx = lanes.settleLanes(node, packed(batch), ROOT, {"from": consumer})
    fee = 20 * UNIT * 500 // 10_000
    weighted = 10 * UNIT * 10_000 + 10 * UNIT * 2_000
    usage = tx.events["UsageRecorded"][0]
    assert usage["fee"] == fee
    assert usage["weight"] == weighted * 500 // 10_000 // 10_000


def test_replayed_and_stale_receipts_pay_nothing(lanes, sign_lane, consumer, consumer_key, node):
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    later = sign_lane(consumer_key, node, 5_000, 5 * UNIT)
    earlier = sign_lane(consumer_key, node, 3_000, 3 * UNIT)
    lanes.settleLanes(node, packed([later]), ROOT, {"from": consumer})
    tx = lanes.settleLanes(node, packed([later, earlier]), ROOT, {"from": consumer})
    assert tx.return_value == 0
    assert tx.events["LanesSettled"]["settledCount"] == 0
    assert "NodeCredited" not in tx.events
    # Fewer bytes with more money is stale too, as in ReceiptSettlement.
    fewer_bytes = sign_lane(consumer_key, node, 4_000, 9 * UNIT)
    assert lanes.settleLanes(node, packed([fewer_bytes]), ROOT, {"from": consumer}).return_value == 0
    assert _lane(lanes, consumer, node)["settled"] == 5 * UNIT


def test_the_same_channel_twice_in_a_batch_pays_the_difference_once(lanes, sign_lane, consumer, consumer_key, node):
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    a = sign_lane(consumer_key, node, 1_000, 2 * UNIT)
    b = sign_lane(consumer_key, node, 2_000, 7 * UNIT)
    tx = lanes.settleLanes(node, packed([a, b, a]), ROOT, {"from": consumer})
    assert tx.return_value == 7 * UNIT
    assert tx.events["LanesSettled"]["settledCount"] == 2


def test_forged_receipts_revert_with_both_addresses(lanes, sign_lane, sign, consumer, consumer2, consumer_key, consumer2_key, node):
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    # consumer2's key signing consumer's channel.
    forged = sign_lane(consumer2_key, node, 1_000, 50 * UNIT, consumer=consumer.address)
    with brownie.reverts(custom_error("LaneInvalidSigner(address,address)", consumer, consumer2)):
        lanes.settleLanes(node, packed([forged]), ROOT, {"from": consumer})
    # A receipt signed for ReceiptSettlement's domain recovers to some other address here.
    other_domain = sign(consumer_key, node, 1_000, 50 * UNIT)
    with brownie.reverts():
        lanes.settleLanes(node, packed([other_domain]), ROOT, {"from": consumer})
    assert _lane(lanes, consumer, node)["settled"] == 0


def test_another_node_cannot_drain_a_lane(system, lanes, sign_lane, consumer, consumer_key, node, node2):
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    lanes.allocate(node2, 10 * UNIT, {"from": consumer})
    for_a = sign_lane(consumer_key, node, 1_000, 50 * UNIT)
    # Submitted as node B's batch, A's receipt hashes with B as the node: the signer does not match.
    with brownie.reverts():
        lanes.settleLanes(node2, packed([for_a]), ROOT, {"from": consumer})
    # B's own receipt for 50 pays only what B's lane holds.
    for_b = sign_lane(consumer_key, node2, 1_000, 50 * UNIT)
    tx = lanes.settleLanes(node2, packed([for_b]), ROOT, {"from": consumer})
    assert tx.return_value == 10 * UNIT
    assert _lane(lanes, consumer, node)["balance"] == 100 * UNIT
    assert system.escrow.availableOf(consumer) == 890 * UNIT


def test_two_nodes_settle_against_one_consumer(system, lanes, sign_lane, consumer, consumer_key, node, node2):
    lanes.allocateMany([node, node2], [30 * UNIT, 30 * UNIT], {"from": consumer})
    lanes.settleLanes(node, packed([sign_lane(consumer_key, node, 1, 12 * UNIT)]), ROOT, {"from": consumer})
    lanes.settleLanes(node2, packed([sign_lane(consumer_key, node2, 1, 20 * UNIT)]), ROOT, {"from": consumer})
    assert _lane(lanes, consumer, node)["balance"] == 18 * UNIT
    assert _lane(lanes, consumer, node2)["balance"] == 10 * UNIT
    assert system.escrow.creditOf(node) == 12 * UNIT * 9_500 // 10_000
    assert system.escrow.creditOf(node2) == 20 * UNIT * 9_500 // 10_000


def test_a_short_lane_pays_what_it_holds_and_the_rest_after_a_top_up(lanes, sign_lane, consumer, consumer_key, node):
    lanes.allocate(node, 3 * UNIT, {"from": consumer})
    receipt = sign_lane(consumer_key, node, 1_000, 5 * UNIT)
    assert lanes.settleLanes(node, packed([receipt]), ROOT, {"from": consumer}).return_value == 3 * UNIT
    assert lanes.settleLanes(node, packed([receipt]), ROOT, {"from": consumer}).return_value == 0
    lanes.allocate(node, 10 * UNIT, {"from": consumer})
    assert lanes.settleLanes(node, packed([receipt]), ROOT, {"from": consumer}).return_value == 2 * UNIT
    assert _lane(lanes, consumer, node) == {"balance": 8 * UNIT, "settled": 5 * UNIT, "bytes": 1_000, "closing": False, "closeAt": 0}


def test_settle_refuses_bad_batches(lanes, sign_lane, consumer, consumer_key, node, stranger):
    with brownie.reverts(custom_error("LaneEmptyBatch()")):
        lanes.settleLanes(node, b"", ROOT, {"from": consumer})
    with brownie.reverts(custom_error("LanePackedLength(uint256,uint256)", 160, 161)):
        lanes.settleLanes(node, b"\x01" * 160, ROOT, {"from": consumer})
    receipt = sign_lane(consumer_key, stranger.address, 1, UNIT)
    with brownie.reverts(custom_error("LaneUnknownNode(address)", stranger)):
        lanes.settleLanes(stranger, packed([receipt]), ROOT, {"from": consumer})
    huge = sign_lane(consumer_key, node, 2**56, UNIT)
    with brownie.reverts(custom_error("LaneBytesTooLarge(uint256,uint256)", 2**56, 2**56 - 1)):
        lanes.settleLanes(node, packed([huge]), ROOT, {"from": consumer})


def test_hash_receipt_is_the_clients_digest_over_the_lane_domain(lanes, sign_lane, consumer_key, node):
    signed = sign_lane(consumer_key, node, 1_234, 5 * UNIT)
    digest = receipt_digest(signed.receipt, receipt_domain(chain.id, lanes.address))
    assert bytes(lanes.hashReceipt(signed.args)) == digest


# --- closing -----------------------------------------------------------------------------------


def test_close_pays_within_the_delay_and_returns_the_rest(system, lanes, sign_lane, consumer, consumer_key, node):
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    tx = lanes.requestClose(node, {"from": consumer})
    close_at = tx.timestamp + CLOSE_DELAY
    assert tx.return_value == close_at
    assert plain(list(tx.events["LaneCloseRequested"][0].values())) == (consumer.address, node, 100 * UNIT, close_at)
    assert _lane(lanes, consumer, node)["closeAt"] == close_at
    with brownie.reverts(custom_error("LaneClosing(address,address,uint64)", consumer, node, close_at)):
        lanes.allocate(node, UNIT, {"from": consumer})
    with brownie.reverts(custom_error("LaneClosing(address,address,uint64)", consumer, node, close_at)):
        lanes.requestClose(node, {"from": consumer})
    with brownie.reverts(revert_pattern=custom_error_pattern(
        "LaneCloseNotDue(address,address,uint64,uint256)", consumer, node, close_at, ANY_UINT
    )):
        lanes.finishClose(node, {"from": consumer})
    # Until closeAt the node's receipts still pay.
    set_next_timestamp(close_at - 1)
    paid = lanes.settleLanes(node, packed([sign_lane(consumer_key, node, 1, 30 * UNIT)]), ROOT, {"from": consumer})
    assert paid.return_value == 30 * UNIT
    set_next_timestamp(close_at)
    tx = lanes.finishClose(node, {"from": consumer})
    assert tx.return_value == 70 * UNIT
    assert plain(list(tx.events["LaneClosed"][0].values())) == (consumer.address, node, 70 * UNIT)
    assert plain(list(tx.events["LaneFundsReleased"][0].values())) == (consumer.address, lanes.address, 70 * UNIT)
    assert system.escrow.availableOf(consumer) == 970 * UNIT
    assert _lane(lanes, consumer, node) == {"balance": 0, "settled": 30 * UNIT, "bytes": 1, "closing": False, "closeAt": 0}


def test_from_close_at_the_lane_pays_nothing_even_before_finish(lanes, sign_lane, consumer, consumer_key, node):
    """The race of a late settlement with finishClose: at closeAt both see the lane closed."""
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    close_at = lanes.requestClose(node, {"from": consumer}).return_value
    set_next_timestamp(close_at)
    late = lanes.settleLanes(node, packed([sign_lane(consumer_key, node, 1, 30 * UNIT)]), ROOT, {"from": consumer})
    assert late.return_value == 0
    assert late.events["LanesSettled"]["settledCount"] == 0
    assert lanes.finishClose(node, {"from": consumer}).return_value == 100 * UNIT


def test_finish_close_in_the_same_block_as_a_settlement_is_ordered_by_the_block(
    lanes, sign_lane, consumer, consumer_key, node, stranger
):
    """Both transactions in one block at closeAt − 1 … closeAt: whichever the block orders first, the
    settlement pays nothing at closeAt and the consumer gets everything back."""
    from brownie import web3

    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    close_at = lanes.requestClose(node, {"from": consumer}).return_value
    receipt = sign_lane(consumer_key, node, 1, 30 * UNIT)
    web3.provider.make_request("evm_setAutomine", [False])
    try:
        set_next_timestamp(close_at)
        settle = lanes.settleLanes(node, packed([receipt]), ROOT, {"from": stranger, "required_confs": 0, "gas_limit": 500_000})
        finish = lanes.finishClose(node, {"from": consumer, "required_confs": 0, "gas_limit": 500_000})
        web3.provider.make_request("evm_mine", [])
    finally:
        web3.provider.make_request("evm_setAutomine", [True])
    settle.wait(1)
    finish.wait(1)
    assert settle.block_number == finish.block_number
    assert settle.status == 1 and finish.status == 1
    assert settle.return_value == 0
    assert finish.return_value == 100 * UNIT


def test_close_refuses_empty_and_not_closing_lanes(lanes, consumer, node):
    with brownie.reverts(custom_error("LaneEmpty(address,address)", consumer, node)):
        lanes.requestClose(node, {"from": consumer})
    with brownie.reverts(custom_error("LaneNotClosing(address,address)", consumer, node)):
        lanes.finishClose(node, {"from": consumer})


def test_receipts_settled_before_a_close_never_pay_again_after_reopening(lanes, sign_lane, consumer, consumer_key, node):
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    old = sign_lane(consumer_key, node, 1_000, 40 * UNIT)
    lanes.settleLanes(node, packed([old]), ROOT, {"from": consumer})
    lanes.requestClose(node, {"from": consumer})
    chain.sleep(CLOSE_DELAY + 1)
    lanes.finishClose(node, {"from": consumer})
    lanes.allocate(node, 100 * UNIT, {"from": consumer})
    assert lanes.settleLanes(node, packed([old]), ROOT, {"from": consumer}).return_value == 0
    newer = sign_lane(consumer_key, node, 2_000, 45 * UNIT)
    assert lanes.settleLanes(node, packed([newer]), ROOT, {"from": consumer}).return_value == 5 * UNIT


def test_a_close_delay_change_applies_to_later_requests(lanes, deployer, consumer, consumer2, node):
    lanes.allocate(node, UNIT, {"from": consumer})
    first = lanes.requestClose(node, {"from": consumer})
    tx = lanes.setCloseDelay(7_200, {"from": deployer})
    assert plain(list(tx.events["ParameterUpdated"][0].values())) == ("closeDelay", CLOSE_DELAY, 7_200)
    assert _lane(lanes, consumer, node)["closeAt"] == first.timestamp + CLOSE_DELAY
    lanes.allocate(node, UNIT, {"from": consumer2})
    second = lanes.requestClose(node, {"from": consumer2})
    assert second.return_value == second.timestamp + 7_200


def test_parameters_are_bounded_and_role_gated(lanes, deployer, stranger):
    with brownie.reverts(custom_error("LaneParameterOutOfBounds(string,uint256,uint256,uint256)", "closeDelay", 599, 600, 30 * 86_400)):
        lanes.setCloseDelay(599, {"from": deployer})
    with brownie.reverts(custom_error("LaneParameterOutOfBounds(string,uint256,uint256,uint256)", "feeBps", 2_001, 0, 2_000)):
        lanes.setFeeBps(2_001, {"from": deployer})
    with brownie.reverts(unauthorized(stranger, "PARAMETER_ROLE")):
        lanes.setCloseDelay(700, {"from": stranger})
    with brownie.reverts(unauthorized(stranger, "PAUSER_ROLE")):
        lanes.pause({"from": stranger})


def test_pause_stops_allocation_and_settlement_but_not_closing(lanes, deployer, sign_lane, consumer, consumer_key, node):
    lanes.allocate(node, 10 * UNIT, {"from": consumer})
    lanes.pause({"from": deployer})
    with brownie.reverts(custom_error("EnforcedPause()")):
        lanes.allocate(node, UNIT, {"from": consumer})
    with brownie.reverts(custom_error("EnforcedPause()")):
        lanes.settleLanes(node, packed([sign_lane(consumer_key, node, 1, UNIT)]), ROOT, {"from": consumer})
    lanes.requestClose(node, {"from": consumer})
    chain.sleep(CLOSE_DELAY + 1)
    assert lanes.finishClose(node, {"from": consumer}).return_value == 10 * UNIT


def test_a_jailed_node_is_paid_without_reward_weight(system, lanes, sign_lane, slasher, consumer, consumer_key, node):
    lanes.allocate(node, 10 * UNIT, {"from": consumer})
    system.registry.jail(node, "test", {"from": slasher})
    tx = lanes.settleLanes(node, packed([sign_lane(consumer_key, node, 1, 4 * UNIT)]), ROOT, {"from": consumer})
    assert tx.return_value == 4 * UNIT
    assert tx.events["UsageRecorded"]["weight"] == 0


def test_a_module_spends_only_what_was_allocated_through_it(system, lanes, deployer, stranger, consumer, node):
    system.escrow.grantRole(role("LANES_ROLE"), stranger, {"from": deployer})
    lanes.allocate(node, 10 * UNIT, {"from": consumer})
    system.escrow.allocateToLanes(consumer, 2 * UNIT, {"from": stranger})
    with brownie.reverts(custom_error("EscrowInsufficientLaneFunds(address,uint256,uint256)", stranger, 2 * UNIT, 3 * UNIT)):
        system.escrow.payFromLanes(node, 3 * UNIT, 0, {"from": stranger})
    system.escrow.releaseFromLanes(consumer, 2 * UNIT, {"from": stranger})
    assert system.escrow.laneFundsOf(lanes) == 10 * UNIT


def test_a_revoked_module_still_returns_closed_lanes(system, lanes, deployer, sign_lane, consumer, consumer_key, node):
    lanes.allocate(node, 10 * UNIT, {"from": consumer})
    system.escrow.revokeRole(role("LANES_ROLE"), lanes, {"from": deployer})
    with brownie.reverts(unauthorized(lanes, "LANES_ROLE")):
        lanes.allocate(node, UNIT, {"from": consumer})
    assert lanes.settleLanes(node, packed([sign_lane(consumer_key, node, 1, 4 * UNIT)]), ROOT, {"from": consumer}).return_value == 4 * UNIT
    lanes.requestClose(node, {"from": consumer})
    chain.sleep(CLOSE_DELAY + 1)
    assert lanes.finishClose(node, {"from": consumer}).return_value == 6 * UNIT
