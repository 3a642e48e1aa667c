"""``kuota escrow allocate|lanes|close`` and ``kuota receipts ... --lanes`` end to end on the local chain:
a consumer allocates lanes, its node stores and settles lane receipts, the consumer closes the lane."""

from __future__ import annotations

from brownie import chain

from nodeclient.receipts import SignedReceipt
from nodeclient.receipts.signing import receipt_digest, receipt_domain, verify_receipt

USD = 10**6


def _register_node(k) -> str:
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1", "--capacity", "1",
         "--region", "x", *k.pw(), "--yes")
    return k.addresses["node"]


def test_allocate_settle_and_close_a_lane(fresh, kuota, tmp_path):
    k = fresh
    node = _register_node(k)
    consumer = k.addresses["consumer"]
    k.ok("escrow", "deposit", "100", "--account", "consumer", *k.pw(), "--yes")
    allocated = k.ok("escrow", "allocate", "30", node, "--account", "consumer", *k.pw(), "--yes", "--json")
    assert allocated["lanes"][0]["balance"] == 30 * USD
    # More than is available is refused before anything is signed.
    refused = k.run("escrow", "allocate", "71", node, "--account", "consumer", *k.pw(), "--yes")
    assert refused.exit_code == 5 and "less than the 71" in refused.stderr
    # top-up brings the lane to 40: 10 more.
    k.ok("escrow", "allocate", "40", node, "--policy", "top-up", "--account", "consumer", *k.pw(), "--yes")
    listed = k.ok("escrow", "lanes", "--account", "consumer", "--json")
    assert [(lane["node"], lane["balance"], lane["closing"]) for lane in listed["lanes"]] == [(node, 40 * USD, False)]
    assert kuota.escrow.availableOf(consumer) == 60 * USD

    k.ok("escrow", "deposit", "10", "--account", "consumer2", *k.pw(), "--yes")
    k.ok("escrow", "allocate", "10", node, "--account", "consumer2", *k.pw(), "--yes")
    receipts = tmp_path / "lane.jsonl"
    for who, amount in (("consumer", "5.000001"), ("consumer2", "3.000001")):
        k.ok("receipts", "sign", "--lanes", "--node", node, "--amount", amount, "--bytes", "1000", "--out", str(receipts),
             "--account", who, *k.pw())
    k.ok("receipts", "import", str(receipts), "--node", node, "--lanes")
    settled = k.ok("receipts", "settle", "--lanes", "--force", "--account", "operator", *k.pw(), "--yes", "--json")
    result = settled["nodes"][0]["result"]
    # One batch of two lanes; the per-receipt outcomes the store records add up to the batch's totals
    # (LanesSettled), the fee rounded once on the total.
    paid = 8 * USD + 2
    assert result["paid"] == paid and result["settledReceipts"] == 2
    assert result["fee"] == paid * 500 // 10_000 == 400_000
    event = kuota.lanes.events.get_sequence(from_block=result["tx"]["blockNumber"], event_type="LanesSettled")[0]
    assert (event.args.paid, event.args.fee, event.args.settledCount) == (paid, result["fee"], 2)
    assert kuota.lanes.laneOf(consumer, node)[0][0] == 35 * USD - 1
    assert kuota.escrow.creditOf(node) == paid - result["fee"]
    channels = k.ok("receipts", "list", "--lanes", "--json")["channels"]
    assert sorted(c["settledAmount"] for c in channels) == [3 * USD + 1, 5 * USD + 1]
    assert all(c["unsettledAmount"] == 0 and c["agrees"] for c in channels)
    # The pooled store knows nothing of lane receipts.
    assert k.ok("receipts", "list", "--json")["channels"] == []

    closing = k.ok("escrow", "close", node, "--account", "consumer", *k.pw(), "--yes", "--json")
    assert closing["lane"]["closing"] is True and closing["lane"]["closeAt"] > 0
    early = k.run("escrow", "close", node, "--finish", "--account", "consumer", *k.pw(), "--yes")
    assert early.exit_code == 8 and "s to go" in early.stderr
    chain.sleep(kuota.lanes.closeDelay() + 1)
    chain.mine()
    finished = k.ok("escrow", "close", node, "--finish", "--account", "consumer", *k.pw(), "--yes", "--json")
    assert finished["returned"] == 35 * USD - 1 and finished["lane"]["balance"] == 0
    assert kuota.escrow.availableOf(consumer) == 95 * USD - 1


def test_allocate_split_over_two_nodes_and_the_setting(fresh, kuota, tmp_path):
    k = fresh
    node = _register_node(k)
    k.ok("stake", "add", "1000", "--account", "operator2", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator2", "--node-account", "node2", "--price", "1", "--capacity", "1",
         "--region", "y", *k.pw(), "--yes")
    node2 = k.addresses["node2"]
    consumer = k.addresses["consumer"]
    k.ok("escrow", "deposit", "10", "--account", "consumer", *k.pw(), "--yes")
    k.ok("escrow", "allocate", "0.000003", node, node2, "--policy", "split", "--account", "consumer", *k.pw(), "--yes")
    assert kuota.lanes.laneOf(consumer, node)[0][0] == 2 and kuota.lanes.laneOf(consumer, node2)[0][0] == 1
    # settlement.module = "lanes" in the settings does what --lanes does.
    signed = k.ok("receipts", "sign", "--node", node, "--amount-units", "2", "--bytes", "10", "--account", "consumer",
                  *k.pw(), "--json", extra_env={"KUOTA_SETTLEMENT__MODULE": "lanes"})
    assert signed["cumulativeAmount"] == 2
    receipt = SignedReceipt.model_validate(signed)
    assert verify_receipt(receipt, receipt_domain(k.chain_id, kuota.lanes.address)) == receipt_digest(
        receipt, receipt_domain(k.chain_id, kuota.lanes.address)
    )
    bad = k.run("escrow", "close", node2, "--finish", "--account", "consumer", *k.pw(), "--yes")
    assert bad.exit_code == 8 and "not closing" in bad.stderr
