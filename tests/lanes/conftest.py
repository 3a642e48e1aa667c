"""Fixtures for the lane tests: the system deployed with LaneSettlement (``laneCloseDelay`` set),
the unit tests' actors (staked operators, nodes A and B, funded consumers) and a signer for receipts
over LaneSettlement's EIP-712 domain.

The unit fixtures are reused from ``tests/unit/conftest.py`` (imported, so pytest registers them
here too); ``local_params`` is overridden so the root ``kuota`` fixture deploys the lane module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from unit_helpers import UNIT  # noqa: E402

from nodeclient.receipts.packing import pack_receipt_args  # noqa: E402
from tests.unit.conftest import (  # noqa: E402,F401 - fixtures registered by import
    consumer2_key,
    consumer_key,
    funded,
    node,
    node2,
    node_key,
    node_key2,
    params,
    payout,
    payout2,
    sign,
    staked,
    system,
)

#: The lane module's close delay in these tests (LaneSettlement.MIN_CLOSE_DELAY).
CLOSE_DELAY = 600


@pytest.fixture(scope="session")
def local_params(local_params):  # noqa: F811 - overrides the root fixture
    return {**local_params, "laneCloseDelay": CLOSE_DELAY}


@pytest.fixture(scope="module")
def lanes(system):
    assert system.lanes is not None, "the deployment has no LaneSettlement"
    return system.lanes


@pytest.fixture(scope="module")
def sign_lane(sign, lanes):
    """``sign(...)`` over LaneSettlement's domain."""

    def _sign(*args, **kwargs):
        kwargs.setdefault("settlement", lanes)
        return sign(*args, **kwargs)

    return _sign


def packed(signed_list) -> bytes:
    """The client's packing of test receipts."""
    return b"".join(pack_receipt_args(s.args, s.signature) for s in signed_list)


def escrow_conservation(system, consumers, nodes) -> None:
    """Token balance of the escrow == Σ available + Σ thawing + lane funds + Σ credits + fees, and the
    lane funds the escrow books for the module == Σ lane balances (over the accounts that ever held any)."""
    escrow, lanes = system.escrow, system.lanes
    held = sum(sum(escrow.accountOf(c)[:2]) for c in consumers)
    credits = sum(escrow.creditOf(n) for n in nodes)
    lane_funds = escrow.laneFundsOf(lanes)
    assert system.payment_token.balanceOf(escrow) == held + lane_funds + credits + escrow.accruedFees()
    assert lane_funds == sum(lanes.laneOf(c, n)[0][0] for c in consumers for n in nodes)


__all__ = ["CLOSE_DELAY", "UNIT", "escrow_conservation", "packed"]
