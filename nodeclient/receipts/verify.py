"""Bulk receipt verification for bundle loaders and the auditor, across processes.

The inner loop works on plain dicts / `RawReceipt` tuples (no pydantic): validate fields, hash, recover
with libsecp256k1, compare with the consumer. Each record gets a `RecordCheck` with its index, its
parsed fields and, when it fails, the field and a sentence saying why, so a report can name the exact
record. Worker processes import this module, `raw` and the crypto core only.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nodeclient.errors import ReceiptError
from nodeclient.receipts.crypto import receipt_digest, recover_address
from nodeclient.receipts.raw import RawReceipt, parse_raw_receipt, to_checksum_address

if TYPE_CHECKING:
    from nodeclient.receipts.model import Receipt
    from nodeclient.receipts.signing import ReceiptDomain

__all__ = ["PARALLEL_THRESHOLD", "RecordCheck", "check_record", "first_failure", "verify_many"]

#: Below this many records, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 4_000
# Records per task: large enough to amortise the task's overhead, small enough to balance the workers.
_MIN_CHUNK, _MAX_CHUNK = 1_000, 5_000

Item = RawReceipt | Mapping[str, object]


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """Outcome of checking one signed receipt.

    ``raw`` and ``digest`` are set whenever the fields parsed; ``recovered`` (20 bytes) whenever the
    signature recovered. ``error`` is None exactly when the signature is the consumer's under the domain.
    """

    index: int
    digest: bytes | None
    recovered: bytes | None
    field: str | None
    error: str | None
    raw: RawReceipt | None = None

    @property
    def ok(self) -> bool:
        """True when the record is well-formed and signed by its consumer."""
        return self.error is None


def check_record(index: int, item: Item, separator: bytes) -> RecordCheck:
    """Validate, hash and recover one record (a JSON-shaped mapping or a `RawReceipt`)."""
    try:
        raw = item if isinstance(item, RawReceipt) else parse_raw_receipt(item, signed=True)
    except ReceiptError as exc:
        return RecordCheck(index, None, None, getattr(exc, "field", None) or "signature", str(exc))
    if raw.signature is None:
        return RecordCheck(index, None, None, "signature", "Receipt field 'signature' is missing.")
    digest = receipt_digest(raw, separator)
    try:
        recovered = recover_address(digest, raw.signature)
    except ReceiptError as exc:
        return RecordCheck(index, digest, None, "signature", str(exc), raw)
    if recovered != raw.consumer:
        return RecordCheck(
            index,
            digest,
            recovered,
            "signature",
            f"signature recovers to {to_checksum_address(recovered)}, not to the consumer "
            f"{to_checksum_address(raw.consumer)} (another key, chain id or settlement contract)",
            raw,
        )
    return RecordCheck(index, digest, recovered, None, None, raw)


def _check_chunk(args: tuple[int, Sequence[Item], bytes]) -> list[RecordCheck]:
    start, items, separator = args
    return [check_record(start + i, item, separator) for i, item in enumerate(items)]


#: (separator, records) set by the parent just before it forks its workers: a forked child reads them
#: through copy-on-write memory instead of receiving them pickled.
_SHARED: tuple[bytes, Sequence[Item]] | None = None


def _check_shared_range(bounds: tuple[int, int]) -> list[RecordCheck]:
    if _SHARED is None:
        raise RuntimeError("a shared-range task needs the records shared before the fork")
    separator, records = _SHARED
    start, end = bounds
    return _check_chunk((start, records[start:end], separator))


def _context() -> multiprocessing.context.BaseContext:
    """fork when this process is single-threaded (cheap, copy-on-write), else spawn.

    Forking a process that holds other threads (web3 pollers, an event loop's executor) can copy a
    lock mid-acquire and deadlock the child; spawn avoids that but re-imports in every worker.
    """
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _as_item(item: Receipt | Item) -> Item:
    # Models are already validated: ship their compact tuple form rather than a pydantic object.
    return item if isinstance(item, RawReceipt | Mapping) else item.raw


def _run_parallel(records: list[Item], separator: bytes, workers: int, chunk_size: int | None) -> list[RecordCheck]:
    global _SHARED
    size = chunk_size or max(_MIN_CHUNK, min(_MAX_CHUNK, -(-len(records) // (workers * 4))))
    bounds = [(start, min(start + size, len(records))) for start in range(0, len(records), size)]
    context = _context()
    results: list[RecordCheck] = []
    if context.get_start_method() != "fork":
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for part in pool.map(_check_chunk, [(a, records[a:b], separator) for a, b in bounds]):
                results.extend(part)
        return results
    # Shared before the pool forks its workers: only index ranges go in and compact results come
    # back, so the parent does not pickle the records.
    _SHARED = (separator, records)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for part in pool.map(_check_shared_range, bounds):
                results.extend(part)
    finally:
        _SHARED = None
    return results


def verify_many(
    items: Iterable[Receipt | Item],
    domain: ReceiptDomain | bytes,
    *,
    processes: int | None = None,
    chunk_size: int | None = None,
) -> list[RecordCheck]:
    """Check every record's signature under ``domain`` (or its separator); one `RecordCheck` per
    record, in input order.

    ``processes``: worker processes (default: all cores). Fewer than `PARALLEL_THRESHOLD` records, or
    ``processes=1``, run in this process. Workers are forked when this process has a single thread,
    else spawned (see `_context`). ``chunk_size``: records per worker task (default: about a quarter
    of each worker's share, within 1,000..5,000).
    """
    records = [_as_item(item) for item in items]
    separator = domain if isinstance(domain, bytes) else domain.separator
    workers = processes if processes is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(records) < PARALLEL_THRESHOLD:
        return _check_chunk((0, records, separator))
    return _run_parallel(records, separator, workers, chunk_size)


def first_failure(checks: Sequence[RecordCheck]) -> RecordCheck | None:
    """The first failing check, or None."""
    return next((c for c in checks if c.error is not None), None)
