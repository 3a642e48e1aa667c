"""Constants and small helpers shared by the governance tests."""

from __future__ import annotations

from typing import Any

from nodeclient.governance import PROPOSAL_STATES

__all__ = ["MIN_DELAY", "PROPOSAL_THRESHOLD", "QUORUM_PERCENT", "VOTING_DELAY", "VOTING_PERIOD", "state_of"]

VOTING_DELAY = 2
VOTING_PERIOD = 10
MIN_DELAY = 3_600
QUORUM_PERCENT = 4
PROPOSAL_THRESHOLD = 1_000 * 10**18


def state_of(governor: Any, pid: int) -> str:
    """The proposal's state by name."""
    return PROPOSAL_STATES[governor.state(pid)]
