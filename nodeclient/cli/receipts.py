"""``kuota receipts sign|import|list|export|settle``.

``sign`` is the consumer's side: sign a cumulative receipt for a node and append it (one JSON line)
to a file. ``import`` is the node's side: verify receipt files and store them durably.
``settle`` reconciles what is in flight, applies the gas-aware policy and settles via settleMany.
Every command works on the receipts of one settlement module: ``settlement.module`` from the
settings, or ``--lanes`` for LaneSettlement (receipts signed over its domain, settled from lanes).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import click

from nodeclient._utils.values import format_amount, parse_address, parse_amount, parse_uint
from nodeclient.cli.options import (
    CliContext,
    account_command,
    eth,
    network_command,
    ops,
    spend_command,
    table,
)
from nodeclient.errors import NotFoundError, ReceiptError, RefusedError

__all__ = ["COMMANDS", "receipts"]


@click.group()
def receipts() -> None:
    """Sign (consumer), import, list, export and settle (node) proof-of-bandwidth receipts."""


def lanes_option(fn: Any) -> Any:
    """``--lanes``: sign for, store and settle through LaneSettlement (else ``settlement.module``)."""
    return click.option(
        "--lanes", "lanes", is_flag=True, help="Use LaneSettlement (receipts paid from lanes); default: settlement.module."
    )(fn)


def _module(cx: CliContext, lanes: bool) -> str:
    return "lanes" if lanes else cx.settings().settlement.module


def _last_receipt_in(path: Path, consumer: str, node: str) -> Any:
    from nodeclient.receipts import load_receipts

    if not path.exists() or path.stat().st_size == 0:
        return None
    previous = [r for r in load_receipts(path) if r.consumer == consumer and r.node == node]
    return previous[-1] if previous else None


@receipts.command("sign")
@click.option("--node", "node_address", required=True, help="Node address the receipt pays.")
@click.option("--amount", default=None, help="Cumulative amount owed in the channel, in payment tokens (e.g. 1.5).")
@click.option("--amount-units", default=None, help="Cumulative amount in base units (instead of --amount).")
@click.option("--bytes", "nbytes", required=True, help="Cumulative bytes served in the channel.")
@click.option("--session", default=None, help="bytes32 session id (default: derived from the channel).")
@click.option("--latency-ms", default="0", show_default=True, help="Median latency you measured, ms.")
@click.option("--issued-at", default=None, help="Unix time of the receipt (default: now).")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Append the signed receipt as a JSON line to this file (default: print it).")
@lanes_option
@account_command
def sign(
    cx: CliContext,
    node_address: str,
    amount: str | None,
    amount_units: str | None,
    nbytes: str,
    session: str | None,
    latency_ms: str,
    issued_at: str | None,
    out: Path | None,
    lanes: bool,
) -> None:
    """Sign a cumulative receipt for NODE with your (consumer) account."""
    from nodeclient.receipts import Receipt, sign_receipt
    from nodeclient.settlement import deployment_domain

    node = parse_address("node", node_address)
    if (amount is None) == (amount_units is None):
        raise click.UsageError("give exactly one of --amount or --amount-units")
    cumulative_bytes = parse_uint("bytes", nbytes, 128)
    latency = parse_uint("latency-ms", latency_ms, 32)
    issued = parse_uint("issued-at", issued_at, 64) if issued_at is not None else int(time.time())
    client = cx.client()
    if amount_units is not None:
        cumulative_amount = parse_uint("amount-units", amount_units, 128, allow_zero=False)
    else:
        decimals = ops().token_info(client, "PaymentToken", client.deployment.address("PaymentEscrow")).decimals
        cumulative_amount = parse_amount("amount", amount or "", decimals, maximum=2**128 - 1)
    ops().get_node(client, node)  # refuse to sign for a node that is not registered
    info = cx.account_info()
    session_id = session or "0x" + hashlib.sha256(f"{info.address}:{node}".encode()).hexdigest()
    receipt = Receipt(
        consumer=info.address, node=node, session_id=session_id, cumulative_bytes=cumulative_bytes,
        cumulative_amount=cumulative_amount, latency_ms=latency, issued_at=issued,
    )
    if out is not None:
        last = _last_receipt_in(out, info.address, node)
        if last is not None and (last.cumulative_amount >= cumulative_amount or last.cumulative_bytes > cumulative_bytes):
            raise ReceiptError(
                f"receipt does not advance the channel: {out} already holds cumulativeAmount {last.cumulative_amount}, "
                f"cumulativeBytes {last.cumulative_bytes} for node {node}; cumulative values only grow"
            )
    signer = cx.signer()
    signed = sign_receipt(receipt, signer.private_key_bytes(), deployment_domain(client, _module(cx, lanes)))
    line = signed.to_json()
    if out is not None:
        with out.open("a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())  # the consumer's record of what it signed survives a crash too
    if cx.as_json or out is None:
        click.echo(line)
    else:
        cx.console.print(f"signed receipt for node {node}: cumulative {cumulative_amount} units, {cumulative_bytes} bytes → {out}")


@receipts.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--node", "node_address", required=True, help="Your node's address: every receipt must name it.")
@lanes_option
@network_command
def import_(cx: CliContext, files: tuple[Path, ...], node_address: str, lanes: bool) -> None:
    """Verify receipt FILES (JSON, JSON array or JSON lines) and store them durably for NODE.

    Each file is stored all-or-nothing: a bad receipt rejects its whole file and changes nothing.
    """
    from nodeclient.receipts import SignedReceipt, load_receipts
    from nodeclient.settlement import deployment_domain, open_store

    node = parse_address("node", node_address)
    for path in files:
        if not path.exists():
            raise NotFoundError(f"receipt file {path} does not exist")
    parsed = [(path, load_receipts(path)) for path in files]  # every file parses before anything is stored
    client = cx.client()
    ops().get_node(client, node)
    module = _module(cx, lanes)
    domain = deployment_domain(client, module)
    results = []
    with open_store(client, module) as store:
        for path, items in parsed:
            signed = [r for r in items if isinstance(r, SignedReceipt)]
            stored = store.accept_many(signed, expected_domain=domain, expected_node=node)
            new = sum(1 for s in stored if s.created)
            results.append({"file": str(path), "receipts": len(stored), "new": new, "duplicates": len(stored) - new})
    total_new = sum(r["new"] for r in results)
    cx.emit(
        {"node": node, "files": results, "new": total_new},
        lambda c: c.print(f"stored {total_new} new receipts for node {node} from {len(results)} file(s)"),
    )


@receipts.command("list")
@click.option("--node", "node_address", default=None, help="Only this node's channels.")
@click.option("--batches", "show_batches", is_flag=True, help="List settlement batches instead of channels.")
@lanes_option
@network_command
def list_(cx: CliContext, node_address: str | None, show_batches: bool, lanes: bool) -> None:
    """List channels (latest receipt, settled on chain, unsettled; the store's figure where it differs) or batches."""
    from nodeclient.ledger import channel_views
    from nodeclient.settlement import open_store

    node = parse_address("node", node_address) if node_address else None
    client = cx.client()
    with open_store(client, _module(cx, lanes)) as store:
        if show_batches:
            batches = [b for b in store.batches() if node is None or b.node == node]
            data = {
                "batches": [
                    {"id": b.id, "node": b.node, "state": b.state, "receipts": len(b.items), "txHash": b.tx_hash,
                     "nonce": b.nonce, "bundleRoot": b.bundle_root, "reason": b.reason}
                    for b in batches
                ]
            }
            cx.emit(data, lambda c: c.print(table("Settlement batches", ["id", "node", "state", "receipts", "tx", "reason"],
                                                  [[b.id, b.node, b.state, len(b.items), b.tx_hash or "-", b.reason or ""] for b in batches])))
            return
        # The chain's channelOf is the truth; the store's own ledger is shown beside it where they differ.
        rows = [view.to_json() for view in channel_views(client, store, node=node)]
        stats = store.stats()
    cx.emit(
        {"channels": rows, "stats": stats},
        lambda c: c.print(table(
            f"Channels ({stats.get('receipts', 0)} receipts stored)",
            ["node", "consumer", "latest amount", "settled (chain)", "unsettled", "open batch", "store says"],
            [[r["node"], r["consumer"], r["latestAmount"], r["settledAmount"], r["unsettledAmount"], r["openBatch"] or "-",
              "" if r["agrees"] else r["storeSettledAmount"]] for r in rows],
        )),
    )


@receipts.command("export")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="JSON lines file to write.")
@click.option("--node", "node_address", default=None, help="Only this node's receipts.")
@click.option("--consumer", default=None, help="Only this consumer's receipts.")
@lanes_option
@network_command
def export(cx: CliContext, out: Path, node_address: str | None, consumer: str | None, lanes: bool) -> None:
    """Export stored signed receipts as JSON lines (acceptance order), written atomically."""
    from nodeclient.settlement import open_store

    node = parse_address("node", node_address) if node_address else None
    who = parse_address("consumer", consumer) if consumer else None
    if out.exists():
        raise RefusedError(f"{out} already exists; choose another file")
    with open_store(cx.client(), _module(cx, lanes)) as store:
        count = store.export(out, consumer=who, node=node)
    cx.emit({"file": str(out), "receipts": count}, lambda c: c.print(f"exported {count} receipts to {out}"))


@receipts.command("settle")
@click.option("--node", "node_address", default=None, help="Node to settle (default: every node in the store).")
@click.option("--force", is_flag=True, help="Settle whatever is owed, whatever the gas policy says.")
@lanes_option
@spend_command
def settle(cx: CliContext, node_address: str | None, force: bool, lanes: bool) -> None:
    """Reconcile in-flight batches, then settle what the gas-aware policy says is worth it."""
    from nodeclient.settlement import execute_plan, nodes_in_store, open_store, plan_settlement, reconcile

    client = cx.client()
    policy = cx.settings().settlement
    # A dry run needs only the sender's address (for the estimate): no password, nothing signed.
    signer = None if cx.dry_run else cx.signer()
    sender = cx.account_info().address if signer is None else signer.address
    results: list[dict[str, Any]] = []
    token = ops().token_info(client, "PaymentToken", client.deployment.address("PaymentEscrow"))

    def money(units: int) -> str:
        return format_amount(units, token.decimals, token.symbol)

    with open_store(client, _module(cx, lanes)) as store:
        nodes = [parse_address("node", node_address)] if node_address else nodes_in_store(store)
        with cx.status("reconciling in-flight settlements") as update:
            report = reconcile(client, store, signer, progress=update)
        for node in nodes:
            plan = plan_settlement(client, store, sender, node, policy, force=force)
            entry: dict[str, Any] = {"plan": plan.to_json(), "result": None}
            results.append(entry)
            if not plan.decision.act:
                cx.note(f"node {node}: not settling: value {money(plan.decision.value)}, gas ≈ {money(plan.decision.gas_value)} "
                        f"({plan.decision.reason})")
                continue
            if cx.dry_run:
                cx.note(f"node {node}: would settle {len(plan.channels)} receipts for {money(plan.value)} "
                        f"({plan.decision.reason}); estimated fee {eth(plan.quote.expected_cost)}")
                continue
            cx.confirm(
                f"settle {len(plan.channels)} receipts of node {node} collecting up to {money(plan.value)} "
                f"({plan.decision.reason})\n  estimated fee {eth(plan.quote.expected_cost)} (at most {eth(plan.quote.max_cost)})",
                "Send this settlement?",
                f"declined: settlement of node {node} was not sent",
            )
            with cx.status(f"settling {len(plan.channels)} receipts of {node}") as update:
                result = execute_plan(client, store, signer, plan, progress=update)
            entry["result"] = result.to_json()
    decimals = token.decimals

    def human(c):  # type: ignore[no-untyped-def]
        if report.confirmed or report.failed or report.skipped:
            c.print(f"reconciled in-flight batches: confirmed {report.confirmed}, failed {report.failed}, skipped {report.skipped}")
        for entry in results:
            r = entry["result"]
            if r is not None:
                c.print(f"node {entry['plan']['node']}: batch {r['batchId']} settled {r['settledReceipts']} receipts, "
                        f"paid {format_amount(r['paid'], decimals)} (fee {format_amount(r['fee'], decimals)}) in {r['tx']['txHash']}")
            else:
                c.print(f"node {entry['plan']['node']}: nothing sent ({entry['plan']['decision']['reason']})")

    cx.emit({"reconciled": report.to_json(), "nodes": results, "dryRun": cx.dry_run}, human)


COMMANDS = [receipts]
