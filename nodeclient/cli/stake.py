"""``kuota stake add|unbond|withdraw|show``: the operator's KuotaToken stake.

Amounts are decimal KUOTA (``1000``, ``12.5``); ``--units`` takes base units (wei of KUOTA) instead.
"""

from __future__ import annotations

import click

from nodeclient._utils.values import format_amount
from nodeclient.cli.options import CliContext, address_command, amount_command, ops, spend_command, utc_time
from nodeclient.transactions import TokenAmount

__all__ = ["COMMANDS", "stake"]


@click.group()
def stake() -> None:
    """Bond KuotaToken to back your nodes; unbond and withdraw after the unbonding period."""


@amount_command(stake, "add", "KuotaToken")
def add(cx: CliContext, amount: TokenAmount) -> None:
    """Stake AMOUNT KUOTA from your account (approves exactly that amount first if needed)."""
    result = cx.transact("Staking", "stake", amount.value, description=f"stake {amount}",
                         pull=("KuotaToken", amount, "stake"), kind="stake")
    info = ops().stake_info(cx.client(), cx.signer().address)
    bonded = format_amount(info.bonded, amount.decimals, amount.symbol)
    cx.emit({"tx": result.to_json(), "stake": info.to_json()}, lambda c: c.print(f"staked {amount} in {result.tx_hash}; bonded now {bonded}"))


@amount_command(stake, "unbond", "KuotaToken")
def unbond(cx: CliContext, amount: TokenAmount) -> None:
    """Start unbonding AMOUNT KUOTA (withdrawable after the unbonding period; still slashable)."""
    result = cx.transact("Staking", "requestUnbond", amount.value, description=f"unbond {amount}", kind="unbond")
    info = ops().stake_info(cx.client(), cx.signer().address)
    unbonding = format_amount(info.unbonding, amount.decimals, amount.symbol)
    when = utc_time(info.withdrawable_at)
    cx.emit({"tx": result.to_json(), "stake": info.to_json()}, lambda c: c.print(f"unbonding {unbonding}, withdrawable at {when}"))


@stake.command("withdraw")
@spend_command
def withdraw(cx: CliContext) -> None:
    """Withdraw stake whose unbonding period is over."""
    before = ops().stake_info(cx.client(), cx.signer().address)
    result = cx.transact("Staking", "withdraw", description="withdraw unbonded stake", kind="unstake")
    cx.emit({"tx": result.to_json(), "withdrawn": before.unbonding}, lambda c: c.print(f"withdrew {before.unbonding} base units in {result.tx_hash}"))


@address_command(stake, "show")
def show(cx: CliContext, who: str) -> None:
    """Show the stake of ADDRESS (default: your account)."""
    info = ops().stake_info(cx.client(), who)
    withdrawable = utc_time(info.withdrawable_at) if info.withdrawable_at else "-"
    rows: list[tuple[str, int | str]] = [
        ("bonded", info.bonded), ("required by nodes", info.required), ("unbonding", info.unbonding),
        ("withdrawable at", withdrawable),
    ]
    cx.emit_holding(f"Stake of {who}", info.to_json(), ops().token_info(cx.client(), "KuotaToken", who), rows)


COMMANDS = [stake]
