"""The whole operator and consumer flow through the ``kuota`` CLI, reconciled with on-chain balances.

account → stake → register → consumer deposit → consumer signs receipts → node imports → settle →
epoch passes → claim → earnings, with CliRunner for most steps and real ``kuota`` subprocesses for
signing, importing and settling (the code paths an operator's shell runs).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from brownie import chain


def test_full_operator_and_consumer_flow(funded, kuota, tmp_path):
    k = funded
    node = k.addresses["node"]
    payout = k.addresses["payout"]
    consumer = k.addresses["consumer"]
    operator = k.addresses["operator"]
    usd = 10**6

    # Accounts are listed from the data dir (imported by the fixture from Anvil's keys).
    listed = k.ok("account", "list", "--json")
    assert {a["alias"] for a in listed["accounts"]} >= {"operator", "consumer", "node", "payout"}

    # Operator: stake and register with a separate node key and a fresh payout address.
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes", "--json")
    reg = k.ok(
        "node", "register", "--account", "operator", "--node-account", "node", "--payout", payout, "--price", "0.25",
        "--capacity", "250", "--region", "eu-west", "--metadata-uri", "ipfs://meta", *k.pw(), "--yes", "--json",
    )
    assert reg["node"] == {**reg["node"], "node": node, "operator": operator, "payout": payout, "status": "Active",
                           "pricePerGiB": 250_000, "capacityMbps": 250, "region": "eu-west"}
    assert kuota.registry.statusOf(node) == 1

    # Consumer: deposit (approve + deposit), then sign three cumulative receipts into one file.
    escrow_before = kuota.payment_token.balanceOf(consumer)
    dep = k.ok("escrow", "deposit", "100", "--account", "consumer", *k.pw(), "--yes", "--json")
    assert dep["escrow"]["available"] == 100 * usd
    assert kuota.payment_token.balanceOf(consumer) == escrow_before - 100 * usd
    receipts_file = tmp_path / "receipts.jsonl"
    for amount, nbytes in (("1", 4 * 2**30), ("2", 8 * 2**30)):
        k.ok("receipts", "sign", "--node", node, "--amount", amount, "--bytes", str(nbytes), "--latency-ms", "40",
             "--out", str(receipts_file), "--account", "consumer", *k.pw())
    proc = k.subprocess("receipts", "sign", "--node", node, "--amount", "3.5", "--bytes", str(14 * 2**30),
                        "--latency-ms", "40", "--out", str(receipts_file), "--account", "consumer", *k.pw())
    assert proc.returncode == 0, proc.stderr
    lines = receipts_file.read_text().splitlines()
    assert [json.loads(line)["cumulativeAmount"] for line in lines] == [1 * usd, 2 * usd, 3_500_000]

    # Node: import through a real subprocess; importing the same file again stores nothing new.
    proc = k.subprocess("receipts", "import", str(receipts_file), "--node", node, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["new"] == 3
    again = k.ok("receipts", "import", str(receipts_file), "--node", node, "--json")
    assert again["new"] == 0 and again["files"][0]["duplicates"] == 3

    # The default policy refuses: 3.5 USD does not cover the gas at 5 % (1 gwei tip, 3000 USD/ETH).
    declined = k.ok("receipts", "settle", "--node", node, "--account", "operator", *k.pw(), "--yes", "--json")
    assert declined["nodes"][0]["result"] is None
    assert "gas" in declined["nodes"][0]["plan"]["decision"]["reason"]
    assert kuota.settlement.channelOf(consumer, node)[0] == 0

    # A dry run shows the plan and sends nothing.
    dry = k.ok("receipts", "settle", "--node", node, "--force", "--dry-run", "--account", "operator", "--json")  # no password needed
    assert dry["dryRun"] is True and dry["nodes"][0]["plan"]["value"] == 3_500_000
    assert kuota.settlement.channelOf(consumer, node)[0] == 0

    # With a policy that accepts the gas share (env, as an operator's config would), settle for real in a subprocess.
    proc = k.subprocess("receipts", "settle", "--node", node, "--account", "operator", *k.pw(), "--yes", "--json",
                        env_extra={"KUOTA_SETTLEMENT__MAX_GAS_SHARE_BPS": "10000"})
    assert proc.returncode == 0, proc.stderr
    settled = json.loads(proc.stdout)["nodes"][0]["result"]
    assert settled["settledReceipts"] == 1 and settled["paid"] == 3_500_000
    assert settled["fee"] == 3_500_000 * 500 // 10_000
    assert kuota.settlement.channelOf(consumer, node)[0] == 3_500_000
    assert kuota.escrow.creditOf(node) == 3_500_000 - settled["fee"]
    bundle = json.loads(Path(settled["bundle"]).read_text())
    assert [r["cumulativeAmount"] for r in bundle["receipts"]] == [1 * usd, 2 * usd, 3_500_000]

    # Settling again sends nothing: the chain already has everything.
    again = k.ok("receipts", "settle", "--node", node, "--force", "--account", "operator", *k.pw(), "--yes", "--json")
    assert again["nodes"][0]["result"] is None
    listed = k.ok("receipts", "list", "--node", node, "--json")
    assert listed["channels"][0]["unsettledAmount"] == 0 and listed["channels"][0]["settledAmount"] == 3_500_000

    # The epoch of the settlement ends; the node claims its reward (to the payout address).
    chain.sleep(kuota.rewards.epochLength() + 1)
    chain.mine()
    shown = k.ok("rewards", "show", "--node", node, "--json")
    assert shown["claimableTotal"] > 0 and shown["claimableEpochs"]
    # Without --force the gas-aware policy weighs the reward (at the reference price) against the gas.
    policy = k.ok("rewards", "claim", "--node", node, "--account", "operator", *k.pw(), "--yes", "--json")
    assert policy["result"] is None and "gas" in policy["plan"]["decision"]["reason"]
    assert policy["plan"]["decision"]["value"] == shown["claimableTotal"] // kuota.rewards.rewardPerFeeUnit()
    assert kuota.token.balanceOf(payout) == 0
    claimed = k.ok("rewards", "claim", "--node", node, "--force", "--account", "operator", *k.pw(), "--yes", "--json")
    assert claimed["result"] is not None
    reward_balance = kuota.token.balanceOf(payout)
    assert reward_balance == shown["claimableTotal"] > 0
    # Reward ≤ rewardPerFeeUnit × fee (the protocol's wash-trading bound).
    assert reward_balance <= kuota.rewards.rewardPerFeeUnit() * settled["fee"]

    # Earnings reconcile exactly with on-chain balances.
    ledger = k.ok("earnings", "--node", node, "--json")
    totals = ledger["totals"]
    assert totals["gross"] == 3_500_000 == 100 * usd - kuota.escrow.availableOf(consumer)
    assert totals["fee"] == settled["fee"] == kuota.escrow.accruedFees()
    assert totals["net"] == kuota.escrow.creditOf(node) == totals["credit"]
    assert totals["rewardsClaimed"] == reward_balance
    assert totals["rewardsClaimable"] == 0
    assert totals["consistent"] is True
    gas_entries = [e for e in ledger["entries"] if e["kind"] == "gas"]
    assert {e["note"].split(":")[0] for e in gas_entries} >= {"register", "settle", "claim"}
    for entry in gas_entries:
        tx = chain.get_transaction(entry["txHash"])
        assert entry["gasWei"] == tx.gas_used * tx.gas_price

    # Withdraw the credit to the payout address; the ledger still reconciles.
    k.ok("node", "withdraw-earnings", node, "--account", "operator", *k.pw(), "--yes", "--json")
    assert kuota.payment_token.balanceOf(payout) == totals["net"]
    after = k.ok("earnings", "--node", node, "--json")["totals"]
    assert after["withdrawn"] == totals["net"] and after["credit"] == 0 and after["consistent"] is True

    # CSV export of the same ledger.
    out = tmp_path / "ledger.csv"
    k.ok("earnings", "--node", node, "--csv", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sum(int(r["gross"]) for r in rows if r["kind"] == "settlement") == 3_500_000
    assert sum(int(r["reward"]) for r in rows if r["kind"] == "reward") == reward_balance

    # Consumer thaws part of the escrow; after the thawing period withdraws it.
    k.ok("escrow", "thaw", "10", "--account", "consumer", *k.pw(), "--yes", "--json")
    chain.sleep(kuota.escrow.thawingPeriod() + 1)
    chain.mine()
    before = kuota.payment_token.balanceOf(consumer)
    k.ok("escrow", "withdraw", "--account", "consumer", *k.pw(), "--yes", "--json")
    assert kuota.payment_token.balanceOf(consumer) == before + 10 * usd
