"""Gas of settle, settleMany and claim, measured from real transaction receipts (``tx.gas_used``,
whole-transaction gas including the 21k base).

Run with ``-s`` to see the table. Each figure also has a ceiling (the measured value plus a few
percent) so a change that makes settlement more expensive fails here and has to be looked at;
the issue-7 targets are reported beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from brownie import chain, web3
from eth_account import Account
from eth_utils import keccak
from unit_helpers import UNIT

from nodeclient.receipts.packing import pack_receipt_args

REPORT = Path(__file__).resolve().parents[3] / "reports" / "gas-unit.json"
TARGETS = {
    "settle_warm": 50_000,
    "settle_many_100_per_receipt": 15_000,
    "settle_many_packed_100_per_receipt": 15_000,
    "claim_warm": 50_000,
}
#: Regression ceilings (measured on this commit + ~3 %).
CEILINGS = {
    "settle_cold": 238_000,
    "settle_warm": 99_500,
    "settle_many_1": 104_500,
    "settle_many_10_per_receipt": 36_500,
    "settle_many_100_per_receipt": 29_500,
    "settle_many_packed_1": 101_500,
    "settle_many_packed_10_per_receipt": 33_500,
    "settle_many_packed_100_per_receipt": 26_700,
    # KuotaToken's ERC20Votes writes a total-supply checkpoint on every mint (a fresh slot in each
    # new block): claims went from 136,015 / 65,352 to 171,718 / 101,055 (+35,703 each).
    "claim_first": 177_000,
    "claim_warm": 104_100,
}

_measured: dict[str, int] = {}


@pytest.fixture(scope="module")
def consumers(funded, system, deployer):
    """120 fresh consumer keys with 1,000 mUSD each in escrow (funded by depositFor)."""
    keys = [Account.from_key(keccak(text=f"kuota gas consumer {i}")) for i in range(120)]
    system.payment_token.mint(deployer, 200_000 * UNIT, {"from": deployer})
    system.payment_token.approve(system.escrow, 2**256 - 1, {"from": deployer})
    for key in keys:
        system.escrow.depositFor(key.address, 1_000 * UNIT, {"from": deployer})
    return keys


def _record(name: str, value: int) -> None:
    _measured[name] = value
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(
        json.dumps({"measured": _measured, "targets": TARGETS}, indent=2, sort_keys=True) + "\n"
    )
    target = TARGETS.get(name)
    note = f"   (issue-7 target {target:,})" if target else ""
    print(f"\n[gas] {name:<28} {value:>9,}{note}")
    assert value <= CEILINGS[name], f"{name} used {value:,} gas, above its ceiling {CEILINGS[name]:,}"


def _transact(fn, *args, sender):
    """``fn(*args)`` from ``sender``, confirmed by its receipt rather than Brownie's confirmation loop,
    which under load can report a large, instantly mined Anvil transaction as "dropped" (bench/gas.py
    sends the same way). Returns Brownie's decoded receipt of the mined transaction."""
    tx_hash = web3.eth.send_transaction(
        {"from": sender.address, "to": fn._address, "data": fn.encode_input(*args)}
    )
    receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=300)
    assert receipt["status"] == 1, f"{fn._name} reverted"
    return chain.get_transaction(tx_hash.hex() if tx_hash.hex().startswith("0x") else "0x" + tx_hash.hex())


def _batch(sign, keys, node, step):
    signed = [sign(k.key.hex(), node, 1_000 * step, step * UNIT, session=i) for i, k in enumerate(keys)]
    return [s.args for s in signed], [s.signature for s in signed]


def test_gas_settle_cold_and_warm(system, sign, consumers, node, stranger):
    key = consumers[0].key.hex()
    first = sign(key, node, 1_000, UNIT)
    tx = system.settlement.settle(first.args, first.signature, {"from": stranger})
    _record("settle_cold", tx.gas_used)
    second = sign(key, node, 2_000, 2 * UNIT)
    tx = system.settlement.settle(second.args, second.signature, {"from": stranger})
    _record("settle_warm", tx.gas_used)


@pytest.mark.parametrize("size", [1, 10, 100])
def test_gas_settle_many_warm_channels(system, sign, consumers, node, stranger, size):
    keys = consumers[:size]
    args, sigs = _batch(sign, keys, node, 1)
    _transact(system.settlement.settleMany, args, sigs, b"\x01" * 32, sender=stranger)  # opens the channels
    args, sigs = _batch(sign, keys, node, 2)
    tx = _transact(system.settlement.settleMany, args, sigs, b"\x02" * 32, sender=stranger)
    assert tx.events["BatchSettled"]["settledCount"] == size
    if size == 1:
        _record("settle_many_1", tx.gas_used)
    else:
        _record(f"settle_many_{size}_per_receipt", tx.gas_used // size)


@pytest.mark.parametrize("size", [1, 10, 100])
def test_gas_settle_many_packed_warm_channels(system, sign, consumers, node, stranger, size):
    """The node client's batch call on warm channels: cheaper than settleMany for the same receipts."""
    keys = consumers[:size]
    args, sigs = _batch(sign, keys, node, 1)
    _transact(system.settlement.settleMany, args, sigs, b"\x01" * 32, sender=stranger)  # opens the channels
    args, sigs = _batch(sign, keys, node, 2)
    packed = b"".join(pack_receipt_args(a, sig) for a, sig in zip(args, sigs))
    tx = _transact(system.settlement.settleManyPacked, node, packed, b"\x02" * 32, sender=stranger)
    assert tx.events["BatchSettled"]["settledCount"] == size
    assert [e["paid"] for e in tx.events["ReceiptSettled"]] == [UNIT] * size
    if size == 1:
        _record("settle_many_packed_1", tx.gas_used)
    else:
        _record(f"settle_many_packed_{size}_per_receipt", tx.gas_used // size)


def test_gas_claim_first_and_warm(system, sign, consumers, node, stranger, params):
    key = consumers[0].key.hex()
    for step in (1, 2, 3):
        signed = sign(key, node, 1_000 * step, 10 * step * UNIT)
        system.settlement.settle(signed.args, signed.signature, {"from": stranger})
        chain.sleep(params["epochLength"])
        chain.mine()
    first_epoch = system.rewards.currentEpoch() - 3
    # First claim: finalises the epochs and mints to a payout that holds no KUOTA yet.
    tx = system.rewards.claim(node, [first_epoch], {"from": stranger})
    assert tx.return_value > 0
    _record("claim_first", tx.gas_used)
    # Warm: the epoch is already finalised and the payout already holds KUOTA.
    system.rewards.finalizeEpochs(10, {"from": stranger})
    tx = system.rewards.claim(node, [first_epoch + 1], {"from": stranger})
    assert tx.return_value > 0
    _record("claim_warm", tx.gas_used)
