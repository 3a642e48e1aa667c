"""``scripts/deploy.py`` as a real process against chains of our own (free ports, never 8545).

- Ganache 7 (shanghai) as the alternative local chain.
- kill -9 half-way through a deploy, then resume: recorded contracts are reused, not redeployed.
- An Anvil started with chain id 11155111 as a stand-in testnet: keystore deployer, EIP-1559 fees, a
  confirmation depth, the dry-run plan, and no secret in any output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from nodeclient.abi import load_abi
from nodeclient.deployment import load_manifest
from nodeclient.errors import EXIT_CHAIN, EXIT_NOT_FOUND, EXIT_REFUSED
from nodeclient.keys import KeyManager, Secret
from tests.deploy.conftest import DEPLOY_SCRIPT, ROOT, last_json, run_deploy_script, web3_at

GWEI = 10**9
SEPOLIA = 11155111


def deployed_code_everywhere(w3, manifest: dict) -> bool:
    return all(w3.eth.get_code(address) != b"" for address in manifest["contracts"].values())


def has_role(w3, manifest: dict, contract: str, role: str, account: str) -> bool:
    abi = load_abi(contract)
    c = w3.eth.contract(address=manifest["contracts"][contract], abi=abi)
    role_id = b"\x00" * 32 if role == "DEFAULT_ADMIN_ROLE" else w3.keccak(text=role)
    return c.functions.hasRole(role_id, account).call()


def test_deploys_on_ganache(start_chain, tmp_path):
    chain = start_chain("ganache", kind="ganache", chain_id=1337)
    result = run_deploy_script(
        ["local", "--rpc-url", chain.url, "--manifest-dir", str(tmp_path / "deployments"), "--json"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = last_json(result.stdout)
    manifest = load_manifest(out["manifestPath"], expected_chain_id=1337)
    assert Path(out["manifestPath"]) == tmp_path / "deployments" / "1337.json"
    w3 = web3_at(chain.url)
    assert deployed_code_everywhere(w3, out["manifest"])
    assert manifest.deployer == w3.eth.accounts[0]
    assert has_role(w3, out["manifest"], "KuotaToken", "MINTER_ROLE", manifest.address("RewardPool"))
    assert has_role(w3, out["manifest"], "PaymentEscrow", "SETTLEMENT_ROLE", manifest.address("ReceiptSettlement"))
    assert out["transactions"] == 13
    # The deploy transactions were EIP-1559 transactions on Ganache too.
    tx = w3.eth.get_transaction(out["manifest"]["deployTransactions"]["KuotaToken"])
    assert tx["type"] == 2


def test_kill_9_half_way_then_resume_reuses_what_was_deployed(start_chain, tmp_path):
    chain = start_chain("anvil")
    manifest_dir = tmp_path / "deployments"
    path = manifest_dir / "31337.json"
    args = ["local", "--rpc-url", chain.url, "--manifest-dir", str(manifest_dir)]
    proc = subprocess.Popen(
        [sys.executable, str(DEPLOY_SCRIPT), *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    recorded: dict[str, str] = {}
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                recorded = json.loads(path.read_text())["contracts"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                recorded = {}
            if len(recorded) >= 3:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the deploy finished before it could be interrupted"
    # The manifest on disk is whole (written by rename) and unfinished.
    partial = json.loads(path.read_text())
    assert partial["complete"] is False
    recorded = partial["contracts"]
    assert len(recorded) >= 3

    w3 = web3_at(chain.url)
    nonce_before = w3.eth.get_transaction_count(w3.eth.accounts[0])
    resumed = run_deploy_script([*args, "--json"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = last_json(resumed.stdout)
    for name, address in recorded.items():
        assert out["manifest"]["contracts"][name] == address
    # Every constructor the resumed run sent was for a contract the manifest did not have.
    created = [
        w3.eth.get_transaction_receipt(txid)["contractAddress"]
        for name, txid in out["manifest"]["deployTransactions"].items()
        if name not in recorded
    ]
    assert len(created) == 7 - len(recorded)
    assert w3.eth.get_transaction_count(w3.eth.accounts[0]) - nonce_before == out["transactions"]
    assert load_manifest(path).complete

    again = run_deploy_script([*args, "--json"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert last_json(again.stdout)["transactions"] == 0
    assert w3.eth.get_transaction_count(w3.eth.accounts[0]) - nonce_before == out["transactions"]


# --- stand-in testnet --------------------------------------------------------------------------

PASSWORD = "correct horse battery staple 42"


class _BrownieLiveArtifacts:
    """Brownie records contracts deployed on live networks in build/deployments/<chainid>/; the
    stand-in testnet's chain disappears after the test, so its records are removed again."""

    def __init__(self, chain_id: int) -> None:
        self.folder = ROOT / "build" / "deployments" / str(chain_id)
        self.map_path = ROOT / "build" / "deployments" / "map.json"
        self.key = str(chain_id)
        self.before = set(self.folder.glob("*.json")) if self.folder.is_dir() else set()

    def remove_new(self) -> None:
        if self.folder.is_dir():
            for path in set(self.folder.glob("*.json")) - self.before:
                path.unlink(missing_ok=True)
        if not self.before and self.map_path.is_file():
            data = json.loads(self.map_path.read_text())
            if data.pop(self.key, None) is not None:
                self.map_path.write_text(json.dumps(data, indent=2, sort_keys=True))


@pytest.fixture
def testnet(start_chain, tmp_path):
    """Anvil as chain 11155111 mining a block a second, a funded keystore deployer, and a stablecoin."""
    chain = start_chain("sepolia", chain_id=SEPOLIA, block_time=1)
    w3 = web3_at(chain.url)
    keys = KeyManager(tmp_path / "keys", kdf_iterations=2)
    account = Account.create()
    info = keys.import_private_key("deployer", Secret(account.key.hex()), Secret(PASSWORD))
    password_file = tmp_path / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    funder = w3.eth.accounts[0]
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": funder, "to": info.address, "value": 10 * 10**18}), timeout=30
    )
    # "An existing ERC20" on the testnet: a MockUSD deployed by someone else, from the build artifact.
    artifact = json.loads((ROOT / "build" / "contracts" / "MockUSD.json").read_text())
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": funder}), timeout=30)
    params = json.loads((ROOT / "scripts" / "params" / "testnet.template.json").read_text())
    params.update({"paymentToken": receipt["contractAddress"], "epochLength": 3600})
    params_file = tmp_path / "sepolia.json"
    params_file.write_text(json.dumps(params))
    artifacts = _BrownieLiveArtifacts(SEPOLIA)
    yield {
        "chain": chain,
        "w3": w3,
        "keystore": info.path,
        "address": info.address,
        "key": account.key.hex(),
        "password_file": password_file,
        "params_file": params_file,
        "payment_token": receipt["contractAddress"],
        "manifest_dir": tmp_path / "deployments",
    }
    artifacts.remove_new()


def live_args(t: dict, command: str = "live") -> list[str]:
    return [
        command,
        "--rpc-url", t["chain"].url,
        "--chain-id", str(SEPOLIA),
        "--params", str(t["params_file"]),
        "--keystore", str(t["keystore"]),
        "--password-file", str(t["password_file"]),
        "--priority-fee-gwei", "2",
        "--max-fee-gwei", "40",
        "--confirmations", "2",
        "--manifest-dir", str(t["manifest_dir"]),
    ]


def assert_no_secret(t: dict, *outputs: str) -> None:
    key = t["key"].removeprefix("0x")
    for text in outputs:
        assert PASSWORD not in text
        assert key.lower() not in text.lower()


def test_plan_then_live_deploy_on_a_stand_in_testnet(testnet):
    t = testnet
    w3 = t["w3"]

    plan = run_deploy_script([*live_args(t, "plan"), "--json"])
    assert plan.returncode == 0, plan.stderr[-3000:]
    planned = last_json(plan.stdout)
    # The plan ran on a fork: nothing reached the target chain.
    assert w3.eth.get_transaction_count(t["address"]) == 0
    assert planned["deployer"] == t["address"]
    steps = [tx["step"] for tx in planned["transactions"]]
    assert "KuotaToken.constructor" in steps and "MockUSD.constructor" not in steps
    assert len(steps) == 6 + 1 + 7 - 2  # 6 contracts, setRegistry, 7 grants minus the 2 PAUSER the constructors gave
    assert planned["totalGas"] == sum(tx["gasUsed"] for tx in planned["transactions"]) > 1_000_000
    assert planned["maxCostWei"] == planned["totalGas"] * 40 * GWEI
    assert planned["enoughFunds"] is True

    live = run_deploy_script([*live_args(t), "--yes", "--json"])
    assert live.returncode == 0, live.stderr[-3000:]
    out = last_json(live.stdout)
    manifest = out["manifest"]
    assert out["manifestPath"] == str(t["manifest_dir"] / f"{SEPOLIA}.json")
    assert manifest["chainId"] == SEPOLIA and manifest["deployer"] == t["address"]
    assert manifest["contracts"]["PaymentToken"] == t["payment_token"]
    assert load_manifest(out["manifestPath"], expected_chain_id=SEPOLIA).complete
    # The plan's gas matches what the real deploy used, transaction for transaction.
    assert out["gasUsed"] == planned["totalGas"]
    # Every transaction the deployer sent was EIP-1559 with the requested fees.
    assert out["transactions"] == w3.eth.get_transaction_count(t["address"]) == len(steps)
    last_block = 0
    for txid in manifest["deployTransactions"].values():
        tx = w3.eth.get_transaction(txid)
        assert tx["type"] == 2
        assert tx["maxPriorityFeePerGas"] == 2 * GWEI
        assert tx["maxFeePerGas"] == 40 * GWEI
        last_block = max(last_block, tx["blockNumber"])
    # The script returned only once its last transaction had 2 confirmations.
    assert w3.eth.block_number >= last_block + 1
    assert has_role(w3, manifest, "ReceiptSettlement", "DEFAULT_ADMIN_ROLE", t["address"])
    assert_no_secret(t, plan.stdout, plan.stderr, live.stdout, live.stderr)

    # Re-running the finished deploy sends nothing; the plan says there is nothing to do.
    again = run_deploy_script([*live_args(t), "--yes", "--json"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert last_json(again.stdout)["transactions"] == 0
    replan = run_deploy_script([*live_args(t, "plan"), "--json"])
    assert replan.returncode == 0, replan.stderr[-3000:]
    assert last_json(replan.stdout)["transactions"] == []
    assert w3.eth.get_transaction_count(t["address"]) == len(steps)


def test_live_refuses_bad_inputs_clearly_and_leaks_nothing(testnet, tmp_path):
    t = testnet
    wrong_password = tmp_path / "wrong.txt"
    wrong_password.write_text("not the password at all\n")
    cases = [
        (["--password-file", str(wrong_password)], 2, "wrong password"),
        (["--chain-id", "5"], EXIT_CHAIN, "is chain 11155111, not the expected chain 5"),
        (["--keystore", str(tmp_path / "missing.json")], EXIT_NOT_FOUND, "no keystore for file"),
        (["--priority-fee-gwei", "abc"], 2, "--priority-fee-gwei must be a number of gwei, got 'abc'"),
        (["--max-fee-gwei", "1", "--priority-fee-gwei", "2"], 2, "is below the priority fee"),
        (["--confirmations", "0"], 2, "must be between 1 and 64, got 0"),
        (["--rpc-url", "http://127.0.0.1:9"], EXIT_CHAIN, "http://127.0.0.1:9"),
        (["--params", str(tmp_path / "nope.json")], 2, "nope.json does not exist"),
    ]
    for extra, code, message in cases:
        args = [*live_args(t), "--yes", *extra]
        result = run_deploy_script(args, timeout=120)
        assert result.returncode == code, (extra, result.returncode, result.stderr[-2000:])
        assert message in result.stderr, (extra, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
        assert_no_secret(t, result.stdout, result.stderr)
    # Without --yes and without a terminal, a live deploy refuses rather than spend gas silently.
    unconfirmed = run_deploy_script(live_args(t), timeout=120)
    assert unconfirmed.returncode == EXIT_REFUSED
    assert "pass --yes" in unconfirmed.stderr
    # A mock payment token on a non-local chain needs an explicit opt-in.
    params = json.loads(t["params_file"].read_text())
    t["params_file"].write_text(json.dumps({**params, "paymentToken": None}))
    mock = run_deploy_script([*live_args(t), "--yes"], timeout=120)
    assert mock.returncode == 2 and "--allow-mock-payment-token" in mock.stderr
    assert t["w3"].eth.get_transaction_count(t["address"]) == 0


def test_kuota_chain_up_deploy_fund_advance(tmp_path):
    """The local workflow of docs/DEPLOY.md through the installed `kuota` command."""
    kuota = str(Path(sys.executable).with_name("kuota"))
    env = {**os.environ, "KUOTA_HOME": str(tmp_path / "home")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([kuota, *args], env=env, capture_output=True, text=True, timeout=300, check=False)

    up = run("chain", "up", "--json")
    assert up.returncode == 0, up.stderr
    try:
        # Before a deploy the faucet has no tokens to give, and says so.
        early = run("chain", "fund", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "--usd", "1")
        assert early.returncode == 3 and "run `kuota deploy local` first" in early.stderr

        deployed = run("deploy", "local", "--json")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        out = last_json(deployed.stdout)
        assert out["manifestPath"] == str(tmp_path / "home" / "deployments" / "31337.json")
        status = json.loads(run("chain", "status", "--json").stdout)
        assert status["manifest"] == out["manifestPath"]

        target = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        funded = run("chain", "fund", target, "--eth", "0.5", "--usd", "12.5", "--kuota", "100", "--json")
        assert funded.returncode == 0, funded.stderr
        balances = json.loads(funded.stdout)["balances"]
        assert balances["usd"] == 12_500_000 and balances["kuota"] == 100 * 10**18
        for bad, message in [
            (["0xbad", "--eth", "1"], "is not a checksummed address"),
            ([target, "--usd", "0.0000001"], "has more than 6 decimals"),
            ([target, "--eth", "-1"], "must be a non-negative amount"),
        ]:
            result = run("chain", "fund", *bad)
            assert result.returncode == 2 and message in result.stderr, result.stderr

        w3 = web3_at(status["url"])
        abi = load_abi("RewardPool")
        pool = w3.eth.contract(address=out["manifest"]["contracts"]["RewardPool"], abi=abi)
        before = pool.functions.currentEpoch().call()
        moved = json.loads(run("chain", "advance", "--next-epoch", "--json").stdout)
        assert pool.functions.currentEpoch().call() == before + 1 == moved["epoch"]
        genesis, length = pool.functions.genesis().call(), pool.functions.epochLength().call()
        assert moved["timestamp"] == genesis + moved["epoch"] * length + 1
        jumped = json.loads(run("chain", "advance", "600", "--json").stdout)
        assert jumped["timestamp"] - jumped["previous"] >= 600
    finally:
        down = run("chain", "down")
    assert down.returncode == 0 and "stopped anvil" in down.stdout
