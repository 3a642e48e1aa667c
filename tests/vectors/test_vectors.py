"""Golden vectors: nodeclient's digests and signatures equal the committed eth-account reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodeclient.receipts import (
    RECEIPT_TYPE,
    RECEIPT_TYPEHASH,
    Receipt,
    SignedReceipt,
    address_of_key,
    receipt_digest,
    receipt_domain,
    receipt_struct_hash,
    recover_signer,
    recover_signer_eth_keys,
    sign_receipt,
    verify_receipt,
)

HERE = Path(__file__).resolve().parent
VECTORS = json.loads((HERE / "receipts.json").read_text())


def _domain(index: int):
    d = VECTORS["domains"][index]
    return receipt_domain(d["chainId"], d["verifyingContract"])


def test_file_is_what_the_generator_produces():
    result = subprocess.run([sys.executable, str(HERE / "make_vectors.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_type_string_hash_and_domain_separators():
    assert VECTORS["receiptType"] == RECEIPT_TYPE
    assert VECTORS["typeHash"] == "0x" + RECEIPT_TYPEHASH.hex()
    for index, d in enumerate(VECTORS["domains"]):
        assert _domain(index).separator.hex() == d["separator"][2:]


def test_keys_derive_from_seeds():
    from nodeclient.receipts.crypto import keccak256

    for key in VECTORS["keys"]:
        assert keccak256(bytes.fromhex(key["seed"][2:])).hex() == key["privateKey"][2:]
        assert address_of_key(key["privateKey"]) == key["address"]


def test_extremes_are_covered():
    receipts = [v["receipt"] for v in VECTORS["vectors"]]
    assert {r["cumulativeAmount"] for r in receipts} >= {0, 2**128 - 1}
    assert 2**32 - 1 in {r["latencyMs"] for r in receipts} and 2**64 - 1 in {r["issuedAt"] for r in receipts}
    assert {v["domain"] for v in VECTORS["vectors"]} == {0, 1}


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vector(vector):
    domain = _domain(vector["domain"])
    key = VECTORS["keys"][vector["key"]]
    receipt = Receipt.model_validate(vector["receipt"])
    assert receipt_struct_hash(receipt.raw).hex() == vector["structHash"][2:]
    digest = receipt_digest(receipt, domain)
    assert digest.hex() == vector["digest"][2:]
    # RFC 6979: signing again gives the same bytes as eth-account did.
    signed = sign_receipt(receipt, key["privateKey"], domain)
    assert signed.signature == vector["signature"]
    assert recover_signer(digest, vector["signature"]) == key["address"]
    assert recover_signer_eth_keys(digest, vector["signature"]) == key["address"]
    parsed = SignedReceipt.model_validate({**vector["receipt"], "signature": vector["signature"]})
    assert verify_receipt(parsed, domain) == digest
