"""``kuota audit replay``: recompute every payout from chain events and receipt bundles.

Thin: options are parsed here, the work is ``nodeclient.audit.run_audit``. The report is printed
first (JSON on stdout with ``--json``, else a rich summary), CSV files are written if asked, and only
then does a failed verdict become an exit code: 6 for a mismatch, 7 for missing or unverifiable
bundles; unusable inputs (RPC down, wrong chain, manifest mismatch, a range inside the reorg depth)
exit 4 before any report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from nodeclient.cli.options import CliContext, json_option, network_options, pass_cx
from nodeclient.errors import KuotaError

__all__ = ["COMMANDS", "audit", "replay"]

#: Confirmation depth when no network profile supplies one (an ad-hoc --rpc-url + --manifest).
DEFAULT_CONFIRMATIONS = 12


@click.group()
def audit() -> None:
    """Audit Kuota payouts and rewards from public data alone."""


def _target(cx: CliContext, confirmations: int | None) -> tuple[str, Any, int]:
    """(rpc url, validated deployment, confirmation depth) from flags or the network profile."""
    from nodeclient.audit.errors import AuditInputError
    from nodeclient.deployment import load_manifest

    if cx.rpc_url and cx.manifest and cx.network is None:
        url, manifest_path, depth = cx.rpc_url, cx.manifest, DEFAULT_CONFIRMATIONS
        expected = cx.chain_id
    else:
        try:
            profile = cx.settings().profile()
        except KuotaError as exc:
            # Every input the auditor cannot use exits 4, so CI can tell "could not audit" from a verdict.
            raise AuditInputError(f"network profile unusable: {exc}") from None
        url, manifest_path, depth, expected = profile.rpc_url, profile.manifest, profile.confirmations, profile.chain_id
    try:
        deployment = load_manifest(manifest_path, expected_chain_id=expected)
    except KuotaError as exc:
        # For an auditor a manifest that cannot be trusted is an unusable input, like a wrong chain.
        raise AuditInputError(f"manifest unusable: {exc}") from None
    return url, deployment, depth if confirmations is None else confirmations


@audit.command("replay")
@network_options
@click.option("--from-block", type=click.IntRange(min=0), default=None,
              help="First block to replay (default: the deployment block).")
@click.option("--to-block", type=click.IntRange(min=0), default=None,
              help="Last block to replay (default: latest minus the confirmation depth).")
@click.option("--confirmations", type=click.IntRange(min=0, max=10_000), default=None,
              help=f"Reorg depth: blocks this close to the head are not reported on (default: the profile's, "
                   f"or {DEFAULT_CONFIRMATIONS} with --rpc-url/--manifest).")
@click.option("--allow-unconfirmed", is_flag=True, help="Report on blocks inside the reorg depth anyway.")
@click.option("--bundles", "bundle_dir", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None,
              help="Directory of published receipt bundles (<sha256>.json) to verify against committed roots.")
@click.option("--bundle-urls", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="File listing bundle URLs, one per line; they are fetched only when this is given.")
@click.option("--fetch", is_flag=True,
              help="Download every bundle named on chain from its node (the 'bundles' URL of its registry "
                   "metadata, else --bundle-source) and verify it.")
@click.option("--bundle-source", default=None, metavar="URL",
              help="Bundles URL (e.g. http://node:7448/bundles/) for nodes whose metadata names none; with --fetch.")
@click.option("--allow-partial", is_flag=True,
              help="With --fetch: report unreachable bundles as warnings instead of failing with exit 7.")
@click.option("--csv", "csv_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Also write settlements.csv, node_epochs.csv and findings.csv into this directory.")
@click.option("--jobs", "-j", type=click.IntRange(min=1, max=256), default=None,
              help="Processes for signature recovery over bundles (default: all cores).")
@click.option("--max-clock-skew", type=click.IntRange(min=0, max=86_400), default=300, show_default=True,
              help="Seconds a bundle receipt's issuedAt may be later than the block that settled it "
                   "(consumer clocks run ahead; 0 is strictest).")
@click.option("--getlogs-span", type=click.IntRange(min=1, max=1_000_000), default=2_000, show_default=True,
              help="First eth_getLogs block span (it shrinks on provider limits and grows on success).")
@click.option("--progress", "show_progress", is_flag=True,
              help="Block counts of the log reads on stderr even when it is not a terminal (never with --json).")
@json_option
@pass_cx
def replay(
    cx: CliContext,
    from_block: int | None,
    to_block: int | None,
    confirmations: int | None,
    allow_unconfirmed: bool,
    bundle_dir: Path | None,
    bundle_urls: Path | None,
    fetch: bool,
    bundle_source: str | None,
    allow_partial: bool,
    csv_dir: Path | None,
    jobs: int | None,
    max_clock_skew: int,
    getlogs_span: int,
    show_progress: bool,
) -> None:
    """Replay every settlement, escrow balance and reward, and compare them with the chain.

    Exit codes: 0 consistent, 6 mismatch, 7 missing, unreachable (--fetch) or unverifiable bundles,
    4 unusable input.
    """
    from nodeclient.audit import AuditOptions, run_audit
    from nodeclient.audit.errors import AuditEvidenceError, AuditMismatchError
    from nodeclient.audit.report import first_finding, render_summary, to_json, write_csv

    _check_fetch_options(fetch, bundle_source, allow_partial)
    url, deployment, depth = _target(cx, confirmations)
    with cx.progress("reading event logs", forced=show_progress) as progress:
        options = AuditOptions(
            rpc_url=url, deployment=deployment, from_block=from_block, to_block=to_block, confirmations=depth,
            allow_unconfirmed=allow_unconfirmed, bundle_dir=bundle_dir, bundle_urls=bundle_urls,
            fetch=fetch, bundle_source=bundle_source, allow_partial=allow_partial,
            max_clock_skew=max_clock_skew, getlogs_initial_span=getlogs_span, progress=progress,
            **({"jobs": jobs} if jobs is not None else {}),
        )
        result = run_audit(options)
    report = result.report
    if cx.as_json:
        sys.stdout.write(to_json(report))
        sys.stdout.flush()
    else:
        render_summary(report, cx.console)
        if result.range.unconfirmed:
            cx.note(f"note: blocks after {result.range.latest - result.range.confirmations} are inside the reorg depth "
                    "and were reported on because --allow-unconfirmed was given")
    for item in report.get("bundleFetch", {}).get("unreachable", []):
        cx.note(f"unreachable bundle {item['root']} of node {item['node']} at {item['url'] or '(no endpoint)'}: "
                f"{item['reason']}")
    if csv_dir is not None:
        for path in write_csv(report, csv_dir):
            cx.note(f"wrote {path}")
    if result.exit_code == AuditMismatchError.exit_code:
        raise AuditMismatchError(report["counts"]["mismatches"], first_finding(report, "mismatch"))
    if result.exit_code == AuditEvidenceError.exit_code:
        raise AuditEvidenceError(report["counts"]["evidence_problems"], first_finding(report, "evidence"))


def _check_fetch_options(fetch: bool, bundle_source: str | None, allow_partial: bool) -> None:
    from urllib.parse import urlparse

    from nodeclient.audit.errors import AuditInputError

    if (bundle_source is not None or allow_partial) and not fetch:
        raise AuditInputError("--bundle-source and --allow-partial only apply with --fetch")
    if bundle_source is not None:
        parsed = urlparse(bundle_source)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise AuditInputError(f"--bundle-source {bundle_source!r} is not an http(s) URL")


COMMANDS: list[click.Command] = [audit]
