"""Proof-of-bandwidth receipts: model, EIP-712 signing and recovery, durable store, bundles.

The public API others call is re-exported here; see each module for details.
"""

from __future__ import annotations

from nodeclient.receipts.errors import *  # noqa: F403
from nodeclient.receipts.errors import __all__ as _errors_all
from nodeclient.receipts.model import (
    JSON_FIELDS,
    UINT32_MAX,
    UINT64_MAX,
    UINT128_MAX,
    UINT256_MAX,
    RawReceipt,
    Receipt,
    SignedReceipt,
    iter_receipts_jsonl,
    load_receipts,
    parse_address,
    parse_raw_receipt,
    parse_receipts_text,
    parse_signature,
    raw_to_json_dict,
    to_checksum_address,
)
from nodeclient.receipts.signing import (
    RECEIPT_TYPE,
    RECEIPT_TYPEHASH,
    ReceiptDomain,
    ReceiptSigner,
    address_of_key,
    digest_raw,
    receipt_digest,
    receipt_domain,
    receipt_struct_hash,
    recover_signer,
    recover_signer_bytes,
    recover_signer_eth_keys,
    sign_digest,
    sign_receipt,
    typed_data,
    verify_receipt,
)

__all__ = [
    *_errors_all,
    "JSON_FIELDS",
    "UINT32_MAX",
    "UINT64_MAX",
    "UINT128_MAX",
    "UINT256_MAX",
    "RawReceipt",
    "Receipt",
    "SignedReceipt",
    "iter_receipts_jsonl",
    "load_receipts",
    "parse_address",
    "parse_raw_receipt",
    "parse_receipts_text",
    "parse_signature",
    "raw_to_json_dict",
    "to_checksum_address",
    "RECEIPT_TYPE",
    "RECEIPT_TYPEHASH",
    "ReceiptDomain",
    "ReceiptSigner",
    "address_of_key",
    "digest_raw",
    "receipt_digest",
    "receipt_domain",
    "receipt_struct_hash",
    "recover_signer",
    "recover_signer_bytes",
    "recover_signer_eth_keys",
    "sign_digest",
    "sign_receipt",
    "typed_data",
    "verify_receipt",
]
