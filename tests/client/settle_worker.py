"""Crash-trial zygote for the settle path: forks one worker per trial so each can be SIGKILLed.

Started once per test (``python tests/client/settle_worker.py``); it imports the client, then for
each JSON command line on stdin forks a child, prints ``PID <pid>``, waits for it and prints
``EXIT <status>``. It never connects to the chain itself, so children start with no shared
sockets or database handles.

A child stores the trial's receipts (logging ``ACK <digest>`` to its log file only after
``ReceiptStore.accept`` returned: that is the acknowledgement) and then runs the real settle path
(:func:`nodeclient.settlement.settle_node`: reconcile → plan → settleMany → record outcomes),
logging ``SETTLE`` before and ``DONE`` after. Log lines are written with ``os.write`` on an
``O_APPEND`` file: they survive the SIGKILL of the writer.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nodeclient.chain import ChainClient
from nodeclient.config import NetworkProfile, PolicySettings
from nodeclient.keys import KeyManager, Secret
from nodeclient.receipts import load_receipts
from nodeclient.settlement import deployment_domain, open_store, reconcile, settle_node


def run_trial(command: dict) -> None:
    """One trial: accept the receipts file, then settle the node (forced: the policy is tested elsewhere)."""
    log = os.open(command["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def say(line: str) -> None:
        os.write(log, (line + "\n").encode())

    profile = NetworkProfile(
        name="crash", rpc_url=command["rpc_url"], chain_id=command["chain_id"], manifest=Path(command["manifest"]),
        confirmations=1, stuck_after=5, tx_timeout=60,
    )
    data_dir = Path(command["data_dir"])
    client = ChainClient.connect(profile, data_dir, verify=False)
    keys = KeyManager(data_dir)
    signer = keys.unlock(keys.find("operator"), Secret(command["password"]))
    store = open_store(client)
    domain = deployment_domain(client)
    say("START")
    if command.get("receipts"):
        for receipt in load_receipts(command["receipts"]):
            stored = store.accept(receipt, expected_domain=domain, expected_node=command["node"])
            say(f"ACK {stored.digest_hex}")
    say("SETTLE")
    # Reconcile first on its own so the log records what a restart found, even if this run is killed later.
    say("RECONCILED " + json.dumps(reconcile(client, store, signer).to_json()))
    settle_node(client, store, signer, command["node"], PolicySettings(), force=True)
    say("DONE")
    store.close()


def main() -> None:
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_trial(command)
            except BaseException as exc:  # noqa: BLE001 - report and exit non-zero; the test decides
                sys.stderr.write(f"trial error: {type(exc).__name__}: {exc}\n")
                sys.stderr.flush()
                code = 3
            os._exit(code)
        sys.stdout.write(f"PID {pid}\n")
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"EXIT {status}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
