"""KUOTA-holder governance: proposal files, the KuotaGovernor calls that act on them, and proposal status.

A proposal file is JSON: ``{"description": str, "actions": [...]}``; each action is either raw
(``{"target": address, "value": int, "calldata": "0x..."}``, what ``scripts/migrate_settlement.py``
writes) or named (``{"contract": "RewardPool", "function": "setEmissionPerEpoch", "args": [5000]}``,
encoded here with the shipped ABI at the manifest's address). A proposal's id is the governor's
``hashProposal`` of its actions and description, so ``vote``, ``queue``, ``execute`` and ``status``
all find it from the same file. The CLI (``kuota gov``) only parses, confirms and prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3.exceptions import MismatchedABI, Web3ValueError

from nodeclient._utils.values import parse_address, parse_uint
from nodeclient.errors import KuotaError, NotFoundError

__all__ = [
    "GOVERNOR",
    "PROPOSAL_STATES",
    "VOTE_SUPPORT",
    "GovernanceError",
    "Proposal",
    "ProposalStatus",
    "delegate_call",
    "execute_call",
    "load_proposal",
    "parse_proposal",
    "proposal_status",
    "propose_call",
    "queue_call",
    "vote_call",
]

GOVERNOR = "KuotaGovernor"
#: IGovernor.ProposalState, in enum order.
PROPOSAL_STATES: tuple[str, ...] = (
    "Pending",
    "Active",
    "Canceled",
    "Defeated",
    "Succeeded",
    "Queued",
    "Expired",
    "Executed",
)
#: GovernorCountingSimple's support values.
VOTE_SUPPORT: dict[str, int] = {"against": 0, "for": 1, "abstain": 2}


class GovernanceError(KuotaError):
    """A proposal file or a governance action that cannot be used as given."""


class ProposalStateError(GovernanceError):
    """The proposal is not in a state that allows the action."""

    def __init__(self, proposal_id: int, state: str, action: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"proposal {proposal_id} is {state}: it can be {action} only when {' or '.join(allowed)}"
        )


@dataclass(frozen=True)
class Proposal:
    """The governor's view of a proposal: parallel lists of calls and the description."""

    targets: tuple[str, ...]
    values: tuple[int, ...]
    calldatas: tuple[bytes, ...]
    description: str

    @property
    def description_hash(self) -> bytes:
        """keccak256 of the description, as ``queue`` and ``execute`` take it."""
        return keccak(text=self.description)

    def args(self) -> tuple[list[str], list[int], list[bytes]]:
        """``(targets, values, calldatas)`` as the governor's functions take them."""
        return list(self.targets), list(self.values), list(self.calldatas)

    def to_json(self) -> dict[str, Any]:
        """The raw proposal file form (round-trips through ``parse_proposal``)."""
        return {
            "description": self.description,
            "actions": [
                {"target": t, "value": v, "calldata": "0x" + c.hex()}
                for t, v, c in zip(self.targets, self.values, self.calldatas, strict=True)
            ],
        }


@dataclass(frozen=True)
class ProposalStatus:
    """Where a proposal stands: state, tally, and the blocks and time that bound it."""

    proposal_id: int
    state: str
    votes_against: int
    votes_for: int
    votes_abstain: int
    quorum: int
    snapshot: int
    deadline: int
    eta: int

    def to_json(self) -> dict[str, Any]:
        """Stable machine form (integers exact)."""
        return {
            "proposalId": str(self.proposal_id),
            "state": self.state,
            "votes": {"against": self.votes_against, "for": self.votes_for, "abstain": self.votes_abstain},
            "quorum": self.quorum,
            "snapshotBlock": self.snapshot,
            "deadlineBlock": self.deadline,
            "eta": self.eta,
        }


def _encode_named(client: Any, index: int, action: dict[str, Any]) -> tuple[str, bytes]:
    name = action.get("contract")
    function = action.get("function")
    args = action.get("args", [])
    if not isinstance(name, str) or not isinstance(function, str) or not isinstance(args, list):
        raise GovernanceError(
            f"action {index} needs 'contract' and 'function' strings and an 'args' list, got {action!r}"
        )
    if client is None:
        raise GovernanceError(f"action {index} names contract {name!r}: encoding it needs a chain connection")
    contract = client.contract(name)
    try:
        calldata = contract.encode_abi(function, args=args)
    except (MismatchedABI, Web3ValueError, ValueError, TypeError) as exc:
        raise GovernanceError(
            f"action {index}: {name}.{function}({args!r}) does not match the ABI: {exc}"
        ) from exc
    return contract.address, bytes.fromhex(calldata.removeprefix("0x"))


def _raw_action(index: int, action: dict[str, Any]) -> tuple[str, bytes]:
    target = parse_address(f"action {index} target", str(action["target"]))
    text = action.get("calldata", "0x")
    if not isinstance(text, str) or not text.startswith("0x"):
        raise GovernanceError(f"action {index} calldata must be a 0x-hex string, got {text!r}")
    try:
        return target, bytes.fromhex(text[2:])
    except ValueError as exc:
        raise GovernanceError(f"action {index} calldata {text!r} is not hex: {exc}") from exc


def parse_proposal(data: Any, client: Any = None) -> Proposal:
    """Validate a proposal object and encode its actions (named actions need ``client``)."""
    if not isinstance(data, dict):
        raise GovernanceError(f"a proposal must be a JSON object, got {type(data).__name__}")
    description = data.get("description")
    actions = data.get("actions")
    if not isinstance(description, str) or not description.strip():
        raise GovernanceError(f"a proposal needs a non-empty 'description' string, got {description!r}")
    if not isinstance(actions, list) or not actions:
        raise GovernanceError(f"a proposal needs a non-empty 'actions' list, got {actions!r}")
    targets: list[str] = []
    values: list[int] = []
    calldatas: list[bytes] = []
    for index, action in enumerate(actions):
        if not isinstance(action, dict):
            raise GovernanceError(f"action {index} must be an object, got {action!r}")
        target, calldata = (
            _raw_action(index, action) if "target" in action else _encode_named(client, index, action)
        )
        targets.append(to_checksum_address(target))
        values.append(parse_uint(f"action {index} value", action.get("value", 0)))
        calldatas.append(calldata)
    return Proposal(tuple(targets), tuple(values), tuple(calldatas), description)


def load_proposal(path: Path, client: Any = None) -> Proposal:
    """Read and validate the proposal file at ``path``."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise NotFoundError(f"proposal file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise GovernanceError(f"proposal file {path} is not readable JSON: {exc}") from exc
    return parse_proposal(data, client)


def _governor(client: Any) -> Any:
    return client.contract(GOVERNOR)


def proposal_id(client: Any, proposal: Proposal) -> int:
    """The governor's id of ``proposal``."""
    targets, values, calldatas = proposal.args()
    return int(
        client.call(
            _governor(client).functions.hashProposal(targets, values, calldatas, proposal.description_hash)
        )
    )


def proposal_status(client: Any, pid: int) -> ProposalStatus:
    """State and tally of proposal ``pid``; ``NotFoundError`` if the governor never saw it."""
    governor = _governor(client)
    snapshot = int(client.call(governor.functions.proposalSnapshot(pid)))
    if snapshot == 0:
        raise NotFoundError(f"proposal {pid} was never proposed to governor {governor.address}")
    against, for_, abstain = client.call(governor.functions.proposalVotes(pid))
    state = PROPOSAL_STATES[int(client.call(governor.functions.state(pid)))]
    # Before the snapshot block the quorum is not fixed yet: show today's (the supply can still change).
    quorum_block = min(snapshot, client.block_number() - 1)
    return ProposalStatus(
        proposal_id=pid,
        state=state,
        votes_against=int(against),
        votes_for=int(for_),
        votes_abstain=int(abstain),
        quorum=int(client.call(governor.functions.quorum(quorum_block))),
        snapshot=snapshot,
        deadline=int(client.call(governor.functions.proposalDeadline(pid))),
        eta=int(client.call(governor.functions.proposalEta(pid))),
    )


def _require_state(client: Any, pid: int, action: str, allowed: tuple[str, ...]) -> None:
    state = proposal_status(client, pid).state
    if state not in allowed:
        raise ProposalStateError(pid, state, action, allowed)


def propose_call(client: Any, proposer: str, proposal: Proposal) -> Any:
    """The ``propose`` call; refuses a proposer below the threshold or a proposal already made."""
    governor = _governor(client)
    threshold = int(client.call(governor.functions.proposalThreshold()))
    block = client.block_number() - 1
    votes = int(client.call(governor.functions.getVotes(proposer, block)))
    if votes < threshold:
        raise GovernanceError(
            f"proposer {proposer} has {votes} votes at block {block}, below the proposal threshold {threshold} "
            "(delegate KUOTA to it first: kuota gov delegate)"
        )
    pid = proposal_id(client, proposal)
    if int(client.call(governor.functions.proposalSnapshot(pid))) != 0:
        raise GovernanceError(f"proposal {pid} already exists; change the description to propose it again")
    return governor.functions.propose(*proposal.args(), proposal.description)


def vote_call(client: Any, pid: int, support: str, reason: str = "") -> Any:
    """The ``castVote`` (or ``castVoteWithReason``) call for an Active proposal."""
    if support not in VOTE_SUPPORT:
        raise GovernanceError(f"vote {support!r} is not one of {', '.join(VOTE_SUPPORT)}")
    _require_state(client, pid, "voted on", ("Active",))
    governor = _governor(client)
    if reason:
        return governor.functions.castVoteWithReason(pid, VOTE_SUPPORT[support], reason)
    return governor.functions.castVote(pid, VOTE_SUPPORT[support])


def queue_call(client: Any, proposal: Proposal) -> Any:
    """The ``queue`` call for a Succeeded proposal (starts the timelock delay)."""
    _require_state(client, proposal_id(client, proposal), "queued", ("Succeeded",))
    return _governor(client).functions.queue(*proposal.args(), proposal.description_hash)


def execute_call(client: Any, proposal: Proposal) -> Any:
    """The ``execute`` call for a Queued proposal whose timelock delay has passed."""
    pid = proposal_id(client, proposal)
    status = proposal_status(client, pid)
    if status.state != "Queued":
        raise ProposalStateError(pid, status.state, "executed", ("Queued",))
    now = client.block_timestamp(client.block_number())
    if now < status.eta:
        raise GovernanceError(
            f"proposal {pid} is queued until {status.eta}; it is {now} now ({status.eta - now} s left)"
        )
    return _governor(client).functions.execute(*proposal.args(), proposal.description_hash)


def proposal_call(client: Any, sender: str, proposal: Proposal, step: str) -> Any:
    """The checked governor call for ``step`` of ``proposal``: ``propose``, ``queue`` or ``execute``."""
    if step == "propose":
        return propose_call(client, sender, proposal)
    if step == "queue":
        return queue_call(client, proposal)
    if step == "execute":
        return execute_call(client, proposal)
    raise GovernanceError(f"proposal step {step!r} is not one of propose, queue, execute")


def delegate_call(client: Any, delegatee: str) -> Any:
    """KuotaToken's ``delegate``: votes count only once delegated (to yourself or another)."""
    return client.contract("KuotaToken").functions.delegate(parse_address("delegatee", delegatee))
