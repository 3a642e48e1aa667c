"""Smoke test on Ganache 7: the same bytecode and deploy code that run on Anvil settle a receipt there.

The Ganache half runs in a subprocess (``ganache_smoke.py``) because Brownie holds one network at a
time and this session is connected to Anvil.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("ganache_smoke.py")
ROOT = SCRIPT.parents[2]
RESULT_PREFIX = "KUOTA_SMOKE_RESULT "
SMOKE_TIMEOUT_S = int(os.environ.get("KUOTA_GANACHE_SMOKE_TIMEOUT", "420"))


def _run_smoke(ganache) -> dict:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), ganache.url, str(ganache.chain_id), ganache.mnemonic],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,  # the return code is asserted below, with the script's output
    )
    assert completed.returncode == 0, (
        f"smoke script failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert len(lines) == 1, f"no result line in:\n{completed.stdout[-4000:]}"
    return json.loads(lines[0][len(RESULT_PREFIX) :])


def test_deploy_and_settle_one_receipt_on_ganache(ganache):
    result = _run_smoke(ganache)

    assert result["chainId"] == 1337
    assert result["clientVersion"].lower().startswith("ganache/v7."), result["clientVersion"]
    assert result["txStatus"] == 1
    # Ganache charges a base fee: the settlement went through at a real (non-zero) gas price.
    assert result["txGasPrice"] > 0

    # The contract's EIP-712 digest, the one in the event and eth-account's agree on Ganache too.
    assert result["contractDigest"] == result["expectedDigest"]
    assert result["eventDigest"] == result["expectedDigest"]

    amount = result["cumulativeAmount"]
    fee = amount * result["feeBps"] // 10_000
    assert result["paid"] == amount
    assert result["fee"] == fee
    assert result["settledAmount"] == amount
    assert result["settledBytes"] == result["cumulativeBytes"]
    assert result["nodeCredit"] == amount - fee
    assert result["accruedFees"] == fee
    assert result["consumerAvailable"] == result["deposit"] - amount
    # Escrow conservation after the settlement: nothing left the contract, nothing appeared.
    assert result["escrowBalance"] == result["deposit"]
    assert (
        result["escrowBalance"] == result["consumerAvailable"] + result["nodeCredit"] + result["accruedFees"]
    )
