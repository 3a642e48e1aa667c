"""Fixtures for the integration tests: the system deployed with the local defaults, and helpers that
act as operators (stake + register a node) and consumers (fund escrow, sign receipts) do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from brownie import chain
from integration.support import Actor, NodeKey, Receipt, anvil_key, node_key, register_node, sign_receipt


@dataclass
class Node:
    """A registered node: its key (the node id), operator and payout."""

    key: NodeKey
    operator: Any
    payout: Any

    @property
    def address(self) -> str:
        return self.key.address


@pytest.fixture(scope="module")
def system(kuota):
    return kuota


@pytest.fixture(scope="module")
def consumer_actor(accounts) -> Actor:
    return Actor(accounts[5], anvil_key(5))


@pytest.fixture(scope="module")
def consumer2_actor(accounts) -> Actor:
    return Actor(accounts[6], anvil_key(6))


@pytest.fixture
def add_node(system, deployer) -> Callable[..., Node]:
    """Fund ``operator`` with KUOTA, bond the minimum stake for one more node and register it."""

    def _add(operator: Any, label: str, payout: Any | None = None, extra_stake: int = 0) -> Node:
        min_stake = int(system.registry.minStakePerNode())
        amount = min_stake + extra_stake
        system.token.transfer(operator, amount, {"from": deployer})
        system.token.approve(system.staking, amount, {"from": operator})
        system.staking.stake(amount, {"from": operator})
        key = node_key(label)
        payout = payout or operator
        register_node(system, operator, key, payout.address, chain.id)
        return Node(key=key, operator=operator, payout=payout)

    return _add


@pytest.fixture
def fund(system) -> Callable[[Any, int], None]:
    """Mint mock USD to ``consumer`` and deposit ``amount`` into its escrow."""

    def _fund(consumer: Any, amount: int) -> None:
        system.payment_token.mint(consumer, amount, {"from": consumer})
        system.payment_token.approve(system.escrow, amount, {"from": consumer})
        system.escrow.deposit(amount, {"from": consumer})

    return _fund


@pytest.fixture
def signed(system) -> Callable[..., tuple[tuple, bytes]]:
    """Sign a cumulative receipt as ``consumer``; returns (calldata tuple, signature)."""

    def _signed(
        consumer: Actor,
        node: Node,
        amount: int,
        nbytes: int | None = None,
        latency_ms: int = 20,
        session: bytes = b"\x11" * 32,
    ) -> tuple[tuple, bytes]:
        receipt = Receipt(
            consumer=consumer.address,
            node=node.address,
            session_id=session,
            cumulative_bytes=amount * 1_000 if nbytes is None else nbytes,
            cumulative_amount=amount,
            latency_ms=latency_ms,
            issued_at=chain.time(),
        )
        return receipt.as_tuple(), sign_receipt(
            receipt, consumer.private_key, chain.id, system.settlement.address
        )

    return _signed


@pytest.fixture
def to_next_epoch(system) -> Callable[[int], int]:
    """Move the chain to ``offset`` seconds past the start of the next epoch; returns that epoch."""

    def _next(offset: int = 1) -> int:
        target = int(system.rewards.currentEpoch()) + 1
        start = int(system.rewards.epochStart(target))
        chain.sleep(max(start + offset - chain.time(), 0))
        chain.mine()
        assert int(system.rewards.currentEpoch()) == target
        return target

    return _next
