"""A clean local economy replays with no mismatch, and the replay's totals equal on-chain balances."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from brownie import web3

from nodeclient.audit import run_audit

KUOTA = str(Path(sys.executable).parent / "kuota")


def test_clean_economy_replays_consistent(economy, audit_options):
    result = run_audit(audit_options())
    report = result.report
    assert [f for f in report["findings"] if f["severity"] != "warning"] == []
    assert (result.verdict, result.exit_code) == ("consistent", 0)
    counts = report["counts"]
    assert counts["settlements"] == economy.settled_events
    assert counts["batches"] == len(economy.batches) == counts["bundles_matched"]
    assert counts["bundle_receipts"] == sum(len(b.doc["receipts"]) for b in economy.batches)
    assert counts["mismatches"] == counts["evidence_problems"] == 0
    assert counts["checks"] > 10 * counts["settlements"] and counts["state_checks"] > 10


def test_replayed_totals_equal_onchain_balances(economy, audit_options):
    report = run_audit(audit_options()).report
    replayed, onchain = report["totals"]["replayed"], report["totals"]["onchain"]
    system = economy.system
    balance = system.payment_token.balanceOf(system.escrow)
    assert int(replayed["escrow_token_balance"]) == int(onchain["escrow_token_balance"]) == balance
    for key in ("accrued_fees", "available", "thawing", "credits", "total_claimed", "finalized_through"):
        assert replayed[key] == onchain[key], key
    assert int(replayed["rewards_claimed"]) == system.rewards.totalClaimed() > 0
    # Every payout is accounted for: what consumers paid is the nodes' net plus the protocol fee.
    assert int(replayed["paid"]) == int(replayed["net"]) + int(replayed["fees"])
    settled = system.settlement.events.ReceiptSettled.get_logs(from_block=0)
    assert int(replayed["paid"]) == sum(log["args"]["paid"] for log in settled)
    # The partial payment: 1 USD first, the remaining 2 USD after the top-up.
    partial = [r for r in report["settlements"] if r["cumulativeAmount"] == "3000000" and r["node"] == economy.node_b]
    assert [r["paid"] for r in partial] == ["1000000", "2000000"]
    assert all(r["paid"] == r["expectedPaid"] and r["fee"] == r["expectedFee"] for r in report["settlements"])


def test_warnings_carry_evidence_without_failing(economy, audit_options):
    report = run_audit(audit_options()).report
    funded = [f for f in report["findings"] if f["code"] == "funded-by-operator"]
    assert len(funded) == 1
    assert economy.funded_consumer in funded[0]["message"] and economy.node_a in funded[0]["record"]
    assert funded[0]["evidence"]["payments"][0]["from"] == economy.operator
    latency = [f for f in report["findings"] if f["code"] == "latency-inconsistent"]
    assert [f["record"] for f in latency] == [f"node {economy.node_a}"]
    assert report["verdict"] == "consistent"


def _cli(economy, *args: str, rpc_url: str | None = None) -> subprocess.CompletedProcess:
    cmd = [KUOTA, "audit", "replay", "--rpc-url", rpc_url or economy.rpc_url, "--manifest",
           str(economy.manifest_path), *args]
    return subprocess.run(cmd, check=False, capture_output=True, timeout=120, env=dict(os.environ))


def test_cli_json_is_byte_identical_across_runs_and_exits_zero(economy, tmp_path):
    head = web3.eth.block_number
    args = ("--to-block", str(head), "--confirmations", "0", "--bundles", str(economy.bundle_dir), "--json",
            "--jobs", "2")
    first = _cli(economy, *args)
    assert first.returncode == 0, first.stderr.decode()
    web3.provider.make_request("evm_mine", [])  # the head moves; the pinned range must not change the body
    second = _cli(economy, *args, "--csv", str(tmp_path / "csv"))
    assert second.returncode == 0, second.stderr.decode()
    assert first.stdout == second.stdout
    # No wall clock and no RPC URL (it may carry an API key) in the body.
    assert economy.rpc_url.encode() not in first.stdout
    report = json.loads(first.stdout)
    assert report["range"]["toBlock"] == head and report["verdict"] == "consistent"
    assert len(report["blocks"]) == report["counts"]["blocks_pinned"] >= 2
    lines = (tmp_path / "csv" / "settlements.csv").read_text().splitlines()
    assert len(lines) == 1 + economy.settled_events
    assert (tmp_path / "csv" / "node_epochs.csv").read_text().count("\n") == 1 + len(report["nodeEpochs"])


def test_cli_human_summary_names_the_verdict(economy):
    run = _cli(economy, "--confirmations", "0", "--bundles", str(economy.bundle_dir))
    assert run.returncode == 0, run.stderr.decode()
    out = run.stdout.decode()
    assert "CONSISTENT" in out and "settlements" in out


def test_cli_progress_counts_every_block_of_each_log_read(economy):
    head = web3.eth.block_number
    pinned = ("--to-block", str(head), "--confirmations", "0", "--getlogs-span", "4")
    report = json.loads(_cli(economy, *pinned, "--json").stdout)
    total = report["range"]["toBlock"] - report["range"]["fromBlock"] + 1
    run = _cli(economy, *pinned, "--progress")  # stderr is a pipe: plain lines, one per span read
    assert run.returncode == 0, run.stderr.decode()
    counts = [line.split(": ")[1] for line in run.stderr.decode().splitlines() if line.startswith("reading event logs: ")]
    done = [int(c.split("/")[0].replace(",", "")) for c in counts]
    assert {c.split("/")[1] for c in counts} == {f"{total:,} blocks"}
    assert done[0] == 0 and done[-1] == total and len(done) > 3  # spans of 4 blocks, doubling
    first_pass = done[: done.index(total) + 1]
    assert first_pass == sorted(set(first_pass))
    # Off without --progress when stderr is not a terminal, and off under --json even with it.
    for args in ((), ("--json", "--progress")):
        quiet = _cli(economy, *pinned, *args)
        assert quiet.returncode == 0 and b"reading event logs" not in quiet.stderr


def test_cli_progress_bar_on_a_terminal_without_the_flag(economy):
    """stderr on a pseudo-terminal: the bar shows block counts; stdout (a pipe) still holds only the report."""
    pinned = ("--to-block", str(web3.eth.block_number), "--confirmations", "0")
    report = json.loads(_cli(economy, *pinned, "--json").stdout)
    total = report["range"]["toBlock"] - report["range"]["fromBlock"] + 1
    primary, secondary = pty.openpty()
    cmd = [KUOTA, "audit", "replay", "--rpc-url", economy.rpc_url, "--manifest", str(economy.manifest_path), *pinned]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=secondary, env=dict(os.environ))
    os.close(secondary)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(primary, 65536)
                except OSError:  # the terminal closed with the process
                    break
            elif proc.poll() is not None:
                break
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(primary)
    assert proc.returncode == 0
    shown = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", seen).decode()  # without the terminal's control codes
    assert re.search(rf"reading event logs .* {total}/{total} blocks", shown), shown
    assert b"reading event logs" not in out and b"CONSISTENT" in out


def test_range_starting_after_deployment_seeds_state_and_stays_consistent(economy, audit_options):
    """A partial range replays from the state just before it (read at from_block − 1)."""
    start = economy.batches[1].block  # node B's batch, after node A's first epoch
    result = run_audit(audit_options(from_block=start))
    report = result.report
    assert [f for f in report["findings"] if f["severity"] != "warning"] == []
    assert report["range"]["fromBlock"] == start and report["range"]["fullHistory"] is False
    assert all(r["block"] >= start for r in report["settlements"])
    full = run_audit(audit_options()).report
    assert [r for r in full["settlements"] if r["block"] >= start] == report["settlements"]
    # Channels opened before the range were seeded: the partial payment's top-up still replays exactly.
    assert 0 < report["counts"]["settlements"] < full["counts"]["settlements"]


def test_jailed_and_exiting_nodes_replay_at_weight_zero(economy, audit_options, slasher, operator2, consumer):
    """Usage of a Jailed or Exiting node is paid but earns no reward weight; the replay agrees."""
    from audit_helpers import UNIT, receipt_tuple, signed_receipt_json
    from brownie import chain

    system = economy.system
    system.registry.jail(economy.node_a, "audit test", {"from": slasher})
    system.registry.requestExit(economy.node_b, {"from": operator2})
    for node, amount in ((economy.node_a, 40), (economy.node_b, 41)):
        receipt = signed_receipt_json(economy.keys[consumer.address], node, amount * 2**20, amount * UNIT,
                                      issued_at=chain.time() - 1, latency_ms=10, session=11, chain_id=economy.chain_id,
                                      settlement=system.settlement.address)
        tx = system.settlement.settle(receipt_tuple(receipt), receipt["signature"], {"from": consumer})
        assert tx.events["UsageRecorded"]["weight"] == 0 < tx.events["UsageRecorded"]["fee"]
    chain.mine()
    report = run_audit(audit_options()).report
    assert report["verdict"] == "consistent"
    last_two = report["settlements"][-2:]
    assert [r["weight"] for r in last_two] == ["0", "0"] and all(int(r["fee"]) > 0 for r in last_two)
