"""Typed views and call builders for the Kuota contracts (registry, staking, escrow, tokens).

Views return frozen dataclasses with a stable ``to_json``; builders return web3 contract function
calls for :meth:`ChainClient.transact`. Nothing here signs or sends: the CLI confirms first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nodeclient.chain.client import ChainClient
from nodeclient.chain.node_record import NodeIdentity
from nodeclient.errors import NotFoundError
from nodeclient.receipts.crypto import decode_type, typed_data

__all__ = [
    "NODE_STATUS",
    "EscrowAccount",
    "NodeInfo",
    "NotNodeOperatorError",
    "StakeInfo",
    "TokenInfo",
    "UnknownNodeError",
    "allowance",
    "escrow_account",
    "get_node",
    "node_key_typed_data",
    "sign_node_key",
    "stake_info",
    "token_info",
]

NODE_STATUS = ("None", "Active", "Exiting", "Jailed")


class UnknownNodeError(NotFoundError):
    """The node is not registered in NodeRegistry."""

    def __init__(self, node: str) -> None:
        self.node = node
        super().__init__(f"node {node} is not registered in the NodeRegistry of this deployment")


class NotNodeOperatorError(NotFoundError):
    """The account is not the operator of the node."""

    exit_code = 2

    def __init__(self, node: str, account: str, operator: str) -> None:
        super().__init__(f"account {account} is not the operator of node {node} (its operator is {operator})")


@dataclass(frozen=True)
class TokenInfo:
    """An ERC20's identity and one holder's balance."""

    address: str
    symbol: str
    decimals: int
    balance: int

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return asdict(self)


@dataclass(frozen=True)
class StakeInfo:
    """An operator's stake."""

    operator: str
    bonded: int
    unbonding: int
    withdrawable_at: int
    required: int
    unbonding_period: int

    def to_json(self) -> dict[str, Any]:
        """Stable machine form (camelCase, like the contracts)."""
        return {
            "operator": self.operator,
            "bonded": self.bonded,
            "unbonding": self.unbonding,
            "withdrawableAt": self.withdrawable_at,
            "required": self.required,
            "unbondingPeriod": self.unbonding_period,
        }


@dataclass(frozen=True)
class EscrowAccount:
    """A consumer's escrow."""

    consumer: str
    available: int
    thawing: int
    thaw_ends_at: int
    thawing_period: int

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "consumer": self.consumer,
            "available": self.available,
            "thawing": self.thawing,
            "thawEndsAt": self.thaw_ends_at,
            "thawingPeriod": self.thawing_period,
        }


@dataclass(frozen=True)
class NodeInfo(NodeIdentity):
    """A registered node (NodeRegistry.getNode) plus its unwithdrawn escrow credit."""

    capacity_mbps: int
    registered_at: int
    status: str
    region: str
    metadata_uri: str
    credit: int

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "node": self.node,
            "operator": self.operator,
            "payout": self.payout,
            "signingKey": self.signing_key,
            "pricePerGiB": self.price_per_gib,
            "capacityMbps": self.capacity_mbps,
            "registeredAt": self.registered_at,
            "status": self.status,
            "region": self.region,
            "metadataURI": self.metadata_uri,
            "credit": self.credit,
        }


def token_info(client: ChainClient, name: str, holder: str) -> TokenInfo:
    """Symbol, decimals and ``holder``'s balance of token ``name`` (KuotaToken or PaymentToken)."""
    token = client.contract(name)
    return TokenInfo(
        address=token.address,
        symbol=str(client.call(token.functions.symbol(), f"{name}.symbol()")),
        decimals=int(client.call(token.functions.decimals(), f"{name}.decimals()")),
        balance=int(client.call(token.functions.balanceOf(holder), f"{name}.balanceOf()")),
    )


def allowance(client: ChainClient, token: str, owner: str, spender: str) -> int:
    """ERC20 allowance of ``owner`` to contract ``spender`` (a manifest name)."""
    contract = client.contract(token)
    return int(client.call(contract.functions.allowance(owner, client.deployment.address(spender)), f"{token}.allowance()"))


def stake_info(client: ChainClient, operator: str) -> StakeInfo:
    """Bonded and unbonding stake of ``operator`` and what its nodes require."""
    staking = client.contract("Staking")
    registry = client.contract("NodeRegistry")
    amount, withdrawable_at = client.call(staking.functions.unbondingOf(operator), "Staking.unbondingOf()")
    return StakeInfo(
        operator=operator,
        bonded=int(client.call(staking.functions.bondedOf(operator), "Staking.bondedOf()")),
        unbonding=int(amount),
        withdrawable_at=int(withdrawable_at),
        required=int(client.call(registry.functions.requiredStake(operator), "NodeRegistry.requiredStake()")),
        unbonding_period=int(client.call(staking.functions.unbondingPeriod(), "Staking.unbondingPeriod()")),
    )


def escrow_account(client: ChainClient, consumer: str) -> EscrowAccount:
    """A consumer's available and thawing escrow."""
    escrow = client.contract("PaymentEscrow")
    available, thawing, thaw_ends_at = client.call(escrow.functions.accountOf(consumer), "PaymentEscrow.accountOf()")
    return EscrowAccount(
        consumer=consumer,
        available=int(available),
        thawing=int(thawing),
        thaw_ends_at=int(thaw_ends_at),
        thawing_period=int(client.call(escrow.functions.thawingPeriod(), "PaymentEscrow.thawingPeriod()")),
    )


def get_node(client: ChainClient, node: str) -> NodeInfo:
    """The registry record of ``node``; ``UnknownNodeError`` if it was never registered."""
    registry = client.contract("NodeRegistry")
    raw = client.call(registry.functions.getNode(node), "NodeRegistry.getNode()")
    (operator, payout, signing_key, price, capacity, registered_at, status, region, metadata) = raw
    if int(status) == 0:
        raise UnknownNodeError(node)
    credit = int(client.call(client.contract("PaymentEscrow").functions.creditOf(node), "PaymentEscrow.creditOf()"))
    return NodeInfo(
        node=node,
        operator=operator,
        payout=payout,
        signing_key=signing_key,
        price_per_gib=int(price),
        capacity_mbps=int(capacity),
        registered_at=int(registered_at),
        status=NODE_STATUS[int(status)] if int(status) < len(NODE_STATUS) else str(status),
        region=region,
        metadata_uri=metadata,
        credit=credit,
    )


_, _NODE_KEY_FIELDS = decode_type("NodeKey(address node,address key,address operator)")


def node_key_typed_data(client: ChainClient, node: str, key: str, operator: str) -> dict[str, Any]:
    """EIP-712 ``NodeKey(address node,address key,address operator)`` under the registry's domain."""
    domain = {
        "name": "Kuota NodeRegistry",
        "version": "1",
        "chainId": client.chain_id,
        "verifyingContract": client.deployment.address("NodeRegistry"),
    }
    return typed_data("NodeKey", _NODE_KEY_FIELDS, domain, {"node": node, "key": key, "operator": operator})


def sign_node_key(client: ChainClient, key_signer: Any, node: str, operator: str) -> bytes:
    """The node key's proof of possession for ``register`` (node = key) or ``rotateKey`` (new key)."""
    return key_signer.sign_typed_data(node_key_typed_data(client, node, key_signer.address, operator))
