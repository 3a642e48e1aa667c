"""Options shared by every ``kuota`` command, and the per-invocation context they build.

Each command declares which option sets it takes (``@network_options``, ``@account_options``,
``@spend_options``, ``@json_option``, or the usual stacks of them: ``@spend_command``,
``@account_command``, ``@network_command``) and receives a :class:`CliContext` as ``cx``. The
context builds settings, the chain connection and the unlocked signer lazily, so a command that
fails on bad input never touches the RPC or asks for a password.

Spending goes through :class:`nodeclient.transactions.Transactions` (estimate, confirm, send,
wait): the context only supplies its confirmation policy (print the plan, stop a ``--dry-run``,
ask unless ``--yes``) and its progress spinner.

Output: ``cx.emit(data, human)`` prints ``data`` as one JSON object (sorted keys; integers exact)
under ``--json``, else calls ``human(console)``; a failure under ``--json`` is one JSON object on
stderr (``nodeclient.cli.main``). Progress goes to stderr, only when it is a terminal (or a command's
``--progress`` asks for it) and never under ``--json``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
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
from nodeclient.transactions import SpendPlan, TokenAmount, Transactions, WatchOnly

__all__ = [
    "JSON_MODE_KEY",
    "CliContext",
    "DryRun",
    "TokenAmount",
    "WatchOnly",
    "account_command",
    "account_options",
    "address_command",
    "amount_command",
    "eth",
    "json_flag",
    "json_option",
    "network_command",
    "network_options",
    "node_key_options",
    "ops",
    "pass_cx",
    "spend_command",
    "spend_options",
    "table",
    "units_option",
    "utc_time",
]


class DryRun(KuotaError):
    """Raised to stop a ``--dry-run`` command after it printed what it would do (exit 0)."""

    exit_code = 0


def eth(wei: int) -> str:
    """Wei as ETH with up to 9 decimals (gwei precision is what fees are read in)."""
    whole, frac = divmod(int(wei), 10**18)
    text = f"{whole}.{str(frac).rjust(18, '0')[:9].rstrip('0')}".rstrip(".")
    return f"{text} ETH"


def utc_time(timestamp: int) -> str:
    """A chain timestamp as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


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

    @contextmanager
    def progress(self, description: str, *, forced: bool = False) -> Iterator[Callable[[int, int], None]]:
        """Block counts on stderr; yields ``update(done, total)``.

        A bar when stderr is a terminal; with ``forced`` (``--progress``) and no terminal, one plain
        line per update, which reads well in a CI log; nothing under ``--json`` or otherwise.
        """
        if self.as_json or not (forced or sys.stderr.isatty()):
            yield lambda done, total: None
        elif not sys.stderr.isatty():
            console = self.err_console
            yield lambda done, total: console.print(f"{description}: {done:,}/{total:,} blocks")
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"))
            with Bar(*columns, TimeElapsedColumn(), console=self.err_console, transient=True) as bar:
                task = bar.add_task(description, total=None)
                yield lambda done, total: bar.update(task, completed=done, total=total)

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

    def node_signer(self, ref: str | None, keystore: Path | None, password_file: Path | None) -> Any:
        """Unlock the node key given by ``--node-account`` / ``--node-keystore`` (``--node-password-file``)."""
        if ref is None and keystore is None:
            raise click.UsageError("the node key is required: pass --node-account ALIAS or --node-keystore FILE")
        saved = self.password_file
        if password_file is not None:
            self.password_file = password_file
        try:
            # need_key: even a dry run must sign the NodeKey proof, or the simulation reverts.
            return self.signer(ref, keystore=keystore, what="--node-account", need_key=True)
        finally:
            self.password_file = saved

    def address_or_self(self, address: str | None) -> str:
        """The ADDRESS argument of a ``show`` command, else the selected account's address."""
        from nodeclient._utils.values import parse_address

        return parse_address("address", address) if address else self.account_info().address

    def emit_holding(self, title: str, data: dict[str, Any], token: Any, rows: list[tuple[str, int | str]]) -> None:
        """A ``show`` command's answer: ``data`` plus the wallet's ``token`` balance.

        Human output is a two-column table of ``rows`` (integers are base units of ``token``, text
        is printed as it is) ending with the wallet balance.
        """

        def human(console: Console) -> None:
            from nodeclient._utils.values import format_amount

            cells = [[label, format_amount(v, token.decimals, token.symbol) if isinstance(v, int) else v] for label, v in rows]
            cells.append(["wallet balance", format_amount(token.balance, token.decimals, token.symbol)])
            console.print(table(title, ["", "value"], cells))

        self.emit({**data, "walletBalance": token.balance, "decimals": token.decimals}, human)

    # -- spending -----------------------------------------------------------------------------------

    def confirm(self, summary: str, question: str, declined: str) -> None:
        """Unless ``--yes``: print ``summary`` on stderr and ask ``question``; ``RefusedError(declined)`` on no."""
        if self.yes:
            return
        self.err_console.print(summary)
        if not click.confirm(question, default=False, err=True):
            raise RefusedError(declined)

    def confirm_spend(self, plan: SpendPlan) -> None:
        """Show what a transaction does and may cost; stop on ``--dry-run``; ask unless ``--yes``."""
        quote = plan.quote
        where = f"{plan.sender} on {plan.network} (chain {plan.chain_id})"
        fee = f"estimated fee {eth(quote.expected_cost)} (at most {eth(quote.max_cost - quote.value)}"
        if self.dry_run:
            self.emit(
                {"dryRun": True, **plan.to_json()},
                lambda c: c.print(f"[bold]dry run[/bold]: {plan.action} from {where}; {fee}); nothing was sent"),
            )
            raise DryRun("dry run: nothing was sent")
        self.confirm(
            f"{plan.action}\n  from {where}\n  {fee}, gas limit {quote.gas_limit})",
            "Send this transaction?",
            f"declined: {plan.action} was not sent",
        )

    def transactions(self) -> Transactions:
        """The spending flow on this invocation's chain, with this invocation's confirmation policy."""
        return Transactions(self.client(), confirm=self.confirm_spend, sending=self.status, note=self.note)

    def transact(
        self, contract: str, function: str, *args: Any, description: str,
        pull: tuple[str, TokenAmount, str] | None = None, **kwargs: Any,
    ) -> Any:
        """Send ``contract.function(*args)`` from the selected account; returns the ``TxResult``.

        ``pull=(token, amount, purpose)``: the call takes ``amount`` of ``token`` from the account, so
        the balance is checked and exactly that much approved first (see ``send_with_allowance``).
        """
        client = self.client()
        signer = self.signer()
        call = getattr(client.contract(contract).functions, function)(*args)
        if pull is None:
            return self.send(signer, call, description, **kwargs)
        token, amount, purpose = pull
        return self.transactions().send_with_allowance(signer, token, contract, amount, purpose, call, description, **kwargs)

    def send(self, signer: Any, fn_call: Any, description: str, **kwargs: Any) -> Any:
        """Estimate, confirm, send and wait for one transaction, with progress on stderr."""
        return self.transactions().send(signer, fn_call, description, **kwargs)

    def token_amount(self, token: str, text: str, *, base_units: bool) -> TokenAmount:
        """Parse a command's AMOUNT of ``token`` (decimal tokens, or base units with ``--units``)."""
        return self.transactions().token_amount(token, text, base_units=base_units)

    def require_balance(self, signer: Any, token: str, amount: TokenAmount, purpose: str) -> None:
        """Refuse before any transaction when ``signer`` holds less ``token`` than ``amount``."""
        self.transactions().require_balance(signer.address, token, amount, purpose)

    def ensure_allowance(self, signer: Any, token: str, spender: str, amount: int) -> Any:
        """Approve exactly ``amount`` of ``token`` to ``spender`` if the allowance is short (one tx)."""
        return self.transactions().ensure_allowance(signer, token, spender, amount)


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


# Key of ``click.Context.meta`` (shared by a command's context and its parents') set when ``--json``
# is given, so the error handler at the group answers in JSON too.
JSON_MODE_KEY = "kuota.json"


def _record_json_mode(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[JSON_MODE_KEY] = True
    return value


def json_flag(help_text: str = "Machine-readable JSON output (errors too).") -> Callable[..., Any]:
    """``--json`` with ``help_text``: output, and any error, as one JSON object."""
    return click.option("--json", "as_json", is_flag=True, callback=_record_json_mode, help=help_text)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``."""
    return json_flag()(fn)


def units_option(text: str = "AMOUNT is in base units, not decimal tokens.") -> Callable[..., Any]:
    """``--units``: the command's AMOUNT is in base units."""
    return click.option("--units", is_flag=True, help=text)


def node_key_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--node-account``, ``--node-keystore``, ``--node-password-file``: the node key, named the same
    way by every command that needs it (``node register``, ``node rotate-key``, ``node serve``)."""
    fn = click.option("--node-password-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
                      help="Password file of the node key (default: the same source as the account's).")(fn)
    fn = click.option("--node-keystore", type=click.Path(path_type=Path, dir_okay=False), default=None,
                      help="Keystore file of the node key (the registry's signing key).")(fn)
    fn = click.option("--node-account", default=None, help="Alias or address of the node key's keystore.")(fn)
    return fn


def amount_command(group: click.Group, name: str, token: str) -> Callable[[Callable[..., Any]], Any]:
    """A spending command ``name`` of ``group`` taking AMOUNT of ``token`` (``--units``: base units).

    The function receives ``cx`` and the parsed :class:`TokenAmount` as ``amount``; AMOUNT is parsed
    first, so a malformed amount fails before any password is asked.
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        @functools.wraps(fn)
        def parsed(cx: CliContext, amount: str, units: bool, **kwargs: Any) -> Any:
            return fn(cx, cx.token_amount(token, amount, base_units=units), **kwargs)

        return group.command(name)(click.argument("amount")(units_option()(spend_command(parsed))))

    return decorate


def address_command(group: click.Group, name: str) -> Callable[[Callable[..., Any]], Any]:
    """A read-only command ``name`` of ``group`` about [ADDRESS] (default: the selected account).

    The function receives ``cx`` and the checksummed address as ``who``.
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        @functools.wraps(fn)
        def resolved(cx: CliContext, address: str | None, **kwargs: Any) -> Any:
            return fn(cx, cx.address_or_self(address), **kwargs)

        return group.command(name)(click.argument("address", required=False)(account_command(resolved)))

    return decorate


def spend_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A command that sends transactions: network, account, ``--yes``/``--dry-run``, ``--json``; gets ``cx``."""
    return network_options(account_options(spend_options(json_option(pass_cx(fn)))))


def account_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A read-only command about an account: network, account, ``--json``; gets ``cx``."""
    return network_options(account_options(json_option(pass_cx(fn))))


def network_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A read-only command that needs no account: network, ``--json``; gets ``cx``."""
    return network_options(json_option(pass_cx(fn)))


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
