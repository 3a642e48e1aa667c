"""Fixtures for the stateful tests: one deployed system with funded actors and registered nodes.

The system is deployed with the local parameters except for the reward schedule, which is made
small and odd (3000 KUOTA + 7 wei per epoch, a node may take half of it) so that a few settlements
hit the per-node cap, the pro-rata scaling and the rounding dust within a short run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from brownie import chain

from integration.support import Actor, NodeKey, anvil_key, node_key, register_node

STATEFUL_EMISSION = 3_000 * 10**18 + 7
STATEFUL_MAX_NODE_SHARE_BPS = 5_000


@dataclass
class World:
    """Everything a state machine needs: the contracts, who is who, and the node layout."""

    system: Any
    chain_id: int
    deployer: Any
    treasury: Any
    slasher: Any
    reporter: Any
    stranger: Any
    consumers: list[Actor]
    operators: list[Any]
    nodes: list[NodeKey]
    node_operator: list[int]
    payouts: list[Any]


@pytest.fixture(scope="module")
def stateful_params(local_params) -> dict:
    params = dict(local_params)
    params["emissionPerEpoch"] = STATEFUL_EMISSION
    params["maxNodeShareBps"] = STATEFUL_MAX_NODE_SHARE_BPS
    return params


@pytest.fixture(scope="module")
def world(accounts, deployer, treasury, slasher, auditor, stranger, operator, operator2, stateful_params) -> World:
    from scripts.deploy import deploy_system

    system = deploy_system(deployer, stateful_params, manifest_path=None)
    consumers = [Actor(accounts[i], anvil_key(i)) for i in (5, 6, 9)]
    operators = [operator, operator2]
    nodes = [node_key("stateful-a"), node_key("stateful-b"), node_key("stateful-c")]
    node_operator = [0, 0, 1]
    payouts = [accounts[10], accounts[11], accounts[12]]

    min_stake = stateful_params["minStakePerNode"]
    for index, op in enumerate(operators):
        system.token.transfer(op, 20 * min_stake, {"from": deployer})
        system.token.approve(system.staking, 2**256 - 1, {"from": op})
        system.staking.stake(node_operator.count(index) * min_stake + min_stake, {"from": op})
    # The stranger tops operators up with stakeFor.
    system.token.transfer(stranger, 10 * min_stake, {"from": deployer})
    system.token.approve(system.staking, 2**256 - 1, {"from": stranger})
    for key, op_index, payout in zip(nodes, node_operator, payouts):
        register_node(system, operators[op_index], key, payout.address, chain.id)
    for consumer in consumers:
        system.payment_token.approve(system.escrow, 2**256 - 1, {"from": consumer.account})
    return World(
        system=system,
        chain_id=chain.id,
        deployer=deployer,
        treasury=treasury,
        slasher=slasher,
        reporter=auditor,
        stranger=stranger,
        consumers=consumers,
        operators=operators,
        nodes=nodes,
        node_operator=node_operator,
        payouts=payouts,
    )
