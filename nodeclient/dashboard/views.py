"""The dashboard API's JSON documents, built from the source's records (pure functions, no I/O).

Amounts and byte counts that the page shows as figures are decimal strings: they are uint256 on chain
and a JavaScript number is exact only up to 2**53. Chart series are plain numbers (a plot needs no
more than double precision).
"""

from __future__ import annotations

import time
from typing import Any

from nodeclient.dashboard.source import DashboardSource, TokenUnit
from nodeclient.dashboard.traffic import BUCKET_S, TrafficPoint
from nodeclient.earnings import NodeEarnings

__all__ = ["earnings_view", "settlements_view", "status_view", "traffic_view", "tx_link"]


# The earnings totals that are token amounts (uint256); the rest are counts, lists and flags.
_AMOUNT_TOTALS = ("gross", "fee", "net", "withdrawn", "credit", "rewardsClaimed", "rewardsClaimable", "gasWei")


def _unit(token: TokenUnit) -> dict[str, Any]:
    return {"symbol": token.symbol, "decimals": token.decimals}


def tx_link(source: DashboardSource, tx_hash: str) -> str:
    """Where the page links a transaction: the chain's explorer, or this node's own record of it."""
    if source.explorer_tx_url:
        return source.explorer_tx_url.format(tx=tx_hash)
    return f"/api/tx/{tx_hash}"


def _relay(snap: dict[str, Any]) -> dict[str, Any]:
    sessions, settlements = snap["sessions"], snap["settlements"]
    return {
        "uptimeS": snap["uptimeS"],
        "sessionsActive": sessions["active"],
        "sessionsTotal": sessions["total"],
        "sessionsRefused": sum(sessions["refused"].values()),
        "openSessions": snap.get("openSessions", []),
        "bytesUp": str(snap["bytes"]["up"]),
        "bytesDown": str(snap["bytes"]["down"]),
        "paidBytes": str(snap["bytes"]["paid"]),
        "unpaidExposureBytes": str(snap["unpaidExposureBytes"]),
        "receiptsStored": snap["receipts"]["stored"],
        "settlementErrors": settlements["errors"],
        "lastSettlement": settlements["last"],
    }


def _quota(used: int | None, cap: int | None) -> dict[str, Any]:
    return {"bytes": None if used is None else str(used), "quota": None if cap is None else str(cap)}


def status_view(source: DashboardSource, snap: dict[str, Any] | None, channels: list[Any] | None) -> dict[str, Any]:
    """Node identity, live relay counters, today's and this month's bytes against the caps, unsettled value."""
    usage = (snap or {}).get("usage", {})
    caps = source.caps
    unsettled = None
    if channels is not None:
        open_channels = [c for c in channels if c.unsettled_amount > 0]
        unsettled = {"amount": str(sum(c.unsettled_amount for c in open_channels)), "channels": len(open_channels)}
    return {
        "node": source.node,
        "chainId": source.chain_id,
        "token": _unit(source.token),
        "rewardToken": _unit(source.reward_token),
        "generatedAt": int(time.time()),
        "relay": _relay(snap) if snap is not None else None,
        "today": _quota(usage.get("todayBytes"), caps.per_day_bytes if caps else None),
        "month": _quota(usage.get("monthBytes"), caps.per_month_bytes if caps else None),
        "unsettled": unsettled,
    }


def traffic_view(points: list[TrafficPoint]) -> dict[str, Any]:
    """Paid bytes and receipted value per hour (the x axis is the bucket's start, Unix seconds)."""
    return {
        "bucketS": BUCKET_S,
        "points": [{"t": p.start, "bytes": p.bytes, "amount": p.amount, "receipts": p.receipts} for p in points],
        "totalBytes": str(sum(p.bytes for p in points)),
        "totalAmount": str(sum(p.amount for p in points)),
    }


def earnings_view(earnings: NodeEarnings) -> dict[str, Any]:
    """Totals (gross, fee, net, credit, rewards, gas) and the cumulative net / fee series per settlement."""
    totals = earnings.totals()
    for key in _AMOUNT_TOTALS:
        totals[key] = str(totals[key])
    series: list[dict[str, Any]] = []
    gross = fee = 0
    for entry in earnings.entries:
        if entry.kind == "settlement" and entry.timestamp is not None:
            gross, fee = gross + entry.gross, fee + entry.fee
            series.append({"t": entry.timestamp, "gross": gross, "fee": fee, "net": gross - fee})
    return {"node": earnings.node, "payout": earnings.payout, "totals": totals, "series": series}


def _batch_paid(batch: Any) -> tuple[int, int]:
    paid = sum(i.outcome.paid for i in batch.items if i.outcome is not None)
    fee = sum(i.outcome.fee for i in batch.items if i.outcome is not None)
    return paid, fee


def settlements_view(source: DashboardSource, batches: list[Any], journal_records: dict[str, Any]) -> dict[str, Any]:
    """The node's settlement batches, newest first, with what each paid, its gas and its transaction link."""
    rows = []
    for batch in sorted(batches, key=lambda b: b.id, reverse=True):
        paid, fee = _batch_paid(batch)
        record = journal_records.get(batch.tx_hash) if batch.tx_hash else None
        rows.append({
            "batch": batch.id,
            "state": batch.state,
            "txHash": batch.tx_hash,
            "txUrl": tx_link(source, batch.tx_hash) if batch.tx_hash else None,
            "block": batch.block_number,
            "receipts": len(batch.items),
            "paid": str(paid),
            "fee": str(fee),
            "net": str(paid - fee),
            "gasWei": str(record.gas_cost) if record is not None else None,
            "bundleRoot": batch.bundle_root,
            "updatedAt": int(batch.updated_at),
            "reason": batch.reason,
        })
    return {"token": _unit(source.token), "batches": rows}
