"""The chain client's transaction machinery on a real Anvil: fee-bump replacement at the same nonce,
a journal that survives a killed process, gas funds checks and decoded reverts."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import threading
import time

import pytest
from eth_account import Account

from nodeclient.chain import ChainClient, ContractRevertError, NotEnoughGasFundsError
from nodeclient.config import NetworkProfile
from nodeclient.keys import KeyManager, Secret
from tests.client.conftest import PASSWORD


def client_for(k, **profile) -> ChainClient:
    prof = NetworkProfile(name="test", rpc_url=k.rpc_url, chain_id=k.chain_id, manifest=k.manifest, **profile)
    return ChainClient.connect(prof, k.home / "data")


def unlock(k, alias: str):
    keys = KeyManager(k.home / "data")
    return keys.unlock(keys.find(alias), Secret(PASSWORD))


def set_automine(client: ChainClient, on: bool) -> None:
    client.w3.provider.make_request("evm_setAutomine", [on])


def test_stuck_transaction_is_replaced_at_the_same_nonce_with_a_fee_bump(fresh):
    k = fresh
    client = client_for(k, stuck_after=1.0, tx_timeout=60, fee_bump_percent=12)
    signer = unlock(k, "operator")
    token = client.contract("KuotaToken")
    staking = client.deployment.address("Staking")
    nonce_before = client.w3.eth.get_transaction_count(signer.address)
    signed: list[tuple[str, int]] = []
    outcome: dict = {}

    def send():
        try:
            outcome["result"] = client.transact(
                signer, token.functions.approve(staking, 123), "approve for the test", on_signed=lambda h, n: signed.append((h, n))
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    set_automine(client, False)
    try:
        thread = threading.Thread(target=send)
        thread.start()
        deadline = time.monotonic() + 30
        while len(signed) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(signed) >= 2, "no replacement was signed for a stuck transaction"
        client.w3.provider.make_request("evm_mine", [])
    finally:
        set_automine(client, True)
    thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert {n for _, n in signed} == {nonce_before}, "a replacement used another nonce"
    assert result.nonce == nonce_before and result.replacements >= 1
    assert client.w3.eth.get_transaction_count(signer.address) == nonce_before + 1
    assert token.functions.allowance(signer.address, staking).call() == 123
    group = client.journal.group(client.chain_id, signer.address, nonce_before)
    assert [r.status for r in group].count("mined") == 1
    assert all(r.status in ("mined", "replaced") for r in group)
    for old, new in itertools.pairwise(group):
        assert new.max_fee * 100 >= old.max_fee * 110 and new.priority_fee * 100 >= old.priority_fee * 110
    mined = next(r for r in group if r.status == "mined")
    assert mined.tx_hash == result.tx_hash


def test_journal_survives_a_killed_process_and_the_nonce_is_reused_once(fresh):
    k = fresh
    client = client_for(k)
    operator = k.addresses["operator"]
    bonded_before = client.contract("Staking").functions.bondedOf(operator).call()
    nonce_before = client.w3.eth.get_transaction_count(operator)
    set_automine(client, False)
    try:
        # Nothing mines while automine is off: the command waits on its approve until it is killed.
        proc = k.subprocess_popen("stake", "add", "7", "--account", "operator", *k.pw(), "--yes")
        journal = k.home / "data" / "txjournal.sqlite"
        deadline = time.monotonic() + 60
        rows = []
        while time.monotonic() < deadline and not rows:
            time.sleep(0.2)
            if journal.exists():
                try:
                    with sqlite3.connect(journal) as db:
                        rows = db.execute("SELECT tx_hash, nonce, status FROM txs WHERE nonce = ?", (nonce_before,)).fetchall()
                except sqlite3.OperationalError:
                    continue  # the file exists a moment before its schema does
        assert rows, "the approve transaction was never journaled"
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        set_automine(client, True)
        client.w3.provider.make_request("evm_mine", [])  # the killed run's broadcast approve, if any
    # A new process (same data dir) resumes the journaled approve at its nonce, then stakes.
    result = k.run("stake", "add", "7", "--account", "operator", *k.pw(), "--yes", "--json")
    assert result.exit_code == 0, result.output
    staking = client.contract("Staking")
    # The killed run's approve (7) was finished at its own nonce, not re-sent; this run staked 7 once.
    assert staking.functions.bondedOf(operator).call() == bonded_before + 7 * 10**18
    group = client.journal.group(client.chain_id, operator, nonce_before)
    assert [r.status for r in group].count("mined") == 1
    nonces = sorted(r.nonce for r in client.journal.records(client.chain_id, sender=operator) if r.status == "mined")
    assert nonces == list(range(nonces[0], nonces[0] + len(nonces))), "nonces must be consecutive with no gap or reuse"


def test_no_gas_funds_is_an_insufficient_funds_error(fresh, tmp_path):
    k = fresh
    client = client_for(k)
    keys = KeyManager(tmp_path, kdf_iterations=2**10)
    fresh = Account.create()
    info = keys.import_private_key("poor", Secret(fresh.key.hex()), Secret(PASSWORD))
    signer = keys.unlock(info, Secret(PASSWORD))
    call = client.contract("KuotaToken").functions.approve(client.deployment.address("Staking"), 1)
    with pytest.raises(NotEnoughGasFundsError) as caught:
        client.transact(signer, call, "approve from an empty account")
    assert caught.value.exit_code == 5 and fresh.address in str(caught.value)
    assert client.w3.eth.get_transaction_count(fresh.address) == 0


def test_revert_is_decoded_with_names_and_values(fresh):
    k = fresh
    client = client_for(k)
    signer = unlock(k, "operator")
    with pytest.raises(ContractRevertError) as caught:
        client.transact(signer, client.contract("Staking").functions.withdraw(), "withdraw")
    assert caught.value.error is not None
    assert str(caught.value.error) == f"StakingNothingToWithdraw(operator={signer.address})"
    assert caught.value.exit_code == 4
    zero = client.contract("Staking").functions.stake(0)
    with pytest.raises(ContractRevertError) as caught:
        client.estimate(signer.address, zero, "stake 0")
    assert caught.value.error.name == "StakingZeroAmount"
    assert json.dumps(caught.value.error.to_json())


def test_waits_for_the_profile_confirmation_depth(fresh):
    k = fresh
    client = client_for(k, confirmations=3, tx_timeout=60)
    signer = unlock(k, "operator")
    stop = threading.Event()

    def miner():
        while not stop.wait(0.3):
            client.w3.provider.make_request("evm_mine", [])

    thread = threading.Thread(target=miner, daemon=True)
    thread.start()
    try:
        result = client.transact(signer, client.contract("KuotaToken").functions.approve(signer.address, 1), "approve")
        depth_at_return = client.w3.eth.block_number - result.block_number + 1
    finally:
        stop.set()
        thread.join(timeout=5)
    assert depth_at_return >= 3


class _FlakyProxy:
    """A loopback HTTP proxy to the test Anvil that answers 503 to the first ``failures`` requests."""

    def __init__(self, target: str, failures: int) -> None:
        import http.server
        import urllib.request

        proxy = self
        self.failures = failures
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.requests += 1
                if proxy.requests <= proxy.failures:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                request = urllib.request.Request(target, data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    data = response.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_transient_rpc_faults_are_retried_with_a_bound(fresh):
    k = fresh
    flaky = _FlakyProxy(k.rpc_url, failures=2)
    try:
        profile = NetworkProfile(name="t", rpc_url=flaky.url, chain_id=k.chain_id, manifest=k.manifest, rpc_retries=3)
        client = ChainClient.connect(profile, k.home / "data")  # two 503s, then it answers
        assert client.block_number() > 0 and flaky.requests > 2
    finally:
        flaky.close()
    down = _FlakyProxy(k.rpc_url, failures=10**9)
    try:
        profile = NetworkProfile(name="t", rpc_url=down.url, chain_id=k.chain_id, manifest=k.manifest, rpc_retries=3)
        started = time.monotonic()
        from nodeclient.chain import ChainUnreachableError

        with pytest.raises(ChainUnreachableError) as caught:
            ChainClient.connect(profile, k.home / "data")
        assert caught.value.exit_code == 4 and down.url in str(caught.value)
        assert down.requests == 4, "one try plus exactly rpc_retries retries"
        assert time.monotonic() - started < 15
    finally:
        down.close()


def test_reorged_out_transaction_is_resent_at_the_same_nonce_and_counts_once(fresh):
    """A tx mined then removed by a reorg before reaching the confirmation depth is not reported
    confirmed; the client re-sends it at the same nonce, and its effect happens exactly once."""
    k = fresh
    client = client_for(k, confirmations=5, stuck_after=1.0, tx_timeout=90)
    signer = unlock(k, "operator")
    token = client.contract("KuotaToken")
    payout = k.addresses["payout"]
    balance_before = token.functions.balanceOf(payout).call()
    nonce = client.w3.eth.get_transaction_count(signer.address)
    hashes: list[str] = []
    outcome: dict = {}
    stop = threading.Event()

    def miner():
        while not stop.wait(0.5):
            client.w3.provider.make_request("evm_mine", [])

    def send():
        try:
            outcome["result"] = client.transact(signer, token.functions.transfer(payout, 10**18), "transfer 1 KUOTA",
                                                on_signed=lambda h, n: hashes.append(h))
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 30
    first_block = None
    while time.monotonic() < deadline and first_block is None:
        if hashes:
            receipt = client.receipt_of(hashes[0])
            first_block = None if receipt is None else int(receipt["blockNumber"])
        time.sleep(0.05)
    assert first_block is not None, "the first transaction was never mined"
    depth = client.w3.eth.block_number - first_block + 1
    assert depth < 5, "the reorg must come before the confirmation depth"
    client.w3.provider.make_request("anvil_reorg", [depth, []])
    assert client.receipt_of(hashes[0]) is None and client.w3.eth.get_transaction_count(signer.address) == nonce
    mining = threading.Thread(target=miner, daemon=True)
    mining.start()
    try:
        sender.join(timeout=90)
    finally:
        stop.set()
        mining.join(timeout=5)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.nonce == nonce and len(hashes) >= 2 and result.tx_hash != hashes[0]
    assert client.w3.eth.get_transaction_count(signer.address) == nonce + 1
    assert token.functions.balanceOf(payout).call() == balance_before + 10**18  # once, not twice


def test_a_rerun_after_a_lost_answer_reports_the_mined_transaction_instead_of_sending_again(fresh):
    """The node mines the approve but the answer to eth_sendRawTransaction is lost: the command ends
    with a clean error; the same call from a new client (the rerun) finds the journaled transaction
    mined and returns it, and no second transaction is sent."""
    from nodeclient.chain import ChainUnreachableError
    from tests.faults.proxy import Fault, FaultProxy

    k = fresh
    signer = unlock(k, "operator")
    with FaultProxy(k.rpc_url, hold=0) as proxy:
        profile = NetworkProfile(name="t", rpc_url=proxy.url, chain_id=k.chain_id, manifest=k.manifest, rpc_retries=0)
        client = ChainClient.connect(profile, k.home / "data")
        token = client.contract("KuotaToken")
        staking = client.deployment.address("Staking")
        nonce_before = client.w3.eth.get_transaction_count(signer.address)
        proxy.arm(Fault("eth_sendRawTransaction", "drop"))
        with pytest.raises(ChainUnreachableError):
            client.transact(signer, token.functions.approve(staking, 4321), "approve for the rerun test")
        assert proxy.injected["drop"] == 1
    rerun = client_for(k)
    assert rerun.w3.eth.get_transaction_count(signer.address) == nonce_before + 1, "the dropped answer's tx was mined"
    result = rerun.transact(signer, rerun.contract("KuotaToken").functions.approve(staking, 4321), "approve again")
    assert result.nonce == nonce_before
    assert rerun.w3.eth.get_transaction_count(signer.address) == nonce_before + 1, "the rerun sent a second transaction"
    assert [r.status for r in rerun.journal.group(rerun.chain_id, signer.address, nonce_before)] == ["mined"]
    # The recovered answer is used once: the same call again is a new transaction.
    again = rerun.transact(signer, rerun.contract("KuotaToken").functions.approve(staking, 4321), "approve a third time")
    assert again.nonce == nonce_before + 1


def test_requests_that_act_each_time_are_never_resent_after_a_fault(fresh):
    """evm_mine mines a block per call: a 503 after forwarding must not make the client send it again,
    while a read behind the same fault is retried."""
    import requests

    from nodeclient.chain.rpc import connect
    from tests.faults.proxy import Fault, FaultProxy

    k = fresh
    with FaultProxy(k.rpc_url, hold=0) as proxy:
        w3 = connect(proxy.url, timeout=5, retries=3, backoff=0.01)
        head = w3.eth.block_number
        proxy.arm(Fault("evm_mine", "drop"))
        with pytest.raises(requests.ConnectionError):
            w3.provider.make_request("evm_mine", [])
        assert proxy.calls["evm_mine"] == 1, "evm_mine was resent"
        proxy.arm(Fault("eth_blockNumber", "http503"))
        assert w3.eth.block_number == head + 1, "the read was not retried (or the block was mined twice)"
        assert proxy.calls["eth_blockNumber"] == 2
