"""``kuota rewards show|claim|finalize``: a node's reward epochs and claiming them (to its payout address)."""

from __future__ import annotations

import click

from nodeclient._utils.values import format_amount, parse_address, parse_uint
from nodeclient.cli.options import CliContext, eth, network_command, spend_command, table

__all__ = ["COMMANDS", "rewards"]


@click.group()
def rewards() -> None:
    """Show and claim KuotaToken rewards earned by your nodes' settled fees."""


@rewards.command("show")
@click.option("--node", "node_address", required=True, help="Node address.")
@network_command
def show(cx: CliContext, node_address: str) -> None:
    """Per-epoch fee, weight and claimable reward of a node."""
    from nodeclient.rewards import rewards_summary

    node = parse_address("node", node_address)
    summary = rewards_summary(cx.client(), node)

    def human(c):  # type: ignore[no-untyped-def]
        rows = [
            [e.epoch, e.fee, e.weight, format_amount(e.claimable, 18, "KUOTA"), "yes" if e.claimed else ("no" if e.finished else "running")]
            for e in summary.epochs
        ]
        c.print(table(f"Rewards of {node} (current epoch {summary.current_epoch})", ["epoch", "fee", "weight", "claimable", "claimed"], rows))
        c.print(f"claimable now: {format_amount(summary.claimable_total, 18, 'KUOTA')}; claimed so far: {format_amount(summary.claimed_total, 18, 'KUOTA')}")

    cx.emit(summary.to_json(), human)


@rewards.command("claim")
@click.option("--node", "node_address", required=True, help="Node address.")
@click.option("--epoch", "epochs", multiple=True, help="Epoch to claim (repeatable; default: every claimable epoch).")
@click.option("--force", is_flag=True, help="Claim whatever the gas policy says.")
@spend_command
def claim(cx: CliContext, node_address: str, epochs: tuple[str, ...], force: bool) -> None:
    """Claim finished epochs' rewards for a node; they are minted to its payout address."""
    from nodeclient.rewards import claim as send_claim
    from nodeclient.rewards import plan_claim

    node = parse_address("node", node_address)
    chosen = [parse_uint("epoch", e, 256) for e in epochs] or None
    client = cx.client()
    signer = cx.signer()
    plan = plan_claim(client, signer.address, node, cx.settings().rewards, epochs=chosen, force=force)
    if not plan.decision.act:
        cx.emit({"plan": plan.to_json(), "result": None}, lambda c: c.print(f"not claiming: {plan.decision.reason}"))
        return
    if cx.dry_run:
        cx.emit({"plan": plan.to_json(), "result": None, "dryRun": True},
                lambda c: c.print(f"dry run: would claim {format_amount(plan.amount, 18, 'KUOTA')} for epochs {plan.epochs}; "
                                  f"estimated fee {eth(plan.quote.expected_cost)}; nothing was sent"))
        return
    cx.confirm(
        f"claim {format_amount(plan.amount, 18, 'KUOTA')} for node {node}, epochs {plan.epochs} ({plan.decision.reason})\n"
        f"  estimated fee {eth(plan.quote.expected_cost)} (at most {eth(plan.quote.max_cost)})",
        "Send this claim?",
        f"declined: the claim for node {node} was not sent",
    )
    with cx.status("claiming rewards") as update:
        result = send_claim(client, signer, plan, progress=update)
    cx.emit({"plan": plan.to_json(), "result": result.to_json()},
            lambda c: c.print(f"claimed {format_amount(plan.amount, 18, 'KUOTA')} for epochs {plan.epochs} in {result.tx_hash}"))


@rewards.command("finalize")
@spend_command
def finalize(cx: CliContext) -> None:
    """Finalise every finished reward epoch, in bounded steps (needed before claims after long idle)."""
    from nodeclient.rewards import finalize_backlog, pending_finalizations

    client = cx.client()
    current = int(client.contract("RewardPool").functions.currentEpoch().call())
    pending, per_call = pending_finalizations(client, current - 1)
    if pending == 0:
        cx.emit({"pending": 0, "results": []}, lambda c: c.print("every finished epoch is already final"))
        return
    signer = cx.signer()
    steps = -(-pending // per_call)
    cx.confirm(
        f"finalise {pending} epochs in {steps} transaction(s) of at most {per_call} epochs",
        "Send?",
        "declined: no epoch was finalised",
    )
    with cx.status("finalising reward epochs") as update:
        results = finalize_backlog(client, signer, progress=update)
    cx.emit({"pending": pending, "results": [r.to_json() for r in results]},
            lambda c: c.print(f"finalised {pending} epochs in {len(results)} transaction(s)"))


COMMANDS = [rewards]
