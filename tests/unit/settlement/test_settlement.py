"""ReceiptSettlement: signatures, replay, channel arithmetic, escrow interplay, batches and pause."""

from __future__ import annotations

import brownie
import pytest
from brownie import ReceiptSettlement, chain
from unit_helpers import SECP256K1_N, UNIT, custom_error, plain, recovered_address

from nodeclient.receipts.signing import receipt_digest, receipt_domain

FEE_BPS = 500


@pytest.fixture(scope="module", autouse=True)
def setup(funded):
    return funded


def _digest(system, signed):
    return receipt_digest(signed.receipt, receipt_domain(chain.id, system.settlement.address))


def test_hash_receipt_equals_client_digest(system, sign, consumer_key, node):
    signed = sign(consumer_key, node, 10**9, 5 * UNIT, latency_ms=42, session=7)
    assert bytes(system.settlement.hashReceipt(signed.args)) == _digest(system, signed)


def test_settle_pays_node_fee_and_records_usage(system, sign, consumer, consumer_key, node, stranger):
    amount = 10 * UNIT
    signed = sign(consumer_key, node, 2 * 10**9, amount, latency_ms=20, session=3)
    tx = system.settlement.settle(signed.args, signed.signature, {"from": stranger})
    fee = amount * FEE_BPS // 10_000

    assert tx.return_value == amount
    assert plain(system.settlement.channelOf(consumer, node)) == (amount, 2 * 10**9)
    assert system.escrow.availableOf(consumer) == 1_000 * UNIT - amount
    assert system.escrow.creditOf(node) == amount - fee
    assert system.escrow.accruedFees() == fee
    epoch = system.rewards.currentEpoch()
    node_fee, weight, capped, claimed = system.rewards.nodeEpoch(node, epoch)
    assert (node_fee, weight, claimed) == (fee, fee, False)  # latency 20 ms ≤ 50 ms: multiplier 1
    assert capped == min(fee * 10**13, 10_000 * 10**18 * 2_500 // 10_000)

    ev = tx.events["ReceiptSettled"]
    assert ev["consumer"] == consumer and ev["node"] == node
    assert bytes(ev["sessionId"]) == (3).to_bytes(32, "big")
    assert (ev["cumulativeBytes"], ev["cumulativeAmount"], ev["latencyMs"], ev["issuedAt"]) == (
        2 * 10**9,
        amount,
        20,
        signed.receipt.issued_at,
    )
    assert bytes(ev["digest"]) == _digest(system, signed)
    assert "0x" + bytes(ev["signature"]).hex() == signed.signature
    assert (ev["paid"], ev["fee"]) == (amount, fee)
    assert tx.events["NodeCredited"]["net"] == amount - fee
    assert tx.events["UsageRecorded"]["weight"] == fee


def test_settle_rejects_receipt_signed_for_another_chain_id(system, sign, consumer, consumer_key, node):
    signed = sign(consumer_key, node, 10**6, UNIT, chain_id=1)
    recovered = recovered_address(_digest(system, signed), signed.signature)
    assert recovered != consumer.address
    with brownie.reverts(custom_error("SettlementInvalidSigner(address,address)", consumer, recovered)):
        system.settlement.settle(signed.args, signed.signature, {"from": consumer})


def test_settle_rejects_receipt_signed_for_a_second_deployment(
    system, sign, deployer, consumer, consumer_key, node
):
    other = ReceiptSettlement.deploy(
        deployer, system.escrow, system.registry, system.rewards, FEE_BPS, {"from": deployer}
    )
    signed = sign(consumer_key, node, 10**6, UNIT, settlement=other)
    recovered = recovered_address(_digest(system, signed), signed.signature)
    with brownie.reverts(custom_error("SettlementInvalidSigner(address,address)", consumer, recovered)):
        system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    # And the other way round: a receipt for the real deployment does not verify on the copy.
    mine = sign(consumer_key, node, 10**6, UNIT)
    recovered = recovered_address(
        receipt_digest(mine.receipt, receipt_domain(chain.id, other.address)), mine.signature
    )
    with brownie.reverts(custom_error("SettlementInvalidSigner(address,address)", consumer, recovered)):
        other.settle(mine.args, mine.signature, {"from": consumer})


def test_settle_rejects_high_s_signature(system, sign, consumer, consumer_key, node):
    signed = sign(consumer_key, node, 10**6, UNIT)
    raw = bytes.fromhex(signed.signature[2:])
    r, s, v = raw[:32], int.from_bytes(raw[32:64], "big"), raw[64]
    high_s = SECP256K1_N - s
    malleable = "0x" + (r + high_s.to_bytes(32, "big") + bytes((55 - v,))).hex()  # 27 ↔ 28
    with brownie.reverts(custom_error("ECDSAInvalidSignatureS(bytes32)", high_s.to_bytes(32, "big"))):
        system.settlement.settle(signed.args, malleable, {"from": consumer})


def test_settle_rejects_garbage_signatures(system, sign, consumer, consumer_key, node):
    signed = sign(consumer_key, node, 10**6, UNIT)
    bad_v = "0x" + (b"\x11" * 32 + b"\x22" * 32 + bytes((29,))).hex()
    with brownie.reverts(custom_error("ECDSAInvalidSignature()")):
        system.settlement.settle(signed.args, bad_v, {"from": consumer})
    with brownie.reverts(custom_error("ECDSAInvalidSignatureLength(uint256)", 64)):
        system.settlement.settle(signed.args, signed.signature[:130], {"from": consumer})
    with brownie.reverts(custom_error("ECDSAInvalidSignatureLength(uint256)", 0)):
        system.settlement.settle(signed.args, b"", {"from": consumer})


def test_settle_rejects_wrong_signer(system, sign, consumer, consumer2, consumer2_key, node):
    forged = sign(consumer2_key, node, 10**6, 50 * UNIT, consumer=consumer.address)
    with brownie.reverts(custom_error("SettlementInvalidSigner(address,address)", consumer, consumer2)):
        system.settlement.settle(forged.args, forged.signature, {"from": consumer2})


def test_settle_rejects_the_same_receipt_twice(system, sign, consumer, consumer_key, node):
    signed = sign(consumer_key, node, 10**6, 3 * UNIT)
    system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    with brownie.reverts(
        custom_error("SettlementStaleReceipt(address,address,uint256,uint256)", consumer, node, 3 * UNIT, 3 * UNIT)
    ):
        system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    assert system.escrow.creditOf(node) == 3 * UNIT - 3 * UNIT * FEE_BPS // 10_000


def test_settle_rejects_lower_cumulative_amount_or_fewer_bytes(system, sign, consumer, consumer_key, node):
    later = sign(consumer_key, node, 2_000, 8 * UNIT)
    system.settlement.settle(later.args, later.signature, {"from": consumer})
    earlier = sign(consumer_key, node, 1_000, 4 * UNIT)
    with brownie.reverts(
        custom_error("SettlementStaleReceipt(address,address,uint256,uint256)", consumer, node, 4 * UNIT, 8 * UNIT)
    ):
        system.settlement.settle(earlier.args, earlier.signature, {"from": consumer})
    fewer_bytes = sign(consumer_key, node, 1_999, 9 * UNIT)
    with brownie.reverts(
        custom_error("SettlementStaleReceipt(address,address,uint256,uint256)", consumer, node, 9 * UNIT, 8 * UNIT)
    ):
        system.settlement.settle(fewer_bytes.args, fewer_bytes.signature, {"from": consumer})
    assert plain(system.settlement.channelOf(consumer, node)) == (8 * UNIT, 2_000)


def test_channel_is_cumulative_across_sessions(system, sign, consumer, consumer_key, node):
    first = sign(consumer_key, node, 1_000, 2 * UNIT, session=1)
    second = sign(consumer_key, node, 3_000, 5 * UNIT, session=2)
    assert system.settlement.settle(first.args, first.signature, {"from": consumer}).return_value == 2 * UNIT
    assert system.settlement.settle(second.args, second.signature, {"from": consumer}).return_value == 3 * UNIT
    assert plain(system.settlement.channelOf(consumer, node)) == (5 * UNIT, 3_000)


def test_stranger_submitting_a_receipt_pays_the_node(system, sign, consumer_key, node, stranger, payout):
    signed = sign(consumer_key, node, 10**6, 20 * UNIT)
    system.settlement.settle(signed.args, signed.signature, {"from": stranger})
    net = 20 * UNIT - 20 * UNIT * FEE_BPS // 10_000
    assert system.escrow.creditOf(node) == net
    before_stranger = system.payment_token.balanceOf(stranger)
    before_payout = system.payment_token.balanceOf(payout)
    tx = system.escrow.withdrawEarnings(node, {"from": stranger})
    assert tx.events["EarningsWithdrawn"]["payout"] == payout
    assert system.payment_token.balanceOf(payout) == before_payout + net
    assert system.payment_token.balanceOf(stranger) == before_stranger


def test_node_settles_during_thaw_and_rest_after_top_up(system, sign, consumer, consumer_key, node, params):
    # The consumer starts thawing everything: the node still settles from the thawing funds.
    system.escrow.requestThaw(1_000 * UNIT, {"from": consumer})
    first = sign(consumer_key, node, 1_000, 100 * UNIT)
    assert system.settlement.settle(first.args, first.signature, {"from": consumer}).return_value == 100 * UNIT
    assert plain(system.escrow.accountOf(consumer)[:2]) == (0, 900 * UNIT)

    # The consumer drains the rest after the thaw, before the node settles its next receipt.
    chain.sleep(params["thawingPeriod"] + 1)
    system.escrow.withdraw({"from": consumer})
    assert plain(system.escrow.accountOf(consumer)[:2]) == (0, 0)
    second = sign(consumer_key, node, 3_000, 400 * UNIT)
    tx = system.settlement.settle(second.args, second.signature, {"from": consumer})
    assert tx.return_value == 0
    assert tx.events["ReceiptSettled"]["paid"] == 0
    assert "NodeCredited" not in tx.events
    assert plain(system.settlement.channelOf(consumer, node)) == (100 * UNIT, 3_000)

    # A partial top-up pays part of the same receipt; a second top-up pays the rest.
    system.escrow.deposit(50 * UNIT, {"from": consumer})
    assert system.settlement.settle(second.args, second.signature, {"from": consumer}).return_value == 50 * UNIT
    assert plain(system.settlement.channelOf(consumer, node)) == (150 * UNIT, 3_000)
    system.escrow.deposit(1_000 * UNIT, {"from": consumer})
    assert system.settlement.settle(second.args, second.signature, {"from": consumer}).return_value == 250 * UNIT
    assert plain(system.settlement.channelOf(consumer, node)) == (400 * UNIT, 3_000)
    assert system.escrow.availableOf(consumer) == 750 * UNIT
    with brownie.reverts(
        custom_error("SettlementStaleReceipt(address,address,uint256,uint256)", consumer, node, 400 * UNIT, 400 * UNIT)
    ):
        system.settlement.settle(second.args, second.signature, {"from": consumer})
    total = 400 * UNIT
    assert system.escrow.creditOf(node) + system.escrow.accruedFees() == total


def test_settle_takes_available_before_thawing(system, sign, consumer, consumer_key, node):
    system.escrow.requestThaw(600 * UNIT, {"from": consumer})
    signed = sign(consumer_key, node, 1_000, 500 * UNIT)
    system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    assert plain(system.escrow.accountOf(consumer)[:2]) == (0, 500 * UNIT)


def test_settle_rejects_unknown_node(system, sign, consumer, consumer_key, stranger):
    signed = sign(consumer_key, stranger.address, 1_000, UNIT)
    with brownie.reverts(custom_error("SettlementUnknownNode(address)", stranger)):
        system.settlement.settle(signed.args, signed.signature, {"from": consumer})


def test_settle_rejects_values_above_128_bits(system, sign, consumer, consumer_key, node):
    huge = 2**128
    signed = sign(consumer_key, node, 1_000, huge)
    with brownie.reverts(custom_error("SettlementValueTooLarge(uint256)", huge)):
        system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    signed = sign(consumer_key, node, huge, UNIT)
    with brownie.reverts(custom_error("SettlementValueTooLarge(uint256)", huge)):
        system.settlement.settle(signed.args, signed.signature, {"from": consumer})


def test_latency_lowers_reward_weight_not_payment(system, sign, consumer, consumer_key, node):
    signed = sign(consumer_key, node, 1_000, 100 * UNIT, latency_ms=275)  # halfway 50 → 500 ms
    tx = system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    fee = 100 * UNIT * FEE_BPS // 10_000
    multiplier = 10_000 - (10_000 - 2_000) * (275 - 50) // (500 - 50)
    assert system.rewards.latencyMultiplierBps(275) == multiplier == 6_000
    assert tx.events["UsageRecorded"]["weight"] == fee * multiplier // 10_000
    assert system.escrow.creditOf(node) == 100 * UNIT - fee
    slow = sign(consumer_key, node, 2_000, 200 * UNIT, latency_ms=60_000)
    tx = system.settlement.settle(slow.args, slow.signature, {"from": consumer})
    assert tx.events["UsageRecorded"]["weight"] == fee * 2_000 // 10_000


def test_jailed_node_is_paid_without_reward_weight(system, sign, consumer, consumer_key, node, slasher):
    system.registry.jail(node, "probe", {"from": slasher})
    signed = sign(consumer_key, node, 1_000, 10 * UNIT)
    tx = system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    fee = 10 * UNIT * FEE_BPS // 10_000
    assert system.escrow.creditOf(node) == 10 * UNIT - fee
    assert (tx.events["UsageRecorded"]["fee"], tx.events["UsageRecorded"]["weight"]) == (fee, 0)


def test_exiting_node_is_paid_without_reward_weight(system, sign, consumer, consumer_key, node, operator):
    system.registry.requestExit(node, {"from": operator})
    signed = sign(consumer_key, node, 1_000, 10 * UNIT)
    tx = system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    fee = 10 * UNIT * FEE_BPS // 10_000
    assert system.escrow.creditOf(node) == 10 * UNIT - fee
    assert (tx.events["UsageRecorded"]["fee"], tx.events["UsageRecorded"]["weight"]) == (fee, 0)


def test_dust_payment_below_fee_resolution_records_no_usage(system, sign, consumer, consumer_key, node):
    signed = sign(consumer_key, node, 1, 19)  # 19 × 500 / 10000 = 0.95 → fee 0
    tx = system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    assert tx.events["ReceiptSettled"]["fee"] == 0
    assert "UsageRecorded" not in tx.events
    assert system.escrow.creditOf(node) == 19


# --------------------------------------------------------------------------------------------
# settleMany


def test_settle_many_skips_stale_receipts_and_commits_the_bundle_root(
    system, sign, consumer, consumer2, consumer_key, consumer2_key, node, stranger
):
    old = sign(consumer_key, node, 1_000, 5 * UNIT)
    system.settlement.settle(old.args, old.signature, {"from": consumer})
    batch = [
        sign(consumer_key, node, 2_000, 9 * UNIT),
        sign(consumer2_key, node, 500, 2 * UNIT),
        old,  # stale now
    ]
    root = b"\xab" * 32
    tx = system.settlement.settleMany(
        [s.args for s in batch], [s.signature for s in batch], root, {"from": stranger}
    )
    assert tx.return_value == 6 * UNIT
    skipped = tx.events["ReceiptSkipped"]
    # Receipts apply in order: the stale one meets the channel already advanced to 9 mUSD.
    assert skipped["consumer"] == consumer and skipped["cumulativeAmount"] == 5 * UNIT
    assert skipped["settledAmount"] == 9 * UNIT
    assert bytes(skipped["digest"]) == _digest(system, old)
    assert len(tx.events["ReceiptSettled"]) == 2
    batch_ev = tx.events["BatchSettled"]
    fees = 4 * UNIT * FEE_BPS // 10_000 + 2 * UNIT * FEE_BPS // 10_000
    assert bytes(batch_ev["bundleRoot"]) == root
    assert (batch_ev["receiptCount"], batch_ev["settledCount"], batch_ev["paid"], batch_ev["fee"]) == (
        3,
        2,
        6 * UNIT,
        fees,
    )
    # One credit and one usage record for the whole batch.
    assert len(tx.events["NodeCredited"]) == 1 and len(tx.events["UsageRecorded"]) == 1
    assert tx.events["UsageRecorded"]["fee"] == fees
    assert plain(system.settlement.channelOf(consumer2, node)) == (2 * UNIT, 500)


def test_settle_many_rejects_malformed_batches(system, sign, consumer, consumer_key, node, node2):
    a = sign(consumer_key, node, 1_000, UNIT)
    b = sign(consumer_key, node2, 1_000, UNIT)
    with brownie.reverts(custom_error("SettlementEmptyBatch()")):
        system.settlement.settleMany([], [], b"\x00" * 32, {"from": consumer})
    with brownie.reverts(custom_error("SettlementLengthMismatch(uint256,uint256)", 2, 1)):
        system.settlement.settleMany([a.args, a.args], [a.signature], b"\x00" * 32, {"from": consumer})
    with brownie.reverts(custom_error("SettlementBatchNodeMismatch(uint256,address,address)", 1, node, node2)):
        system.settlement.settleMany([a.args, b.args], [a.signature, b.signature], b"\x00" * 32, {"from": consumer})


def test_settle_many_reverts_whole_batch_on_a_bad_signature(system, sign, consumer, consumer2, consumer_key, node):
    good = sign(consumer_key, node, 1_000, UNIT)
    bad = sign(consumer_key, node, 1_000, UNIT, consumer=consumer2.address)
    with brownie.reverts(custom_error("SettlementInvalidSigner(address,address)", consumer2, consumer)):
        system.settlement.settleMany([good.args, bad.args], [good.signature, bad.signature], b"\x00" * 32)
    assert plain(system.settlement.channelOf(consumer, node)) == (0, 0)


def test_settle_many_same_channel_twice_pays_once(system, sign, consumer, consumer_key, node):
    first = sign(consumer_key, node, 1_000, 3 * UNIT)
    second = sign(consumer_key, node, 2_000, 7 * UNIT)
    tx = system.settlement.settleMany(
        [first.args, second.args, second.args],
        [first.signature, second.signature, second.signature],
        b"\x01" * 32,
        {"from": consumer},
    )
    assert tx.return_value == 7 * UNIT
    assert tx.events["BatchSettled"]["settledCount"] == 2
    assert plain(system.settlement.channelOf(consumer, node)) == (7 * UNIT, 2_000)


# --------------------------------------------------------------------------------------------
# Pause and parameters


def test_pause_blocks_settlement_but_not_withdrawals(
    system, sign, deployer, consumer, consumer_key, node, payout, params, operator
):
    signed = sign(consumer_key, node, 1_000, 10 * UNIT)
    system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    system.escrow.requestThaw(100 * UNIT, {"from": consumer})
    stake = system.staking.bondedOf(operator) - system.registry.requiredStake(operator)
    system.staking.requestUnbond(stake, {"from": operator})
    chain.sleep(max(params["thawingPeriod"], params["unbondingPeriod"]) + 1)
    system.settlement.pause({"from": deployer})
    system.rewards.pause({"from": deployer})

    later = sign(consumer_key, node, 2_000, 20 * UNIT)
    with brownie.reverts(custom_error("EnforcedPause()")):
        system.settlement.settle(later.args, later.signature, {"from": consumer})
    with brownie.reverts(custom_error("EnforcedPause()")):
        system.settlement.settleMany([later.args], [later.signature], b"\x00" * 32, {"from": consumer})

    before = system.payment_token.balanceOf(consumer)
    system.escrow.withdraw({"from": consumer})
    assert system.payment_token.balanceOf(consumer) == before + 100 * UNIT
    credit = system.escrow.creditOf(node)
    system.escrow.withdrawEarnings(node, {"from": consumer})
    assert system.payment_token.balanceOf(payout) == credit
    before = system.token.balanceOf(operator)
    system.staking.withdraw({"from": operator})
    assert system.token.balanceOf(operator) == before + stake

    system.settlement.unpause({"from": deployer})
    assert system.settlement.settle(later.args, later.signature, {"from": consumer}).return_value == 10 * UNIT


def test_fee_bps_is_bounded_and_evented(system, deployer):
    with brownie.reverts(custom_error("SettlementParameterOutOfBounds(string,uint256,uint256,uint256)", "feeBps", 2_001, 0, 2_000)):
        system.settlement.setFeeBps(2_001, {"from": deployer})
    tx = system.settlement.setFeeBps(2_000, {"from": deployer})
    assert plain(tx.events["ParameterUpdated"].values()) == ("feeBps", FEE_BPS, 2_000)
    assert system.settlement.feeBps() == 2_000


def test_fee_change_applies_to_later_settlements(system, sign, deployer, consumer, consumer_key, node):
    system.settlement.setFeeBps(0, {"from": deployer})
    signed = sign(consumer_key, node, 1_000, 10 * UNIT)
    tx = system.settlement.settle(signed.args, signed.signature, {"from": consumer})
    assert tx.events["ReceiptSettled"]["fee"] == 0
    assert system.escrow.creditOf(node) == 10 * UNIT
    assert "UsageRecorded" not in tx.events


def test_settle_rejects_dirty_high_bits_in_narrow_fields(system, sign, consumer, consumer_key, node):
    """The receipt is hashed straight from calldata: dirty padding must revert, not hash differently."""
    from brownie import web3

    signed = sign(consumer_key, node, 1_000, UNIT, latency_ms=20)
    clean = bytes.fromhex(system.settlement.settle.encode_input(signed.args, signed.signature)[2:])
    word = lambda i: slice(4 + 32 * i, 4 + 32 * (i + 1))
    for index, dirty_value in ((5, (1 << 32) | 20), (6, (1 << 64) | signed.args[6]), (0, (1 << 160) | int(consumer.address, 16))):
        data = bytearray(clean)
        data[word(index)] = dirty_value.to_bytes(32, "big")
        call = {"from": consumer.address, "to": system.settlement.address, "data": "0x" + data.hex()}
        # The ABI decoder's bare revert (no data), not SettlementInvalidSigner over a different hash.
        response = web3.provider.make_request("eth_call", [call, "latest"])
        assert "error" in response, f"dirty word {index} was accepted"
        assert response["error"].get("data") in (None, "0x"), response["error"]
        tx_hash = web3.eth.send_transaction({**call, "gas": 500_000})
        assert web3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 0
    assert plain(system.settlement.channelOf(consumer, node)) == (0, 0)
    tx_hash = web3.eth.send_transaction(
        {"from": consumer.address, "to": system.settlement.address, "data": "0x" + clean.hex(), "gas": 500_000}
    )
    assert web3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    assert plain(system.settlement.channelOf(consumer, node)) == (UNIT, 1_000)
