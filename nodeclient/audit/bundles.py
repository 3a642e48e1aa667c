"""Verify published receipt bundles against the roots ``settleMany`` committed on chain.

A bundle (docs/dev/BRIEF.md, "Receipts off chain") is a canonical JSON file named by its SHA-256 that
holds every receipt of a batch's channels since the previous settled receipt. For each bundle the
auditor checks: the file name is the content hash; chain id and contract are this deployment's;
every receipt parses, names the bundle's node, and its signature recovers to its consumer under this
chain's EIP-712 domain (a receipt signed for another chain or contract fails here); no receipt is
duplicated; receipts are in canonical order; per channel the counters and timestamps are monotonic;
no receipt is older than the channel's previous settled receipt or later than the block that
settled it; the Merkle root over the digests equals the root committed in ``BatchSettled``; and the
last receipt of each channel is the one the batch settled. Every ``BatchSettled`` in range without a
verifying bundle is reported missing.

Signature recovery dominates, so it runs in worker processes (``jobs``) over chunks of receipts; the
rest is linear bookkeeping in the parent.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeclient.audit.errors import AuditInputError
from nodeclient.audit.findings import Findings
from nodeclient.audit.http_get import DownloadError, get_bounded
from nodeclient.audit.replay import BatchRecord, ReceiptFields
from nodeclient.receipts.bundles import canonical_json
from nodeclient.receipts.crypto import checksum_address, domain_separator, merkle_root
from nodeclient.receipts.model import reject_duplicate_keys
from nodeclient.receipts.verify import PARALLEL_THRESHOLD, RecordCheck, verify_many

__all__ = [
    "PARALLEL_THRESHOLD",
    "Bundle",
    "BundleFile",
    "BundleReceipt",
    "BundleReport",
    "default_jobs",
    "read_bundle_dir",
    "read_bundle_urls",
    "verify_bundles",
]

MAX_BUNDLE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class BundleFile:
    """A bundle's bytes and where they came from (a file name or URL)."""

    name: str
    data: bytes


@dataclass
class BundleReceipt(ReceiptFields):
    """One receipt of a bundle, parsed and verified."""

    index: int
    digest: bytes = b""
    signer: str = ""

    def label(self, bundle: str) -> str:
        """How findings name this receipt."""
        return f"bundle {bundle} receipt #{self.index} (consumer {self.consumer}, cumulativeAmount {self.cumulative_amount})"


@dataclass
class Bundle:
    """A parsed bundle; ``receipts`` excludes those that did not parse."""

    name: str
    chain_id: int | None
    settlement: str
    node: str
    root: bytes
    receipts: list[BundleReceipt] = field(default_factory=list)
    computed_root: bytes = b""
    parsed_count: int = 0
    declared_count: int = 0


@dataclass
class BundleReport:
    """Result of verifying every bundle: findings, counts, and bundle receipts for the heuristics."""

    findings: Findings
    counts: dict[str, int]
    bundles: list[Bundle]
    #: BatchSettled (tx hash) → bundle name, for the per-settlement CSV.
    matched: dict[str, str]


def read_bundle_dir(path: str | Path) -> list[BundleFile]:
    """Every ``*.json`` file in ``path`` (sorted by name, so the report order never depends on the OS)."""
    directory = Path(path)
    if not directory.is_dir():
        raise AuditInputError(f"--bundles {path} is not a directory")
    files = []
    for entry in sorted(directory.glob("*.json")):
        if entry.stat().st_size > MAX_BUNDLE_BYTES:
            raise AuditInputError(f"bundle {entry} is larger than {MAX_BUNDLE_BYTES} bytes; refusing to read it")
        files.append(BundleFile(entry.name, entry.read_bytes()))
    return files


def read_bundle_urls(list_file: str | Path, *, timeout: float = 30.0) -> list[BundleFile]:
    """Fetch every URL listed in ``list_file`` (one per line, ``#`` comments). Only called when asked."""
    try:
        lines = Path(list_file).read_text().splitlines()
    except OSError as exc:
        raise AuditInputError(f"--bundle-urls {list_file} cannot be read ({exc.strerror})") from None
    out = []
    for number, line in enumerate(lines, 1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        if not url.startswith(("http://", "https://")):
            raise AuditInputError(f"--bundle-urls {list_file} line {number}: {url!r} is not an http(s) URL")
        try:
            _final, data = get_bounded(url, MAX_BUNDLE_BYTES, timeout)
        except DownloadError as exc:
            raise AuditInputError(f"bundle URL {url} {exc}") from None
        out.append(BundleFile(url, data))
    return out


def _parse(file: BundleFile, f: Findings) -> tuple[Bundle | None, list[Any]]:
    """The bundle's header and its raw receipt objects (verified later, in bulk)."""
    name = file.name
    digest = hashlib.sha256(file.data).hexdigest()
    base = name.rsplit("/", 1)[-1]
    if base != f"{digest}.json":
        f.evidence("bundle-name", f"bundle {name}",
                   f"bundle {name} is not named by its content hash: its SHA-256 is {digest}, so the file was "
                   "altered after publication or named wrongly")
    try:
        # A key given twice would be read one way here and another way by other parsers: refuse it,
        # as the node's own bundle loader does.
        doc = json.loads(file.data, object_pairs_hook=reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        f.evidence("bundle-malformed", f"bundle {name}", f"bundle {name} is not valid JSON: {exc}")
        return None, []
    if not isinstance(doc, dict) or not isinstance(doc.get("receipts"), list):
        f.evidence("bundle-malformed", f"bundle {name}", f"bundle {name} is not an object with a receipts list")
        return None, []
    if canonical_json(doc) != file.data:
        f.warning("bundle-not-canonical", f"bundle {name}",
                  f"bundle {name} is not in canonical JSON form (sorted keys, no whitespace)")
    if doc.get("version") != 1:
        f.evidence("bundle-version", f"bundle {name}", f"bundle {name} has version {doc.get('version')!r}, expected 1")
    try:
        root = bytes.fromhex(str(doc.get("root", ""))[2:])
        if len(root) != 32:
            raise ValueError
    except ValueError:
        root = b""
        f.evidence("bundle-malformed", f"bundle {name}", f"bundle {name} has root {doc.get('root')!r}, not a bytes32")
    chain_id = doc.get("chainId")
    bundle = Bundle(
        name=name,
        chain_id=chain_id if isinstance(chain_id, int) and not isinstance(chain_id, bool) else None,
        settlement=str(doc.get("settlement", "")),
        node=str(doc.get("node", "")),
        root=root,
        declared_count=len(doc["receipts"]),
    )
    return bundle, doc["receipts"]


def verify_bundles(
    files: list[BundleFile],
    *,
    chain_id: int,
    settlement: str,
    batches: list[BatchRecord],
    jobs: int = 1,
    max_clock_skew: int = 0,
) -> BundleReport:
    """Verify ``files`` and match them to the ``BatchSettled`` records of the range."""
    f = Findings()
    counts: dict[str, int] = defaultdict(int)
    parsed: list[tuple[Bundle, list[Any]]] = []
    for file in files:
        counts["bundle_files"] += 1
        bundle, objs = _parse(file, f)
        if bundle is not None:
            parsed.append((bundle, objs))

    # One pass over every receipt of every bundle (parse, digest, recover): the expensive part, parallel.
    separator = domain_separator(chain_id, bytes.fromhex(settlement[2:]))
    flat = [obj for _, objs in parsed for obj in objs]
    results = iter(verify_many(flat, separator, processes=jobs))
    counts["bundle_receipts"] = len(flat)
    for bundle, objs in parsed:
        for index in range(len(objs)):
            receipt = _bundle_receipt(index, next(results))
            if isinstance(receipt, str):
                f.evidence("bundle-receipt-malformed", f"bundle {bundle.name} receipt #{index}",
                           f"bundle {bundle.name} receipt #{index} is malformed: {receipt}", position=(index,))
            else:
                bundle.receipts.append(receipt)
        bundle.parsed_count = len(bundle.receipts)
    counts["bundle_signatures_recovered"] = sum(b.parsed_count for b, _ in parsed)

    by_root: dict[bytes, BatchRecord] = {b.root: b for b in batches}
    matched: dict[str, str] = {}
    for bundle, _ in parsed:
        _check_bundle(bundle, f, counts, chain_id, settlement)
        batch = by_root.get(bundle.root) or by_root.get(bundle.computed_root) or _match_by_receipts(bundle, batches)
        if batch is None:
            f.warning("bundle-unmatched", f"bundle {bundle.name}",
                      f"bundle {bundle.name} (root {_h(bundle.root)}) matches no BatchSettled in the audited range")
            continue
        if batch.tx_hash in matched:
            f.evidence("bundle-duplicate-file", f"bundle {bundle.name}",
                       f"bundle {bundle.name} and {matched[batch.tx_hash]} both claim the batch in tx {batch.tx_hash}")
            continue
        matched[batch.tx_hash] = bundle.name
        _check_against_batch(bundle, batch, f, counts, max_clock_skew)
    for batch in batches:
        counts["batches_committed"] += 1
        if batch.tx_hash not in matched:
            f.evidence("bundle-missing", f"BatchSettled at block {batch.block} log {batch.log_index} (tx {batch.tx_hash})",
                       f"no bundle verifies the root {_h(batch.root)} committed by node {batch.node} in tx {batch.tx_hash}",
                       position=(batch.block, batch.log_index))
    counts["bundles_matched"] = len(matched)
    return BundleReport(findings=f, counts=dict(counts), bundles=[b for b, _ in parsed], matched=matched)


def _bundle_receipt(index: int, check: RecordCheck) -> BundleReceipt | str:
    """The parsed receipt with its digest and signer ("" when none recovers), or why it did not parse."""
    raw = check.raw
    if raw is None or check.digest is None:
        return check.error or "does not parse"
    return BundleReceipt(
        index=index, consumer=checksum_address(raw.consumer), node=checksum_address(raw.node),
        session_id="0x" + raw.session_id.hex(), cumulative_bytes=raw.cumulative_bytes,
        cumulative_amount=raw.cumulative_amount, latency_ms=raw.latency_ms, issued_at=raw.issued_at,
        digest=check.digest, signer=checksum_address(check.recovered) if check.recovered else "",
    )


def _check_bundle(bundle: Bundle, f: Findings, counts: dict[str, int], chain_id: int, settlement: str) -> None:
    name = bundle.name
    if bundle.chain_id != chain_id:
        f.evidence("bundle-chain", f"bundle {name}",
                   f"bundle {name} is for chain id {bundle.chain_id}, the audited chain is {chain_id}")
    if bundle.settlement.lower() != settlement.lower():
        f.evidence("bundle-contract", f"bundle {name}",
                   f"bundle {name} is for contract {bundle.settlement}, the audited ReceiptSettlement is {settlement}")
    seen: dict[bytes, int] = {}
    last_by_consumer: dict[str, BundleReceipt] = {}
    previous: BundleReceipt | None = None
    for r in bundle.receipts:
        counts["bundle_receipt_checks"] += 1
        label = r.label(name)
        if r.node.lower() != bundle.node.lower():
            f.evidence("bundle-receipt-node", label, f"{label} is for node {r.node}, the bundle is for {bundle.node}",
                       position=(r.index,))
        if r.signer != r.consumer:
            got = r.signer or "nothing (invalid or malleable signature)"
            f.evidence("bundle-signature", label,
                       f"{label}: the signature recovers to {got}, not the consumer, under chain {chain_id} and "
                       f"contract {settlement} (altered, or signed for another chain id or contract)",
                       position=(r.index,))
        if r.digest in seen:
            f.evidence("bundle-duplicate", label, f"{label} duplicates receipt #{seen[r.digest]} (same digest {_h(r.digest)})",
                       position=(r.index,))
        else:
            seen[r.digest] = r.index
        if previous is not None and _order_key(r) < _order_key(previous):
            f.evidence("bundle-order", label,
                       f"{label} is out of canonical order (after #{previous.index}); receipts must be ordered by "
                       "(consumer, cumulativeAmount, issuedAt)", position=(r.index,))
        before = last_by_consumer.get(r.consumer)
        if before is not None and r.digest != before.digest:
            if r.cumulative_amount <= before.cumulative_amount:
                f.evidence("bundle-monotonic", label,
                           f"{label}: cumulativeAmount does not increase over receipt #{before.index} "
                           f"({before.cumulative_amount})", position=(r.index,))
            if r.cumulative_bytes < before.cumulative_bytes:
                f.evidence("bundle-monotonic", label,
                           f"{label}: cumulativeBytes {r.cumulative_bytes} decreases from {before.cumulative_bytes} "
                           f"of receipt #{before.index}", position=(r.index,))
            if r.issued_at < before.issued_at:
                f.evidence("bundle-monotonic", label,
                           f"{label}: issuedAt {r.issued_at} is earlier than {before.issued_at} of receipt #{before.index}",
                           position=(r.index,))
        last_by_consumer[r.consumer] = r
        previous = r
    if bundle.receipts and len(bundle.receipts) == bundle.declared_count:
        bundle.computed_root = merkle_root([r.digest for r in bundle.receipts])
        if bundle.computed_root != bundle.root:
            f.evidence("bundle-root-declared", f"bundle {name}",
                       f"bundle {name}: its {len(bundle.receipts)} receipts hash to root {_h(bundle.computed_root)}, "
                       f"not the root {_h(bundle.root)} it declares")
    elif not bundle.receipts:
        f.evidence("bundle-empty", f"bundle {name}", f"bundle {name} holds no verifiable receipt")


def _match_by_receipts(bundle: Bundle, batches: list[BatchRecord]) -> BatchRecord | None:
    """The batch whose settled digests all appear in ``bundle`` (when the bundle's root matches none)."""
    digests = {r.digest for r in bundle.receipts}
    for batch in batches:
        if batch.node.lower() == bundle.node.lower() and batch.receipts and all(d in digests for _, d, _ in batch.receipts):
            return batch
    return None


def _check_against_batch(bundle: Bundle, batch: BatchRecord, f: Findings, counts: dict[str, int], skew: int) -> None:
    name = bundle.name
    where = f"BatchSettled at block {batch.block} log {batch.log_index} (tx {batch.tx_hash})"
    counts["bundle_batch_checks"] += 1
    if bundle.node.lower() != batch.node.lower():
        f.evidence("bundle-node", f"bundle {name}",
                   f"bundle {name} is for node {bundle.node}, but {where} settled node {batch.node}",
                   position=(batch.block, batch.log_index))
    committed_ok = bundle.computed_root == batch.root
    if not committed_ok:
        f.evidence("bundle-root", f"bundle {name}",
                   f"bundle {name}: its receipts hash to root {_h(bundle.computed_root) if bundle.computed_root else '(none)'}, "
                   f"but {where} committed {_h(batch.root)} (a receipt was removed, added, altered or reordered)",
                   position=(batch.block, batch.log_index))
    by_consumer: dict[str, list[BundleReceipt]] = defaultdict(list)
    for r in bundle.receipts:
        by_consumer[r.consumer].append(r)
    settled_consumers = set()
    for consumer, digest, amount in batch.receipts:
        settled_consumers.add(consumer)
        rs = by_consumer.get(consumer, [])
        if not rs:
            f.evidence("bundle-settled-missing", f"bundle {name}",
                       f"bundle {name} holds no receipt of consumer {consumer}, whose receipt (cumulativeAmount "
                       f"{amount}) {where} settled", position=(batch.block, batch.log_index))
            continue
        last = max(rs, key=_order_key)
        if last.digest != digest:
            f.evidence("bundle-last-receipt", last.label(name),
                       f"{last.label(name)} is the channel's last receipt in the bundle, but {where} settled the "
                       f"receipt with digest {_h(digest)} (cumulativeAmount {amount})",
                       position=(batch.block, batch.log_index, last.index))
        previous = batch.previous_amount.get(consumer, 0)
        for r in rs:
            if r.cumulative_amount <= previous:
                f.evidence("bundle-stale-receipt", r.label(name),
                           f"{r.label(name)} is not newer than the channel's previous settled receipt "
                           f"(cumulativeAmount {previous})", position=(batch.block, batch.log_index, r.index))
    for consumer in sorted(set(by_consumer) - settled_consumers):
        f.evidence("bundle-extra-channel", f"bundle {name}",
                   f"bundle {name} holds receipts of consumer {consumer}, whose channel {where} did not settle",
                   position=(batch.block, batch.log_index))
    for r in bundle.receipts:
        if r.issued_at > batch.timestamp + skew:
            f.evidence("bundle-future-receipt", r.label(name),
                       f"{r.label(name)} is issued at {r.issued_at}, after the block that settled it "
                       f"({batch.timestamp}, tolerance {skew} s)", position=(batch.block, batch.log_index, r.index))


def _order_key(r: BundleReceipt) -> tuple[str, int, int]:
    return (r.consumer.lower(), r.cumulative_amount, r.issued_at)


def _h(value: bytes) -> str:
    return "0x" + value.hex()


def default_jobs() -> int:
    """Worker processes for recovery: every core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)

