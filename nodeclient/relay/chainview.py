"""What the relay reads from the chain, behind one small interface.

The node needs three facts before it carries a byte (the node's registered price and signing key,
the consumer's available escrow, and what the channel has already settled); the consumer needs the
node's signing key and price to check the welcome. ``Web3ChainView`` reads them from the deployed
contracts with view calls. The calls block (HTTP JSON-RPC), so asyncio code runs them in a thread.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils import to_checksum_address

from nodeclient.errors import ChainError

__all__ = ["ChainView", "NodeInfo", "NodeStatus", "Web3ChainView"]


class NodeStatus(enum.IntEnum):
    """NodeRegistry.NodeStatus."""

    NONE = 0
    ACTIVE = 1
    EXITING = 2
    JAILED = 3


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The registry's record of one node, as far as the relay needs it."""

    node: str
    operator: str
    payout: str
    signing_key: str
    price_per_gib: int
    status: NodeStatus


class ChainView(Protocol):
    """Read-only chain facts the relay depends on."""

    chain_id: int
    settlement_address: str

    def node_info(self, node: str) -> NodeInfo:
        """The registry record of ``node`` (status NONE when unregistered)."""
        ...

    def escrow_available(self, consumer: str) -> int:
        """PaymentEscrow ``availableOf(consumer)``."""
        ...

    def channel_settled(self, consumer: str, node: str) -> tuple[int, int]:
        """ReceiptSettlement ``channelOf(consumer, node)``: (settledAmount, settledBytes)."""
        ...


class Web3ChainView:
    """``ChainView`` over web3 view calls to the deployed NodeRegistry, PaymentEscrow and ReceiptSettlement."""

    def __init__(self, w3: Any, chain_id: int, contracts: dict[str, str]) -> None:
        """``contracts`` maps contract names to addresses (a manifest's ``contracts``)."""
        from nodeclient.abi import load_abi

        try:
            self._registry = w3.eth.contract(address=contracts["NodeRegistry"], abi=load_abi("NodeRegistry"))
            self._escrow = w3.eth.contract(address=contracts["PaymentEscrow"], abi=load_abi("PaymentEscrow"))
            self._settlement = w3.eth.contract(
                address=contracts["ReceiptSettlement"], abi=load_abi("ReceiptSettlement")
            )
        except KeyError as exc:
            raise ChainError(f"the deployment has no {exc.args[0]} address; the relay needs it") from None
        self.w3 = w3
        self.chain_id = chain_id
        self.settlement_address = to_checksum_address(contracts["ReceiptSettlement"])

    @classmethod
    def connect(cls, rpc_url: str, contracts: dict[str, str], chain_id: int | None = None) -> Web3ChainView:
        """Connect over HTTP; refuses an RPC whose chain id differs from ``chain_id`` when given."""
        from web3 import HTTPProvider, Web3

        w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        try:
            actual = w3.eth.chain_id
        except Exception as exc:  # noqa: BLE001 - requests/web3 raise many transport error types
            raise ChainError(f"RPC {rpc_url} is unreachable: {exc}") from None
        if chain_id is not None and actual != chain_id:
            raise ChainError(f"RPC {rpc_url} serves chain id {actual}, expected {chain_id}")
        return cls(w3, actual, contracts)

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn.call()
        except Exception as exc:  # noqa: BLE001 - web3 raises many transport and contract error types
            raise ChainError(f"reading {what} from the chain failed: {exc}") from None

    def node_info(self, node: str) -> NodeInfo:
        """The registry record of ``node``."""
        record = self._call(f"NodeRegistry.getNode({node})", self._registry.functions.getNode(node))
        operator, payout, signing_key, price, _capacity, _registered_at, status = record[:7]
        return NodeInfo(
            node=to_checksum_address(node),
            operator=to_checksum_address(operator),
            payout=to_checksum_address(payout),
            signing_key=to_checksum_address(signing_key),
            price_per_gib=int(price),
            status=NodeStatus(int(status)),
        )

    def escrow_available(self, consumer: str) -> int:
        """PaymentEscrow ``availableOf(consumer)``."""
        return int(
            self._call(f"PaymentEscrow.availableOf({consumer})", self._escrow.functions.availableOf(consumer))
        )

    def channel_settled(self, consumer: str, node: str) -> tuple[int, int]:
        """ReceiptSettlement ``channelOf(consumer, node)``."""
        amount, nbytes = self._call(
            f"ReceiptSettlement.channelOf({consumer}, {node})",
            self._settlement.functions.channelOf(consumer, node),
        )
        return int(amount), int(nbytes)
