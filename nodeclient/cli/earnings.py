"""``kuota earnings``: a node's itemised ledger (settlements, withdrawals, rewards, gas), CSV or JSON."""

from __future__ import annotations

from pathlib import Path

import click

from nodeclient._utils.values import format_amount, parse_address
from nodeclient.cli.options import CliContext, eth, json_option, network_options, ops, pass_cx, table

__all__ = ["COMMANDS", "earnings"]


@click.command("earnings")
@click.option("--node", "node_address", required=True, help="Node address.")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True), default=None,
              help="Write the ledger as CSV to this file ('-' for stdout).")
@network_options
@json_option
@pass_cx
def earnings(cx: CliContext, node_address: str, csv_out: Path | None) -> None:
    """Itemised earnings of a node: gross, fee, net, rewards claimed and claimable, gas spent."""
    from nodeclient.earnings import node_earnings, to_csv

    node = parse_address("node", node_address)
    client = cx.client()
    ledger = node_earnings(client, node)
    if csv_out is not None:
        text = to_csv(ledger)
        if str(csv_out) == "-":
            click.echo(text, nl=False)
            return
        csv_out.write_text(text)
    decimals = ops().token_info(client, "PaymentToken", client.deployment.address("PaymentEscrow")).decimals

    def human(c):  # type: ignore[no-untyped-def]
        t = ledger.totals()
        f = lambda v: format_amount(v, decimals)
        rows = [
            ["gross paid by consumers", f(t["gross"])],
            ["protocol fee", f(t["fee"])],
            ["net earned", f(t["net"])],
            ["withdrawn to payout", f(t["withdrawn"])],
            ["credit in escrow", f(t["credit"])],
            ["rewards claimed", format_amount(t["rewardsClaimed"], 18, "KUOTA")],
            ["rewards claimable", format_amount(t["rewardsClaimable"], 18, "KUOTA")],
            ["gas spent", eth(t["gasWei"])],
            ["consistent with escrow", "yes" if t["consistent"] else "NO"],
        ]
        c.print(table(f"Earnings of {node} ({t['settlements']} settlements)", ["", "amount"], rows))
        if csv_out is not None:
            c.print(f"ledger written to {csv_out}")

    cx.emit(ledger.to_json(), human)


COMMANDS = [earnings]
