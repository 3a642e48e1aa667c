"""Audit replay throughput: receipts verified per second from one large bundle, against raw recovery.

``run()`` signs a bundle of ``n_receipts`` receipts with coincurve (``consumers`` channels, one node),
then measures in the same process and run:

- ``raw_recover_per_s``: bare ``coincurve.PublicKey.from_signature_and_message`` + Keccak address
  derivation over precomputed digests, one process — the floor of any verifier;
- ``replay_per_s``: ``nodeclient.audit.bundles.verify_bundles`` over the bundle bytes, parallel across
  ``jobs`` processes — JSON parsing, strict field validation, EIP-712 digests, recovery, duplicate,
  order, monotonicity and timestamp checks, the Merkle root and the match against the batch;
- ``replay_serial_per_s``: the same with one process (the per-receipt overhead over raw recovery).

Ratios above 1 mean the parallel replay beats single-core raw recovery. The run is bounded (< 3
minutes on a 2-core machine for the default 100,000 receipts) and touches no network.

Usage: ``python bench/audit_bench.py [n_receipts]`` prints the result as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coincurve import PrivateKey, PublicKey

from nodeclient.audit.bundles import BundleFile, default_jobs, verify_bundles
from nodeclient.audit.crypto import domain_separator, keccak, merkle_root, receipt_digest
from nodeclient.audit.replay import BatchRecord
from nodeclient.receipts.crypto import checksum_address as to_checksum_address

__all__ = ["build_bundle", "run"]

CHAIN_ID = 31337
SETTLEMENT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
#: Stop generating if signing alone would blow the time budget on a very slow machine.
MAX_SIGNING_SECONDS = 90.0
#: Skip the informative single-process pass if the run is already this long.
SERIAL_DEADLINE_SECONDS = 120.0


def _address(key: PrivateKey) -> bytes:
    return keccak(key.public_key.format(compressed=False)[1:])[12:]


def build_bundle(n_receipts: int, consumers: int) -> tuple[bytes, list[tuple[bytes, bytes]], BatchRecord, float]:
    """(bundle bytes, [(digest, signature)], the batch that settles it, seconds spent signing)."""
    separator = domain_separator(CHAIN_ID, bytes.fromhex(SETTLEMENT[2:]))
    node_key = PrivateKey(hashlib.sha256(b"kuota bench node").digest())
    node = _address(node_key)
    keys = [PrivateKey(hashlib.sha256(f"kuota bench consumer {i}".encode()).digest()) for i in range(consumers)]
    per_consumer = -(-n_receipts // consumers)
    started = time.perf_counter()
    rows: list[tuple[str, int, int, dict[str, Any], bytes, bytes]] = []
    base_time = 1_700_000_000
    for key in keys:
        consumer = _address(key)
        for j in range(per_consumer):
            if len(rows) >= n_receipts:
                break
            amount, nbytes, issued = (j + 1) * 1_000, (j + 1) * 65_536, base_time + j
            fields = (consumer, node, b"\x01" * 32, nbytes, amount, 40, issued)
            digest = receipt_digest(fields, separator)
            sig = key.sign_recoverable(digest, hasher=None)
            # coincurve gives r‖s‖recid with low s; the wire form is r‖s‖v with v = 27 + recid.
            sig = sig[:64] + bytes((sig[64] + 27,))
            obj = {
                "consumer": to_checksum_address(consumer), "node": to_checksum_address(node),
                "sessionId": "0x" + "01" * 32, "cumulativeBytes": nbytes, "cumulativeAmount": amount,
                "latencyMs": 40, "issuedAt": issued, "signature": "0x" + sig.hex(),
            }
            rows.append((obj["consumer"].lower(), amount, issued, obj, digest, sig))
        if time.perf_counter() - started > MAX_SIGNING_SECONDS:
            break
    signing = time.perf_counter() - started
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    root = merkle_root([r[4] for r in rows])
    doc = {"version": 1, "chainId": CHAIN_ID, "settlement": SETTLEMENT, "node": to_checksum_address(node),
           "root": "0x" + root.hex(), "receipts": [r[3] for r in rows]}
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    last: dict[str, tuple[str, bytes, int]] = {}
    for r in rows:
        last[r[3]["consumer"]] = (r[3]["consumer"], r[4], r[1])
    batch = BatchRecord(node=to_checksum_address(node), root=root, block=1, log_index=0, tx_hash="0x" + "00" * 32,
                        timestamp=base_time + per_consumer + 60, receipts=list(last.values()),
                        previous_amount={c: 0 for c in last})
    return data, [(r[4], r[5]) for r in rows], batch, signing


def _raw_rate(pairs: list[tuple[bytes, bytes]]) -> float:
    started = time.perf_counter()
    for digest, sig in pairs:
        point = PublicKey.from_signature_and_message(sig[:64] + bytes((sig[64] - 27,)), digest, hasher=None)
        keccak(point.format(compressed=False)[1:])[12:]
    return len(pairs) / (time.perf_counter() - started)


def _replay_rate(data: bytes, batch: BatchRecord, jobs: int) -> tuple[float, dict[str, int]]:
    name = hashlib.sha256(data).hexdigest() + ".json"
    started = time.perf_counter()
    report = verify_bundles([BundleFile(name, data)], chain_id=CHAIN_ID, settlement=SETTLEMENT, batches=[batch],
                            jobs=jobs)
    elapsed = time.perf_counter() - started
    problems = {f.code: 0 for f in report.findings.sorted()}
    for f in report.findings.sorted():
        problems[f.code] += 1
    return report.counts["bundle_receipts"] / elapsed, problems


def run(n_receipts: int = 100_000, jobs: int | None = None, consumers: int = 100) -> dict[str, Any]:
    """Measure and return the figures (stable keys; rates in receipts per second)."""
    if n_receipts < 1 or consumers < 1:
        raise ValueError(f"n_receipts and consumers must be positive, got {n_receipts} and {consumers}")
    jobs = jobs or default_jobs()
    started = time.perf_counter()
    data, pairs, batch, signing = build_bundle(n_receipts, consumers)
    raw = _raw_rate(pairs)
    parallel, problems = _replay_rate(data, batch, jobs)
    serial: float | None = None
    serial_problems: dict[str, int] = {}
    # The serial pass is informative (overhead per receipt) but optional: keep the run under budget.
    if time.perf_counter() - started < SERIAL_DEADLINE_SECONDS:
        serial, serial_problems = _replay_rate(data, batch, 1)
    if problems or serial_problems:
        # A benchmark of a verifier that rejects honest receipts would measure the wrong thing.
        raise RuntimeError(f"the generated bundle did not verify cleanly: {problems or serial_problems}")
    return {
        "receipts": len(pairs),
        "bundle_bytes": len(data),
        "jobs": jobs,
        "cpus": os.cpu_count(),
        "signing_seconds": round(signing, 2),
        "raw_recover_per_s": round(raw),
        "replay_per_s": round(parallel),
        "replay_serial_per_s": round(serial) if serial is not None else None,
        "ratio_parallel_vs_raw": round(parallel / raw, 3),
        "ratio_serial_vs_raw": round(serial / raw, 3) if serial is not None else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(run(count), indent=2))
