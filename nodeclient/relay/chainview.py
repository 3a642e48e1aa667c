"""What the relay reads from the chain, behind one small asyncio interface.

The node needs three facts before it carries a byte (the node's registered price and signing key,
the consumer's available escrow, and what the channel has already settled); the consumer needs the
node's signing key and price to check the welcome. ``Web3ChainView`` reads them from the deployed
contracts with ``AsyncWeb3`` view calls, so a slow RPC delays one handshake, never the event loop
that carries every other session's bytes.

A node that settles through lanes opens its view with ``lane_node`` (its own address): receipts are
then signed over LaneSettlement's domain, the channel's settled figures are LaneSettlement's, and
the funds a consumer has for this node are its lane's balance, not the pooled escrow (which another
node could drain first). A closing lane counts as empty: it stops paying at its close time, which
may fall before the node's next settlement.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self

from eth_utils import to_checksum_address
from web3 import AsyncWeb3

from nodeclient.chain.errors import ChainIdMismatchError, ChainUnreachableError
from nodeclient.chain.node_record import NodeIdentity
from nodeclient.chain.rpc import connect_async
from nodeclient.errors import ChainError

__all__ = ["ChainView", "NodeInfo", "NodeStatus", "Web3ChainView"]


class NodeStatus(enum.IntEnum):
    """NodeRegistry.NodeStatus."""

    NONE = 0
    ACTIVE = 1
    EXITING = 2
    JAILED = 3


@dataclass(frozen=True)
class NodeInfo(NodeIdentity):
    """The registry's record of one node, as far as the relay needs it."""

    status: NodeStatus


class ChainView(Protocol):
    """Read-only chain facts the relay depends on."""

    chain_id: int
    settlement_address: str

    async def node_info(self, node: str) -> NodeInfo:
        """The registry record of ``node`` (status NONE when unregistered)."""
        ...

    async def escrow_available(self, consumer: str) -> int:
        """What ``consumer`` has to pay this node: PaymentEscrow ``availableOf(consumer)``, or its lane's balance."""
        ...

    async def channel_settled(self, consumer: str, node: str) -> tuple[int, int]:
        """The settlement module's ``channelOf(consumer, node)``: (settledAmount, settledBytes)."""
        ...


class Web3ChainView:
    """``ChainView`` over AsyncWeb3 view calls to the deployed NodeRegistry, PaymentEscrow and ReceiptSettlement.

    Whoever creates the view closes it (``await view.close()`` or ``async with``): that releases the
    provider's HTTP session of the running event loop.
    """

    def __init__(
        self, w3: AsyncWeb3, chain_id: int, contracts: Mapping[str, str], *, lane_node: str | None = None
    ) -> None:
        """``contracts`` maps contract names to addresses (a manifest's ``contracts``); ``lane_node``
        reads funds from the lanes of that node (LaneSettlement) instead of the pooled escrow."""
        from nodeclient.abi import load_abi

        settlement = "LaneSettlement" if lane_node is not None else "ReceiptSettlement"
        try:
            self._registry = w3.eth.contract(address=contracts["NodeRegistry"], abi=load_abi("NodeRegistry"))
            self._escrow = w3.eth.contract(address=contracts["PaymentEscrow"], abi=load_abi("PaymentEscrow"))
            self._settlement = w3.eth.contract(address=contracts[settlement], abi=load_abi(settlement))
        except KeyError as exc:
            raise ChainError(f"the deployment has no {exc.args[0]} address; the relay needs it") from None
        self.w3 = w3
        self.chain_id = chain_id
        self.settlement_address = to_checksum_address(contracts[settlement])
        self._settlement_name = settlement
        self._lane_node = to_checksum_address(lane_node) if lane_node is not None else None
        self.rpc_errors = 0
        """Reads that failed (transport or RPC error) since the view was made; the node's /metrics shows it."""

    @classmethod
    async def connect(
        cls,
        rpc_url: str,
        contracts: Mapping[str, str],
        chain_id: int | None = None,
        *,
        timeout: float = 10.0,
        lane_node: str | None = None,
    ) -> Self:
        """Connect over HTTP; refuses an RPC whose chain id differs from ``chain_id`` when given."""
        w3 = connect_async(rpc_url, timeout=timeout)
        try:
            try:
                actual = await w3.eth.chain_id
            except Exception as exc:  # noqa: BLE001 - aiohttp/web3 raise many transport error types
                raise ChainUnreachableError(rpc_url, str(exc) or type(exc).__name__) from None
            if chain_id is not None and actual != chain_id:
                raise ChainIdMismatchError(rpc_url, chain_id, actual)
            return cls(w3, actual, contracts, lane_node=lane_node)
        except BaseException:
            await w3.provider.disconnect()
            raise

    async def close(self) -> None:
        """Close the provider's HTTP sessions; the view must not be used afterwards."""
        await self.w3.provider.disconnect()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, what: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except Exception as exc:  # noqa: BLE001 - web3 raises many transport and contract error types
            self.rpc_errors += 1
            raise ChainError(f"reading {what} from the chain failed: {exc}") from None

    async def node_info(self, node: str) -> NodeInfo:
        """The registry record of ``node``."""
        record = await self._call(
            f"NodeRegistry.getNode({node})", self._registry.functions.getNode(node).call()
        )
        operator, payout, signing_key, price, _capacity, _registered_at, status = record[:7]
        return NodeInfo(
            node=to_checksum_address(node),
            operator=to_checksum_address(operator),
            payout=to_checksum_address(payout),
            signing_key=to_checksum_address(signing_key),
            price_per_gib=int(price),
            status=NodeStatus(int(status)),
        )

    async def escrow_available(self, consumer: str) -> int:
        """PaymentEscrow ``availableOf(consumer)``; with ``lane_node``, the lane's balance (0 while closing)."""
        if self._lane_node is not None:
            call = self._settlement.functions.laneOf(consumer, self._lane_node).call()
            (balance, _amount, _bytes, closing), _close_at = await self._call(
                f"LaneSettlement.laneOf({consumer}, {self._lane_node})", call
            )
            return 0 if closing else int(balance)
        call = self._escrow.functions.availableOf(consumer).call()
        return int(await self._call(f"PaymentEscrow.availableOf({consumer})", call))

    async def channel_settled(self, consumer: str, node: str) -> tuple[int, int]:
        """The settlement module's ``channelOf(consumer, node)``."""
        call = self._settlement.functions.channelOf(consumer, node).call()
        amount, nbytes = await self._call(f"{self._settlement_name}.channelOf({consumer}, {node})", call)
        return int(amount), int(nbytes)
