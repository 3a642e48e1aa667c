"""Tampered or missing bundles: each case is detected, exits 7, and the finding names the record."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import UNIT, settle_batch, signed_receipt_json, write_bundle
from brownie import chain
from eth_utils import keccak

from nodeclient.audit import run_audit

KUOTA = str(Path(sys.executable).parent / "kuota")


def _resign(eco: Any, receipt: dict[str, Any], **domain: Any) -> dict[str, Any]:
    """The same receipt re-signed by its consumer under another domain (chain id or contract)."""
    return signed_receipt_json(
        eco.keys[receipt["consumer"]], receipt["node"], receipt["cumulativeBytes"], receipt["cumulativeAmount"],
        issued_at=receipt["issuedAt"], latency_ms=receipt["latencyMs"], session=int(receipt["sessionId"], 16),
        chain_id=domain.get("chain_id", eco.chain_id), settlement=domain.get("settlement", eco.system.settlement.address),
    )


def _flip_signature_byte(eco: Any, doc: dict[str, Any]) -> None:
    sig = doc["receipts"][1]["signature"]
    # Flip one bit of a byte inside r: the file still parses, the signature no longer matches.
    flipped = int(sig[10:12], 16) ^ 0x01
    doc["receipts"][1]["signature"] = sig[:10] + f"{flipped:02x}" + sig[12:]


def _duplicate(eco: Any, doc: dict[str, Any]) -> None:
    doc["receipts"].insert(2, copy.deepcopy(doc["receipts"][1]))


def _other_chain(eco: Any, doc: dict[str, Any]) -> None:
    doc["receipts"][1] = _resign(eco, doc["receipts"][1], chain_id=1)


def _other_contract(eco: Any, doc: dict[str, Any]) -> None:
    doc["receipts"][1] = _resign(eco, doc["receipts"][1], settlement=eco.system.escrow.address)


def _drop_intermediate(eco: Any, doc: dict[str, Any]) -> None:
    del doc["receipts"][1]


def _root_differs(eco: Any, doc: dict[str, Any]) -> None:
    doc["root"] = "0x" + keccak(text="not the committed root").hex()


def _reorder(eco: Any, doc: dict[str, Any]) -> None:
    doc["receipts"][0], doc["receipts"][1] = doc["receipts"][1], doc["receipts"][0]


def _other_chain_bundle(eco: Any, doc: dict[str, Any]) -> None:
    doc["chainId"] = 1


def _other_node_bundle(eco: Any, doc: dict[str, Any]) -> None:
    doc["node"] = eco.node_b


# (tamper, expected finding code, text the record or message must contain)
CASES: list[tuple[str, Callable[[Any, dict], None], str, str]] = [
    ("flipped-byte", _flip_signature_byte, "bundle-signature", "receipt #1"),
    ("duplicated-receipt", _duplicate, "bundle-duplicate", "receipt #2"),
    ("other-chain-id", _other_chain, "bundle-signature", "receipt #1"),
    ("other-contract", _other_contract, "bundle-signature", "receipt #1"),
    ("missing-intermediate", _drop_intermediate, "bundle-root", "committed"),
    ("root-differs", _root_differs, "bundle-root-declared", "not the root"),
    ("reordered", _reorder, "bundle-order", "receipt #1"),
    ("bundle-for-other-chain", _other_chain_bundle, "bundle-chain", "chain id 1"),
    ("bundle-for-other-node", _other_node_bundle, "bundle-node", "settled node"),
]


def _tampered_dir(eco: Any, tmp_path: Path, mutate: Callable[[Any, dict], None]) -> tuple[Path, str]:
    target = eco.batches[0]
    out = tmp_path / "bundles"
    shutil.copytree(eco.bundle_dir, out)
    (out / target.path.name).unlink()
    doc = copy.deepcopy(target.doc)
    mutate(eco, doc)
    # Published under the hash of its new content, as a tamperer would: the name check alone must
    # not be what catches it.
    return out, write_bundle(out, doc).name


@pytest.mark.parametrize("case,mutate,code,needle", CASES, ids=[c[0] for c in CASES])
def test_tampered_bundle_is_detected_with_exit_7(economy, audit_options, tmp_path, case, mutate, code, needle):
    bundle_dir, name = _tampered_dir(economy, tmp_path, mutate)
    result = run_audit(audit_options(bundle_dir=bundle_dir))
    assert (result.verdict, result.exit_code) == ("unverifiable-evidence", 7)
    hits = [f for f in result.report["findings"] if f["code"] == code]
    assert hits, [f["code"] for f in result.report["findings"]]
    assert any(name in f["record"] + f["message"] and needle in f["record"] + f["message"] for f in hits), hits
    # Tampered evidence is not a chain mismatch: the chain's own records still agree.
    assert result.report["counts"]["mismatches"] == 0


def test_missing_intermediate_with_recomputed_root_is_still_caught(economy, audit_options, tmp_path):
    def drop_and_rehash(eco: Any, doc: dict[str, Any]) -> None:
        from audit_helpers import reference_root

        del doc["receipts"][1]
        doc["root"] = "0x" + reference_root(doc["receipts"], eco.chain_id, eco.system.settlement.address).hex()

    bundle_dir, name = _tampered_dir(economy, tmp_path, drop_and_rehash)
    result = run_audit(audit_options(bundle_dir=bundle_dir))
    assert result.exit_code == 7
    hits = [f for f in result.report["findings"] if f["code"] == "bundle-root"]
    assert len(hits) == 1 and name in hits[0]["record"] and economy.batches[0].tx_hash in hits[0]["message"]


def test_missing_bundle_file_is_reported_for_its_batch(economy, audit_options, tmp_path):
    out = tmp_path / "bundles"
    shutil.copytree(economy.bundle_dir, out)
    missing = economy.batches[1]
    (out / missing.path.name).unlink()
    result = run_audit(audit_options(bundle_dir=out))
    assert result.exit_code == 7
    hits = [f for f in result.report["findings"] if f["code"] == "bundle-missing"]
    assert len(hits) == 1 and missing.tx_hash in hits[0]["record"] and missing.root in hits[0]["message"]


def test_receipt_with_future_timestamp_is_flagged(economy, audit_options, tmp_path, consumer, operator):
    """A batch the chain accepted, whose receipts claim to be issued an hour after their settlement."""
    settlement = economy.system.settlement.address
    future = chain.time() + 3600
    receipts = [
        signed_receipt_json(economy.keys[consumer.address], economy.node_a, n * 2**20, (10 + n) * UNIT,
                            issued_at=future + n, latency_ms=30, session=9, chain_id=economy.chain_id,
                            settlement=settlement)
        for n in (1, 2)
    ]
    out = tmp_path / "bundles"
    shutil.copytree(economy.bundle_dir, out)
    economy_copy = copy.copy(economy)
    economy_copy.bundle_dir, economy_copy.batches = out, []
    batch = settle_batch(economy_copy, economy.node_a, receipts, operator)
    chain.mine()
    result = run_audit(audit_options(bundle_dir=out))
    assert result.exit_code == 7
    hits = [f for f in result.report["findings"] if f["code"] == "bundle-future-receipt"]
    assert [("receipt #0" in f["record"], "receipt #1" in f["record"]) for f in hits] == [(True, False), (False, True)]
    assert all(batch.path.name in f["record"] for f in hits)
    # A clock-skew tolerance larger than the lead accepts them (the chain itself never checks issuedAt).
    lenient = run_audit(audit_options(bundle_dir=out, max_clock_skew=7200))
    assert lenient.exit_code == 0


def test_cli_exits_7_and_names_the_receipt(economy, tmp_path):
    bundle_dir, name = _tampered_dir(economy, tmp_path, _flip_signature_byte)
    run = subprocess.run(
        [KUOTA, "audit", "replay", "--rpc-url", economy.rpc_url, "--manifest", str(economy.manifest_path),
         "--confirmations", "0", "--bundles", str(bundle_dir), "--json"],
        check=False, capture_output=True, timeout=120, env=dict(os.environ),
    )
    assert run.returncode == 7, run.stderr.decode()
    err = run.stderr.decode()
    assert "receipt #1" in err and name in err
    report = json.loads(run.stdout)
    assert report["verdict"] == "unverifiable-evidence" and report["exitCode"] == 7


def test_bundles_fetched_from_url_list_verify_like_files(economy, audit_options, tmp_path):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(economy.bundle_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        listing = tmp_path / "bundles.txt"
        listing.write_text("# published bundles\n" + "".join(f"{base}/{b.path.name}\n" for b in economy.batches))
        result = run_audit(audit_options(bundle_dir=None, bundle_urls=listing))
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0
    assert result.report["counts"]["bundles_matched"] == len(economy.batches)
    assert all(b["name"].startswith(base) for b in result.report["bundles"])


def test_bundle_written_by_the_node_client_is_byte_identical_and_verifies(economy, audit_options, tmp_path):
    """The operators' bundle writer (``nodeclient.receipts.bundles``) and the auditor agree on the format."""
    from nodeclient.receipts.bundles import build_bundle
    from nodeclient.receipts.bundles import write_bundle as client_write_bundle
    from nodeclient.receipts.model import SignedReceipt
    from nodeclient.receipts.signing import receipt_domain

    out = tmp_path / "bundles"
    out.mkdir()
    domain = receipt_domain(economy.chain_id, economy.system.settlement.address)
    for batch in economy.batches:
        signed = [SignedReceipt(consumer=r["consumer"], node=r["node"], session_id=r["sessionId"],
                                cumulative_bytes=r["cumulativeBytes"], cumulative_amount=r["cumulativeAmount"],
                                latency_ms=r["latencyMs"], issued_at=r["issuedAt"], signature=r["signature"])
                  for r in reversed(batch.doc["receipts"])]  # any input order: the writer sorts
        path = client_write_bundle(build_bundle(signed, domain, batch.node), out)
        assert path.read_bytes() == batch.path.read_bytes() and path.name == batch.path.name
    result = run_audit(audit_options(bundle_dir=out))
    assert result.exit_code == 0 and result.report["counts"]["bundles_matched"] == len(economy.batches)
