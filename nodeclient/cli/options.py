"""Options shared by every ``kuota`` command, and the per-invocation context they build.

Each command declares which option sets it takes (``@network_options``, ``@account_options``,
``@spend_options``, ``@json_option``) and receives a :class:`CliContext` as ``cx``. The context
builds settings, the chain connection and the unlocked signer lazily, so a command that fails on
bad input never touches the RPC or asks for a password.

Output: ``cx.emit(data, human)`` prints ``data`` as one JSON object (sorted keys; integers exact)
under ``--json``, else calls ``human(console)``. Progress goes to stderr, only when it is a terminal.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from nodeclient.config import Settings, load_settings
from nodeclient.errors import KuotaError, RefusedError

__all__ = [
    "CliContext",
    "DryRun",
    "TokenAmount",
    "WatchOnly",
    "account_options",
    "eth",
    "json_option",
    "network_options",
    "ops",
    "pass_cx",
    "spend_options",
    "table",
]


class DryRun(KuotaError):
    """Raised to stop a ``--dry-run`` command after it printed what it would do (exit 0)."""

    exit_code = 0


class WatchOnly:
    """An account known by address only (``--dry-run``): it can be estimated from, never sign."""

    def __init__(self, address: str, alias: str | None = None) -> None:
        self.address = address
        self.alias = alias

    def __repr__(self) -> str:
        return f"WatchOnly(alias={self.alias!r}, address={self.address})"

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RefusedError(f"dry run: account {self.address} is not unlocked and signs nothing")

    sign_transaction = sign_typed_data = private_key_bytes = _refuse


def eth(wei: int) -> str:
    """Wei as ETH with up to 9 decimals (gwei precision is what fees are read in)."""
    whole, frac = divmod(int(wei), 10**18)
    text = f"{whole}.{str(frac).rjust(18, '0')[:9].rstrip('0')}".rstrip(".")
    return f"{text} ETH"


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A rich table with the given columns (numbers right-aligned by the caller's str())."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*[str(v) for v in row])
    return out


@dataclass
class CliContext:
    """Everything one ``kuota`` invocation knows: its options and lazily built resources."""

    network: str | None = None
    rpc_url: str | None = None
    chain_id: int | None = None
    manifest: Path | None = None
    account: str | None = None
    keystore: Path | None = None
    password_file: Path | None = None
    as_json: bool = False
    yes: bool = False
    dry_run: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _client: Any = field(default=None, repr=False)
    _signers: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- output -------------------------------------------------------------------------------------

    @property
    def console(self) -> Console:
        """Human output on stdout."""
        return Console(highlight=False, soft_wrap=True)

    @property
    def err_console(self) -> Console:
        """Progress and notes on stderr."""
        return Console(stderr=True, highlight=False, soft_wrap=True)

    def emit(self, data: dict[str, Any], human: Callable[[Console], None] | None = None) -> None:
        """``data`` as JSON under ``--json``; else ``human(console)`` (or a key/value listing)."""
        if self.as_json:
            click.echo(json.dumps(data, sort_keys=True, default=str))
            return
        console = self.console
        if human is not None:
            human(console)
        else:
            for key, value in data.items():
                console.print(f"{key}: {value}")

    def note(self, message: str) -> None:
        """A line for humans on stderr (suppressed under ``--json``)."""
        if not self.as_json:
            self.err_console.print(message)

    @contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        """A spinner on stderr when it is a terminal; yields an updater for the message."""
        if sys.stderr.isatty() and not self.as_json:
            with self.err_console.status(message) as live:
                yield lambda text: live.update(text)
        else:
            yield lambda text: None

    # -- resources ----------------------------------------------------------------------------------

    def settings(self) -> Settings:
        """Settings from file, env and these flags."""
        if self._settings is None:
            self._settings = load_settings(
                network=self.network,
                rpc_url=self.rpc_url,
                chain_id=self.chain_id,
                manifest=self.manifest,
                account=self.account,
                keystore=self.keystore,
            )
        return self._settings

    def client(self) -> Any:
        """The verified chain connection of the selected profile."""
        if self._client is None:
            from nodeclient.chain import ChainClient

            settings = self.settings()
            profile = settings.profile()
            with self.status(f"connecting to {profile.name} ({profile.rpc_url})"):
                self._client = ChainClient.connect(profile, settings.data_dir)
        return self._client

    def keys(self) -> Any:
        """The keystore manager of the data dir."""
        from nodeclient.keys import KeyManager

        return KeyManager(self.settings().data_dir)

    def account_info(self, ref: str | None = None, *, keystore: Path | None = None, what: str = "--account") -> Any:
        """The keystore selected by ``ref`` / ``keystore``, else by ``--keystore`` / ``--account`` / settings."""
        from nodeclient.keys import KeystoreNotFoundError

        settings = self.settings()
        if keystore is not None:
            return self.keys().info_for_file(keystore)
        if ref is not None:
            return self.keys().find(ref)
        if settings.keystore is not None:
            return self.keys().info_for_file(settings.keystore)
        if settings.account is not None:
            return self.keys().find(settings.account)
        accounts = self.keys().list()
        if len(accounts) == 1:
            return accounts[0]
        raise KeystoreNotFoundError(
            f"{what} (none given and {len(accounts)} accounts exist; pass {what} ALIAS)", self.keys().directory
        )

    def password(self, prompt: str, *, confirm: bool = False) -> Any:
        """Password from ``--password-file``, else ``KUOTA_PASSWORD``, else a hidden (confirmed) prompt."""
        from nodeclient.keys import Secret, read_password_file

        if self.password_file is not None:
            return read_password_file(self.password_file)
        env = os.environ.get("KUOTA_PASSWORD")
        if env:
            return Secret(env)
        # Without a terminal, click reads the line from stdin; at EOF it aborts (exit 8), never hangs.
        return Secret(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True))

    def signer(
        self, ref: str | None = None, *, keystore: Path | None = None, what: str = "--account", need_key: bool = False
    ) -> Any:
        """Unlock the selected account (cached per invocation).

        Under ``--dry-run`` the account is not unlocked (no password asked): a :class:`WatchOnly`
        stands in, whose address is enough to estimate; ``need_key`` forces a real unlock where
        the simulation itself needs a signature (the node key's registration proof).
        """
        info = self.account_info(ref, keystore=keystore, what=what)
        if self.dry_run and not need_key:
            return WatchOnly(info.address, info.alias)
        key = str(info.path)
        if key not in self._signers:
            password = self.password(f"Password for {info.alias} ({info.address})")
            with self.status(f"decrypting keystore {info.alias}"):
                self._signers[key] = self.keys().unlock(info, password)
        return self._signers[key]

    # -- spending -----------------------------------------------------------------------------------

    def confirm_spend(self, description: str, sender: str, quote: Any, extra: dict[str, Any] | None = None) -> None:
        """Show what a transaction does and may cost; stop on ``--dry-run``; ask unless ``--yes``."""
        client = self.client()
        plan = {
            "action": description,
            "from": sender,
            "network": client.profile.name,
            "chainId": client.chain_id,
            "fee": quote.to_json(),
            **(extra or {}),
        }
        if self.dry_run:
            self.emit(
                {"dryRun": True, **plan},
                lambda c: c.print(
                    f"[bold]dry run[/bold]: {description} from {sender} on {client.profile.name} "
                    f"(chain {client.chain_id}); estimated fee {eth(quote.expected_cost)} (at most {eth(quote.max_cost - quote.value)}); "
                    "nothing was sent"
                ),
            )
            raise DryRun("dry run: nothing was sent")
        if self.yes:
            return
        self.err_console.print(
            f"{description}\n  from {sender} on {client.profile.name} (chain {client.chain_id})\n"
            f"  estimated fee {eth(quote.expected_cost)} (at most {eth(quote.max_cost - quote.value)}, gas limit {quote.gas_limit})"
        )
        if not click.confirm("Send this transaction?", default=False, err=True):
            raise RefusedError(f"declined: {description} was not sent")

    def send(self, signer: Any, fn_call: Any, description: str, **kwargs: Any) -> Any:
        """Estimate, confirm, send and wait for one transaction, with progress on stderr."""
        client = self.client()
        quote = client.estimate(signer.address, fn_call, description, kwargs.get("value", 0))
        self.confirm_spend(description, signer.address, quote)
        with self.status(f"{description}: sending") as update:
            return client.transact(signer, fn_call, description, progress=update, **kwargs)

    def token_amount(self, token: str, text: str, *, base_units: bool) -> TokenAmount:
        """Parse a command's AMOUNT of ``token`` (decimal tokens, or base units with ``--units``)."""
        from nodeclient._utils.values import parse_amount

        info = ops().token_info(self.client(), token, self.client().deployment.address(token))
        value = parse_amount("amount", text, 0 if base_units else info.decimals)
        return TokenAmount(value, info.decimals, info.symbol)

    def require_balance(self, signer: Any, token: str, amount: TokenAmount, purpose: str) -> None:
        """Refuse before any transaction when ``signer`` holds less ``token`` than ``amount``."""
        from nodeclient._utils.values import format_amount
        from nodeclient.errors import InsufficientFundsError

        held = ops().token_info(self.client(), token, signer.address).balance
        if held < amount.value:
            raise InsufficientFundsError(
                f"account {signer.address} holds {format_amount(held, amount.decimals, amount.symbol)}, "
                f"less than the {amount} to {purpose}"
            )

    def ensure_allowance(self, signer: Any, token: str, spender: str, amount: int) -> Any:
        """Approve exactly ``amount`` of ``token`` to ``spender`` if the allowance is short (one tx).

        Exact approvals, not unlimited ones: a compromised or buggy spender can take no more than
        what this command is about to use.
        """
        from nodeclient.chain.ops import allowance

        client = self.client()
        current = allowance(client, token, signer.address, spender)
        if current >= amount:
            return None
        call = client.contract(token).functions.approve(client.deployment.address(spender), amount)
        self.note(f"step 1 of 2: allow {spender} to take {amount} base units of {token} (a second transaction follows)")
        return self.send(signer, call, f"approve {spender} for {amount} {token} units", kind="approve")


@dataclass(frozen=True)
class TokenAmount:
    """An amount of a token in base units, with what it takes to print it."""

    value: int
    decimals: int
    symbol: str

    def __str__(self) -> str:
        from nodeclient._utils.values import format_amount

        return format_amount(self.value, self.decimals, self.symbol)


def network_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--network``, ``--rpc-url``, ``--chain-id``, ``--manifest``."""
    fn = click.option("--manifest", type=click.Path(path_type=Path, dir_okay=False), default=None,
                      help="Deployment manifest (deployments/<chainId>.json) of the network.")(fn)
    fn = click.option("--chain-id", type=int, default=None, help="Chain id the RPC must serve.")(fn)
    fn = click.option("--rpc-url", default=None, help="JSON-RPC endpoint (overrides the profile's).")(fn)
    fn = click.option("--network", "-n", default=None, help="Network profile (default: local, or KUOTA_NETWORK).")(fn)
    return fn


def account_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--account``, ``--keystore``, ``--password-file``."""
    fn = click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
                      help="File holding the keystore password (else KUOTA_PASSWORD, else a prompt).")(fn)
    fn = click.option("--keystore", type=click.Path(path_type=Path, dir_okay=False), default=None,
                      help="Keystore file to sign with (instead of an alias).")(fn)
    fn = click.option("--account", "-a", default=None, help="Account alias or address (see `kuota account list`).")(fn)
    return fn


def spend_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--yes`` and ``--dry-run``."""
    fn = click.option("--dry-run", is_flag=True, help="Simulate and print what would be sent; send nothing.")(fn)
    fn = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")(fn)
    return fn


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``."""
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(fn)


_CX_FIELDS = (
    "network", "rpc_url", "chain_id", "manifest", "account", "keystore", "password_file", "as_json", "yes", "dry_run",
)


def pass_cx(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Collect the shared options into a :class:`CliContext` passed as ``cx`` (apply innermost)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cx = CliContext(**{name: kwargs.pop(name) for name in _CX_FIELDS if name in kwargs})
        return fn(cx, *args, **kwargs)

    return wrapper


def ops() -> Any:
    """``nodeclient.chain.ops``, imported on first use: web3 takes a second to import on small
    devices, and ``kuota --help`` or ``kuota account …`` never need it."""
    from nodeclient.chain import ops as module

    return module
