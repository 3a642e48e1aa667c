"""The optional LaneSettlement in the deploy script: its parameter is checked, its roles are wired,
and its manifest entry is what the client reads (a manifest without it stays valid)."""

from __future__ import annotations

import pytest
from unit_helpers import role

from nodeclient.deployment import DeployParamsError
from scripts.deploy_system import validate_params


@pytest.mark.parametrize("value", [599, 30 * 86_400 + 1, True, "600"])
def test_lane_close_delay_out_of_bounds_is_named(local_params, deployer, value):
    with pytest.raises(DeployParamsError) as info:
        validate_params({**local_params, "laneCloseDelay": value}, deployer.address)
    assert "laneCloseDelay" in str(info.value) and repr(value) in str(info.value)


def test_no_lane_close_delay_means_no_lane_module(local_params, deployer):
    params = {k: v for k, v in local_params.items() if k != "laneCloseDelay"}
    assert validate_params(params, deployer.address)["laneCloseDelay"] is None


def test_the_deployed_lane_module_is_wired_and_recorded(system, lanes, params):
    assert system.manifest["contracts"]["LaneSettlement"] == lanes.address
    assert lanes.closeDelay() == params["laneCloseDelay"] and lanes.feeBps() == params["feeBps"]
    assert system.escrow.hasRole(role("LANES_ROLE"), lanes)
    assert system.rewards.hasRole(role("SETTLEMENT_ROLE"), lanes)
    # ReceiptSettlement keeps its own roles beside the lanes.
    assert system.escrow.hasRole(role("SETTLEMENT_ROLE"), system.settlement)
    assert system.rewards.hasRole(role("SETTLEMENT_ROLE"), system.settlement)
    assert (lanes.escrow(), lanes.registry(), lanes.rewardPool()) == (system.escrow, system.registry, system.rewards)
