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
each naming the offending field and value. The hashing, recovery and Merkle tree underneath are
`nodeclient.receipts.crypto`.

Exports resolve lazily (on first use), so that importing ``nodeclient.receipts.crypto`` alone (the
auditor's worker processes do) does not load pydantic and the SQLite store.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: submodule → the names this package re-exports from it (space-separated).
_EXPORTS: dict[str, str] = {
    "bundles": (
        "Bundle BundleCheck BundleProblem PreparedBatch build_bundle check_bundle check_bundle_bytes "
        "load_bundle prepare_batch write_bundle"
    ),
    "errors": (
        "BatchConflictError BatchNotFoundError BatchStateError BundleError BundleRecordError "
        "DomainMismatchError InvalidSignerError MISSING NodeMismatchError NothingOwedError "
        "PrivateKeyError ReceiptFieldError ReceiptFileError ReceiptNotFoundError SignatureError "
        "StaleReceiptError StoreCorruptError StoreSchemaError"
    ),
    "crypto": "merkle_proof merkle_root verify_proof",
    "model": (
        "JSON_FIELDS RawReceipt Receipt SignedReceipt UINT128_MAX UINT256_MAX UINT32_MAX UINT64_MAX "
        "iter_receipts_jsonl load_receipts parse_address parse_raw_receipt parse_receipts_text "
        "parse_signature raw_to_json_dict to_checksum_address"
    ),
    "signing": (
        "PrivateKeyLike RECEIPT_TYPE RECEIPT_TYPEHASH ReceiptDomain ReceiptSigner address_of_key "
        "digest_raw receipt_digest receipt_domain receipt_struct_hash recover_signer recover_signer_bytes "
        "recover_signer_eth_keys sign_digest sign_receipt typed_data verify_receipt"
    ),
    "store": "BatchItem BatchRecord ChannelState ReceiptOutcome ReceiptStore StoredReceipt",
    "verify": "RecordCheck verify_many",
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names.split()}

__all__ = [name for names in _EXPORTS.values() for name in names.split()]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'nodeclient.receipts' has no attribute {name!r}")
    value = getattr(import_module(f"nodeclient.receipts.{module}"), name)
    globals()[name] = value
    return value
