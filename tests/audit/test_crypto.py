"""The auditor's fast digest, recovery and Merkle root agree with the contract and the reference code."""

from __future__ import annotations

import hashlib
import os

import pytest
from audit_helpers import anvil_key, reference_root, signed_receipt_json
from brownie import chain
from eth_account import Account

from nodeclient.audit.bundles import BundleFile, verify_bundles
from nodeclient.audit.crypto import (
    SECP256K1_HALF_N,
    domain_separator,
    merkle_root,
    receipt_digest,
    recover_address,
)
from nodeclient.receipts import Receipt
from nodeclient.receipts.signing import receipt_digest as reference_digest
from nodeclient.receipts.signing import receipt_domain
from nodeclient.receipts.verify import verify_many

SECP256K1_N = 2 * SECP256K1_HALF_N + 1


def _fields(r: dict) -> tuple:
    return (bytes.fromhex(r["consumer"][2:]), bytes.fromhex(r["node"][2:]), bytes.fromhex(r["sessionId"][2:]),
            r["cumulativeBytes"], r["cumulativeAmount"], r["latencyMs"], r["issuedAt"])


@pytest.fixture(scope="module")
def receipts(kuota):
    settlement = kuota.settlement.address
    node = Account.from_key(os.urandom(32)).address
    out = [
        signed_receipt_json(anvil_key(5), node, b, a, issued_at=t, latency_ms=l, session=s, chain_id=chain.id,
                            settlement=settlement)
        for b, a, t, l, s in [(0, 1, 0, 0, 1), (2**128 - 1, 2**128 - 1, 2**64 - 1, 2**32 - 1, 2**255),
                              (123456, 789, 1_700_000_000, 45, 7)]
    ]
    return out


def test_digest_equals_hash_receipt_and_reference(kuota, receipts):
    separator = domain_separator(chain.id, bytes.fromhex(kuota.settlement.address[2:]))
    for r in receipts:
        fast = receipt_digest(_fields(r), separator)
        tup = (r["consumer"], r["node"], r["sessionId"], r["cumulativeBytes"], r["cumulativeAmount"], r["latencyMs"],
               r["issuedAt"])
        assert bytes(kuota.settlement.hashReceipt(tup)) == fast
        model = Receipt(consumer=r["consumer"], node=r["node"], session_id=r["sessionId"],
                        cumulative_bytes=r["cumulativeBytes"], cumulative_amount=r["cumulativeAmount"],
                        latency_ms=r["latencyMs"], issued_at=r["issuedAt"])
        assert fast == reference_digest(model, receipt_domain(chain.id, kuota.settlement.address))


def test_recovery_accepts_low_s_and_rejects_what_the_contract_rejects(kuota, receipts):
    separator = domain_separator(chain.id, bytes.fromhex(kuota.settlement.address[2:]))
    r = receipts[2]
    digest = receipt_digest(_fields(r), separator)
    sig = bytes.fromhex(r["signature"][2:])
    assert recover_address(digest, sig) == bytes.fromhex(r["consumer"][2:])
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - sig[64],))
    assert recover_address(digest, twin) is None  # the malleable twin
    assert recover_address(digest, sig[:64] + b"\x1d") is None  # v = 29
    assert recover_address(digest, sig[:64]) is None  # 64 bytes
    assert recover_address(digest, bytes(32) + sig[32:]) is None  # r = 0


def test_bundle_parser_names_the_bad_field(receipts):
    good = receipts[2]
    cases = [
        ({**good, "cumulativeAmount": 2**128}, "cumulativeAmount", "exceeds 2**128-1"),
        ({**good, "latencyMs": True}, "latencyMs", "must be a JSON integer"),
        ({**good, "consumer": good["consumer"][:-1] + ("A" if good["consumer"][-1] != "A" else "B")}, "consumer",
         "invalid EIP-55 checksum"),
        ({**good, "extra": 1}, "extra", "is not a receipt field"),
        ({k: v for k, v in good.items() if k != "issuedAt"}, "issuedAt", "is required"),
        ({**good, "sessionId": "0x1234"}, "sessionId", "64 hex digits"),
    ]
    results = verify_many([c for c, _, _ in cases], b"\x00" * 32, processes=1)
    for (_, field, needle), result in zip(cases, results, strict=True):
        assert result.raw is None and result.field == field and needle in result.error, result
    (parsed,) = verify_many([good], b"\x00" * 32, processes=1)
    assert tuple(parsed.raw[:7]) == _fields(good)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8, 9, 17])
def test_merkle_root_matches_an_independent_implementation(kuota, receipts, count):
    settlement = kuota.settlement.address
    node = receipts[0]["node"]
    leaves = [signed_receipt_json(anvil_key(6), node, i, i + 1, issued_at=i, chain_id=chain.id, settlement=settlement)
              for i in range(count)]
    separator = domain_separator(chain.id, bytes.fromhex(settlement[2:]))
    digests = [receipt_digest(_fields(r), separator) for r in leaves]
    assert merkle_root(digests) == reference_root(leaves, chain.id, settlement)


def test_bundle_with_a_key_given_twice_is_malformed_evidence():
    settlement = "0x" + "5e" * 20
    data = b'{"chainId":1,"chainId":2,"node":"0x' + b"42" * 20 + b'","receipts":[],"root":"0x' + b"00" * 32 + \
        b'","settlement":"' + settlement.encode() + b'","version":1}'
    name = hashlib.sha256(data).hexdigest() + ".json"
    report = verify_bundles([BundleFile(name, data)], chain_id=1, settlement=settlement, batches=[])
    (finding,) = [f for f in report.findings.sorted() if f.code == "bundle-malformed"]
    assert "duplicate key 'chainId'" in finding.message
