"""Fixtures for the stateful tests: one deployed system with funded actors and registered nodes.

The system is deployed with the local parameters except for the reward schedule: an odd emission
(10 KUOTA + 7 wei per epoch) of which one node may take 75 %, in 1-hour epochs. Anvil's clock is
wall time and empty epochs carry their whole schedule over: with 1-minute epochs every example would
start after several empty epochs, the budget would always cover every node, and the pro-rata scaling
would never run. With 1-hour epochs time moves only when a rule moves it (``rule_advance_time``, or a
claim that first waits for the epoch to end), so settlements of 15 USD or more on two nodes in
one epoch hit the per-node cap and the scaling (with its rounding dust).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from brownie import chain
from integration.support import Actor, BatchReader, NodeKey, anvil_key, node_key, register_node

STATEFUL_EMISSION = 10 * 10**18 + 7
STATEFUL_MAX_NODE_SHARE_BPS = 7_500
STATEFUL_EPOCH_LENGTH = 3_600
INITIAL_DEPOSIT = 2_000 * 10**6


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
    read: BatchReader


@pytest.fixture(scope="module")
def stateful_params(local_params) -> dict:
    params = dict(local_params)
    params["emissionPerEpoch"] = STATEFUL_EMISSION
    params["maxNodeShareBps"] = STATEFUL_MAX_NODE_SHARE_BPS
    params["epochLength"] = STATEFUL_EPOCH_LENGTH
    return params


@pytest.fixture(scope="module")
def world(
    accounts, rpc_url, deployer, treasury, slasher, auditor, stranger, operator, operator2, stateful_params
) -> World:
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
        # Every consumer starts with escrow, so settlements pay from the first step on.
        system.payment_token.mint(consumer.account, INITIAL_DEPOSIT, {"from": consumer.account})
        system.escrow.deposit(INITIAL_DEPOSIT, {"from": consumer.account})
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
        read=BatchReader(rpc_url),
    )
