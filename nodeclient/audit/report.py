"""The audit report: one deterministic document, rendered as JSON, CSV files or a rich summary.

Determinism is a feature: the same chain range and bundles must give a byte-identical report, so a
CI job can diff two runs and a second auditor can reproduce the first. The body therefore holds no
wall-clock time, no RPC URL (it may carry an API key) and nothing that depends on how the provider
chunked the history; every list is sorted by chain position or by name, and token amounts are
decimal strings (JSON numbers above 2^53 lose precision in most readers).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from nodeclient.audit.findings import EVIDENCE, MISMATCH, WARNING, Finding
from nodeclient.errors import EXIT_AUDIT_EVIDENCE, EXIT_AUDIT_MISMATCH

__all__ = ["REPORT_VERSION", "first_finding", "render_summary", "to_json", "verdict_of", "write_csv"]

REPORT_VERSION = 1

_VERDICTS = {
    MISMATCH: ("mismatch", EXIT_AUDIT_MISMATCH),
    EVIDENCE: ("unverifiable-evidence", EXIT_AUDIT_EVIDENCE),
}


def verdict_of(findings: list[Finding]) -> tuple[str, int]:
    """(verdict, exit code): a mismatch outranks missing evidence; warnings never fail an audit."""
    severities = {f.severity for f in findings}
    for severity in (MISMATCH, EVIDENCE):
        if severity in severities:
            return _VERDICTS[severity]
    return "consistent", 0


def first_finding(report: dict[str, Any], severity: str) -> str:
    """Message of the first finding of ``severity`` (for the one-line error)."""
    for f in report["findings"]:
        if f["severity"] == severity:
            return f"{f['record']}: {f['message']}"
    return ""


def to_json(report: dict[str, Any]) -> str:
    """Canonical JSON text of the report (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


_SETTLEMENT_COLUMNS = [
    "block", "logIndex", "txHash", "consumer", "node", "sessionId", "cumulativeBytes", "cumulativeAmount",
    "latencyMs", "issuedAt", "digest", "owed", "paid", "expectedPaid", "fee", "expectedFee", "weight", "epoch",
    "bundleRoot", "bundle", "ok",
]
_NODE_EPOCH_COLUMNS = ["node", "epoch", "fee", "weight", "capped", "reward", "claimed", "claimedAmount", "finalized"]
_FINDING_COLUMNS = ["severity", "code", "record", "message"]


def write_csv(report: dict[str, Any], directory: str | Path) -> list[Path]:
    """Write ``settlements.csv``, ``node_epochs.csv`` and ``findings.csv`` into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, columns, rows in (
        ("settlements.csv", _SETTLEMENT_COLUMNS, report["settlements"]),
        ("node_epochs.csv", _NODE_EPOCH_COLUMNS, report["nodeEpochs"]),
        ("findings.csv", _FINDING_COLUMNS, report["findings"]),
    ):
        path = out / name
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: row.get(k, "") for k in columns})
        written.append(path)
    return written


def _amount(value: str | int, decimals: int) -> str:
    number = int(value)
    if decimals <= 0:
        return f"{number:,}"
    whole, frac = divmod(number, 10**decimals)
    return f"{whole:,}.{frac:0{decimals}d}".rstrip("0").rstrip(".")


def render_summary(report: dict[str, Any], console: Console, *, max_findings: int = 40) -> None:
    """The human summary: verdict, range, what was checked, totals, and the findings."""
    verdict = report["verdict"]
    style = {"consistent": "green", "mismatch": "red"}.get(verdict, "yellow")
    rng = report["range"]
    counts = report["counts"]
    console.print(Panel.fit(
        f"[bold {style}]{verdict.upper()}[/]  chain {report['chain']['chainId']}, blocks {rng['fromBlock']}..{rng['toBlock']} "
        f"(end block {rng['toBlockHash'][:18]}…)\n"
        f"{counts.get('settlements', 0)} settlements, {counts.get('batches', 0)} batches, "
        f"{counts.get('bundle_receipts', 0)} bundle receipts, {counts.get('epochs_finalized', 0)} epochs finalised; "
        f"{counts.get('checks', 0) + counts.get('state_checks', 0) + counts.get('bundle_receipt_checks', 0)} checks",
        title="kuota audit replay",
    ))
    checked = Table(title="Checked", show_header=True, header_style="bold")
    checked.add_column("what")
    checked.add_column("count", justify="right")
    for key in sorted(counts):
        checked.add_row(key.replace("_", " "), str(counts[key]))
    console.print(checked)
    totals = Table(title="Totals (payment token base units unless noted)", header_style="bold")
    totals.add_column("figure")
    totals.add_column("replayed", justify="right")
    totals.add_column("on chain", justify="right")
    replayed, onchain = report["totals"]["replayed"], report["totals"]["onchain"]
    for key in sorted(set(replayed) | set(onchain)):
        totals.add_row(key, _amount(replayed.get(key, "0"), 0) if key in replayed else "—",
                       _amount(onchain.get(key, "0"), 0) if key in onchain else "—")
    console.print(totals)
    findings = report["findings"]
    if not findings:
        console.print("[green]No findings.[/]")
        return
    table = Table(title=f"Findings ({len(findings)})", header_style="bold", show_lines=False)
    table.add_column("severity")
    table.add_column("code")
    table.add_column("record / message", overflow="fold")
    colour = {MISMATCH: "red", EVIDENCE: "yellow", WARNING: "cyan"}
    for item in findings[:max_findings]:
        table.add_row(f"[{colour[item['severity']]}]{item['severity']}[/]", item["code"],
                      f"{item['record']}\n{item['message']}")
    console.print(table)
    if len(findings) > max_findings:
        console.print(f"… and {len(findings) - max_findings} more (see --json or --csv).")
