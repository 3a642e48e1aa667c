"""The demo's closing summary: per node, per consumer, the audit verdict, and the cross-checks.

Figures come from the commands an operator, a consumer and an auditor would run themselves
(``kuota earnings``, ``kuota receipts list``, ``kuota escrow show``, ``kuota audit replay``), and the
summary checks that they agree with each other: what consumers spent is what nodes grossed, each
node's net is what it withdrew plus what it still has in escrow, every fetch delivered the bytes it
asked for, every node's rewards were minted, and the auditor's replay is consistent. A failed check
makes the demo exit non-zero.
"""

from __future__ import annotations

import statistics
import sys
from decimal import Decimal
from typing import Any

__all__ = ["build_summary", "render_summary"]

MIB = 1024 * 1024


def _usd(units: int, places: int = 6) -> str:
    return f"{Decimal(units).scaleb(-6):.{places}f}"


def _kuota(wei: int) -> str:
    return f"{Decimal(wei).scaleb(-18):.4f}"


def _eth(wei: int) -> str:
    return f"{Decimal(wei).scaleb(-18):.9f}"


def build_summary(economy: Any, collected: dict[str, Any], *, wall_seconds: float) -> dict[str, Any]:
    """Assemble the summary dict (the ``--json`` output) and run the cross-checks."""
    facts = economy.facts
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    fetches = facts.get("fetches", [])
    for f in fetches:
        check(
            f"fetch {f['consumerName']}→{f['operator']} (round {f['round']})",
            f.get("status") == 200 and f.get("bodyBytes") == f["requestedBytes"] and not f.get("remoteError"),
            f"HTTP {f.get('status')}, {f.get('bodyBytes')} of {f['requestedBytes']} bytes",
        )

    by_consumer_address = {c.address: c.name for c in economy.consumers}
    nodes: list[dict[str, Any]] = []
    gross_by_consumer: dict[str, int] = {c.name: 0 for c in economy.consumers}
    for entry in collected["nodes"]:
        op = entry["operator"]
        spec = op.extra["spec"]
        totals = entry["earnings"]["totals"]
        channels = entry["channels"]["channels"]
        settled_bytes = 0
        for ch in channels:
            name = by_consumer_address.get(ch["consumer"], ch["consumer"])
            gross_by_consumer[name] = gross_by_consumer.get(name, 0) + int(ch["settledAmount"])
            if int(ch["unsettledAmount"]) == 0:
                settled_bytes += int(ch["latestBytes"])
        latencies = [f["latencyMs"] for f in fetches if f["operator"] == op.name and f.get("latencyMs") is not None]
        claim = facts.get("claims", {}).get(op.name, {})
        rounds_settled = [
            s["round"]
            for s in facts.get("settlements", [])
            if s["operator"] == op.name and any(n.get("result") for n in s.get("nodes", []))
        ]
        deferred = [
            {"round": s["round"], "reason": n["plan"]["decision"]["reason"]}
            for s in facts.get("settlements", [])
            if s["operator"] == op.name
            for n in s.get("nodes", [])
            if not n.get("result") and n.get("plan", {}).get("decision")
        ]
        node = {
            "operator": op.name,
            "node": op.node_address,
            "region": spec.region,
            "pricePerGiB": spec.price_usd_per_gib,
            "linkOneWayMs": spec.one_way_ms,
            "medianLatencyMs": statistics.median(latencies) if latencies else None,
            "bytesServed": settled_bytes,
            "gross": int(totals["gross"]),
            "fee": int(totals["fee"]),
            "net": int(totals["net"]),
            "withdrawn": int(totals["withdrawn"]),
            "creditLeft": int(totals["credit"]),
            "rewardsClaimed": int(totals["rewardsClaimed"]),
            "rewardsClaimable": int(totals["rewardsClaimable"]),
            "gasWei": int(totals["gasWei"]),
            "settlementTxs": int(totals["settlements"]),
            "roundsSettled": rounds_settled,
            "deferred": deferred,
            "claimForced": bool(claim.get("forced")),
            "claimPolicy": (claim.get("policy") or {}).get("reason"),
        }
        nodes.append(node)
        check(f"{op.name} ledger", bool(totals["consistent"]), "net == withdrawn + credit left in escrow")
        check(f"{op.name} fee", node["fee"] == node["gross"] - node["net"], f"fee {node['fee']} = gross − net")
        check(f"{op.name} rewards", node["rewardsClaimed"] > 0, f"{_kuota(node['rewardsClaimed'])} KUOTA minted")
        check(f"{op.name} settled everything", all(int(c["unsettledAmount"]) == 0 for c in channels),
              "no signed receipt left unsettled")

    deposit_units = int(Decimal(economy.config.deposit_usd).scaleb(6))
    withdrawal = facts.get("withdrawal", {})
    consumers: list[dict[str, Any]] = []
    for entry in collected["consumers"]:
        consumer = entry["consumer"]
        escrow = entry["escrow"]
        refunded = int(withdrawal.get("result", {}).get("withdrawn", 0)) if withdrawal.get("consumer") == consumer.name else 0
        left = int(escrow["available"]) + int(escrow["thawing"])
        spent = deposit_units - left - refunded
        signed = sum(
            max((f["lastReceipt"]["cumulativeAmount"] for f in fetches
                 if f["consumerName"] == consumer.name and f["operator"] == n.name), default=0)
            for n in economy.operators
        )
        consumers.append(
            {"consumer": consumer.name, "address": consumer.address, "deposited": deposit_units, "spent": spent,
             "signedFor": signed, "refunded": refunded, "leftInEscrow": left}
        )
        check(f"{consumer.name} spent = nodes' gross", spent == gross_by_consumer.get(consumer.name, 0),
              f"escrow says {spent}, settlements say {gross_by_consumer.get(consumer.name, 0)}")
        check(f"{consumer.name} paid what it signed", spent == signed, f"spent {spent}, signed receipts for {signed}")

    audit = facts.get("audit", {})
    counts = audit.get("counts", {})
    check("audit replay", audit.get("verdict") == "consistent" and audit.get("exitCode") == 0,
          f"verdict {audit.get('verdict')!r}, {counts.get('mismatches')} mismatches")
    replayed = audit.get("totals", {}).get("replayed", {})
    check("audit totals", int(replayed.get("paid", -1)) == sum(n["gross"] for n in nodes),
          f"replayed paid {replayed.get('paid')} vs nodes' gross {sum(n['gross'] for n in nodes)}")

    return {
        "ok": all(c["ok"] for c in checks),
        "rounds": len(economy.config.rounds),
        "wallSeconds": round(wall_seconds, 1),
        "chain": facts.get("chain", {}),
        "deploy": facts.get("deploy", {}),
        "contracts": facts.get("contracts", {}),
        "nodes": nodes,
        "consumers": consumers,
        "audit": {
            "verdict": audit.get("verdict"),
            "exitCode": audit.get("exitCode"),
            "checks": counts.get("checks"),
            "mismatches": counts.get("mismatches"),
            "settlements": counts.get("settlements"),
            "bundleReceiptsVerified": counts.get("bundle_receipt_checks"),
            "bundles": counts.get("bundle_files"),
            "findings": len(audit.get("findings", [])),
        },
        "checks": checks,
        "phases": economy.timings,
        "commands": len(economy.runner.records),
    }


def render_summary(summary: dict[str, Any]) -> None:
    """Print the human summary (rich tables) on stdout, readable in ten seconds."""
    import shutil

    from rich.console import Console
    from rich.table import Table

    width = shutil.get_terminal_size((110, 24)).columns if sys.stdout.isatty() else 110
    console = Console(highlight=False, width=max(width, 100))
    audit = summary["audit"]
    verdict = "[bold green]CONSISTENT[/]" if audit["verdict"] == "consistent" else f"[bold red]{audit['verdict']}[/]"
    console.print(
        f"\n[bold]Kuota demo[/]: {len(summary['nodes'])} nodes, {len(summary['consumers'])} consumers, "
        f"{summary['rounds']} epochs of traffic on chain "
        f"{summary['chain'].get('chainId')}; {summary['commands']} kuota commands in {summary['wallSeconds']} s"
    )
    nodes = Table(title="Nodes (gross/fee/net in USD, rewards in KUOTA, gas in gwei of ETH)", title_justify="left")
    for col in ("node", "region", "$/GiB", "RTT ms", "MiB", "gross", "fee", "net", "rewards", "gas", "settled"):
        nodes.add_column(col, justify="left" if col in ("node", "region", "settled") else "right", no_wrap=True)
    for n in summary["nodes"]:
        settled = " ".join(f"r{r}" for r in n["roundsSettled"]) or "-"
        if n["deferred"]:
            settled += " (" + " ".join(f"r{d['round']}" for d in n["deferred"]) + " waited)"
        nodes.add_row(
            n["operator"].removeprefix("op-"), n["region"], n["pricePerGiB"],
            f"{n['medianLatencyMs']:.0f}" if n["medianLatencyMs"] is not None else "-",
            f"{n['bytesServed'] / MIB:.1f}", _usd(n["gross"], 4), _usd(n["fee"], 4), _usd(n["net"], 4),
            _kuota(n["rewardsClaimed"]) + ("*" if n["claimForced"] else ""), f"{n['gasWei'] / 1e9:,.0f}", settled,
        )
    console.print(nodes)
    consumers = Table(title="Consumers: USD", title_justify="left")
    for col in ("consumer", "deposited", "spent", "refunded", "left in escrow"):
        consumers.add_column(col, justify="left" if col == "consumer" else "right", no_wrap=True)
    for c in summary["consumers"]:
        consumers.add_row(
            c["consumer"], _usd(c["deposited"], 2), _usd(c["spent"], 4), _usd(c["refunded"], 4), _usd(c["leftInEscrow"], 4)
        )
    console.print(consumers)
    console.print(
        f"Audit replay: {verdict}: {audit['checks']} checks, {audit['mismatches']} mismatches, "
        f"{audit['settlements']} settlements, {audit['bundleReceiptsVerified']} bundle receipts in "
        f"{audit['bundles']} bundles verified, {audit['findings']} findings"
    )
    for n in summary["nodes"]:
        for d in n["deferred"]:
            console.print(f"Gas-aware settlement: {n['operator']} waited in round {d['round']}: {d['reason']}")
    forced = [n for n in summary["nodes"] if n["claimForced"]]
    if forced:
        console.print(f"* claimed with --force; the reward policy would have waited: {forced[0]['claimPolicy']}")
    failed = [c for c in summary["checks"] if not c["ok"]]
    for c in failed:
        console.print(f"[bold red]CHECK FAILED[/] {c['check']}: {c['detail']}")
    if not failed:
        console.print(f"[green]All {len(summary['checks'])} cross-checks passed.[/]")
    sys.stdout.flush()
