"""Entry point of the ``kuota`` command: one click group, noun sub-groups from their own modules.

Every ``KuotaError`` is turned into one line on stderr and its exit code here, at the boundary, so
command modules raise and never print tracebacks for expected failures. A declined confirmation or
a prompt that meets end of input exits 8 (refused) with nothing sent.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from nodeclient.errors import EXIT_REFUSED, KuotaError

__all__ = ["KuotaGroup", "cli", "main"]


def _fail(ctx: click.Context, exc: KuotaError) -> None:
    if exc.exit_code == 0:
        ctx.exit(0)  # --dry-run stops here after printing its plan
    click.echo(f"Error: {exc}", err=True)
    ctx.exit(exc.exit_code)


class KuotaGroup(click.Group):
    """A click group that maps ``KuotaError`` to its exit code wherever the command runs."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KuotaError as exc:
            _fail(ctx, exc)
        except click.exceptions.Abort:
            click.echo("Aborted: nothing was sent.", err=True)
            ctx.exit(EXIT_REFUSED)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


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
