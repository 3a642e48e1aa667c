"""``run_audit``: the whole replay, from an RPC URL and a manifest to a report and an exit code.

Order of work: connect and check the deployment; choose the range (refusing the reorg depth unless
allowed); read and decode the events, pinning every block hash; replay; compare with the contracts'
views at the end block; verify bundles; collect warnings; re-read the first and last block hashes so
a reorg during the audit is refused instead of reported on; assemble the deterministic report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeclient.audit.bundles import (
    BundleFile,
    default_jobs,
    read_bundle_dir,
    read_bundle_urls,
    verify_bundles,
)
from nodeclient.audit.fetch import FetchOutcome, bundle_endpoints, fetch_bundles
from nodeclient.audit.findings import Findings
from nodeclient.audit.heuristics import HeuristicLimits, find_warnings
from nodeclient.audit.logs import FetchStats, LogFetcher
from nodeclient.audit.reconcile import reconcile
from nodeclient.audit.replay import Ledger, replay
from nodeclient.audit.report import REPORT_VERSION, verdict_of
from nodeclient.audit.source import BlockRange, gather, open_source, resolve_range
from nodeclient.chain.getlogs import Progress

__all__ = ["AuditOptions", "AuditResult", "run_audit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditOptions:
    """What to audit and how."""

    rpc_url: str
    #: a validated ``nodeclient.deployment.Deployment``.
    deployment: Any
    from_block: int | None = None
    to_block: int | None = None
    confirmations: int = 12
    allow_unconfirmed: bool = False
    bundle_dir: Path | None = None
    bundle_urls: Path | None = None
    #: download every bundle named on chain from the node's published endpoint (``--fetch``).
    fetch: bool = False
    #: bundles URL of nodes whose registry metadata names none (``--bundle-source``).
    bundle_source: str | None = None
    #: with ``fetch``: an unreachable bundle is a warning, not missing evidence (``--allow-partial``).
    allow_partial: bool = False
    fetch_timeout: float = 30.0
    jobs: int = field(default_factory=default_jobs)
    #: seconds a receipt's issuedAt may run ahead of the block that settled it (consumer clock skew).
    max_clock_skew: int = 300
    getlogs_initial_span: int = 2_000
    getlogs_max_span: int = 50_000
    #: block counts of each ``eth_getLogs`` pass over the range (a display; ``None``: nobody watches).
    progress: Progress | None = None


@dataclass
class AuditResult:
    """The report, its verdict and exit code, and how the history was read."""

    report: dict[str, Any]
    verdict: str
    exit_code: int
    fetch: FetchStats
    range: BlockRange


def run_audit(options: AuditOptions) -> AuditResult:
    """Run the audit. Raises ``AuditInputError`` subclasses for unusable inputs (exit 4)."""
    source = open_source(options.rpc_url, options.deployment)
    rng = resolve_range(source, options.from_block, options.to_block, options.confirmations,
                        options.allow_unconfirmed)
    fetcher = LogFetcher(source.w3, initial_span=options.getlogs_initial_span, max_span=options.getlogs_max_span,
                         progress=options.progress)
    data, blocks, end, transfers = gather(source, rng, fetcher)
    ledger = replay(data)
    state_findings, state = reconcile(ledger, end)

    files, fetched = _bundle_files(options, source, ledger)
    bundles_given = options.bundle_dir is not None or options.bundle_urls is not None or options.fetch
    batches = ledger.batches
    if fetched is not None and options.allow_partial:
        # Reported as unreachable (a warning) instead of missing: --allow-partial accepts the gap.
        gone = {u.tx_hash for u in fetched.unreachable}
        batches = [b for b in batches if b.tx_hash not in gone]
    bundle_report = None
    if bundles_given:
        bundle_report = verify_bundles(
            files, chain_id=source.chain_id, settlement=source.contracts["ReceiptSettlement"],
            batches=batches, jobs=options.jobs, max_clock_skew=options.max_clock_skew,
        )
    warnings, warning_counts = find_warnings(ledger, transfers, bundle_report.bundles if bundle_report else [],
                                             HeuristicLimits())
    # The range's ends must not have moved under us: otherwise the report would mix two chains.
    blocks.recheck(rng.from_block)
    blocks.recheck(rng.to_block)

    findings = Findings()
    findings.extend(ledger.findings)
    findings.extend(state_findings)
    if bundle_report is not None:
        findings.extend(bundle_report.findings)
    if fetched is not None:
        findings.extend(_fetch_findings(fetched, options.allow_partial))
    findings.extend(warnings)
    ordered = findings.sorted()
    verdict, exit_code = verdict_of(ordered)

    counts: dict[str, int] = {}
    counts.update(ledger.counts)
    counts.update(state["counts"])
    counts.update(warning_counts)
    if bundle_report is not None:
        counts.update(bundle_report.counts)
    else:
        counts["batches_without_bundle_check"] = len(ledger.batches)
    if fetched is not None:
        counts["bundles_fetched"] = len(fetched.files)
        counts["bundles_unreachable"] = len(fetched.unreachable)
    counts["blocks_pinned"] = len(blocks.used())
    counts["funding_transfers"] = len(transfers)
    counts["mismatches"] = findings.count("mismatch")
    counts["evidence_problems"] = findings.count("evidence")
    counts["warnings"] = findings.count("warning")

    report = _assemble(ledger, ordered, counts, state["onchain"], rng, blocks.used(), verdict, exit_code,
                       bundle_report, bundles_given, options)
    if fetched is not None:
        report["bundleFetch"] = {
            "unreachable": [u.to_json() for u in fetched.unreachable],
            "metadataProblems": dict(sorted(fetched.metadata_problems.items())),
            "fetched": sorted(f.name for f in fetched.files),
        }
    log.info("history read with %d eth_getLogs calls (%d refused as too large, %d transient failures)",
             fetcher.stats.calls, fetcher.stats.limited, fetcher.stats.transient)
    return AuditResult(report=report, verdict=verdict, exit_code=exit_code, fetch=fetcher.stats, range=rng)


def _bundle_files(options: AuditOptions, source: Any, ledger: Ledger) -> tuple[list[BundleFile], FetchOutcome | None]:
    """The bundle files to verify: from ``--bundles``, ``--bundle-urls`` and (``--fetch``) the nodes."""
    files: list[BundleFile] = []
    if options.bundle_dir is not None:
        files.extend(read_bundle_dir(options.bundle_dir))
    if options.bundle_urls is not None:
        files.extend(read_bundle_urls(options.bundle_urls))
    if not options.fetch:
        return files, None
    endpoints, problems = bundle_endpoints(
        source.contract("NodeRegistry"), (b.node for b in ledger.batches), options.bundle_source,
        timeout=options.fetch_timeout,
    )
    fetched = fetch_bundles(ledger.batches, endpoints, problems, timeout=options.fetch_timeout)
    files.extend(fetched.files)
    return files, fetched


def _fetch_findings(fetched: FetchOutcome, allow_partial: bool) -> Findings:
    """One finding per bundle that could not be fetched (evidence, or a warning under --allow-partial)."""
    f = Findings()
    for u in fetched.unreachable:
        record = f"bundle {u.root} of node {u.node} (tx {u.tx_hash})"
        message = f"bundle {u.root} of node {u.node} from {u.url or '(no endpoint)'} is unreachable: {u.reason}"
        (f.warning if allow_partial else f.evidence)("bundle-unreachable", record, message, evidence=u.to_json())
    for node, why in sorted(fetched.metadata_problems.items()):
        f.warning("node-metadata-unreadable", f"node {node}",
                  f"node {node} names no bundles URL in its registry metadata ({why})")
    return f


def _s(value: int) -> str:
    return str(int(value))


def _assemble(
    ledger: Ledger,
    findings: list[Any],
    counts: dict[str, int],
    onchain: dict[str, int],
    rng: BlockRange,
    headers: list[Any],
    verdict: str,
    exit_code: int,
    bundle_report: Any,
    bundles_given: bool,
    options: AuditOptions,
) -> dict[str, Any]:
    data = ledger.data
    matched = bundle_report.matched if bundle_report is not None else {}
    by_number = {h.number: h for h in headers}
    totals = _replayed_totals(ledger)
    return {
        "reportVersion": REPORT_VERSION,
        "verdict": verdict,
        "exitCode": exit_code,
        "chain": {"chainId": data.chain_id, "contracts": dict(sorted(data.contracts.items()))},
        "range": {
            "fromBlock": rng.from_block,
            "toBlock": rng.to_block,
            "fromBlockHash": by_number[rng.from_block].hash,
            "toBlockHash": by_number[rng.to_block].hash,
            "confirmations": rng.confirmations,
            "fullHistory": data.full_history,
        },
        "blocks": [{"number": h.number, "hash": h.hash, "timestamp": h.timestamp} for h in headers],
        "parameters": {f"{c}.{n}": _s(v) for (c, n), v in sorted(ledger.params.items())}
        | {"RewardPool.genesis": _s(data.genesis), "RewardPool.epochLength": _s(data.epoch_length),
           "audit.maxClockSkew": _s(options.max_clock_skew), "audit.bundlesChecked": bundles_given},
        "counts": dict(sorted(counts.items())),
        "totals": {
            "replayed": {k: _s(v) for k, v in sorted(totals.items())},
            "onchain": {k: _s(v) for k, v in sorted(onchain.items())},
        },
        "findings": [f.to_json() for f in findings],
        "settlements": _settlement_rows(ledger, matched),
        "nodeEpochs": _node_epoch_rows(ledger),
        "epochs": [
            {"epoch": e, "scheduled": _s(st.scheduled), "totalCapped": _s(st.total_capped), "budget": _s(st.budget),
             "paid": _s(st.paid), "carry": _s(st.carry), "finalized": st.finalized}
            for e, st in sorted(ledger.epochs.items())
        ],
        "bundles": _bundle_rows(bundle_report),
    }


def _settlement_rows(ledger: Ledger, matched: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "block": r.block, "logIndex": r.log_index, "txHash": r.tx_hash, "consumer": r.consumer, "node": r.node,
            "sessionId": r.session_id, "cumulativeBytes": _s(r.cumulative_bytes),
            "cumulativeAmount": _s(r.cumulative_amount), "latencyMs": r.latency_ms, "issuedAt": r.issued_at,
            "digest": r.digest, "owed": _s(r.owed), "paid": _s(r.paid), "expectedPaid": _s(r.expected_paid),
            "fee": _s(r.fee), "expectedFee": _s(r.expected_fee), "weight": _s(r.weight), "epoch": r.epoch,
            "bundleRoot": r.batch_root, "bundle": matched.get(r.tx_hash, ""), "ok": r.ok,
        }
        for r in ledger.settlements
    ]


def _node_epoch_rows(ledger: Ledger) -> list[dict[str, Any]]:
    return [
        {
            "node": node, "epoch": epoch, "fee": _s(ne.fee), "weight": _s(ne.weight), "capped": _s(ne.capped),
            "reward": _s(ne.reward), "claimed": ne.claimed, "claimedAmount": _s(ne.claimed_amount),
            "finalized": bool(ledger.epochs.get(epoch) and ledger.epochs[epoch].finalized),
        }
        for (node, epoch), ne in sorted(ledger.node_epochs.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]


def _replayed_totals(ledger: Ledger) -> dict[str, int]:
    totals = dict(ledger.totals)
    totals["available"] = sum(a.available for a in ledger.accounts.values())
    totals["thawing"] = sum(a.thawing for a in ledger.accounts.values())
    totals["credits"] = sum(ledger.credits.values())
    totals["accrued_fees"] = ledger.accrued_fees
    totals["escrow_token_balance"] = totals["available"] + totals["thawing"] + totals["credits"] + ledger.accrued_fees
    totals["finalized_through"] = ledger.finalized_through
    totals["total_claimed"] = totals.get("rewards_claimed", 0)
    return totals


def _bundle_rows(bundle_report: Any) -> list[dict[str, Any]]:
    if bundle_report is None:
        return []
    by_bundle = {v: k for k, v in bundle_report.matched.items()}
    return [
        {"name": b.name, "root": "0x" + b.root.hex(), "computedRoot": "0x" + b.computed_root.hex(),
         "receipts": b.declared_count, "verified": b.parsed_count, "batchTx": by_bundle.get(b.name, "")}
        for b in sorted(bundle_report.bundles, key=lambda b: b.name)
    ]
