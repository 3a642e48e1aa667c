"""Receipt bundles: the intermediate receipts of a settlement batch, published for auditors.

Format (BRIEF "Receipts off chain"): canonical JSON — sorted keys, no whitespace —
``{"chainId", "node", "receipts": [...], "root", "settlement", "version": 1}``; receipts sorted by
(consumer lower-case, cumulativeAmount, issuedAt); ``root`` is the Merkle root (OpenZeppelin
``SimpleMerkleTree``, unsorted; docs/PROTOCOL.md "Receipt bundles") of the receipts' EIP-712 digests in
bundle order and is what ``settleMany`` commits on chain; the file is
named ``<sha256 of its bytes>.json``.

`build_bundle` / `write_bundle` / `prepare_batch` are the node's side. `check_bundle` is the auditor's:
it reports every problem with the receipt index and field; `load_bundle` raises the first one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from typing_extensions import Unpack

from nodeclient._utils.files import atomic_write
from nodeclient.errors import ReceiptError
from nodeclient.receipts.crypto import merkle_root
from nodeclient.receipts.errors import BundleError, BundleRecordError
from nodeclient.receipts.model import (
    RawReceipt,
    Receipt,
    SignedReceipt,
    parse_address,
    parse_raw_receipt,
    raw_to_json_dict,
    reject_duplicate_keys,
    to_checksum_address,
)
from nodeclient.receipts.signing import ReceiptDomain, receipt_digest
from nodeclient.receipts.store import ReceiptStore, StoredReceipt
from nodeclient.receipts.verify import verify_many

__all__ = [
    "BUNDLE_VERSION",
    "Bundle",
    "BundleCheck",
    "BundleExpectations",
    "BundleProblem",
    "PreparedBatch",
    "build_bundle",
    "bundle_sort_key",
    "canonical_json",
    "check_bundle",
    "check_bundle_bytes",
    "load_bundle",
    "prepare_batch",
    "write_bundle",
]

BUNDLE_VERSION = 1
_HEADER_KEYS = frozenset({"version", "chainId", "settlement", "node", "root", "receipts"})


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the byte form that is hashed and named."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def bundle_sort_key(receipt: Receipt) -> tuple[str, int, int]:
    """Bundle order: consumer (lower-case hex), then cumulativeAmount, then issuedAt."""
    return (receipt.consumer.lower(), receipt.cumulative_amount, receipt.issued_at)


@dataclass(frozen=True)
class Bundle:
    """A bundle's content. ``digests[i]`` is the EIP-712 digest of ``receipts[i]``."""

    chain_id: int
    settlement: str
    node: str
    root: bytes
    receipts: tuple[SignedReceipt, ...]
    digests: tuple[bytes, ...]

    @property
    def domain(self) -> ReceiptDomain:
        """The EIP-712 domain the receipts are signed under."""
        return ReceiptDomain(chain_id=self.chain_id, verifying_contract=self.settlement)

    def to_json_dict(self) -> dict[str, Any]:
        """The bundle as JSON-ready data."""
        return {
            "version": BUNDLE_VERSION,
            "chainId": self.chain_id,
            "settlement": self.settlement,
            "node": self.node,
            "root": "0x" + self.root.hex(),
            "receipts": [r.to_json_dict() for r in self.receipts],
        }

    def to_bytes(self) -> bytes:
        """Canonical file content."""
        return canonical_json(self.to_json_dict())

    @property
    def filename(self) -> str:
        """``<sha256 hex of the file bytes>.json``."""
        return hashlib.sha256(self.to_bytes()).hexdigest() + ".json"

    def last_per_channel(self) -> dict[str, SignedReceipt]:
        """consumer → the channel's last receipt in the bundle (the one settled)."""
        return {r.consumer: r for r in self.receipts}


def build_bundle(receipts: Iterable[SignedReceipt | StoredReceipt], domain: ReceiptDomain, node: str) -> Bundle:
    """Bundle ``receipts`` (SignedReceipts or `StoredReceipt` records) of ``node`` under ``domain``.

    Sorts them into bundle order and computes the digests and the root. Refuses receipts of another
    node, and an empty bundle.
    """
    node_cs = to_checksum_address(parse_address("node", node))
    items = [r.receipt if isinstance(r, StoredReceipt) else r for r in receipts]
    if not items:
        raise ReceiptError("A bundle needs at least one receipt.")
    for i, receipt in enumerate(items):
        if not isinstance(receipt, SignedReceipt):
            raise ReceiptError(f"Bundle item {i} is a {type(receipt).__name__}, not a SignedReceipt.")
        if receipt.node != node_cs:
            raise ReceiptError(f"Bundle item {i} is for node {receipt.node}, not the bundle's node {node_cs}.")
    ordered = tuple(sorted(items, key=bundle_sort_key))
    digests = tuple(receipt_digest(r, domain) for r in ordered)
    return Bundle(
        chain_id=domain.chain_id,
        settlement=domain.verifying_contract,
        node=node_cs,
        root=merkle_root(digests),
        receipts=ordered,
        digests=digests,
    )


def write_bundle(bundle: Bundle, directory: str | Path) -> Path:
    """Write ``bundle`` atomically as ``directory/<sha256>.json``; return the path.

    Content-addressed, so an existing file of that name already holds these bytes and is kept.
    """
    data = bundle.to_bytes()
    path = Path(directory) / (hashlib.sha256(data).hexdigest() + ".json")
    if path.exists() and path.read_bytes() == data:
        return path
    atomic_write(path, data)
    return path


@dataclass(frozen=True)
class PreparedBatch:
    """A settlement batch recorded in the store with its bundle written to disk."""

    batch_id: int
    bundle: Bundle
    path: Path
    receipts: tuple[SignedReceipt, ...]  # the receipts to settle, in settleMany order


def prepare_batch(
    store: ReceiptStore,
    receipts: Sequence[bytes | str | StoredReceipt | SignedReceipt],
    domain: ReceiptDomain,
    directory: str | Path,
) -> PreparedBatch:
    """Build and write the bundle for settling ``receipts``, then record the batch (pending) in ``store``.

    The bundle file is durable before the batch that names it; a crash in between leaves an unused
    content-addressed file, never a batch whose bundle is missing.
    """
    members = store.bundle_receipts(receipts)
    if not members:
        raise ReceiptError("Nothing to bundle: no receipts were given.")
    bundle = build_bundle(members, domain, members[0].receipt.node)
    path = write_bundle(bundle, directory)
    batch_id = store.begin_batch(receipts, bundle_root=bundle.root, bundle_file=path.name)
    batch = store.batch(batch_id)
    return PreparedBatch(batch_id, bundle, path, tuple(item.receipt.receipt for item in batch.items))


# ---------------------------------------------------------------------- verification (auditor side)


@dataclass(frozen=True, slots=True)
class BundleProblem:
    """One thing wrong with a bundle: ``index``/``field`` name the receipt and field when it is one."""

    index: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        at = "" if self.index is None else f"receipt {self.index}" + (f" field '{self.field}'" if self.field else "") + ": "
        return at + self.message


@dataclass
class BundleCheck:
    """Result of `check_bundle`: every problem found, the header, and per-receipt digests.

    ``bundle`` is set when the header and every record parsed (signatures and order may still fail).
    """

    source: str
    problems: list[BundleProblem] = field(default_factory=list)
    bundle: Bundle | None = None
    receipts_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def raise_first(self) -> None:
        """Raise the first problem as `BundleRecordError` (a record) or `BundleError` (the whole)."""
        if not self.problems:
            return
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        if first.index is not None:
            raise BundleRecordError(self.source, first.index, first.field, first.message + more)
        raise BundleError(self.source, first.message + more)


class BundleExpectations(TypedDict, total=False):
    """What a bundle must match beyond its own consistency (every key optional)."""

    #: the EIP-712 domain of this deployment; a bundle for another chain or contract is a problem.
    expected_domain: ReceiptDomain | None
    #: the ``bundleRoot`` committed on chain for the batch.
    expected_root: bytes | None
    #: the node whose batch this is.
    expected_node: str | None
    #: latest acceptable ``issuedAt`` (e.g. the settling block's time).
    not_after: int | None
    #: worker processes for signature recovery (default: all cores).
    processes: int | None


@dataclass(frozen=True, slots=True)
class _Header:
    chain_id: int
    settlement: str
    node: str
    root: bytes
    records: list[Any]

    @property
    def domain(self) -> ReceiptDomain:
        return ReceiptDomain(chain_id=self.chain_id, verifying_contract=self.settlement)


def check_bundle_bytes(
    data: bytes, *, source: str = "<bundle>", expected_name: str | None = None, **expected: Unpack[BundleExpectations]
) -> BundleCheck:
    """Verify bundle bytes; collect every problem rather than stopping at the first.

    Checks: the name is the content's sha256 (``expected_name``), canonical JSON, header fields and
    version, the domain (``expected_domain``), every record's fields and canonical form, node,
    signature (consumer under the bundle's domain, in parallel), bundle order with no duplicates,
    per-channel counters (amount strictly up; bytes and issuedAt not down), ``issuedAt <= not_after``,
    the Merkle root against the header and against ``expected_root`` (the one committed on chain).
    """
    check = BundleCheck(source)
    problems = check.problems
    doc = _check_document(data, expected_name, problems)
    header = _check_header(doc, expected, problems) if doc is not None else None
    if header is not None:
        raws = _check_records(header, expected.get("not_after"), problems)
        check.receipts_checked = len(raws)
        digests = _check_signatures(raws, header.domain, expected.get("processes"), problems)
        _check_order(raws, digests, problems)
        check.bundle = _check_root(header, raws, digests, expected.get("expected_root"), problems)
    # Record problems first, in index order: a tampered record also breaks the root and the file
    # hash, and the record is the finding an auditor needs named.
    problems.sort(key=lambda p: (p.index is None, p.index or 0))
    return check


def _whole(problems: list[BundleProblem], message: str) -> None:
    problems.append(BundleProblem(None, None, message))


def _check_document(data: bytes, expected_name: str | None, problems: list[BundleProblem]) -> dict[str, Any] | None:
    """The parsed JSON object, after the content-hash name and canonical-form checks."""
    if expected_name is not None:
        actual = hashlib.sha256(data).hexdigest() + ".json"
        if expected_name != actual:
            _whole(problems, f"file name {expected_name} does not match its content hash {actual}")
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        _whole(problems, f"is not valid JSON: {exc}")
        return None
    if not isinstance(doc, dict):
        _whole(problems, f"must be a JSON object, got {type(doc).__name__}")
        return None
    if canonical_json(doc) != data:
        _whole(problems, "is not canonical JSON (sorted keys, no whitespace)")
    return doc


def _check_header(doc: dict[str, Any], expected: BundleExpectations, problems: list[BundleProblem]) -> _Header | None:
    """The header's fields, or None (with the problem recorded) when one cannot be read."""
    if set(doc) != _HEADER_KEYS:
        _whole(problems, f"has header keys {sorted(doc)}, expected {sorted(_HEADER_KEYS)}")
        return None
    if doc["version"] != BUNDLE_VERSION or type(doc["version"]) is not int:
        _whole(problems, f"header field 'version' is {doc['version']!r}, expected {BUNDLE_VERSION}")
        return None
    chain_id, root_text = doc["chainId"], doc["root"]
    if type(chain_id) is not int or chain_id <= 0:
        _whole(problems, f"header field 'chainId' is {chain_id!r}: must be a positive integer")
        return None
    try:
        settlement = to_checksum_address(parse_address("settlement", doc["settlement"]))
        node = to_checksum_address(parse_address("node", doc["node"]))
        if type(root_text) is not str or len(root_text) != 66 or not root_text.startswith("0x"):
            _whole(problems, f"header field 'root' is {root_text!r}: must be 0x + 64 hex digits")
            return None
        root = bytes.fromhex(root_text[2:])
    except (ReceiptError, ValueError) as exc:
        _whole(problems, f"header: {exc}")
        return None
    header = _Header(chain_id, settlement, node, root, doc["receipts"])
    expected_domain, expected_node = expected.get("expected_domain"), expected.get("expected_node")
    if expected_domain is not None and header.domain != expected_domain:
        _whole(problems, f"is for {header.domain.describe()}, expected {expected_domain.describe()}")
    if expected_node is not None and node != to_checksum_address(parse_address("node", expected_node)):
        _whole(problems, f"header field 'node' is {node}, expected {expected_node}")
    if not isinstance(header.records, list) or not header.records:
        _whole(problems, "header field 'receipts' must be a non-empty array")
        return None
    return header


def _check_records(header: _Header, not_after: int | None, problems: list[BundleProblem]) -> list[RawReceipt | None]:
    """Each record parsed (None where it does not), with its canonical form, node and issuedAt checked."""
    node = bytes.fromhex(header.node[2:])
    raws: list[RawReceipt | None] = []
    for index, record in enumerate(header.records):
        try:
            raw = parse_raw_receipt(record, signed=True)
        except ReceiptError as exc:
            problems.append(BundleProblem(index, getattr(exc, "field", None) or "signature", str(exc)))
            raws.append(None)
            continue
        if raw_to_json_dict(raw) != record:
            problems.append(BundleProblem(index, None, "is not in canonical form (checksummed addresses, lower-case hex)"))
        if raw.node != node:
            problems.append(BundleProblem(index, "node", f"is {to_checksum_address(raw.node)}, not the bundle's node {header.node}"))
        if not_after is not None and raw.issued_at > not_after:
            problems.append(BundleProblem(index, "issuedAt", f"is {raw.issued_at}, after {not_after} (in the future)"))
        raws.append(raw)
    return raws


def _check_signatures(
    raws: list[RawReceipt | None], domain: ReceiptDomain, processes: int | None, problems: list[BundleProblem]
) -> list[bytes | None]:
    """Each parsed record's digest (None for records that did not parse); a bad signature is a problem."""
    valid = [(i, r) for i, r in enumerate(raws) if r is not None]
    digests: list[bytes | None] = [None] * len(raws)
    for (index, _), result in zip(valid, verify_many([r for _, r in valid], domain, processes=processes), strict=True):
        digests[index] = result.digest
        if result.error is not None:
            problems.append(BundleProblem(index, result.field, result.error))
    return digests


def _check_order(raws: list[RawReceipt | None], digests: list[bytes | None], problems: list[BundleProblem]) -> None:
    """No duplicate digests, bundle order, and per-channel monotonic counters."""
    seen: dict[bytes, int] = {}
    previous: tuple[int, RawReceipt] | None = None
    for index, raw in enumerate(raws):
        digest = digests[index]
        if digest is not None:
            if digest in seen:
                problems.append(BundleProblem(index, None, f"duplicates receipt {seen[digest]}"))
            else:
                seen[digest] = index
        if raw is None:
            continue
        if previous is not None:
            _check_step(previous, (index, raw), digests, problems)
        previous = (index, raw)


def _check_step(
    previous: tuple[int, RawReceipt], current: tuple[int, RawReceipt], digests: list[bytes | None],
    problems: list[BundleProblem],
) -> None:
    (prev_index, prev), (index, raw) = previous, current
    if (raw.consumer.hex(), raw.cumulative_amount, raw.issued_at) < (
        prev.consumer.hex(), prev.cumulative_amount, prev.issued_at
    ):
        problems.append(BundleProblem(index, None, f"is out of bundle order (sorts before receipt {prev_index})"))
        return
    if raw.consumer != prev.consumer:
        return
    if raw.cumulative_amount <= prev.cumulative_amount and digests[index] != digests[prev_index]:
        problems.append(BundleProblem(
            index, "cumulativeAmount", f"is {raw.cumulative_amount}, not above receipt {prev_index}'s {prev.cumulative_amount}"
        ))
    if raw.cumulative_bytes < prev.cumulative_bytes:
        problems.append(BundleProblem(
            index, "cumulativeBytes", f"is {raw.cumulative_bytes}, below receipt {prev_index}'s {prev.cumulative_bytes}"
        ))
    if raw.issued_at < prev.issued_at:
        problems.append(BundleProblem(index, "issuedAt", f"is {raw.issued_at}, before receipt {prev_index}'s {prev.issued_at}"))


def _check_root(
    header: _Header, raws: list[RawReceipt | None], digests: list[bytes | None], expected_root: bytes | None,
    problems: list[BundleProblem],
) -> Bundle | None:
    """The root against the header's and the committed one; the `Bundle` when every record parsed."""
    root_text = "0x" + header.root.hex()
    leaves = [d for d in digests if d is not None]
    if len(leaves) == len(digests):
        computed = merkle_root(leaves)
        if computed != header.root:
            problems.append(BundleProblem(None, "root", f"root {root_text} does not match the receipts' root 0x{computed.hex()}"))
    if expected_root is not None and expected_root != header.root:
        problems.append(BundleProblem(None, "root", f"root {root_text} differs from the committed bundleRoot 0x{expected_root.hex()}"))
    if len(leaves) != len(digests) or any(r is None for r in raws):
        return None
    return Bundle(
        chain_id=header.chain_id,
        settlement=header.settlement,
        node=header.node,
        root=header.root,
        receipts=tuple(Receipt.from_raw(r) for r in raws if r is not None),  # type: ignore[misc]
        digests=tuple(leaves),
    )


def check_bundle(path: str | Path, **expected: Unpack[BundleExpectations]) -> BundleCheck:
    """`check_bundle_bytes` for a file; its name must be ``<sha256 of content>.json``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return BundleCheck(str(path), [BundleProblem(None, None, f"cannot be read: {exc.strerror or exc}")])
    return check_bundle_bytes(data, source=str(path), expected_name=path.name, **expected)


def load_bundle(path: str | Path, **expected: Unpack[BundleExpectations]) -> Bundle:
    """Load and fully verify a bundle file; raise `BundleRecordError` / `BundleError` on the first problem."""
    check = check_bundle(path, **expected)
    check.raise_first()
    if check.bundle is None:  # unreachable: no problems means every record parsed
        raise BundleError(str(path), "could not be loaded")
    return check.bundle
