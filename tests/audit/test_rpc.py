"""What the auditor does with providers: capped ``eth_getLogs``, a lying RPC, and unusable inputs.

The proxies listen on 127.0.0.1 only and forward to this run's Anvil.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import RpcProxy
from brownie import web3

from nodeclient.abi import load_abi
from nodeclient.audit import run_audit
from nodeclient.audit.crypto import keccak
from nodeclient.audit.errors import ChainMismatchError, RpcUnavailableError, UnconfirmedRangeError
from nodeclient.audit.events import event_signature
from nodeclient.audit.report import to_json

KUOTA = str(Path(sys.executable).parent / "kuota")

# Wording and codes of real providers when a range is too large.
PROVIDER_LIMITS = [
    ("infura", -32005, "query returned more than 10000 results"),
    ("alchemy", -32602, ("Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range "
                        "and no limit on the response size, or you can request any block range with a cap of 10K logs "
                        "in the response. Based on your parameters, this block range should work: [{start}, {end}]")),
    ("quicknode", -32614, "eth_getLogs is limited to a {n} range"),
    ("geth", -32000, "exceed maximum block range: {n}"),
]


@pytest.mark.parametrize("provider,code,message", PROVIDER_LIMITS, ids=[p[0] for p in PROVIDER_LIMITS])
def test_capped_provider_yields_the_full_report(economy, audit_options, provider, code, message):
    head = web3.eth.block_number
    direct = run_audit(audit_options(to_block=head))
    # One provider also refuses JSON-RPC batches: headers are then read one by one.
    refuse_batches = provider == "geth"
    with RpcProxy(economy.rpc_url, max_log_range=5, limit_message=message, limit_code=code,
                  refuse_batches=refuse_batches) as proxy:
        capped = run_audit(audit_options(rpc_url=proxy.url, to_block=head, getlogs_initial_span=1000))
    assert proxy.refused > 0
    assert proxy.batches > 0
    span = head - capped.range.from_block + 1
    assert proxy.log_calls - proxy.refused >= span // 5
    assert capped.fetch.limited == proxy.refused
    assert to_json(capped.report) == to_json(direct.report)
    assert capped.report["counts"]["settlements"] == economy.settled_events


def _topic(contract: str, name: str) -> str:
    entry = next(e for e in load_abi(contract) if e.get("type") == "event" and e["name"] == name)
    return "0x" + keccak(event_signature(entry).encode()).hex()


def test_lying_rpc_that_inflates_a_payment_is_a_mismatch(economy, audit_options):
    settled = _topic("ReceiptSettlement", "ReceiptSettled")
    altered: dict[str, Any] = {}

    def inflate_first_paid(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for log in logs:
            if log["topics"][0] == settled and not altered:
                data = bytes.fromhex(log["data"][2:])
                paid = int.from_bytes(data[6 * 32 : 7 * 32], "big") + 1  # word 6 of the data is `paid`
                log["data"] = "0x" + (data[: 6 * 32] + paid.to_bytes(32, "big") + data[7 * 32 :]).hex()
                altered.update(block=int(log["blockNumber"], 16), log=int(log["logIndex"], 16))
        return logs

    with RpcProxy(economy.rpc_url, rewrite_logs=inflate_first_paid) as proxy:
        result = run_audit(audit_options(rpc_url=proxy.url))
    assert (result.verdict, result.exit_code) == ("mismatch", 6)
    codes = {f["code"] for f in result.report["findings"] if f["severity"] == "mismatch"}
    assert {"settlement-paid", "settlement-credit", "state-channel"} <= codes
    record = f"ReceiptSettlement.ReceiptSettled at block {altered['block']} log {altered['log']}"
    assert any(f["record"].startswith(record) for f in result.report["findings"] if f["code"] == "settlement-paid")


def test_lying_rpc_that_hides_a_withdrawal_is_a_mismatch(economy, audit_options):
    withdrawn = _topic("PaymentEscrow", "Withdrawn")

    def hide(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [log for log in logs if log["topics"][0] != withdrawn]

    with RpcProxy(economy.rpc_url, rewrite_logs=hide) as proxy:
        result = run_audit(audit_options(rpc_url=proxy.url))
    assert result.exit_code == 6
    accounts = [f for f in result.report["findings"] if f["code"] == "state-account"]
    assert len(accounts) == 1 and "thawing 0" in accounts[0]["message"]
    assert any(f["code"] == "state-escrow-balance" for f in result.report["findings"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_rpc_down_is_unusable_input(economy, audit_options):
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(RpcUnavailableError) as info:
        run_audit(audit_options(rpc_url=url))
    assert info.value.exit_code == 4 and url in str(info.value)


def test_range_inside_reorg_depth_is_refused_unless_allowed(economy, audit_options):
    head = web3.eth.block_number
    with pytest.raises(UnconfirmedRangeError) as info:
        run_audit(audit_options(to_block=head, confirmations=3))
    assert info.value.exit_code == 4 and f"--to-block {head}" in str(info.value)
    assert run_audit(audit_options(to_block=head, confirmations=3, allow_unconfirmed=True)).exit_code == 0
    # By default the range stops below the depth.
    assert run_audit(audit_options(confirmations=3)).range.to_block == head - 3


def _cli(economy: Any, manifest: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KUOTA, "audit", "replay", "--rpc-url", economy.rpc_url, "--manifest", str(manifest), "--confirmations", "0",
         *extra],
        check=False, capture_output=True, timeout=120, env=dict(os.environ),
    )


def test_cli_manifest_for_another_chain_exits_4(economy, tmp_path):
    manifest = json.loads(economy.manifest_path.read_text())
    manifest["chainId"] = 1
    path = tmp_path / "1.json"
    path.write_text(json.dumps(manifest))
    run = _cli(economy, path)
    assert run.returncode == 4, run.stderr.decode()
    assert "chain id 31337" in run.stderr.decode() and "chain id 1" in run.stderr.decode()


def test_cli_manifest_contract_without_code_exits_4(economy, tmp_path):
    manifest = json.loads(economy.manifest_path.read_text())
    stranger = web3.eth.accounts[19]
    manifest["contracts"]["ReceiptSettlement"] = stranger
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    run = _cli(economy, path)
    assert run.returncode == 4, run.stderr.decode()
    assert stranger in run.stderr.decode() and "no code" in run.stderr.decode()


def test_cli_malformed_manifest_exits_4(economy, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    run = _cli(economy, path)
    assert run.returncode == 4
    assert str(path) in run.stderr.decode() and "not valid JSON" in run.stderr.decode()


def test_chain_mismatch_error_class_is_unusable_input():
    assert ChainMismatchError("x").exit_code == 4
