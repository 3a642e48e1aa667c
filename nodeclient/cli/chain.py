"""``kuota chain up|down|status`` (local development chains) and ``kuota deploy`` (the contracts).

Thin by design: the work is in :mod:`nodeclient.localchain` and ``scripts/deploy.py``. ``kuota deploy``
runs the deploy script with this interpreter, because deploying needs Brownie and the compiled
project, which are part of the development install, not of the client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from nodeclient import localchain
from nodeclient.cli.options import json_flag
from nodeclient.errors import EXIT_NOT_FOUND, ConfigError, NotFoundError

__all__ = ["COMMANDS", "chain", "deploy"]

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _emit(as_json: bool, data: dict[str, object], text: str) -> None:
    click.echo(json.dumps(data, sort_keys=True) if as_json else text)


@click.group()
def chain() -> None:
    """Start, inspect and stop a local development chain (Anvil, or Ganache)."""


@chain.command("up")
@click.option("--ganache", is_flag=True, help="Run Ganache 7 (shanghai) instead of Anvil.")
@click.option("--port", type=click.IntRange(1024, 65535), default=None, help="Port to listen on, 1024-65535 (default: a free one).")
@click.option("--chain-id", type=click.IntRange(1, 2**53 - 1), default=localchain.DEFAULT_CHAIN_ID, show_default=True)
@click.option("--accounts", type=click.IntRange(1, 1000), default=20, show_default=True, help="Funded dev accounts.")
@click.option("--block-time", type=click.IntRange(1, 3600), default=None, help="Mine every N seconds (default: on each tx).")
@json_flag("Print the chain record as JSON.")
def up(ganache: bool, port: int | None, chain_id: int, accounts: int, block_time: int | None, as_json: bool) -> None:
    """Start a local chain with the well-known test mnemonic and record it under $KUOTA_HOME."""
    state = localchain.start_chain(
        kind="ganache" if ganache else "anvil", port=port, chain_id=chain_id, accounts=accounts, block_time=block_time
    )
    status = localchain.ChainStatus(state=state, running=True, problem=None, block_number=0)
    _emit(
        as_json,
        status.as_dict(),
        f"{state.kind} running at {state.url} (chain id {state.chain_id}, pid {state.pid}); "
        f"log {state.log_path}\nIts accounts come from the public test mnemonic: never send real funds to them.",
    )


@chain.command("down")
@json_flag("Print the outcome as JSON.")
def down(as_json: bool) -> None:
    """Stop the chain `kuota chain up` started (only that process, after checking it is still ours)."""
    message = localchain.stop_chain()
    _emit(as_json, {"stopped": message.startswith("stopped"), "message": message}, message)


@chain.command("status")
@json_flag("Print the status as JSON.")
def status(as_json: bool) -> None:
    """Show the recorded chain and whether it is still the one we started (exit 3 if none, 8 if stale)."""
    result = localchain.chain_status()
    if result.state is None:
        if as_json:
            _emit(True, result.as_dict(), "")
            sys.exit(EXIT_NOT_FOUND)
        raise NotFoundError(f"no local chain is recorded in {localchain.state_path()}; start one with `kuota chain up`")
    if result.running:
        state = result.state
        text = (
            f"{state.kind} running at {state.url}: chain id {state.chain_id}, pid {state.pid}, "
            f"block {result.block_number}, started {state.started_at}"
            + (f"\nmanifest {state.manifest}" if state.manifest else "\nno contracts deployed yet (`kuota deploy`)")
        )
        _emit(as_json, result.as_dict(), text)
        return
    if as_json:
        _emit(True, result.as_dict(), "")
        sys.exit(localchain.StaleChainError.exit_code)
    raise localchain.StaleChainError(localchain.state_path(), result.problem or "unknown problem")


def _units(text: str | None, decimals: int, flag: str) -> int:
    """Decimal token amount → base units, refusing more precision than the token has."""
    if text is None:
        return 0
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{flag} must be a decimal amount, got {text!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"{flag} must be a non-negative amount, got {text!r}")
    units = amount.scaleb(decimals)
    if units != units.to_integral_value():
        raise ConfigError(f"{flag} {text} has more than {decimals} decimals")
    if units > 10**40:
        raise ConfigError(f"{flag} {text} is absurdly large")
    return int(units)


@chain.command("fund")
@click.argument("address")
@click.option("--eth", default=None, help="Ether to send from the first dev account, e.g. 10.")
@click.option("--usd", default=None, help="MockUSD to mint (6 decimals), e.g. 100.5.")
@click.option("--kuota", default=None, help="KUOTA to transfer from the deployer, e.g. 2000.")
@json_flag("Print transactions and balances as JSON.")
def fund(address: str, eth: str | None, usd: str | None, kuota: str | None, as_json: bool) -> None:
    """Faucet for the local chain: give ADDRESS ether, MockUSD and KUOTA (development only).

    With no amount given, ADDRESS gets what the README's guides need: 10 ETH, 100 USD, 2000 KUOTA.
    """
    if eth is None and usd is None and kuota is None:
        eth, usd, kuota = "10", "100", "2000"
    result = localchain.fund_account(
        address,
        eth_wei=_units(eth, 18, "--eth"),
        usd_units=_units(usd, 6, "--usd"),
        kuota_wei=_units(kuota, 18, "--kuota"),
    )
    balances = result["balances"]
    text = f"funded {address}: " + ", ".join(
        f"{name} {Decimal(value).scaleb(-(6 if name == 'usd' else 18)).normalize():f}" for name, value in balances.items()
    )
    _emit(as_json, result, text)


@chain.command("advance")
@click.argument("seconds", type=click.IntRange(1, 10 * 365 * 86_400), required=False)
@click.option("--next-epoch", is_flag=True, help="Advance to one second into the next RewardPool epoch.")
@json_flag("Print the new head as JSON.")
def advance(seconds: int | None, next_epoch: bool, as_json: bool) -> None:
    """Move the local chain's clock SECONDS forward and mine a block (epochs, unbonding, thawing)."""
    if seconds is None and not next_epoch:
        raise click.UsageError("give SECONDS or --next-epoch")
    head = localchain.advance_time(seconds, next_epoch=next_epoch)
    epoch = f", epoch {head['epoch']}" if "epoch" in head else ""
    _emit(as_json, head, f"block {head['blockNumber']} at {head['timestamp']} (+{head['timestamp'] - head['previous']} s{epoch})")


@click.command("deploy", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("target", type=click.Choice(["local", "live", "plan"]), default="local")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def deploy(target: str, script_args: tuple[str, ...]) -> None:
    """Deploy the contracts: `local` to the `kuota chain up` chain, `live`/`plan` to a testnet.

    Options after TARGET go to scripts/deploy.py (see `kuota deploy live --help` and docs/DEPLOY.md).
    """
    script = _PROJECT_ROOT / "scripts" / "deploy.py"
    if not script.is_file():
        raise NotFoundError(
            f"{script} is not there: `kuota deploy` runs from a source checkout with the development install"
        )
    # stdout is captured and re-emitted through click so that `--json` output reaches whoever invoked
    # this command (a pipe, or click's runner); stderr (Brownie's progress, prompts) stays live.
    proc = subprocess.run(
        [sys.executable, str(script), target, *script_args],
        cwd=_PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.stdout:
        click.echo(proc.stdout, nl=False)
    sys.exit(proc.returncode)


COMMANDS: list[click.Command] = [chain, deploy]
