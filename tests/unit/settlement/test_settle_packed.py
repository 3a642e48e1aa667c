"""settleManyPacked: the node client's batch entry point. Each receipt is packed into 161 bytes by the
client (`nodeclient.receipts.packing`). The same batch must give exactly what settleMany gives:
return value, every event with every field, channels, escrow, credits and reward records. This holds
for stale receipts, partial payment, the same channel twice and a drained consumer. It must refuse
what settleMany refuses, with the same errors."""

from __future__ import annotations

import brownie
import pytest
from brownie import chain
from eth_account import Account
from unit_helpers import SECP256K1_N, UNIT, custom_error, plain, recovered_address

from nodeclient.receipts.packing import PACKED_RECEIPT_LENGTH, pack_receipt, pack_receipt_args

ROOT = b"\x07" * 32


@pytest.fixture(scope="module", autouse=True)
def setup(funded):
    return funded


def _packed(signed_list) -> bytes:
    """The client's packing of test receipts (``args`` in the Solidity field order)."""
    return b"".join(pack_receipt_args(s.args, s.signature) for s in signed_list)


def _state(system, consumers, node):
    epoch = system.rewards.currentEpoch()
    return (
        tuple(plain(system.settlement.channelOf(c, node)) for c in consumers),
        tuple(plain(system.escrow.accountOf(c))[:2] for c in consumers),
        system.escrow.creditOf(node),
        system.escrow.accruedFees(),
        plain(system.rewards.nodeEpoch(node, epoch)),
    )


def _events(tx):
    return [
        (name, plain(list(ev.values())))
        for name in ("ReceiptSettled", "ReceiptSkipped", "NodeCredited", "UsageRecorded", "BatchSettled")
        if name in tx.events
        for ev in tx.events[name]
    ]


def test_packed_layout_is_161_bytes_and_matches_the_contract(system):
    assert system.settlement.PACKED_RECEIPT_LENGTH() == PACKED_RECEIPT_LENGTH == 161


def test_packed_batch_equals_settle_many_on_the_same_state(
    system, sign, deployer, consumer, consumer2, consumer_key, consumer2_key, node, stranger
):
    poor = Account.create()
    first = sign(consumer_key, node, 5_000, 5 * UNIT, session=1)

    def prepare():
        system.payment_token.mint(deployer, 3 * UNIT, {"from": deployer})
        system.payment_token.approve(system.escrow, 3 * UNIT, {"from": deployer})
        system.escrow.depositFor(poor.address, 3 * UNIT, {"from": deployer})
        # Open consumer's channel so a later receipt in the batch can be stale.
        system.settlement.settle(first.args, first.signature, {"from": stranger})

    batch = [
        sign(consumer_key, node, 9_000, 9 * UNIT, session=1, latency_ms=30),  # pays 4
        sign(consumer2_key, node, 2_000, 2 * UNIT, session=2, latency_ms=400),  # new channel, slow
        sign(consumer_key, node, 8_000, 8 * UNIT, session=1),  # stale after the first: skipped
        sign(poor.key.hex(), node, 1_000, 5 * UNIT, session=3),  # escrow holds 3: partial
        sign(consumer2_key, node, 3_000, 3 * UNIT, session=2, latency_ms=900),  # same channel again
        sign(poor.key.hex(), node, 1_100, 6 * UNIT, session=3),  # drained consumer: pays 0
    ]
    consumers = [consumer.address, consumer2.address, poor.address]
    # The snapshot is taken at the test's start state (the one fn_isolation returns to afterwards).
    chain.snapshot()
    prepare()
    abi_tx = system.settlement.settleMany(
        [s.args for s in batch], [s.signature for s in batch], ROOT, {"from": stranger}
    )
    abi_state, abi_events, abi_paid = _state(system, consumers, node), _events(abi_tx), abi_tx.return_value
    chain.revert()
    prepare()
    packed_tx = system.settlement.settleManyPacked(node, _packed(batch), ROOT, {"from": stranger})

    assert packed_tx.return_value == abi_paid == 4 * UNIT + 3 * UNIT + 3 * UNIT
    assert _events(packed_tx) == abi_events
    assert [e["paid"] for e in packed_tx.events["ReceiptSettled"]] == [4 * UNIT, 2 * UNIT, 3 * UNIT, UNIT, 0]
    assert len(packed_tx.events["ReceiptSkipped"]) == 1
    assert _state(system, consumers, node) == abi_state
    assert packed_tx.gas_used < abi_tx.gas_used - 6 * 1_000  # calldata and decoding, per receipt


def test_packed_batch_rejects_a_receipt_signed_by_someone_else(
    system, sign, consumer, consumer_key, node, stranger
):
    good = sign(consumer_key, node, 1_000, UNIT, session=4)
    forged = sign(consumer_key, node, 2_000, 2 * UNIT, session=4, consumer=stranger.address)
    digest = bytes(system.settlement.hashReceipt(forged.args))
    recovered = recovered_address(digest, forged.signature)
    with brownie.reverts(custom_error("SettlementInvalidSigner(address,address)", stranger, recovered)):
        system.settlement.settleManyPacked(node, _packed([good, forged]), ROOT, {"from": stranger})
    assert plain(system.settlement.channelOf(consumer, node)) == (0, 0)  # the whole batch reverted


def test_packed_receipt_is_bound_to_the_batch_node(
    system, sign, consumer, consumer_key, node, node2, stranger
):
    signed = sign(consumer_key, node, 1_000, UNIT)
    moved = list(signed.args)
    moved[1] = node2
    recovered = recovered_address(bytes(system.settlement.hashReceipt(tuple(moved))), signed.signature)
    assert recovered != consumer.address
    with brownie.reverts(custom_error("SettlementInvalidSigner(address,address)", consumer, recovered)):
        system.settlement.settleManyPacked(node2, _packed([signed]), ROOT, {"from": stranger})


def test_packed_batch_rejects_high_s_and_bad_v(system, sign, consumer_key, node, stranger):
    signed = sign(consumer_key, node, 1_000, UNIT)
    raw = bytes.fromhex(signed.signature[2:])
    r, s, v = raw[:32], int.from_bytes(raw[32:64], "big"), raw[64]
    high_s = SECP256K1_N - s
    packed = _packed([signed])
    malleable = packed[:-65] + r + high_s.to_bytes(32, "big") + bytes((55 - v,))
    with brownie.reverts(custom_error("ECDSAInvalidSignatureS(bytes32)", high_s.to_bytes(32, "big"))):
        system.settlement.settleManyPacked(node, malleable, ROOT, {"from": stranger})
    with brownie.reverts(custom_error("ECDSAInvalidSignature()")):
        system.settlement.settleManyPacked(node, packed[:-1] + bytes((29,)), ROOT, {"from": stranger})


def test_packed_batch_rejects_bad_lengths_unknown_nodes_and_pause(
    system, sign, consumer_key, node, deployer, stranger
):
    packed = _packed([sign(consumer_key, node, 1_000, UNIT)])
    with brownie.reverts(custom_error("SettlementEmptyBatch()")):
        system.settlement.settleManyPacked(node, b"", ROOT, {"from": stranger})
    for length in (160, 162, 2 * 161 - 1):
        with brownie.reverts(custom_error("SettlementPackedLength(uint256,uint256)", length, 161)):
            system.settlement.settleManyPacked(node, (packed * 2)[:length], ROOT, {"from": stranger})
    with brownie.reverts(custom_error("SettlementUnknownNode(address)", stranger)):
        system.settlement.settleManyPacked(stranger, packed, ROOT, {"from": stranger})
    system.settlement.pause({"from": deployer})
    with brownie.reverts(custom_error("EnforcedPause()")):
        system.settlement.settleManyPacked(node, packed, ROOT, {"from": stranger})


def test_pack_receipt_refuses_values_that_do_not_fit(consumer):
    sig = b"\x01" * 65
    with pytest.raises(
        ValueError, match="cumulativeAmount 340282366920938463463374607431768211456 does not fit 128"
    ):
        pack_receipt(consumer.address, b"\x00" * 32, 1, 2**128, 1, 1, sig)
    with pytest.raises(ValueError, match="latencyMs 4294967296 does not fit 32 bits"):
        pack_receipt(consumer.address, b"\x00" * 32, 1, 1, 2**32, 1, sig)
    with pytest.raises(ValueError, match="signature is 64 bytes, not 65"):
        pack_receipt(consumer.address, b"\x00" * 32, 1, 1, 1, 1, sig[:64])
    assert len(pack_receipt(consumer.address, b"\x00" * 32, 1, 1, 1, 1, sig)) == 161
