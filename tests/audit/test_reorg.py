"""A chain that reorganises below the confirmation depth: the report changes only for the reorganised
blocks, and the confirmed part of the report does not change at all."""

from __future__ import annotations

from audit_helpers import UNIT, receipt_tuple, signed_receipt_json
from brownie import chain, web3

from nodeclient.audit import run_audit
from nodeclient.audit.report import to_json


def _branch(economy, consumer, operator, amount: int, height: int) -> None:
    receipt = signed_receipt_json(economy.keys[consumer.address], economy.node_b, amount * 2**20, amount * UNIT,
                                  issued_at=chain.time() - 1, latency_ms=40, session=7, chain_id=economy.chain_id,
                                  settlement=economy.system.settlement.address)
    # Raw web3, not Brownie: Brownie tracks nonces itself and would wait forever for the nonces the
    # revert took back.
    data = economy.system.settlement.settle.encode_input(receipt_tuple(receipt), receipt["signature"])
    tx = web3.eth.send_transaction({"from": operator.address, "to": economy.system.settlement.address,
                                    "data": data, "gas": 600_000})
    assert web3.eth.wait_for_transaction_receipt(tx, timeout=30)["status"] == 1
    while web3.eth.block_number < height:
        web3.provider.make_request("evm_mine", [])


def test_reorg_changes_only_the_affected_blocks(economy, audit_options, consumer, operator):
    base = web3.eth.block_number
    snapshot = web3.provider.make_request("evm_snapshot", [])["result"]
    head = base + 4
    _branch(economy, consumer, operator, 20, head)
    depth = head - base
    before = run_audit(audit_options(to_block=head, allow_unconfirmed=True)).report
    confirmed_before = run_audit(audit_options(confirmations=depth)).report

    # Reorganise: drop the last `depth` blocks and build a different branch of the same height.
    assert web3.provider.make_request("evm_revert", [snapshot])["result"] is True
    assert web3.eth.block_number == base
    chain.sleep(5)
    _branch(economy, consumer, operator, 25, head)
    after = run_audit(audit_options(to_block=head, allow_unconfirmed=True)).report
    confirmed_after = run_audit(audit_options(confirmations=depth)).report

    # Below the reorg nothing changed: block hashes, settlements and the confirmed report byte for byte.
    hashes_before = {b["number"]: b["hash"] for b in before["blocks"]}
    hashes_after = {b["number"]: b["hash"] for b in after["blocks"]}
    assert {n: h for n, h in hashes_before.items() if n <= base} == {n: h for n, h in hashes_after.items() if n <= base}
    assert confirmed_before["range"]["toBlock"] == base
    assert to_json(confirmed_before) == to_json(confirmed_after)
    old = [r for r in before["settlements"] if r["block"] <= base]
    assert old == [r for r in after["settlements"] if r["block"] <= base] and old

    # Above it, exactly the reorganised blocks differ, and the replaced settlement is the one reported.
    assert hashes_before[head] != hashes_after[head]
    new_before = [r for r in before["settlements"] if r["block"] > base]
    new_after = [r for r in after["settlements"] if r["block"] > base]
    assert [r["cumulativeAmount"] for r in new_before] == [str(20 * UNIT)]
    assert [r["cumulativeAmount"] for r in new_after] == [str(25 * UNIT)]
    assert before["verdict"] == after["verdict"] == "consistent"
