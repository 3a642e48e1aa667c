"""Everything the auditor reads from the chain: manifest checks, the block range, events, end state.

``open_source`` connects to the RPC and refuses inputs it cannot trust (unreachable endpoint, another
chain, a manifest whose contracts are not at their addresses). ``gather`` reads the events of the range
with ``LogFetcher``, pins the header of every block it uses, reads the parameters at the end block and,
for a range that starts after the deployment, the state just before it. ``EndState`` answers the
contracts' views at the end block for ``reconcile`` — every call pinned to the end block's hash, so a
head that moves while the audit runs changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3

from nodeclient.abi import load_abi
from nodeclient.audit.errors import AuditInputError, ChainMismatchError, UnconfirmedRangeError
from nodeclient.audit.events import TRANSFER_TOPIC, Event, EventDecoder
from nodeclient.audit.logs import BlockIndex, LogFetcher, rpc_call
from nodeclient.audit.replay import (
    PARAMETERS,
    Account,
    ChainData,
    Channel,
    EpochState,
    NodeEpoch,
    NodeInfo,
    Seed,
)
from nodeclient.chain.rpc import connect
from nodeclient.errors import KuotaError

__all__ = ["ERC20_ABI", "AuditSource", "BlockRange", "EndState", "gather", "open_source", "resolve_range"]

log = logging.getLogger(__name__)

#: Contracts whose events the replay reads (the payment token is read separately, filtered).
EVENT_CONTRACTS: tuple[str, ...] = ("NodeRegistry", "PaymentEscrow", "ReceiptSettlement", "RewardPool")

ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            {"name": "from", "type": "address", "indexed": True},
            {"name": "to", "type": "address", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    },
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
]

_NODE_STATUS = ("None", "Active", "Exiting", "Jailed")

# Transport faults a read is retried after (every audit request is a read, so all may be resent).
_RETRIES = 3


@dataclass
class AuditSource:
    """A connected, checked RPC endpoint and the deployment it serves."""

    w3: Web3
    url: str
    chain_id: int
    contracts: dict[str, str]
    deployment_block: int
    abis: dict[str, list[dict[str, Any]]]
    #: Settlement modules replaced by governance (the manifest's ``retiredSettlements``): their
    #: ReceiptSettled events are part of the history, under their own EIP-712 domains.
    retired_settlements: tuple[str, ...] = ()

    def contract(self, name: str) -> Any:
        """web3 contract object of manifest contract ``name``."""
        return self.w3.eth.contract(address=self.contracts[name], abi=self.abis[name])


@dataclass(frozen=True)
class BlockRange:
    """The blocks the audit reports on, and the head it was chosen against."""

    from_block: int
    to_block: int
    latest: int
    confirmations: int
    unconfirmed: bool


def open_source(url: str, deployment: Any, *, timeout: float = 30.0) -> AuditSource:
    """Connect to ``url`` and check that it serves the chain and contracts of ``deployment``.

    Raises:
        RpcUnavailableError: the endpoint does not answer.
        ChainMismatchError: another chain id or genesis, or a manifest contract has no code.
    """
    w3 = connect(url, timeout=timeout, retries=_RETRIES)
    chain_id = int(rpc_call(w3, "eth_chainId", lambda: w3.eth.chain_id))
    if chain_id != deployment.chain_id:
        raise ChainMismatchError(
            f"the RPC at {url} serves chain id {chain_id}, but the manifest is for chain id {deployment.chain_id}"
        )
    genesis_hash = getattr(deployment, "genesis_hash", None)
    if genesis_hash:
        block0 = rpc_call(w3, "eth_getBlockByNumber", lambda: w3.eth.get_block(0))
        actual = "0x" + bytes(block0["hash"]).hex()
        if actual.lower() != str(genesis_hash).lower():
            raise ChainMismatchError(
                f"block 0 of the RPC at {url} is {actual}, the manifest's genesisHash is {genesis_hash}: "
                "another chain with the same id (a restarted local chain?)"
            )
    abis = {name: load_abi(name) for name in EVENT_CONTRACTS + ("KuotaToken", "Staking")}
    abis["PaymentToken"] = ERC20_ABI
    contracts = {name: to_checksum_address(addr) for name, addr in deployment.contracts.items()}
    retired = tuple(to_checksum_address(a) for a in (deployment.model_extra or {}).get("retiredSettlements", []))
    return AuditSource(
        w3=w3, url=url, chain_id=chain_id, contracts=contracts,
        deployment_block=int(deployment.block_number), abis=abis, retired_settlements=retired,
    )


def resolve_range(
    source: AuditSource,
    from_block: int | None,
    to_block: int | None,
    confirmations: int,
    allow_unconfirmed: bool,
) -> BlockRange:
    """Choose the block range: default from the deployment block to ``latest − confirmations``.

    Raises:
        UnconfirmedRangeError: ``to_block`` is within the confirmation depth and that was not allowed.
        AuditInputError: the range is empty, reversed, or ends before the deployment.
    """
    if confirmations < 0:
        raise AuditInputError(f"--confirmations must be 0 or more, got {confirmations}")
    latest = int(rpc_call(source.w3, "eth_blockNumber", lambda: source.w3.eth.block_number))
    safe_head = latest - confirmations
    start = source.deployment_block if from_block is None else from_block
    if start < 0:
        raise AuditInputError(f"--from-block must be 0 or more, got {start}")
    if to_block is None:
        end = latest if allow_unconfirmed else safe_head
    else:
        end = to_block
        if end > latest:
            raise AuditInputError(f"--to-block {end} is beyond the latest block {latest}")
        if end > safe_head and not allow_unconfirmed:
            raise UnconfirmedRangeError(end, latest, confirmations)
    if end < source.deployment_block:
        raise AuditInputError(
            f"the range ends at block {end}, before the deployment block {source.deployment_block}"
            + (" (the chain is not yet deep enough for the confirmation depth; pass --allow-unconfirmed "
               "or a smaller --confirmations)" if to_block is None else "")
        )
    if start > end:
        raise AuditInputError(f"--from-block {start} is after the last block of the range {end}")
    start = max(start, source.deployment_block)
    return BlockRange(start, end, latest, confirmations, end > safe_head)


class EndState:
    """The contracts' views at one block, every call pinned to its hash (EIP-1898) or number."""

    def __init__(self, source: AuditSource, block: int, block_hash: str | None = None) -> None:
        self.source = source
        self.block = block
        # Pin by hash (EIP-1898) when known: after a reorg the call fails instead of silently
        # answering from the other branch at the same height.
        self._identifier: Any = block_hash if block_hash else block
        self._c = {name: source.contract(name) for name in EVENT_CONTRACTS}
        self._token = source.w3.eth.contract(address=source.contracts["PaymentToken"], abi=ERC20_ABI)
        self.calls = 0

    def _call(self, fn: Any, what: str) -> Any:
        self.calls += 1
        try:
            return rpc_call(self.source.w3, "eth_call", lambda: fn.call(block_identifier=self._identifier))
        except KuotaError:
            raise
        except Exception as exc:  # noqa: BLE001 - a revert or an RPC that cannot serve this block's state
            raise AuditInputError(
                f"cannot read {what} at block {self.block} from {self.source.url}: {str(exc)[:200]} "
                "(a pruned, non-archive node cannot answer for old blocks; audit a recent range or use an archive RPC)"
            ) from None

    def channel_of(self, consumer: str, node: str) -> tuple[int, int]:
        return tuple(self._call(self._c["ReceiptSettlement"].functions.channelOf(consumer, node), f"channelOf({consumer}, {node})"))  # type: ignore[return-value]

    def account_of(self, consumer: str) -> tuple[int, int, int]:
        return tuple(self._call(self._c["PaymentEscrow"].functions.accountOf(consumer), f"accountOf({consumer})"))  # type: ignore[return-value]

    def credit_of(self, node: str) -> int:
        return int(self._call(self._c["PaymentEscrow"].functions.creditOf(node), f"creditOf({node})"))

    def accrued_fees(self) -> int:
        return int(self._call(self._c["PaymentEscrow"].functions.accruedFees(), "accruedFees()"))

    def escrow_token_balance(self) -> int:
        escrow = self.source.contracts["PaymentEscrow"]
        return int(self._call(self._token.functions.balanceOf(escrow), f"PaymentToken.balanceOf({escrow})"))

    def payment_token(self) -> str:
        return str(self._call(self._c["PaymentEscrow"].functions.paymentToken(), "paymentToken()"))

    def node(self, node: str) -> NodeInfo:
        n = self._call(self._c["NodeRegistry"].functions.getNode(node), f"getNode({node})")
        status = _NODE_STATUS[int(n[6])] if int(n[6]) < len(_NODE_STATUS) else str(n[6])
        return NodeInfo(operator=n[0], payout=n[1], capacity_mbps=int(n[4]), status=status)

    def node_epoch(self, node: str, epoch: int) -> tuple[int, int, int, bool]:
        return tuple(self._call(self._c["RewardPool"].functions.nodeEpoch(node, epoch), f"nodeEpoch({node}, {epoch})"))  # type: ignore[return-value]

    def epoch_info(self, epoch: int) -> tuple[int, int, int, int, int, bool]:
        return tuple(self._call(self._c["RewardPool"].functions.epochInfo(epoch), f"epochInfo({epoch})"))  # type: ignore[return-value]

    def claimable(self, node: str, epoch: int) -> int:
        return int(self._call(self._c["RewardPool"].functions.claimable(node, epoch), f"claimable({node}, {epoch})"))

    def reward_view(self, name: str) -> Any:
        return self._call(getattr(self._c["RewardPool"].functions, name)(), f"RewardPool.{name}()")

    def params(self) -> dict[tuple[str, str], int]:
        """Every parameter the replay needs, at this block."""
        rs = self._c["ReceiptSettlement"].functions
        es = self._c["PaymentEscrow"].functions
        rp = self._c["RewardPool"].functions
        low, high, floor = self._call(rp.latencyCurve(), "latencyCurve()")
        values = {
            ("ReceiptSettlement", "feeBps"): int(self._call(rs.feeBps(), "feeBps()")),
            ("PaymentEscrow", "thawingPeriod"): int(self._call(es.thawingPeriod(), "thawingPeriod()")),
            ("RewardPool", "emissionPerEpoch"): int(self._call(rp.emissionPerEpoch(), "emissionPerEpoch()")),
            ("RewardPool", "rewardPerFeeUnit"): int(self._call(rp.rewardPerFeeUnit(), "rewardPerFeeUnit()")),
            ("RewardPool", "maxNodeShareBps"): int(self._call(rp.maxNodeShareBps(), "maxNodeShareBps()")),
            ("RewardPool", "latencyLowMs"): int(low),
            ("RewardPool", "latencyHighMs"): int(high),
            ("RewardPool", "latencyFloorBps"): int(floor),
        }
        assert set(values) == set(PARAMETERS)
        return values


def _check_contracts(source: AuditSource, end: EndState) -> None:
    for name in EVENT_CONTRACTS + ("PaymentToken",):
        address = source.contracts[name]
        code = rpc_call(source.w3, "eth_getCode", lambda a=address: source.w3.eth.get_code(a, block_identifier=end._identifier))
        if not code:
            raise ChainMismatchError(
                f"the manifest's {name} at {address} has no code at block {end.block} on chain {source.chain_id}: "
                "the manifest does not describe this chain's deployment"
            )
    token = end.payment_token()
    if to_checksum_address(token) != source.contracts["PaymentToken"]:
        raise ChainMismatchError(
            f"PaymentEscrow at {source.contracts['PaymentEscrow']} uses payment token {token}, "
            f"but the manifest says {source.contracts['PaymentToken']}"
        )


def _fetch_headers(source: AuditSource, blocks: BlockIndex, numbers: Iterable[int]) -> None:
    blocks.prefetch(list(numbers))


def _seed(source: AuditSource, block: Any, events: list[Event]) -> Seed:
    """State at ``block`` (the header just before the range) of every party the range's events touch."""
    state = EndState(source, block.number, block.hash)
    seed = Seed()
    consumers: set[str] = set()
    nodes: set[str] = set()
    node_epochs: set[tuple[str, int]] = set()
    epochs: set[int] = set()
    for ev in events:
        a = ev.args
        if "consumer" in a:
            consumers.add(a["consumer"])
        if "node" in a:
            nodes.add(a["node"])
        if ev.name in ("ReceiptSettled", "ReceiptSkipped"):
            seed.channels.setdefault((a["consumer"], a["node"]), Channel())
        if ev.name in ("UsageRecorded", "RewardClaimed"):
            node_epochs.add((a["node"], int(a["epoch"])))
            epochs.add(int(a["epoch"]))
        if ev.name == "EpochFinalized":
            epochs.add(int(a["epoch"]))
    for consumer, node in sorted(seed.channels):
        amount, nbytes = state.channel_of(consumer, node)
        seed.channels[(consumer, node)] = Channel(settled_amount=int(amount), settled_bytes=int(nbytes),
                                                  last_receipt_amount=int(amount))
    for consumer in sorted(consumers):
        available, thawing, ends = state.account_of(consumer)
        seed.accounts[consumer] = Account(int(available), int(thawing), int(ends))
    for node in sorted(nodes):
        info = state.node(node)
        if info.status != "None":
            seed.nodes[node] = info
        seed.credits[node] = state.credit_of(node)
    seed.accrued_fees = state.accrued_fees()
    seed.finalized_through = int(state.reward_view("finalizedThrough"))
    if seed.finalized_through:
        epochs.add(seed.finalized_through - 1)
    for epoch in sorted(epochs):
        scheduled, total, budget, paid, carry, finalized = state.epoch_info(epoch)
        # An open epoch's cap and rate are not readable: assume the parameters in force at the range
        # start (exact unless a setter ran in that epoch before the range).
        params = state.params()
        rate = params[("RewardPool", "rewardPerFeeUnit")]
        cap = int(scheduled) * params[("RewardPool", "maxNodeShareBps")] // 10_000
        seed.epochs[epoch] = EpochState(int(scheduled), int(total), int(budget), int(paid), int(carry),
                                        bool(finalized), snapshotted=bool(finalized) or int(total) > 0,
                                        cap=cap, rate=rate)
    for node, epoch in sorted(node_epochs):
        fee, weight, capped, claimed = state.node_epoch(node, epoch)
        info = seed.epochs.get(epoch, EpochState())
        reward = int(capped) * info.paid // info.total_capped if info.finalized and info.total_capped else 0
        seed.node_epochs[(node, epoch)] = NodeEpoch(int(fee), int(weight), int(capped), reward, bool(claimed))
    return seed


def gather(source: AuditSource, rng: BlockRange, fetcher: LogFetcher) -> tuple[ChainData, BlockIndex, EndState, list[Event]]:
    """Read the range: decoded events, pinned headers, end-block parameters, seed, funding transfers."""
    blocks = BlockIndex(source.w3)
    blocks.header(rng.from_block)
    end = EndState(source, rng.to_block, blocks.header(rng.to_block).hash)
    _check_contracts(source, end)
    retired = {address: "ReceiptSettlement" for address in source.retired_settlements}
    decoder = EventDecoder({n: source.contracts[n] for n in EVENT_CONTRACTS}, source.abis, retired)
    addresses = [source.contracts[n] for n in EVENT_CONTRACTS] + list(retired)
    raw = fetcher.get_logs(addresses, rng.from_block, rng.to_block)
    _fetch_headers(source, blocks, (r.block_number for r in raw))
    events: list[Event] = []
    for r in raw:
        blocks.check_log(r)
        ev = decoder.decode(r)
        if ev is not None:
            events.append(ev)
    seed = Seed()
    if rng.from_block > source.deployment_block:
        before = BlockIndex(source.w3).header(rng.from_block - 1)
        seed = _seed(source, before, events)
    genesis = int(end.reward_view("genesis"))
    epoch_length = int(end.reward_view("epochLength"))
    data = ChainData(
        chain_id=source.chain_id,
        contracts=dict(source.contracts),
        retired_settlements=source.retired_settlements,
        from_block=rng.from_block,
        to_block=rng.to_block,
        events=events,
        timestamps={h.number: h.timestamp for h in blocks.used()},
        genesis=genesis,
        epoch_length=epoch_length,
        params_end=end.params(),
        seed=seed,
        full_history=rng.from_block <= source.deployment_block,
    )
    transfers = _funding_transfers(source, rng, fetcher, blocks, events, seed)
    data.timestamps = {h.number: h.timestamp for h in blocks.used()}
    return data, blocks, end, transfers


def _funding_transfers(
    source: AuditSource, rng: BlockRange, fetcher: LogFetcher, blocks: BlockIndex, events: list[Event], seed: Seed
) -> list[Event]:
    """Payment-token transfers sent by a node's operator, payout or key address (the funding graph).

    Filtered by sender in the query: a real stablecoin has millions of transfers, and only these
    senders matter for "who funded this consumer".
    """
    senders: set[str] = set()
    for ev in events:
        if ev.name in ("NodeRegistered", "NodeUpdated"):
            senders.update(a for a in (ev.args.get("node"), ev.args.get("operator"), ev.args.get("payout")) if a)
    for node, info in seed.nodes.items():
        senders.update(a for a in (node, info.operator, info.payout) if a)
    if not senders:
        return []
    decoder = EventDecoder({"PaymentToken": source.contracts["PaymentToken"]}, {"PaymentToken": ERC20_ABI})
    out: list[Event] = []
    ordered = sorted(senders)
    for i in range(0, len(ordered), 50):  # providers cap OR-lists in topic filters
        topic_senders = ["0x" + "00" * 12 + a[2:].lower() for a in ordered[i : i + 50]]
        raw = fetcher.get_logs([source.contracts["PaymentToken"]], rng.from_block, rng.to_block,
                               topics=["0x" + TRANSFER_TOPIC.hex(), topic_senders])
        for r in raw:
            blocks.check_log(r)
            ev = decoder.decode(r)
            if ev is not None:
                out.append(ev)
    out.sort(key=lambda e: e.position)
    return out
