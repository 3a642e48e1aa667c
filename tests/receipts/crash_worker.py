"""Crash-trial worker: a zygote process that forks one worker per trial, for `kill -9` tests.

Why a zygote: importing pydantic, coincurve and the store takes ~0.4 s, too slow for hundreds of
trials; forking an already-initialised process takes ~2 ms. The zygote itself never opens a store.

Protocol (one line each way, on the zygote's stdin/stdout):
  zygote → ``READY``
  test   → ``{"mode": "accept" | "batch" | "accept-ack-early", "db": path, "acks": path, "bundles": dir, "seed": int}``
  zygote → ``PID <pid>`` (the forked worker is running)
  test   → ``REAP`` (after killing the worker, or letting it finish)
  zygote → ``EXIT <pid> <raw wait status>``
The worker is reaped only on ``REAP``, so its pid cannot be recycled by another process before the
test's SIGKILL lands on it.

A worker appends one line to the ``acks`` file (O_APPEND, one write(2) per line) after each store
call returns, exactly where a relay would acknowledge or a settlement engine would move on:
``ACK <digest>`` after `accept`/`accept_many`, ``BEGUN <batch>``, ``SUBMITTED <batch> <tx>``,
``CONFIRMED <batch>``, ``CLOSED <batch>``. Data written by write(2) survives SIGKILL of the writer.
In batch mode the worker plays the settlement engine against the store only (no chain in these
trials): it reconciles open batches left by the previous crash, then runs new batches through
pending → submitted → confirmed.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

# Runs as a script from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from receipt_helpers import NODE, SETTLEMENT, make_receipt, make_test_key

from nodeclient.receipts import (
    ReceiptOutcome,
    ReceiptSigner,
    ReceiptStore,
    prepare_batch,
    receipt_digest,
    receipt_domain,
)
from nodeclient.receipts.crypto import keccak256

DOMAIN = receipt_domain(31337, SETTLEMENT)
SIGNERS = [ReceiptSigner(make_test_key(f"crash-consumer-{i}"), DOMAIN) for i in range(4)]
MAX_STEPS = 300


def _ack(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())


def _next_receipt(store: ReceiptStore, rng: random.Random, signer: ReceiptSigner):
    latest = store.latest(signer.address, NODE)
    amount = latest.receipt.cumulative_amount if latest else 0
    nbytes = latest.receipt.cumulative_bytes if latest else 0
    issued = latest.receipt.issued_at if latest else 1_700_000_000
    return signer.sign(
        make_receipt(
            amount + rng.randint(1, 1000),
            consumer=signer.address,
            nbytes=nbytes + rng.randint(0, 5000),
            issued_at=issued + rng.randint(0, 2),
            session="0x" + rng.randbytes(32).hex(),
        )
    )


def run_accept_ack_early(store: ReceiptStore, fd: int, rng: random.Random) -> None:
    """Deliberately wrong relay: acknowledges before `accept` returns (proves the checker can fail)."""
    for _ in range(MAX_STEPS):
        signed = _next_receipt(store, rng, rng.choice(SIGNERS))
        _ack(fd, f"ACK 0x{receipt_digest(signed, DOMAIN).hex()}")
        store.accept(signed, expected_domain=DOMAIN, expected_node=NODE)


def run_accept(store: ReceiptStore, fd: int, rng: random.Random) -> None:
    for _ in range(MAX_STEPS):
        signer = rng.choice(SIGNERS)
        roll = rng.random()
        if roll < 0.15:
            # Several receipts of one channel in one transaction (an import).
            first = _next_receipt(store, rng, signer)
            batch = [first]
            for _ in range(rng.randint(1, 4)):
                prev = batch[-1]
                batch.append(signer.sign(make_receipt(
                    prev.cumulative_amount + rng.randint(1, 50), consumer=signer.address,
                    nbytes=prev.cumulative_bytes + 1, issued_at=prev.issued_at, session=prev.session_id,
                )))
            for stored in store.accept_many(batch, expected_domain=DOMAIN, expected_node=NODE):
                _ack(fd, f"ACK {stored.digest_hex}")
        else:
            stored = store.accept(_next_receipt(store, rng, signer), expected_domain=DOMAIN, expected_node=NODE)
            _ack(fd, f"ACK {stored.digest_hex}")
            if roll > 0.95:  # a retransmitted receipt is idempotent and acked again
                again = store.accept(stored.receipt, expected_domain=DOMAIN, expected_node=NODE)
                assert not again.created
                _ack(fd, f"ACK {again.digest_hex}")


def _outcomes(store: ReceiptStore, batch) -> list[ReceiptOutcome]:
    out = []
    for item in batch.items:
        channel = store.channel(item.receipt.receipt.consumer, item.receipt.receipt.node)
        owed = item.receipt.receipt.cumulative_amount - channel.settled_amount
        paid = max(0, owed)
        out.append(ReceiptOutcome("settled", paid, paid * 5 // 100) if paid else ReceiptOutcome("skipped"))
    return out


def _tx(batch_id: int, attempt: int) -> str:
    return "0x" + keccak256(f"tx:{batch_id}:{attempt}".encode()).hex()


def run_batch(store: ReceiptStore, fd: int, rng: random.Random, bundles: Path) -> None:
    # Recovery first, as a restarted settlement engine would: nothing open is re-sent under a new nonce.
    for batch in store.pending_batches():
        if batch.state == "submitted":
            store.mark_confirmed(batch.id, _outcomes(store, batch), tx_hash=batch.tx_hashes[0])
            _ack(fd, f"CONFIRMED {batch.id}")
        elif rng.random() < 0.5:
            store.mark_skipped(batch.id, "recovered after crash before sending")
            _ack(fd, f"CLOSED {batch.id}")
        else:
            store.mark_submitted(batch.id, _tx(batch.id, 0), batch.id)
            _ack(fd, f"SUBMITTED {batch.id} {_tx(batch.id, 0)}")
            store.mark_confirmed(batch.id, _outcomes(store, batch))
            _ack(fd, f"CONFIRMED {batch.id}")
    for _ in range(MAX_STEPS // 10):
        for _ in range(rng.randint(1, 6)):
            stored = store.accept(_next_receipt(store, rng, rng.choice(SIGNERS)), expected_domain=DOMAIN,
                                  expected_node=NODE)
            _ack(fd, f"ACK {stored.digest_hex}")
        channels = store.unsettled_channels(node=NODE)
        if not channels:
            continue
        chosen = rng.sample(channels, rng.randint(1, len(channels)))
        prepared = prepare_batch(store, [c.latest for c in chosen], DOMAIN, bundles)
        _ack(fd, f"BEGUN {prepared.batch_id}")
        batch_id = prepared.batch_id
        store.mark_submitted(batch_id, _tx(batch_id, 0), batch_id)
        _ack(fd, f"SUBMITTED {batch_id} {_tx(batch_id, 0)}")
        if rng.random() < 0.3:  # fee-bump replacement at the same nonce
            store.mark_submitted(batch_id, _tx(batch_id, 1), batch_id)
            _ack(fd, f"SUBMITTED {batch_id} {_tx(batch_id, 1)}")
        if rng.random() < 0.1:
            store.mark_failed(batch_id, "reverted")
            _ack(fd, f"CLOSED {batch_id}")
            continue
        store.mark_confirmed(batch_id, _outcomes(store, store.batch(batch_id)))
        _ack(fd, f"CONFIRMED {batch_id}")


def worker(command: dict) -> None:
    rng = random.Random(command["seed"])
    fd = os.open(command["acks"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    store = ReceiptStore(command["db"])
    if command["mode"] == "accept":
        run_accept(store, fd, rng)
    elif command["mode"] == "accept-ack-early":
        run_accept_ack_early(store, fd, rng)
    else:
        run_batch(store, fd, rng, Path(command["bundles"]))
    store.close()


def main() -> None:
    print("READY", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                worker(command)
            except BaseException as exc:  # noqa: BLE001 - reported through the exit status and stderr
                print(f"worker error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                code = 3
            os._exit(code)
        print(f"PID {pid}", flush=True)
        if sys.stdin.readline().strip() != "REAP":
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        print(f"EXIT {pid} {status}", flush=True)


if __name__ == "__main__":
    main()
