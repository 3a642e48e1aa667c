"""``kuota escrow deposit|thaw|cancel-thaw|withdraw|show|allocate|lanes|close``: a consumer's payment escrow.

Amounts are decimal payment-token units (``25`` = 25 USD of a 6-decimal stablecoin); ``--units``
takes base units instead. ``allocate``, ``lanes`` and ``close`` manage lanes: escrow reserved for one
node each and settled through LaneSettlement (``nodeclient.lanes``).
"""

from __future__ import annotations

import click

from nodeclient import lanes as lane_ops
from nodeclient._utils.values import format_amount, parse_address
from nodeclient.cli.options import (
    CliContext,
    address_command,
    amount_command,
    ops,
    spend_command,
    table,
    utc_time,
)
from nodeclient.errors import InsufficientFundsError, RefusedError
from nodeclient.transactions import TokenAmount

__all__ = ["COMMANDS", "escrow"]


@click.group()
def escrow() -> None:
    """Fund the escrow that pays nodes for your traffic; thaw and withdraw what you do not use."""


@amount_command(escrow, "deposit", "PaymentToken")
def deposit(cx: CliContext, amount: TokenAmount) -> None:
    """Deposit AMOUNT of the payment token (approves exactly that amount first if needed)."""
    pull = ("PaymentToken", amount, "deposit")
    result = cx.transact("PaymentEscrow", "deposit", amount.value, description=f"deposit {amount} into escrow",
                         pull=pull, kind="deposit")
    acct = ops().escrow_account(cx.client(), cx.signer().address)
    available = format_amount(acct.available, amount.decimals, amount.symbol)
    cx.emit({"tx": result.to_json(), "escrow": acct.to_json()},
            lambda c: c.print(f"deposited {amount} in {result.tx_hash}; available {available}"))


@amount_command(escrow, "thaw", "PaymentToken")
def thaw(cx: CliContext, amount: TokenAmount) -> None:
    """Start thawing AMOUNT (nodes may still settle against it until you withdraw)."""
    client = cx.client()
    owner = cx.signer().address
    held = ops().escrow_account(client, owner).available
    if held < amount.value:
        raise InsufficientFundsError(
            f"escrow of {owner} has {format_amount(held, amount.decimals, amount.symbol)} available, "
            f"less than the {amount} to thaw"
        )
    result = cx.transact("PaymentEscrow", "requestThaw", amount.value, description=f"thaw {amount}", kind="thaw")
    acct = ops().escrow_account(client, owner)
    thawing = format_amount(acct.thawing, amount.decimals, amount.symbol)
    cx.emit({"tx": result.to_json(), "escrow": acct.to_json()},
            lambda c: c.print(f"thawing {thawing} until {utc_time(acct.thaw_ends_at)}"))


@escrow.command("cancel-thaw")
@spend_command
def cancel_thaw(cx: CliContext) -> None:
    """Return everything thawing to available."""
    result = cx.transact("PaymentEscrow", "cancelThaw", description="cancel thaw", kind="thaw")
    acct = ops().escrow_account(cx.client(), cx.signer().address)
    cx.emit({"tx": result.to_json(), "escrow": acct.to_json()}, lambda c: c.print(f"thaw cancelled; available {acct.available} base units"))


@escrow.command("withdraw")
@spend_command
def withdraw(cx: CliContext) -> None:
    """Withdraw what has finished thawing."""
    client = cx.client()
    signer = cx.signer()
    before = ops().escrow_account(client, signer.address)
    if before.thawing == 0:
        raise RefusedError(f"nothing is thawing in the escrow of {signer.address}; run `kuota escrow thaw AMOUNT` first")
    now = int(client.latest_block()["timestamp"])
    if now < before.thaw_ends_at:
        raise RefusedError(
            f"the thaw of {before.thawing} base units ends at {before.thaw_ends_at} (chain time now {now}); "
            f"{before.thaw_ends_at - now} s to go"
        )
    result = cx.transact("PaymentEscrow", "withdraw", description="withdraw thawed escrow", kind="withdraw")
    after = ops().escrow_account(client, signer.address)
    cx.emit(
        {"tx": result.to_json(), "withdrawn": before.thawing - after.thawing, "escrow": after.to_json()},
        lambda c: c.print(f"withdrew {before.thawing - after.thawing} base units in {result.tx_hash}"),
    )


@address_command(escrow, "show")
def show(cx: CliContext, who: str) -> None:
    """Show the escrow of ADDRESS (default: your account)."""
    acct = ops().escrow_account(cx.client(), who)
    thaw_ends = utc_time(acct.thaw_ends_at) if acct.thaw_ends_at else "-"
    rows: list[tuple[str, int | str]] = [("available", acct.available), ("thawing", acct.thawing), ("thaw ends", thaw_ends)]
    cx.emit_holding(f"Escrow of {who}", acct.to_json(), ops().token_info(cx.client(), "PaymentToken", who), rows)


def _nodes(values: tuple[str, ...]) -> list[str]:
    return [parse_address("node", v) for v in values]


def _lane_rows(found: list[lane_ops.Lane], token: TokenAmount | object) -> list[list[str]]:
    decimals, symbol = token.decimals, token.symbol  # type: ignore[attr-defined]
    return [
        [lane.node, format_amount(lane.balance, decimals, symbol), format_amount(lane.settled_amount, decimals, symbol),
         f"closing, pays until {utc_time(lane.close_at)}" if lane.closing else "open"]
        for lane in found
    ]


@escrow.command("allocate")
@click.argument("amount")
@click.argument("nodes", nargs=-1, required=True)
@click.option("--policy", type=click.Choice(["each", "split", "top-up"]), default="each", show_default=True,
              help="each: AMOUNT to every node; split: AMOUNT shared evenly; top-up: each lane up to AMOUNT.")
@click.option("--units", is_flag=True, help="AMOUNT is in base units, not decimal tokens.")
@spend_command
def allocate(cx: CliContext, amount: str, nodes: tuple[str, ...], policy: str, units: bool) -> None:
    """Allocate AMOUNT of your available escrow to a lane for each of NODES (again: a top-up)."""
    value = cx.token_amount("PaymentToken", amount, base_units=units)
    targets = _nodes(nodes)
    client = cx.client()
    owner = cx.signer().address
    held = {lane.node: lane.balance for lane in lane_ops.lanes_of(client, owner, targets)} if policy == "top-up" else {}
    plan = lane_ops.plan_allocation(targets, value.value, policy, held)  # type: ignore[arg-type]
    if not plan:
        raise RefusedError(f"every lane already holds at least {value}: nothing to allocate")
    total = sum(a for _, a in plan)
    available = ops().escrow_account(client, owner).available
    if available < total:
        raise InsufficientFundsError(
            f"escrow of {owner} has {format_amount(available, value.decimals, value.symbol)} available, "
            f"less than the {format_amount(total, value.decimals, value.symbol)} to allocate"
        )
    what = ", ".join(f"{format_amount(a, value.decimals, value.symbol)} to {n}" for n, a in plan)
    result = cx.send(cx.signer(), lane_ops.allocate_call(client, plan), f"allocate {what}", kind="allocate")
    found = lane_ops.lanes_of(client, owner, [n for n, _ in plan])
    cx.emit({"tx": result.to_json(), "lanes": [lane.to_json() for lane in found]},
            lambda c: c.print(f"allocated {what} in {result.tx_hash}"))


@address_command(escrow, "lanes")
@click.option("--node", "node_filter", multiple=True, help="Only the lane with this node (repeatable).")
def lanes(cx: CliContext, who: str, node_filter: tuple[str, ...]) -> None:
    """List the lanes of ADDRESS (default: your account): balance, settled, close state."""
    client = cx.client()
    found = lane_ops.lanes_of(client, who, _nodes(node_filter) if node_filter else None)
    token = ops().token_info(client, "PaymentToken", who)
    cx.emit({"consumer": who, "lanes": [lane.to_json() for lane in found]},
            lambda c: c.print(table(f"Lanes of {who}", ["node", "balance", "settled", "state"], _lane_rows(found, token))))


@escrow.command("close")
@click.argument("node")
@click.option("--finish", is_flag=True, help="Finish a close whose delay has passed (returns the lane's balance).")
@spend_command
def close(cx: CliContext, node: str, finish: bool) -> None:
    """Request the close of your lane with NODE; with --finish, return its balance after the delay."""
    target = parse_address("node", node)
    client = cx.client()
    owner = cx.signer().address
    lane = lane_ops.lane_of(client, owner, target)
    now = int(client.latest_block()["timestamp"])
    if finish:
        if not lane.closing:
            raise RefusedError(f"the lane of {owner} with {target} is not closing; run `kuota escrow close {target}` first")
        if now < lane.close_at:
            raise RefusedError(f"the lane with {target} pays its node until {utc_time(lane.close_at)}; {lane.close_at - now} s to go")
        call, description = lane_ops.finish_close_call(client, target), f"finish closing the lane with {target}"
    else:
        if lane.closing:
            raise RefusedError(f"the lane with {target} is already closing (pays until {utc_time(lane.close_at)})")
        if lane.balance == 0:
            raise RefusedError(f"the lane of {owner} with {target} holds nothing to close")
        call, description = lane_ops.request_close_call(client, target), f"request the close of the lane with {target}"
    result = cx.send(cx.signer(), call, description, kind="lane-close")
    after = lane_ops.lane_of(client, owner, target)
    returned = lane.balance - after.balance if finish else 0
    cx.emit({"tx": result.to_json(), "lane": after.to_json(), "returned": returned},
            lambda c: c.print(f"returned {returned} base units to available escrow" if finish
                              else f"lane with {target} closes at {utc_time(after.close_at)}; then run `kuota escrow close {target} --finish`"))


COMMANDS = [escrow]
