"""The deployed ReceiptSettlement hashes receipts exactly as nodeclient and eth-account do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from nodeclient.receipts import Receipt, receipt_digest, receipt_domain, typed_data

VECTORS = json.loads((Path(__file__).resolve().parent / "receipts.json").read_text())


@pytest.fixture(scope="module")
def settlement(kuota):
    return kuota.settlement


@pytest.fixture(scope="module")
def deployed_domain(settlement, chain):
    return receipt_domain(chain.id, settlement.address)


def _as_tuple(receipt: Receipt) -> tuple:
    return (receipt.consumer, receipt.node, receipt.session_id, receipt.cumulative_bytes,
            receipt.cumulative_amount, receipt.latency_ms, receipt.issued_at)


def test_eip712_domain_of_the_contract(settlement, deployed_domain):
    # ERC-5267 (OpenZeppelin EIP712): the domain wallets will be shown.
    _fields, name, version, chain_id, verifying_contract, _salt, _ext = settlement.eip712Domain()
    assert (name, version, chain_id, verifying_contract) == ("Kuota", "1", deployed_domain.chain_id,
                                                             deployed_domain.verifying_contract)


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_hash_receipt_equals_python_digest(settlement, deployed_domain, vector):
    receipt = Receipt.model_validate(vector["receipt"])
    on_chain = bytes(settlement.hashReceipt(_as_tuple(receipt)))
    assert on_chain == receipt_digest(receipt, deployed_domain)
    signable = encode_typed_data(full_message=typed_data(receipt, deployed_domain))
    assert on_chain == keccak(b"\x19" + signable.version + signable.header + signable.body)
