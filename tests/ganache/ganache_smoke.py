"""Deploy Kuota on a running Ganache 7 and settle one signed receipt there (run as a subprocess).

The test session's Brownie is connected to Anvil and Brownie holds one network at a time, so the
Ganache half runs in its own interpreter: it loads the project, registers a network entry for the
given RPC at runtime (a development-type entry, so Brownie reads Ganache's unlocked accounts and
writes no deployment artifacts), connects without launching or attaching to any process, deploys with
``scripts.deploy.deploy_system`` and drives one receipt end to end. Its last stdout line is
``KUOTA_SMOKE_RESULT <json>`` with what the chain reported; the pytest side asserts on it.

Usage: ``python tests/ganache/ganache_smoke.py <rpc_url> <chain_id> <mnemonic>``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hexbytes import HexBytes
from integration.support import (
    RECEIPT_TYPES,
    Receipt,
    node_key,
    receipt_domain,
    register_node,
    sign_receipt,
    sign_receipt_eth_account,
)

NETWORK_ID = "kuota-ganache-smoke"
RESULT_PREFIX = "KUOTA_SMOKE_RESULT "


def main(rpc_url: str, chain_id: int, mnemonic: str) -> dict:
    from brownie import network, project
    from brownie._config import CONFIG

    project.load(ROOT, name="KuotaGanacheSmoke")
    from brownie import accounts

    # "cmd" makes it a development-type network (unlocked accounts, no build/deployments records);
    # launch_rpc=False below means Brownie neither launches nor attaches to (nor kills) a process.
    CONFIG.networks[NETWORK_ID] = {
        "id": NETWORK_ID,
        "name": "Ganache (Kuota smoke test)",
        "host": rpc_url,
        "chainid": chain_id,
        "cmd": "ganache",
        "cmd_settings": {},
    }
    network.connect(NETWORK_ID, launch_rpc=False)
    try:
        # Development networks default to gas price 0, which Ganache (base fee > 0) never mines:
        # Brownie would resend forever. Ask the node instead.
        network.gas_price("auto")
        return _run(accounts, chain_id, mnemonic)
    finally:
        network.disconnect(kill_rpc=False)


def _hex(value) -> str:
    return "0x" + bytes(HexBytes(value)).hex()


def _run(accounts, chain_id: int, mnemonic: str) -> dict:
    from brownie import web3

    from scripts.deploy import deploy_system, load_params

    Account.enable_unaudited_hdwallet_features()
    deployer, treasury, slasher, operator, consumer, payout = (accounts[i] for i in range(6))
    consumer_key = Account.from_mnemonic(mnemonic, account_path="m/44'/60'/0'/0/4").key.hex()
    assert Account.from_key(consumer_key).address == consumer.address, (
        "mnemonic does not match Ganache's accounts"
    )

    params = load_params("local")
    params.update(treasury=treasury.address, slasher=slasher.address)
    system = deploy_system(deployer, params, manifest_path=None)

    stake = params["minStakePerNode"]
    system.token.transfer(operator, stake, {"from": deployer})
    system.token.approve(system.staking, stake, {"from": operator})
    system.staking.stake(stake, {"from": operator})
    key = node_key("ganache-smoke")
    register_node(system, operator, key, payout.address, chain_id)

    deposit = 5 * 10**6
    system.payment_token.mint(consumer, deposit, {"from": consumer})
    system.payment_token.approve(system.escrow, deposit, {"from": consumer})
    system.escrow.deposit(deposit, {"from": consumer})

    receipt = Receipt(
        consumer=consumer.address,
        node=key.address,
        session_id=bytes(range(32)),
        cumulative_bytes=3 * 2**30,
        cumulative_amount=3 * 10**6,
        latency_ms=40,
        issued_at=web3.eth.get_block("latest")["timestamp"],
    )
    signature = sign_receipt(receipt, consumer_key, chain_id, system.settlement.address)
    # The client's signer and eth-account agree byte for byte (RFC 6979 signatures are deterministic).
    assert signature == sign_receipt_eth_account(receipt, consumer_key, chain_id, system.settlement.address)
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **RECEIPT_TYPES,
        },
        "primaryType": "Receipt",
        "domain": receipt_domain(chain_id, system.settlement.address),
        "message": receipt.as_message(),
    }
    signable = encode_typed_data(full_message=typed)
    expected_digest = "0x" + keccak(b"\x19\x01" + signable.header + signable.body).hex()

    tx = system.settlement.settle(receipt.as_tuple(), signature, {"from": deployer})
    event = tx.events["ReceiptSettled"]
    settled_amount, settled_bytes = system.settlement.channelOf(consumer, key.address)
    return {
        "chainId": int(web3.eth.chain_id),
        "clientVersion": web3.client_version,
        "txStatus": int(tx.status),
        "txGasPrice": int(tx.gas_price),
        "gasUsed": int(tx.gas_used),
        "paid": int(event["paid"]),
        "fee": int(event["fee"]),
        "eventDigest": _hex(event["digest"]),
        "contractDigest": _hex(system.settlement.hashReceipt(receipt.as_tuple())),
        "expectedDigest": expected_digest,
        "settledAmount": int(settled_amount),
        "settledBytes": int(settled_bytes),
        "nodeCredit": int(system.escrow.creditOf(key.address)),
        "accruedFees": int(system.escrow.accruedFees()),
        "consumerAvailable": int(system.escrow.availableOf(consumer)),
        "escrowBalance": int(system.payment_token.balanceOf(system.escrow)),
        "cumulativeAmount": receipt.cumulative_amount,
        "cumulativeBytes": receipt.cumulative_bytes,
        "deposit": deposit,
        "feeBps": int(system.settlement.feeBps()),
    }


if __name__ == "__main__":
    url, chain, words = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    result = main(url, chain, words)
    print(RESULT_PREFIX + json.dumps(result, sort_keys=True), flush=True)
