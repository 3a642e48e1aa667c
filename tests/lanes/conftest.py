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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lane_helpers import CLOSE_DELAY

from tests.unit.conftest import (  # noqa: F401 - fixtures registered by import
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


@pytest.fixture(scope="session")
def local_params(local_params):
    return {**local_params, "laneCloseDelay": CLOSE_DELAY}


@pytest.fixture(scope="module")
def lanes(system):  # noqa: F811 - the imported fixture, requested
    assert system.lanes is not None, "the deployment has no LaneSettlement"
    return system.lanes


@pytest.fixture(scope="module")
def sign_lane(sign, lanes):  # noqa: F811 - the imported fixture, requested
    """``sign(...)`` over LaneSettlement's domain."""

    def _sign(*args, **kwargs):
        kwargs.setdefault("settlement", lanes)
        return sign(*args, **kwargs)

    return _sign
