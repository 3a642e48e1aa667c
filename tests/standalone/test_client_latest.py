"""The client alone (no Brownie in the process) against the deployed system: connect, read, sign,
send, settle, and the committed receipt vectors. Run by ``tools/client_latest.sh`` with the newest
web3 and eth-account, which the Brownie-pinned dev venv cannot install."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

from nodeclient.receipts import Receipt, receipt_digest, receipt_domain, recover_signer, sign_receipt

CHECKOUT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((CHECKOUT / "tests" / "vectors" / "receipts.json").read_text())


def test_brownie_is_not_in_this_process():
    assert "brownie" not in sys.modules
    assert importlib.metadata.version("web3")  # the installed distribution, whichever version it is


def test_the_installed_package_ships_its_abis_and_type_marker():
    """package-data of pyproject.toml: the client reads its ABIs from the package, never from build/."""
    import nodeclient
    from nodeclient.abi import load_abi

    installed = Path(nodeclient.__file__).resolve().parent
    assert installed != CHECKOUT / "nodeclient" and "site-packages" in installed.parts  # installed, not the sources
    assert (installed / "py.typed").is_file()
    shipped = sorted(p.name for p in (installed / "abi").glob("*.json"))
    assert shipped == sorted(p.name for p in (CHECKOUT / "nodeclient" / "abi").glob("*.json"))
    assert any(item.get("name") == "settle" for item in load_abi("ReceiptSettlement"))


def test_receipt_vectors_sign_and_recover_as_committed():
    """RFC 6979 signing with the installed eth-account gives the committed bytes."""
    for vector in VECTORS["vectors"]:
        d = VECTORS["domains"][vector["domain"]]
        domain = receipt_domain(d["chainId"], d["verifyingContract"])
        key = VECTORS["keys"][vector["key"]]
        receipt = Receipt.model_validate(vector["receipt"])
        digest = receipt_digest(receipt, domain)
        assert digest.hex() == vector["digest"][2:], vector["name"]
        assert sign_receipt(receipt, key["privateKey"], domain).signature == vector["signature"], vector["name"]
        assert recover_signer(digest, vector["signature"]) == key["address"], vector["name"]


def test_chain_status_reads_the_deployed_system(k):
    status = k.ok("chain", "status", "--json")
    assert status["chainId"] == 31337 and status["running"] is True


def test_stake_register_deposit_sign_and_settle(k, tmp_path):
    """Every signed transaction goes through web3's signing and sending of the installed version."""
    operator, consumer, node = k.addresses["operator"], k.addresses["consumer"], k.addresses["node"]
    k.ok("account", "transfer", "KUOTA", operator, "2000", "--account", "deployer", *k.pw(), "--yes")
    k.ok("account", "faucet", "10", "--account", "consumer", *k.pw(), "--yes")
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    assert k.ok("stake", "show", "--account", "operator", "--json")["bonded"] == 1000 * 10**18
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1", "--capacity", "1",
         "--region", "x", *k.pw(), "--yes")
    k.ok("escrow", "deposit", "5", "--account", "consumer", *k.pw(), "--yes")
    receipts = tmp_path / "r.jsonl"
    k.ok("receipts", "sign", "--node", node, "--amount", "3", "--bytes", "3000", "--out", str(receipts),
         "--account", "consumer", *k.pw())
    k.ok("receipts", "import", str(receipts), "--node", node)
    settled = k.ok("receipts", "settle", "--force", "--account", "operator", *k.pw(), "--yes", "--json")["nodes"][0]
    assert settled["result"]["paid"] == 3_000_000
    assert k.ok("escrow", "show", consumer, "--json")["available"] == 2_000_000
    assert k.ok("earnings", "--node", node, "--json")["totals"]["gross"] == 3_000_000


def test_audit_replays_the_history_consistent(k):
    """eth_getLogs, batched header reads and event decoding of the installed web3 (runs after the flow above)."""
    result = k.run("audit", "replay", "--confirmations", "0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the report is one indented object, not one line
    assert report["verdict"] == "consistent" and report["counts"]["settlements"] >= 1
