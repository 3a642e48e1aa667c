"""kill -9 the client at random points while it stores and settles receipts; restart; settle again.

Each trial signs fresh cumulative receipts for two channels (two consumers → one node), forks a
worker (``settle_worker.py``) that accepts them into the node's store and runs the real settle
path, and SIGKILLs it after a random delay drawn over the whole length of a trial. The next trial
starts from whatever the killed one left: its settle first reconciles open batches by transaction
hash and nonce. After all trials an unkilled run finishes the work, then:

- every receipt a worker acknowledged (``ACK``) is in the store — 0 acknowledged receipts lost;
- every receipt digest appears in at most one ``ReceiptSettled`` event and there is no
  ``ReceiptSkipped`` at all — no batch was ever re-sent under a new nonce (0 double settlements);
- on chain, Σ paid per channel = channelOf(...).settledAmount = the channel's latest stored cumulative amount
  (nothing overpaid, nothing forgotten), and the store's confirmed ledger agrees;
- the store's integrity check is clean and no batch is left open.

``KUOTA_SETTLE_CRASH_TRIALS`` sets the number of trials (default 60; the receipts suite runs its
own 260 store-level trials, so the whole suite exceeds 200).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from eth_account import Account
from web3 import Web3

from nodeclient.receipts import Receipt, ReceiptSigner, receipt_domain
from nodeclient.receipts.store import ReceiptStore
from nodeclient.settlement import store_path
from tests.client.conftest import PASSWORD
from tests.conftest import anvil_private_key

TRIALS = int(os.environ.get("KUOTA_SETTLE_CRASH_TRIALS", "60"))
WORKER = Path(__file__).with_name("settle_worker.py")


class Zygote:
    """The worker factory process; kills only the pids it reports for its own children."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1
        )

    def trial(self, command: dict, kill_after: float | None) -> tuple[bool, int]:
        """Run one worker; SIGKILL it after ``kill_after`` s (None: let it finish). Returns (killed, status)."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        pid = int(self.proc.stdout.readline().split()[1])
        if kill_after is not None:
            time.sleep(kill_after)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        status = int(self.proc.stdout.readline().split()[1])
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        return killed, status

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def test_kill_during_settle_never_loses_or_double_settles(funded, kuota, tmp_path):
    k = funded
    node = k.addresses["node"]
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1", "--capacity", "100",
         "--region", "test", *k.pw(), "--yes")
    for consumer in ("consumer", "consumer2"):
        k.ok("escrow", "deposit", "900", "--account", consumer, *k.pw(), "--yes")
    chain_id = k.chain_id
    domain = receipt_domain(chain_id, k.contracts["ReceiptSettlement"])
    signers = {
        role: ReceiptSigner(bytes(Account.from_key(anvil_private_key(idx)).key), domain)
        for role, idx in (("consumer", 5), ("consumer2", 6))
    }
    cumulative = {role: 0 for role in signers}
    session = "0x" + "11" * 32
    rng = random.Random(int(os.environ.get("KUOTA_CRASH_SEED", "20261123")))
    zygote = Zygote()
    acked: set[str] = set()
    killed_count = 0
    stages: Counter[str] = Counter()
    recovered: Counter[str] = Counter()  # open batches found by a restarted worker, by outcome
    durations: list[float] = [1.0]
    base = {
        "rpc_url": k.rpc_url, "chain_id": chain_id, "manifest": str(k.manifest), "data_dir": str(k.home / "data"),
        "password": PASSWORD, "node": node,
    }
    try:
        for trial in range(TRIALS):
            # 1-3 new receipts per channel per trial (intermediate ones go to the bundle).
            lines = []
            for role, signer in signers.items():
                for _ in range(rng.randint(1, 3)):
                    cumulative[role] += rng.randint(1, 50) * 10_000
                    receipt = Receipt(consumer=signer.address, node=node, session_id=session,
                                      cumulative_bytes=cumulative[role] * 1000, cumulative_amount=cumulative[role],
                                      latency_ms=rng.randint(10, 600), issued_at=1_700_000_000 + trial)
                    lines.append(signer.sign(receipt).to_json())
            receipts_file = tmp_path / f"r{trial}.jsonl"
            receipts_file.write_text("\n".join(lines) + "\n")
            log = tmp_path / f"log{trial}.txt"
            recent = sorted(durations[-5:])
            kill_after = rng.uniform(0.0, recent[len(recent) // 2]) if trial % 10 != 9 else None  # every 10th runs to completion
            started = time.monotonic()
            killed, status = zygote.trial({**base, "receipts": str(receipts_file), "log": str(log)}, kill_after)
            text = log.read_text() if log.exists() else ""
            acked.update(line.split()[1] for line in text.splitlines() if line.startswith("ACK "))
            for line in text.splitlines():
                if line.startswith("RECONCILED "):
                    for outcome, ids in json.loads(line.split(" ", 1)[1]).items():
                        recovered[outcome] += len(ids)
            last = text.strip().splitlines()[-1].split()[0] if text.strip() else "BEFORE-START"
            if killed:
                killed_count += 1
                stages[last] += 1
            else:
                assert status == 0, f"trial {trial} worker failed (status {status}); log: {text}"
                assert last == "DONE"
                durations.append(time.monotonic() - started)
                # A receipt file is stored all or nothing per receipt; an unkilled trial acked them all.
        # Restart without a kill: reconcile whatever the last kill left, settle the rest.
        log = tmp_path / "final.txt"
        killed, status = zygote.trial({**base, "receipts": None, "log": str(log)}, None)
        assert not killed and status == 0, log.read_text()
        for line in log.read_text().splitlines():
            if line.startswith("RECONCILED "):
                for outcome, ids in json.loads(line.split(" ", 1)[1]).items():
                    recovered[outcome] += len(ids)
    finally:
        zygote.close()

    print(f"\nsettle crash trials: {TRIALS}, killed {killed_count}, kill landed after stage: {dict(stages)}, "
          f"acked receipts {len(acked)}; open batches recovered after a kill: {dict(recovered)}")
    assert killed_count >= TRIALS // 2, "most trials must actually be killed mid-run"
    # After SETTLE/RECONCILED the worker is inside reconcile or settle_node (plan, bundle, sign, send, record).
    assert stages["SETTLE"] + stages["RECONCILED"] >= TRIALS // 4, "kills must land inside the settle path"
    assert recovered["confirmed"] + recovered["failed"] + recovered["skipped"] > 0, "no kill ever left a batch open"

    path = store_path(k.home / "data", chain_id, k.contracts["ReceiptSettlement"])
    store = ReceiptStore(path, domain=domain)
    try:
        print(f"store after the trials: {store.stats()}")
        assert store.integrity_problems() == []
        assert store.pending_batches() == []
        stored = {s.digest_hex for s in store.iter_receipts()}
        assert acked <= stored, f"{len(acked - stored)} acknowledged receipts lost"
        channels = {c.consumer: c for c in store.channels(node=node)}

        w3 = Web3(Web3.HTTPProvider(k.rpc_url))
        settlement = w3.eth.contract(address=k.contracts["ReceiptSettlement"], abi=kuota.settlement.abi)
        start = json.loads(k.manifest.read_text())["blockNumber"]
        settled_events = settlement.events.ReceiptSettled().get_logs(from_block=start, argument_filters={"node": node})
        skipped_events = settlement.events.ReceiptSkipped().get_logs(from_block=start, argument_filters={"node": node})
        digests = Counter("0x" + bytes(e["args"]["digest"]).hex() for e in settled_events)
        assert digests and max(digests.values()) == 1, "a receipt was settled twice"
        assert skipped_events == [], "a batch was re-sent with receipts already settled"
        for role, signer in signers.items():
            paid = sum(int(e["args"]["paid"]) for e in settled_events if e["args"]["consumer"] == signer.address)
            on_chain = kuota.settlement.channelOf(signer.address, node)[0]
            channel = channels[signer.address]
            latest = channel.latest.receipt.cumulative_amount  # the newest receipt stored (a killed trial may not have stored its last)
            assert paid == on_chain == latest > 0, (role, paid, on_chain, latest)
            assert channel.settled_amount == on_chain
    finally:
        store.close()
