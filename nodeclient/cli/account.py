"""``kuota account new|import|list|export|balance|transfer|faucet``: keystores in the data dir, and funds.

Private keys are never taken from the command line (shell history, ``ps``): ``import`` reads a key
file, an existing keystore, or a hidden prompt. ``export`` writes the keystore still encrypted.
"""

from __future__ import annotations

from pathlib import Path

import click

from nodeclient._utils.abi_fragments import MOCK_MINT_ABI
from nodeclient.cli.options import (
    CliContext,
    address_command,
    eth,
    json_option,
    ops,
    pass_cx,
    spend_command,
    table,
    units_option,
)
from nodeclient.errors import KeystoreError, NotFoundError

__all__ = ["COMMANDS", "account"]


@click.group()
def account() -> None:
    """Create, import, list and export encrypted accounts (Web3 Secret Storage keystores)."""


def _password_options(fn):  # type: ignore[no-untyped-def]
    return click.option(
        "--password-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="File holding the new keystore's password (else KUOTA_PASSWORD, else a hidden prompt).",
    )(fn)


@account.command("new")
@click.argument("alias")
@_password_options
@json_option
@pass_cx
def new(cx: CliContext, alias: str) -> None:
    """Create a fresh random account stored encrypted as ALIAS."""
    keys = cx.keys()
    keys.check_new(alias, None)  # fail on a bad or taken alias before asking for a password
    password = cx.password(f"New password for {alias}", confirm=True)
    with cx.status("encrypting keystore (scrypt)"):
        info = keys.new(alias, password)
    cx.emit(info.to_json(), lambda c: c.print(f"created account [bold]{info.alias}[/bold] {info.address}\n  keystore {info.path}"))


@account.command("import")
@click.argument("alias")
@click.option("--private-key-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="File holding a hex private key (else a hidden prompt).")
@click.option("--keystore-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="An existing keystore to copy in (its password is asked to check it opens).")
@_password_options
@json_option
@pass_cx
def import_(cx: CliContext, alias: str, private_key_file: Path | None, keystore_file: Path | None) -> None:
    """Import a private key (file or prompt) or an existing keystore as ALIAS."""
    from nodeclient.keys import Secret

    keys = cx.keys()
    keys.check_new(alias, None)
    if private_key_file is not None and keystore_file is not None:
        raise KeystoreError("give either --private-key-file or --keystore-file, not both")
    if keystore_file is not None:
        keys.info_for_file(keystore_file)  # malformed file: fail before the password prompt
        password = cx.password(f"Password of {keystore_file}")
        with cx.status("checking the keystore password"):
            info = keys.import_keystore(alias, keystore_file, password)
    else:
        if private_key_file is not None:
            try:
                key = Secret(private_key_file.read_text())
            except FileNotFoundError:
                raise NotFoundError(f"private key file {private_key_file} does not exist") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise KeystoreError(f"private key file {private_key_file} cannot be read ({type(exc).__name__})") from None
        else:
            key = Secret(click.prompt("Private key (hex)", hide_input=True, err=True))
        from nodeclient.keys import parse_private_key

        parse_private_key(key.reveal())  # a malformed key fails before the password prompt
        password = cx.password(f"New password for {alias}", confirm=True)
        with cx.status("encrypting keystore (scrypt)"):
            info = keys.import_private_key(alias, key, password)
    cx.emit(info.to_json(), lambda c: c.print(f"imported account [bold]{info.alias}[/bold] {info.address}\n  keystore {info.path}"))


@account.command("list")
@json_option
@pass_cx
def list_(cx: CliContext) -> None:
    """List the accounts in the data dir."""
    keys = cx.keys()
    infos = keys.list()
    problems = keys.problems()
    data = {"accounts": [i.to_json() for i in infos], "problems": problems, "directory": str(keys.directory)}

    def human(c):  # type: ignore[no-untyped-def]
        if not infos:
            c.print(f"no accounts in {keys.directory}; create one with `kuota account new ALIAS`")
        else:
            c.print(table(f"Accounts in {keys.directory}", ["alias", "address"], [[i.alias, i.address] for i in infos]))
        for line in problems:
            c.print(f"[yellow]skipped[/yellow] {line}")

    cx.emit(data, human)


@account.command("export")
@click.argument("alias")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write the encrypted keystore (must not exist).")
@json_option
@pass_cx
def export(cx: CliContext, alias: str, out: Path) -> None:
    """Write ALIAS's keystore, still encrypted, to --out (mode 0600)."""
    info = cx.keys().export(alias, out)
    cx.emit({**info.to_json(), "exportedTo": str(out)}, lambda c: c.print(f"exported {info.alias} ({info.address}) to {out}"))


_TOKENS = {"KUOTA": "KuotaToken", "PAYMENT": "PaymentToken"}
@address_command(account, "balance")
def balance(cx: CliContext, who: str) -> None:
    """ETH, KUOTA and payment-token balances of ADDRESS (default: your account)."""
    from nodeclient._utils.values import format_amount

    client = cx.client()
    kuota = ops().token_info(client, "KuotaToken", who)
    payment = ops().token_info(client, "PaymentToken", who)
    native = client.balance(who)
    cx.emit(
        {"address": who, "eth": native, "kuota": kuota.balance, "payment": payment.balance,
         "paymentSymbol": payment.symbol, "paymentDecimals": payment.decimals},
        lambda c: c.print(table(f"Balances of {who}", ["asset", "balance"], [
            ["ETH", eth(native)], [kuota.symbol, format_amount(kuota.balance, kuota.decimals)],
            [payment.symbol, format_amount(payment.balance, payment.decimals)],
        ])),
    )


@account.command("transfer")
@click.argument("token", type=click.Choice(["KUOTA", "PAYMENT"], case_sensitive=False))
@click.argument("to")
@click.argument("amount")
@units_option("AMOUNT is in base units.")
@spend_command
def transfer(cx: CliContext, token: str, to: str, amount: str, units: bool) -> None:
    """Send AMOUNT of KUOTA or of the payment token to address TO."""
    from nodeclient._utils.values import parse_address

    recipient = parse_address("recipient", to)
    client = cx.client()
    name = _TOKENS[token.upper()]
    quantity = cx.token_amount(name, amount, base_units=units)
    signer = cx.signer()
    cx.require_balance(signer, name, quantity, "send")
    call = client.contract(name).functions.transfer(recipient, quantity.value)
    result = cx.send(signer, call, f"send {quantity} to {recipient}", kind="transfer")
    cx.emit({"tx": result.to_json(), "to": recipient, "amount": quantity.value, "token": name},
            lambda c: c.print(f"sent {quantity} to {recipient} in {result.tx_hash}"))


@account.command("faucet")
@click.argument("amount")
@spend_command
def faucet(cx: CliContext, amount: str) -> None:
    """Local chains only: mint AMOUNT of the mock payment token (MockUSD) to your account."""
    from nodeclient._utils.values import format_amount, parse_amount
    from nodeclient.errors import RefusedError

    client = cx.client()
    if client.chain_id not in (31337, 1337):
        raise RefusedError(f"the faucet only exists on local chains (31337, 1337), not on chain {client.chain_id}")
    token = client.w3.eth.contract(address=client.deployment.address("PaymentToken"), abi=MOCK_MINT_ABI)
    signer = cx.signer()
    info = ops().token_info(client, "PaymentToken", signer.address)
    value = parse_amount("amount", amount, info.decimals)
    result = cx.send(signer, token.functions.mint(signer.address, value),
                     f"mint {format_amount(value, info.decimals, info.symbol)} of mock payment token", kind="faucet")
    cx.emit({"tx": result.to_json(), "amount": value},
            lambda c: c.print(f"minted {format_amount(value, info.decimals, info.symbol)} to {signer.address}"))


COMMANDS = [account]
