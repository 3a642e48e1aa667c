"""``kuota escrow deposit|thaw|cancel-thaw|withdraw|show``: a consumer's payment escrow.

Amounts are decimal payment-token units (``25`` = 25 USD of a 6-decimal stablecoin); ``--units``
takes base units instead.
"""

from __future__ import annotations

import click

from nodeclient._utils.values import format_amount
from nodeclient.cli.options import CliContext, address_command, amount_command, ops, spend_command, utc_time
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


COMMANDS = [escrow]
