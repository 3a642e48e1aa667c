"""``kuota gov delegate|propose|vote|queue|execute|status``: KUOTA-holder governance through KuotaGovernor.

A proposal is a JSON file (see ``nodeclient.governance``); ``queue`` and ``execute`` take the same file
``propose`` took, ``vote`` and ``status`` take the file or the proposal id. Every command that sends
shows what it sends and asks first (``--yes`` skips, ``--dry-run`` only estimates); ``--json`` prints one
JSON object.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from nodeclient._utils.values import parse_uint
from nodeclient.cli.options import (
    CliContext,
    account_options,
    json_option,
    network_options,
    pass_cx,
    spend_options,
)

__all__ = ["COMMANDS", "gov"]

_PROPOSAL = click.argument("proposal_file", type=click.Path(dir_okay=False, path_type=Path))


def _sends(fn: Callable[..., None]) -> Callable[..., None]:
    """The option sets of a command that sends one transaction: network, account, spend, --json."""
    return network_options(account_options(spend_options(json_option(pass_cx(fn)))))


@click.group()
def gov() -> None:
    """Govern Kuota with KUOTA votes: delegate, propose, vote, queue and execute proposals."""


def _proposal_id(cx: CliContext, ref: str) -> int:
    from nodeclient import governance

    client = cx.client()
    if Path(ref).is_file():
        return governance.proposal_id(client, governance.load_proposal(Path(ref), client))
    return parse_uint("proposal id", ref)


def _sent(cx: CliContext, what: str, pid: int, result: object) -> None:
    from nodeclient.governance import proposal_status

    status = proposal_status(cx.client(), pid)
    cx.emit(
        {"proposalId": str(pid), "tx": result.to_json(), "status": status.to_json()},  # type: ignore[attr-defined]
        lambda c: c.print(f"{what} proposal {pid} in {result.tx_hash}; it is {status.state} now"),  # type: ignore[attr-defined]
    )


@gov.command("delegate")
@click.argument("delegatee")
@_sends
def delegate(cx: CliContext, delegatee: str) -> None:
    """Give your KUOTA's votes to DELEGATEE (your own address to vote yourself)."""
    from nodeclient.governance import delegate_call

    client = cx.client()
    signer = cx.signer()
    call = delegate_call(client, delegatee)
    result = cx.send(signer, call, f"delegate the votes of {signer.address} to {delegatee}", kind="delegate")
    cx.emit(
        {"tx": result.to_json(), "delegatee": delegatee},
        lambda c: c.print(f"delegated to {delegatee} in {result.tx_hash}"),
    )


def _proposal_tx(cx: CliContext, proposal_file: Path, step: str, verb: str) -> None:
    from nodeclient import governance

    client = cx.client()
    proposal = governance.load_proposal(proposal_file, client)
    signer = cx.signer()
    call = governance.proposal_call(client, signer.address, proposal, step)
    description = f"{step} {proposal.description!r} ({len(proposal.targets)} actions)"
    result = cx.send(signer, call, description, kind=step)
    _sent(cx, verb, governance.proposal_id(client, proposal), result)


@gov.command("propose")
@_PROPOSAL
@_sends
def propose(cx: CliContext, proposal_file: Path) -> None:
    """Submit the proposal in PROPOSAL_FILE (you need the proposal threshold in delegated votes)."""
    _proposal_tx(cx, proposal_file, "propose", "submitted")


@gov.command("vote")
@click.argument("proposal")
@click.argument("support", type=click.Choice(["for", "against", "abstain"]))
@click.option("--reason", default="", help="A reason recorded with the vote.")
@_sends
def vote(cx: CliContext, proposal: str, support: str, reason: str) -> None:
    """Vote SUPPORT on PROPOSAL (a proposal file or id) with your delegated votes at its snapshot."""
    from nodeclient.governance import vote_call

    pid = _proposal_id(cx, proposal)
    call = vote_call(cx.client(), pid, support, reason)
    result = cx.send(cx.signer(), call, f"vote {support} on proposal {pid}", kind="vote")
    _sent(cx, f"voted {support} on", pid, result)


@gov.command("queue")
@_PROPOSAL
@_sends
def queue(cx: CliContext, proposal_file: Path) -> None:
    """Queue a passed proposal in the timelock; it can be executed after the timelock's delay."""
    _proposal_tx(cx, proposal_file, "queue", "queued")


@gov.command("execute")
@_PROPOSAL
@_sends
def execute(cx: CliContext, proposal_file: Path) -> None:
    """Execute a queued proposal whose timelock delay has passed (anyone may)."""
    _proposal_tx(cx, proposal_file, "execute", "executed")


@gov.command("status")
@click.argument("proposal")
@network_options
@json_option
@pass_cx
def status(cx: CliContext, proposal: str) -> None:
    """State, tally, quorum, voting window and timelock ETA of PROPOSAL (a file or an id)."""
    from nodeclient.governance import proposal_status

    info = proposal_status(cx.client(), _proposal_id(cx, proposal))

    def human(c):  # type: ignore[no-untyped-def]
        c.print(f"proposal {info.proposal_id}: {info.state}")
        c.print(
            f"  for {info.votes_for}, against {info.votes_against}, abstain {info.votes_abstain}; quorum {info.quorum}"
        )
        c.print(
            f"  snapshot block {info.snapshot}, voting ends at block {info.deadline}, timelock eta {info.eta or '-'}"
        )

    cx.emit(info.to_json(), human)


COMMANDS = [gov]
