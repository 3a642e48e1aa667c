"""The remaining commands end to end: node update/rotate-key/exit/status, stake unbond/withdraw/show,
escrow show/thaw/cancel-thaw, receipts list/export, dry runs; and the gas-aware policy rule."""

from __future__ import annotations

import json

import pytest
from brownie import chain

from nodeclient._utils.policy import decide
from nodeclient.config import PolicySettings


def test_operator_lifecycle_commands(fresh, kuota):
    k = fresh
    node, operator = k.addresses["node"], k.addresses["operator"]
    # A dry run of a spend prints the plan (fee included) and sends nothing.
    dry = k.ok("stake", "add", "1000", "--account", "operator", "--dry-run", "--json")  # no password: nothing is signed
    assert dry["dryRun"] is True and dry["fee"]["gasLimit"] > 0 and dry["from"] == operator
    assert kuota.staking.bondedOf(operator) == 0 and kuota.token.allowance(operator, kuota.staking) == 0
    k.ok("stake", "add", "2000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "0.1", "--capacity", "50",
         "--region", "us-east", *k.pw(), "--yes")
    status = k.ok("node", "status", "--account", "operator", "--json")
    assert [n["node"] for n in status["nodes"]] == [node] and status["nodes"][0]["pricePerGiB"] == 100_000

    updated = k.ok("node", "update", node, "--price", "0.2", "--region", "eu-north", "--account", "operator", *k.pw(), "--yes", "--json")
    assert updated["node"]["pricePerGiB"] == 200_000 and updated["node"]["region"] == "eu-north"
    assert updated["node"]["capacityMbps"] == 50  # fields not given stay

    newkey = k.addresses["newkey"]
    rotated = k.ok("node", "rotate-key", node, "--node-account", "newkey", "--account", "operator", *k.pw(), "--yes", "--json")
    assert rotated["newKey"] == newkey and kuota.registry.getNode(node)[2] == newkey

    shown = k.ok("stake", "show", "--account", "operator", "--json")
    assert shown["bonded"] == 2000 * 10**18 and shown["required"] == 1000 * 10**18
    k.ok("stake", "unbond", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "exit", node, "--account", "operator", *k.pw(), "--yes")
    assert kuota.registry.statusOf(node) == 2  # Exiting
    chain.sleep(kuota.staking.unbondingPeriod() + 1)
    chain.mine()
    before = kuota.token.balanceOf(operator)
    k.ok("stake", "withdraw", "--account", "operator", *k.pw(), "--yes")
    assert kuota.token.balanceOf(operator) == before + 1000 * 10**18


def test_consumer_escrow_commands_and_receipt_listing(fresh, kuota, tmp_path):
    k = fresh
    consumer = k.addresses["consumer"]
    k.ok("escrow", "deposit", "20", "--account", "consumer", *k.pw(), "--yes")
    k.ok("escrow", "thaw", "5", "--account", "consumer", *k.pw(), "--yes")
    shown = k.ok("escrow", "show", "--account", "consumer", "--json")
    assert (shown["available"], shown["thawing"]) == (15 * 10**6, 5 * 10**6) and shown["thawEndsAt"] > 0
    # Withdrawing before the thaw ends is refused before any gas is spent.
    early = k.run("escrow", "withdraw", "--account", "consumer", *k.pw(), "--yes")
    assert early.exit_code == 8 and "s to go" in early.stderr
    k.ok("escrow", "cancel-thaw", "--account", "consumer", *k.pw(), "--yes")
    assert [int(v) for v in kuota.escrow.accountOf(consumer)[:2]] == [20 * 10**6, 0]

    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1", "--capacity", "1",
         "--region", "x", *k.pw(), "--yes")
    node = k.addresses["node"]
    f = tmp_path / "r.jsonl"
    for amount in ("0.5", "1.25"):
        k.ok("receipts", "sign", "--node", node, "--amount", amount, "--bytes", str(int(float(amount) * 1e9)),
             "--out", str(f), "--account", "consumer", *k.pw())
    # Signing a receipt that does not advance the channel is refused (cumulative values only grow).
    stale = k.run("receipts", "sign", "--node", node, "--amount", "1", "--bytes", "1", "--out", str(f), "--account", "consumer", *k.pw())
    assert stale.exit_code == 2 and "does not advance" in stale.stderr
    k.ok("receipts", "import", str(f), "--node", node)
    listed = k.ok("receipts", "list", "--json")
    assert listed["channels"][0]["latestAmount"] == 1_250_000 and listed["channels"][0]["unsettledAmount"] == 1_250_000
    assert listed["stats"]["receipts"] == 2
    out = tmp_path / "export.jsonl"
    exported = k.ok("receipts", "export", "--out", str(out), "--json")
    assert exported["receipts"] == 2
    assert [json.loads(line)["cumulativeAmount"] for line in out.read_text().splitlines()] == [500_000, 1_250_000]
    # The consumer starts thawing: the policy settles now (urgent) although 1.25 USD is near the threshold.
    k.ok("escrow", "thaw", "19", "--account", "consumer", *k.pw(), "--yes")
    settled = k.ok("receipts", "settle", "--account", "operator", *k.pw(), "--yes", "--json")
    plan = settled["nodes"][0]["plan"]
    assert "thawing" in plan["decision"]["reason"] and settled["nodes"][0]["result"]["paid"] == 1_250_000
    batches = k.ok("receipts", "list", "--batches", "--json")["batches"]
    assert [(b["state"], b["receipts"]) for b in batches] == [("confirmed", 1)]


POLICY = PolicySettings(min_value=1_000_000, max_gas_share_bps=500, force_value=100_000_000, max_age_seconds=3600,
                        native_price=3_000_000_000)
GWEI = 10**9


@pytest.mark.parametrize(
    "value, gas_wei, kwargs, act, reason",
    [
        (0, 0, {}, False, "nothing to collect"),
        (500_000, 0, {}, False, "below the threshold"),
        (2_000_000, 150_000 * GWEI, {}, False, "would exceed 500 bps"),  # 0.45 USD of gas for 2 USD
        (20_000_000, 150_000 * GWEI, {}, True, "threshold"),  # 0.45 USD for 20 USD: 2.25 %
        (150_000_000, 10**18, {}, True, "ceiling"),
        (500_000, 0, {"age_seconds": 7200}, True, "old"),
        (500_000, 1 * GWEI, {"urgent": "consumer started thawing"}, True, "thawing"),
        (500_000, 10**18, {"urgent": "consumer started thawing"}, False, "cost more than the value"),
        (1, 10**18, {"force": True}, True, "forced"),
    ],
)
def test_gas_aware_policy(value, gas_wei, kwargs, act, reason):
    decision = decide(value, gas_wei, POLICY, **kwargs)
    assert decision.act is act and reason in decision.reason


def test_account_balance_transfer_and_local_faucet(fresh, kuota):
    k = fresh
    payout = k.addresses["payout"]
    before = k.ok("account", "balance", payout, "--json")
    sent = k.ok("account", "transfer", "KUOTA", payout, "2.5", "--account", "operator", *k.pw(), "--yes", "--json")
    assert sent["amount"] == 25 * 10**17 and kuota.token.balanceOf(payout) == before["kuota"] + 25 * 10**17
    minted = k.ok("account", "faucet", "7", "--account", "payout", *k.pw(), "--yes", "--json")
    assert minted["amount"] == 7 * 10**6
    after = k.ok("account", "balance", "--account", "payout", "--json")
    assert after["payment"] == before["payment"] + 7 * 10**6 and after["kuota"] == before["kuota"] + 25 * 10**17
    too_much = k.run("account", "transfer", "PAYMENT", k.addresses["operator"], "1000000", "--account", "payout", *k.pw(), "--yes")
    assert too_much.exit_code == 5 and "1,000,000" in too_much.stderr


def test_partial_payment_then_top_up_settles_the_rest(fresh, kuota, tmp_path):
    """Escrow short: the receipt pays what is there; after a top-up the same receipt settles the rest."""
    k = fresh
    node, consumer = k.addresses["node"], k.addresses["consumer"]
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1", "--capacity", "1",
         "--region", "x", *k.pw(), "--yes")
    k.ok("escrow", "deposit", "1", "--account", "consumer", *k.pw(), "--yes")
    f = tmp_path / "r.jsonl"
    k.ok("receipts", "sign", "--node", node, "--amount", "3", "--bytes", "3000", "--out", str(f), "--account", "consumer", *k.pw())
    k.ok("receipts", "import", str(f), "--node", node)
    first = k.ok("receipts", "settle", "--force", "--account", "operator", *k.pw(), "--yes", "--json")["nodes"][0]
    assert first["plan"]["value"] == 1_000_000 and first["result"]["paid"] == 1_000_000
    assert kuota.settlement.channelOf(consumer, node)[0] == 1_000_000
    listed = k.ok("receipts", "list", "--json")["channels"][0]
    assert listed["settledAmount"] == 1_000_000 and listed["unsettledAmount"] == 2_000_000
    # Nothing to collect while the escrow is empty: the plan says so and sends nothing.
    empty = k.ok("receipts", "settle", "--force", "--account", "operator", *k.pw(), "--yes", "--json")["nodes"][0]
    assert empty["result"] is None and any("escrow is empty" in n for n in empty["plan"]["notes"])
    human = k.ok("receipts", "settle", "--account", "operator", *k.pw(), "--yes")  # human output path
    assert "nothing sent" in human.stdout
    k.ok("escrow", "deposit", "5", "--account", "consumer", *k.pw(), "--yes")
    human = k.ok("receipts", "settle", "--account", "operator", *k.pw(), "--yes")
    assert "not settling: value 2 mUSD" in human.stderr  # the default policy: 2 USD is not worth the gas
    second = k.ok("receipts", "settle", "--force", "--account", "operator", *k.pw(), "--yes", "--json")["nodes"][0]
    assert second["result"]["paid"] == 2_000_000
    assert kuota.settlement.channelOf(consumer, node)[0] == 3_000_000
    assert kuota.escrow.availableOf(consumer) == 3_000_000  # 1 + 5 deposited, 3 paid
    ledger = k.ok("earnings", "--node", node, "--json")["totals"]
    assert ledger["gross"] == 3_000_000 and ledger["settlements"] == 2 and ledger["consistent"] is True


def test_claim_after_long_idle_finalizes_the_backlog_first(fresh, kuota, tmp_path):
    """Usage after a long idle period: more epochs to finalise than one claim may; the claim says so
    before spending gas, and `rewards finalize` works the backlog off in bounded transactions."""
    k = fresh
    node = k.addresses["node"]
    payout = k.addresses["operator"]
    per_call = kuota.rewards.MAX_FINALIZE_PER_CALL()
    chain.sleep(kuota.rewards.epochLength() * (per_call + 30))  # nobody touched the pool meanwhile
    chain.mine()
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1", "--capacity", "1",
         "--region", "x", *k.pw(), "--yes")
    k.ok("escrow", "deposit", "5", "--account", "consumer", *k.pw(), "--yes")
    f = tmp_path / "r.jsonl"
    k.ok("receipts", "sign", "--node", node, "--amount", "2", "--bytes", "2000", "--out", str(f), "--account", "consumer", *k.pw())
    k.ok("receipts", "import", str(f), "--node", node)
    k.ok("receipts", "settle", "--force", "--account", "operator", *k.pw(), "--yes")
    chain.sleep(kuota.rewards.epochLength() + 1)
    chain.mine()
    pending = kuota.rewards.currentEpoch() - kuota.rewards.finalizedThrough()
    assert pending > per_call

    before = kuota.token.balanceOf(payout)
    refused = k.run("rewards", "claim", "--node", node, "--force", "--account", "operator", *k.pw(), "--yes")
    assert refused.exit_code == 2 and "kuota rewards finalize" in refused.stderr and str(pending) in refused.stderr
    assert kuota.token.balanceOf(payout) == before

    done = k.ok("rewards", "finalize", "--account", "operator", *k.pw(), "--yes", "--json")
    assert done["pending"] == pending and len(done["results"]) == -(-pending // per_call)
    assert kuota.rewards.finalizedThrough() == kuota.rewards.currentEpoch()
    claimable = k.ok("rewards", "show", "--node", node, "--json")["claimableTotal"]
    k.ok("rewards", "claim", "--node", node, "--force", "--account", "operator", *k.pw(), "--yes")
    assert kuota.token.balanceOf(payout) - before == claimable > 0
    again = k.ok("rewards", "finalize", "--account", "operator", *k.pw(), "--yes", "--json")
    assert again["pending"] == 0 and again["results"] == []
