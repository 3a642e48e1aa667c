"""Parallel bundle verification (worker processes) gives the same answers as one process."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from nodeclient.audit.bundles import PARALLEL_THRESHOLD, BundleFile, verify_bundles

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("audit_bench", ROOT / "bench" / "audit_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _verify(bench, data: bytes, batch, jobs: int):
    name = hashlib.sha256(data).hexdigest() + ".json"
    return verify_bundles([BundleFile(name, data)], chain_id=bench.CHAIN_ID, settlement=bench.SETTLEMENT,
                          batches=[batch], jobs=jobs)


def test_parallel_and_serial_verification_agree_on_clean_and_tampered_bundles():
    bench = _bench()
    count = PARALLEL_THRESHOLD + 1_000
    data, _, batch, _ = bench.build_bundle(count, consumers=10)
    serial, parallel = _verify(bench, data, batch, 1), _verify(bench, data, batch, 2)
    assert serial.counts["bundle_receipts"] == parallel.counts["bundle_receipts"] == count
    assert serial.findings.sorted() == parallel.findings.sorted() == []

    doc = json.loads(data)
    victim = count // 2 + 7  # lands in a worker's chunk, not the first one
    sig = doc["receipts"][victim]["signature"]
    doc["receipts"][victim]["signature"] = sig[:20] + ("0" if sig[20] != "0" else "1") + sig[21:]
    tampered = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    serial, parallel = _verify(bench, tampered, batch, 1), _verify(bench, tampered, batch, 2)
    assert serial.findings.sorted() == parallel.findings.sorted()
    hits = [f for f in parallel.findings.sorted() if f.code == "bundle-signature"]
    assert len(hits) == 1 and f"receipt #{victim} " in hits[0].record
    # The root commits to the receipts' digests, which do not cover the signature: only the
    # signature check can catch this one.
    assert not any(f.code.startswith("bundle-root") for f in parallel.findings.sorted())
