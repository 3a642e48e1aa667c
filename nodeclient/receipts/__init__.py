"""Proof-of-bandwidth receipts: model, EIP-712 signing and recovery, durable store, bundles.

Consumer (signs)::

    domain = receipt_domain(chain_id, settlement_address)
    signer = ReceiptSigner(private_key, domain)          # repr shows the address only
    signed = signer.sign(Receipt(consumer=signer.address, node=node, session_id=sid,
                                 cumulative_bytes=b, cumulative_amount=a, latency_ms=l, issued_at=t))

Node (stores, acks after `accept` returns, settles)::

    store = ReceiptStore(path, domain=domain)
    stored = store.accept(signed, expected_domain=domain, expected_node=node)   # durable now: ack
    prepared = prepare_batch(store, [c.latest for c in store.unsettled_channels(node=node)], domain, bundle_dir)
    store.mark_submitted(prepared.batch_id, tx_hash, nonce)      # before broadcasting
    store.mark_confirmed(prepared.batch_id, outcomes)            # from ReceiptSettled / ReceiptSkipped
    store.pending_batches()                                      # after a restart: reconcile these

Auditor (verifies)::

    check = check_bundle(path, expected_domain=domain, expected_root=committed_root)
    for problem in check.problems: print(problem)                # "receipt 17 field 'signature': ..."
    verify_many(records, domain, processes=4)                    # RecordCheck per record

Errors are `nodeclient.errors.ReceiptError` / `StoreError` subclasses from `nodeclient.receipts.errors`,
each naming the offending field and value.
"""

from __future__ import annotations

from nodeclient.receipts.bundles import (
    Bundle,
    BundleCheck,
    BundleProblem,
    PreparedBatch,
    build_bundle,
    check_bundle,
    check_bundle_bytes,
    load_bundle,
    prepare_batch,
    write_bundle,
)
from nodeclient.receipts.errors import (
    MISSING,
    BatchConflictError,
    BatchNotFoundError,
    BatchStateError,
    BundleError,
    BundleRecordError,
    DomainMismatchError,
    InvalidSignerError,
    NodeMismatchError,
    NothingOwedError,
    PrivateKeyError,
    ReceiptFieldError,
    ReceiptFileError,
    ReceiptNotFoundError,
    SignatureError,
    StaleReceiptError,
    StoreCorruptError,
    StoreSchemaError,
)
from nodeclient.receipts.merkle import merkle_proof, merkle_root, verify_proof
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
    PrivateKeyLike,
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
from nodeclient.receipts.store import (
    BatchItem,
    BatchRecord,
    ChannelState,
    ReceiptOutcome,
    ReceiptStore,
    StoredReceipt,
)
from nodeclient.receipts.verify import RecordCheck, verify_many

__all__ = [
    "JSON_FIELDS",
    "MISSING",
    "RECEIPT_TYPE",
    "RECEIPT_TYPEHASH",
    "UINT32_MAX",
    "UINT64_MAX",
    "UINT128_MAX",
    "UINT256_MAX",
    "BatchConflictError",
    "BatchItem",
    "BatchNotFoundError",
    "BatchRecord",
    "BatchStateError",
    "Bundle",
    "BundleCheck",
    "BundleError",
    "BundleProblem",
    "BundleRecordError",
    "ChannelState",
    "DomainMismatchError",
    "InvalidSignerError",
    "NodeMismatchError",
    "NothingOwedError",
    "PreparedBatch",
    "PrivateKeyError",
    "PrivateKeyLike",
    "RawReceipt",
    "Receipt",
    "ReceiptDomain",
    "ReceiptFieldError",
    "ReceiptFileError",
    "ReceiptNotFoundError",
    "ReceiptOutcome",
    "ReceiptSigner",
    "ReceiptStore",
    "RecordCheck",
    "SignatureError",
    "SignedReceipt",
    "StaleReceiptError",
    "StoreCorruptError",
    "StoreSchemaError",
    "StoredReceipt",
    "address_of_key",
    "build_bundle",
    "check_bundle",
    "check_bundle_bytes",
    "digest_raw",
    "iter_receipts_jsonl",
    "load_bundle",
    "load_receipts",
    "merkle_proof",
    "merkle_root",
    "parse_address",
    "parse_raw_receipt",
    "parse_receipts_text",
    "parse_signature",
    "prepare_batch",
    "raw_to_json_dict",
    "receipt_digest",
    "receipt_domain",
    "receipt_struct_hash",
    "recover_signer",
    "recover_signer_bytes",
    "recover_signer_eth_keys",
    "sign_digest",
    "sign_receipt",
    "to_checksum_address",
    "typed_data",
    "verify_many",
    "verify_proof",
    "verify_receipt",
    "write_bundle",
]
