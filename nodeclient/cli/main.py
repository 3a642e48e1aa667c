"""Entry point of the ``kuota`` command: one click group, noun sub-groups from their own modules.

Every ``KuotaError`` is turned into one line on stderr and its exit code here, at the boundary, so
command modules raise and never print tracebacks for expected failures. A declined confirmation or
a prompt that meets end of input exits 8 (refused) with nothing sent. Under ``--json`` the failure is
one JSON object on stderr instead, ``{"error": {"type": ..., "message": ..., "exit_code": ...}}``,
with the same exit code (docs/CLI.md).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from nodeclient.cli.options import JSON_MODE_KEY
from nodeclient.errors import EXIT_REFUSED, KuotaError

__all__ = ["KuotaGroup", "cli", "main"]

# Outcomes whose human line is a complete sentence of its own, not an "Error: ..." one.
_PLAIN_KINDS = frozenset({"Aborted", "Interrupted"})
# ``click.Context.meta`` key of the arguments the group was given (see ``_wants_json``).
_ARGS_KEY = "kuota.args"


def _error(ctx: click.Context, kind: str, message: str, exit_code: int, as_json: bool) -> None:
    """Report one failure on stderr and exit with its code: a line for people, or under ``--json``
    the object ``{"error": {"type", "message", "exit_code"}}`` so that scripts parse every outcome."""
    if as_json:
        error = {"type": kind, "message": message, "exit_code": exit_code}
        click.echo(json.dumps({"error": error}, sort_keys=True), err=True)
    else:
        click.echo(message if kind in _PLAIN_KINDS else f"Error: {message}", err=True)
    ctx.exit(exit_code)


def _wants_json(ctx: click.Context, exc: click.ClickException | None = None) -> bool:
    """Whether the failing command runs under ``--json``.

    The flag's callback records it once parsed; a usage error can stop parsing before that, so then
    the command that failed is asked whether it takes ``--json`` and the arguments whether they hold it.
    """
    if ctx.meta.get(JSON_MODE_KEY):
        return True
    failed = getattr(exc, "ctx", None)
    if failed is None or "--json" not in ctx.meta.get(_ARGS_KEY, ()):
        return False
    return any(param.name == "as_json" for param in failed.command.params)


class KuotaGroup(click.Group):
    """A click group that maps ``KuotaError`` to its exit code wherever the command runs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault(_ARGS_KEY, tuple(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KuotaError as exc:
            if exc.exit_code == 0:
                ctx.exit(0)  # --dry-run stops here after printing its plan
            _error(ctx, type(exc).__name__, str(exc), exc.exit_code, _wants_json(ctx))
        except click.ClickException as exc:
            if not _wants_json(ctx, exc):
                raise  # click prints usage and the message itself
            _error(ctx, type(exc).__name__, exc.format_message(), exc.exit_code, True)
        except click.exceptions.Abort:
            _error(ctx, "Aborted", "Aborted: nothing was sent.", EXIT_REFUSED, _wants_json(ctx))
        except KeyboardInterrupt:
            _error(ctx, "Interrupted", "Interrupted.", 130, _wants_json(ctx))


@click.group(cls=KuotaGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="kuota-nodeclient", prog_name="kuota")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Kuota: get paid for the bandwidth you share.

    Operators register nodes, serve traffic and settle proof-of-bandwidth receipts; consumers fund
    escrow and sign receipts; auditors replay every payout from chain events and receipt bundles.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)


def _register_commands() -> None:
    # Imported here so that each module owns its own group and a broken optional module names itself.
    from nodeclient.cli import (
        account,
        audit,
        chain,
        earnings,
        escrow,
        gov,
        node,
        nodes,
        receipts,
        relay,
        rewards,
        stake,
    )

    for module in (account, node, nodes, stake, escrow, receipts, rewards, earnings, chain, audit, relay, gov):
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)
    for command in getattr(relay, "NODE_COMMANDS", ()):
        node.node.add_command(command)


_register_commands()


def main() -> None:
    """Run the CLI, mapping ``KuotaError`` to a clean message and its exit code."""
    try:
        # Outside standalone mode click returns the code of ctx.exit() instead of exiting.
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted: nothing was sent.", err=True)
        sys.exit(EXIT_REFUSED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KuotaError as exc:
        if exc.exit_code == 0:
            sys.exit(0)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
