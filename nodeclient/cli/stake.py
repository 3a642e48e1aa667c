"""``kuota stake add|unbond|withdraw|show``: the operator's KuotaToken stake.

Amounts are decimal KUOTA (``1000``, ``12.5``); ``--units`` takes base units (wei of KUOTA) instead.
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

__all__ = ["COMMANDS", "stake"]


@click.group()
def stake() -> None:
    """Bond KuotaToken to back your nodes; unbond and withdraw after the unbonding period."""


def _amount(cx: CliContext, text: str, units: bool) -> tuple[int, int, str]:
    amount = cx.token_amount("KuotaToken", text, base_units=units)
    return amount.value, amount.decimals, amount.symbol


@stake.command("add")
@click.argument("amount")
@click.option("--units", is_flag=True, help="AMOUNT is in base units, not decimal tokens.")
@network_options
@account_options
@spend_options
@json_option
@pass_cx
def add(cx: CliContext, amount: str, units: bool) -> None:
    """Stake AMOUNT KUOTA from your account (approves exactly that amount first if needed)."""
    value, decimals, symbol = _amount(cx, amount, units)
    client = cx.client()
    signer = cx.signer()
    cx.require_balance(signer, "KuotaToken", TokenAmount(value, decimals, symbol), "stake")
    cx.ensure_allowance(signer, "KuotaToken", "Staking", value)
    result = cx.send(signer, client.contract("Staking").functions.stake(value), f"stake {format_amount(value, decimals, symbol)}", kind="stake")
    info = ops().stake_info(client, signer.address)
    cx.emit(
        {"tx": result.to_json(), "stake": info.to_json()},
        lambda c: c.print(f"staked {format_amount(value, decimals, symbol)} in {result.tx_hash}; bonded now {format_amount(info.bonded, decimals, symbol)}"),
    )


@stake.command("unbond")
@click.argument("amount")
@click.option("--units", is_flag=True, help="AMOUNT is in base units, not decimal tokens.")
@network_options
@account_options
@spend_options
@json_option
@pass_cx
def unbond(cx: CliContext, amount: str, units: bool) -> None:
    """Start unbonding AMOUNT KUOTA (withdrawable after the unbonding period; still slashable)."""
    value, decimals, symbol = _amount(cx, amount, units)
    client = cx.client()
    signer = cx.signer()
    result = cx.send(signer, client.contract("Staking").functions.requestUnbond(value), f"unbond {format_amount(value, decimals, symbol)}", kind="unbond")
    info = ops().stake_info(client, signer.address)
    cx.emit(
        {"tx": result.to_json(), "stake": info.to_json()},
        lambda c: c.print(
            f"unbonding {format_amount(info.unbonding, decimals, symbol)}, withdrawable at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(info.withdrawable_at))}"
        ),
    )


@stake.command("withdraw")
@network_options
@account_options
@spend_options
@json_option
@pass_cx
def withdraw(cx: CliContext) -> None:
    """Withdraw stake whose unbonding period is over."""
    client = cx.client()
    signer = cx.signer()
    before = ops().stake_info(client, signer.address)
    result = cx.send(signer, client.contract("Staking").functions.withdraw(), "withdraw unbonded stake", kind="unstake")
    cx.emit({"tx": result.to_json(), "withdrawn": before.unbonding}, lambda c: c.print(f"withdrew {before.unbonding} base units in {result.tx_hash}"))


@stake.command("show")
@click.argument("address", required=False)
@network_options
@account_options
@json_option
@pass_cx
def show(cx: CliContext, address: str | None) -> None:
    """Show the stake of ADDRESS (default: your account)."""
    who = parse_address("address", address) if address else cx.account_info().address
    client = cx.client()
    info = ops().stake_info(client, who)
    token = ops().token_info(client, "KuotaToken", who)

    def human(c):  # type: ignore[no-untyped-def]
        f = lambda v: format_amount(v, token.decimals, token.symbol)
        rows = [
            ["bonded", f(info.bonded)],
            ["required by nodes", f(info.required)],
            ["unbonding", f(info.unbonding)],
            ["withdrawable at", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.withdrawable_at)) if info.withdrawable_at else "-"],
            ["wallet balance", f(token.balance)],
        ]
        c.print(table(f"Stake of {who}", ["", "value"], rows))

    cx.emit({**info.to_json(), "walletBalance": token.balance, "decimals": token.decimals}, human)


COMMANDS = [stake]
