"""``kuota escrow deposit|thaw|cancel-thaw|withdraw|show``: a consumer's payment escrow.

Amounts are decimal payment-token units (``25`` = 25 USD of a 6-decimal stablecoin); ``--units``
takes base units instead.
"""

from __future__ import annotations

import time

import click

from nodeclient._utils.values import format_amount, parse_address
from nodeclient.cli.options import (
    CliContext,
    TokenAmount,
    account_options,
    json_option,
    network_options,
    ops,
    pass_cx,
    spend_options,
    table,
)
from nodeclient.errors import InsufficientFundsError, RefusedError

__all__ = ["COMMANDS", "escrow"]


@click.group()
def escrow() -> None:
    """Fund the escrow that pays nodes for your traffic; thaw and withdraw what you do not use."""


def _amount(cx: CliContext, text: str, units: bool) -> tuple[int, int, str]:
    amount = cx.token_amount("PaymentToken", text, base_units=units)
    return amount.value, amount.decimals, amount.symbol


@escrow.command("deposit")
@click.argument("amount")
@click.option("--units", is_flag=True, help="AMOUNT is in base units, not decimal tokens.")
@network_options
@account_options
@spend_options
@json_option
@pass_cx
def deposit(cx: CliContext, amount: str, units: bool) -> None:
    """Deposit AMOUNT of the payment token (approves exactly that amount first if needed)."""
    value, decimals, symbol = _amount(cx, amount, units)
    client = cx.client()
    signer = cx.signer()
    cx.require_balance(signer, "PaymentToken", TokenAmount(value, decimals, symbol), "deposit")
    cx.ensure_allowance(signer, "PaymentToken", "PaymentEscrow", value)
    result = cx.send(signer, client.contract("PaymentEscrow").functions.deposit(value), f"deposit {format_amount(value, decimals, symbol)} into escrow", kind="deposit")
    acct = ops().escrow_account(client, signer.address)
    cx.emit(
        {"tx": result.to_json(), "escrow": acct.to_json()},
        lambda c: c.print(f"deposited {format_amount(value, decimals, symbol)} in {result.tx_hash}; available {format_amount(acct.available, decimals, symbol)}"),
    )


@escrow.command("thaw")
@click.argument("amount")
@click.option("--units", is_flag=True, help="AMOUNT is in base units, not decimal tokens.")
@network_options
@account_options
@spend_options
@json_option
@pass_cx
def thaw(cx: CliContext, amount: str, units: bool) -> None:
    """Start thawing AMOUNT (nodes may still settle against it until you withdraw)."""
    value, decimals, symbol = _amount(cx, amount, units)
    client = cx.client()
    signer = cx.signer()
    acct = ops().escrow_account(client, signer.address)
    if acct.available < value:
        raise InsufficientFundsError(
            f"escrow of {signer.address} has {format_amount(acct.available, decimals, symbol)} available, "
            f"less than the {format_amount(value, decimals, symbol)} to thaw"
        )
    result = cx.send(signer, client.contract("PaymentEscrow").functions.requestThaw(value), f"thaw {format_amount(value, decimals, symbol)}", kind="thaw")
    acct = ops().escrow_account(client, signer.address)
    cx.emit(
        {"tx": result.to_json(), "escrow": acct.to_json()},
        lambda c: c.print(f"thawing {format_amount(acct.thawing, decimals, symbol)} until {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(acct.thaw_ends_at))}"),
    )


@escrow.command("cancel-thaw")
@network_options
@account_options
@spend_options
@json_option
@pass_cx
def cancel_thaw(cx: CliContext) -> None:
    """Return everything thawing to available."""
    client = cx.client()
    signer = cx.signer()
    result = cx.send(signer, client.contract("PaymentEscrow").functions.cancelThaw(), "cancel thaw", kind="thaw")
    acct = ops().escrow_account(client, signer.address)
    cx.emit({"tx": result.to_json(), "escrow": acct.to_json()}, lambda c: c.print(f"thaw cancelled; available {acct.available} base units"))


@escrow.command("withdraw")
@network_options
@account_options
@spend_options
@json_option
@pass_cx
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
    result = cx.send(signer, client.contract("PaymentEscrow").functions.withdraw(), "withdraw thawed escrow", kind="withdraw")
    after = ops().escrow_account(client, signer.address)
    cx.emit(
        {"tx": result.to_json(), "withdrawn": before.thawing - after.thawing, "escrow": after.to_json()},
        lambda c: c.print(f"withdrew {before.thawing - after.thawing} base units in {result.tx_hash}"),
    )


@escrow.command("show")
@click.argument("address", required=False)
@network_options
@account_options
@json_option
@pass_cx
def show(cx: CliContext, address: str | None) -> None:
    """Show the escrow of ADDRESS (default: your account)."""
    who = parse_address("address", address) if address else cx.account_info().address
    client = cx.client()
    acct = ops().escrow_account(client, who)
    token = ops().token_info(client, "PaymentToken", who)

    def human(c):  # type: ignore[no-untyped-def]
        f = lambda v: format_amount(v, token.decimals, token.symbol)
        rows = [
            ["available", f(acct.available)],
            ["thawing", f(acct.thawing)],
            ["thaw ends", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(acct.thaw_ends_at)) if acct.thaw_ends_at else "-"],
            ["wallet balance", f(token.balance)],
        ]
        c.print(table(f"Escrow of {who}", ["", "value"], rows))

    cx.emit({**acct.to_json(), "walletBalance": token.balance, "decimals": token.decimals}, human)


COMMANDS = [escrow]
