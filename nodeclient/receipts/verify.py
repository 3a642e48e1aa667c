"""Bulk receipt verification for auditors and bundle loaders, across processes.

The inner loop works on plain dicts / `RawReceipt` tuples (no pydantic): validate fields, hash, recover
with libsecp256k1, compare with the consumer. Each record gets a `RecordCheck` with its index and,
when it fails, the field and a sentence saying why, so a report can name the exact record.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from nodeclient.errors import ReceiptError
from nodeclient.receipts.model import RawReceipt, Receipt, parse_raw_receipt, to_checksum_address
from nodeclient.receipts.signing import ReceiptDomain, digest_raw, recover_signer_bytes

__all__ = ["DEFAULT_CHUNK", "RecordCheck", "check_record", "first_failure", "verify_many"]

#: Records per task sent to a worker: large enough that pickling is amortised, small enough to balance.
DEFAULT_CHUNK = 2048
# Below this many records, starting worker processes costs more than it saves.
_PARALLEL_THRESHOLD = 4096


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """Outcome of checking one signed receipt.

    ``digest`` is set whenever the fields parsed; ``recovered`` (20 bytes) whenever the signature
    recovered. ``error`` is None exactly when the signature is the consumer's under the domain.
    """

    index: int
    digest: bytes | None
    recovered: bytes | None
    field: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        """True when the record is well-formed and signed by its consumer."""
        return self.error is None


def check_record(index: int, item: RawReceipt | Mapping[str, object], separator: bytes) -> RecordCheck:
    """Validate, hash and recover one record (a JSON-shaped mapping or a `RawReceipt`)."""
    try:
        raw = item if isinstance(item, RawReceipt) else parse_raw_receipt(item, signed=True)
    except ReceiptError as exc:
        return RecordCheck(index, None, None, getattr(exc, "field", None) or "signature", str(exc))
    if raw.signature is None:
        return RecordCheck(index, None, None, "signature", "Receipt field 'signature' is missing.")
    digest = digest_raw(separator, raw)
    try:
        recovered = recover_signer_bytes(digest, raw.signature)
    except ReceiptError as exc:
        return RecordCheck(index, digest, None, "signature", str(exc))
    if recovered != raw.consumer:
        return RecordCheck(
            index,
            digest,
            recovered,
            "signature",
            f"signature recovers to {to_checksum_address(recovered)}, not to the consumer "
            f"{to_checksum_address(raw.consumer)} (another key, chain id or settlement contract)",
        )
    return RecordCheck(index, digest, recovered, None, None)


def _check_chunk(args: tuple[int, list[RawReceipt | Mapping[str, object]], bytes]) -> list[RecordCheck]:
    start, items, separator = args
    return [check_record(start + i, item, separator) for i, item in enumerate(items)]


def _context() -> multiprocessing.context.BaseContext:
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _as_item(item: Receipt | RawReceipt | Mapping[str, object]) -> RawReceipt | Mapping[str, object]:
    # Models are already validated: ship their compact tuple form rather than a pydantic object.
    return item.raw if isinstance(item, Receipt) else item


def verify_many(
    items: Iterable[Receipt | RawReceipt | Mapping[str, object]],
    domain: ReceiptDomain,
    *,
    processes: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[RecordCheck]:
    """Check every record's signature under ``domain``; one `RecordCheck` per record, in input order.

    ``processes``: worker processes (default: all cores). Small inputs, or ``processes=1``, run in
    this process. Workers are forked when this process has a single thread (cheap, no re-import,
    works from any ``__main__``); with other threads alive (web3 pollers, an event loop's executor)
    they are spawned instead, because forking a multi-threaded process can inherit a held lock.
    """
    records = [_as_item(item) for item in items]
    separator = domain.separator
    workers = processes if processes is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(records) < _PARALLEL_THRESHOLD:
        return _check_chunk((0, records, separator))
    tasks = [(start, records[start : start + chunk_size], separator) for start in range(0, len(records), chunk_size)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        results: list[RecordCheck] = []
        for chunk in pool.map(_check_chunk, tasks):
            results.extend(chunk)
    return results


def first_failure(checks: Sequence[RecordCheck]) -> RecordCheck | None:
    """The first failing check, or None."""
    return next((c for c in checks if c.error is not None), None)
