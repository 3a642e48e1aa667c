"""Gas of every Kuota operation, measured from real transactions on a private Anvil.

Every figure here is ``gasUsed`` from the transaction's receipt (whole-transaction gas, including the
21,000 base and calldata), for a transaction that really ran against contracts deployed by
``scripts.deploy.deploy_system`` with ``scripts/params/local.json``. Nothing is estimated
(``eth_estimateGas`` only sets each transaction's gas limit, which does not change its ``gasUsed``).

"Cold" and "warm" describe storage, not caches: a *warm channel* is a (consumer, node) channel that
has settled before, so its slot goes nonzero → nonzero; a *warm node* already holds an escrow credit
and a reward record for the current epoch. Each figure carries the exact conditions it was measured
under (``GasFigure.conditions``), because the same call costs very different amounts in each.

Use it on its own (the loop for tuning the contracts)::

    .venv/bin/python bench/run.py --only gas            # whole gas part, with traces
    .venv/bin/python bench/run.py --only gas --quick    # batches up to 100

or from Python: ``with local_system() as ctx: GasBench(ctx).run_all()``.

Where the gas goes: `trace_breakdown` replays a transaction with ``debug_traceTransaction`` (opcode
steps, and the call tree) and sums gas by opcode class — SSTORE by kind, SLOAD cold/warm, external
calls, ECRECOVER, LOG, KECCAK256, calldata, the rest — so a missed target points at its cause.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nodeclient.errors import ChainError

__all__ = [
    "ANCHORS",
    "LANE_SIZES",
    "QUICK_LANE_SIZES",
    "QUICK_SETTLE_MANY_SIZES",
    "SETTLE_MANY_SIZES",
    "TARGETS",
    "BenchContext",
    "GasBench",
    "GasFigure",
    "GasScenarioError",
    "local_system",
    "run",
    "trace_breakdown",
]

UNIT = 10**6  # one unit of the 6-decimal payment token
MIB = 2**20
LATENCY_MS = 30  # below latencyLowMs: full reward weight
SETTLE_MANY_SIZES: tuple[int, ...] = (1, 10, 100, 300)
QUICK_SETTLE_MANY_SIZES: tuple[int, ...] = (1, 10, 100)
#: Batch sizes of LaneSettlement.settleLanes (and with --quick).
LANE_SIZES: tuple[int, ...] = (10, 100, 1000)
QUICK_LANE_SIZES: tuple[int, ...] = (10, 100)
#: Close delay of the bench's LaneSettlement (deployed beside ReceiptSettlement).
LANE_CLOSE_DELAY = 600
CLAIM_EPOCHS = 10

#: The peers' published measurements: whole-transaction gas including the 21k base, on their
#: own contracts with the optimizer on. Quoted, not measured here.
ANCHORS: dict[str, dict[str, Any]] = {
    "mysterium.settlePromise": {"system": "Mysterium Hermes settlePromise (warm)", "gas": 97_352},
    "tap.redeem": {"system": "The Graph TAP v1 Escrow.redeem", "gas": 115_154},
    "horizon.collect": {"system": "The Graph Horizon GraphTallyCollector.collect", "gas": 125_979},
    "orchid.claim": {"system": "Orchid claim (one ticket)", "gas": 68_479},
    "orchid.claim10": {"system": "Orchid claim, per ticket in a batch of 10", "gas": 35_366},
    "1inch.repeat": {"system": "1inch cumulative Merkle claim (repeat)", "gas": 58_925},
    "1inch.first": {"system": "1inch cumulative Merkle claim (first)", "gas": 93_113},
    "uniswap.merkle": {"system": "Uniswap MerkleDistributor claim (~average)", "gas": 78_598},
    "synthetix.getReward": {"system": "Synthetix StakingRewards getReward", "gas": 76_290},
}

#: The protocol's gas targets: figure key -> (max gas, what the figure is per).
TARGETS: dict[str, tuple[int, str]] = {
    "settle.warm": (50_000, "tx"),
    "settleMany.100.warm": (15_000, "receipt"),
    "settleManyPacked.100.warm": (15_000, "receipt"),
    "settleLanes.100.warm": (13_500, "receipt"),
    "claim.1.warm": (50_000, "tx"),
}


class GasScenarioError(ChainError):
    """A gas scenario could not run (a transaction reverted or the chain misbehaved)."""

    def __init__(self, scenario: str, reason: str) -> None:
        self.scenario = scenario
        super().__init__(f"gas scenario {scenario!r} failed: {reason}")


@dataclass
class GasFigure:
    """One measured figure: the gas of one transaction (or the sum of a named sequence)."""

    key: str
    label: str
    gas_used: int
    count: int = 1
    unit: str = "tx"
    conditions: str = ""
    tx_hashes: list[str] = field(default_factory=list)
    calldata_bytes: int = 0

    @property
    def per_unit(self) -> int:
        """Gas per receipt (or per epoch) for batches; the whole figure otherwise."""
        return round(self.gas_used / self.count) if self.count else self.gas_used

    def as_dict(self) -> dict[str, Any]:
        """JSON form (stable keys)."""
        return {
            "label": self.label,
            "gasUsed": self.gas_used,
            "count": self.count,
            "unit": self.unit,
            "perUnit": self.per_unit,
            "conditions": self.conditions,
            "txHashes": list(self.tx_hashes),
            "calldataBytes": self.calldata_bytes,
        }


@dataclass
class BenchContext:
    """A deployed system on a private chain: what the scenarios need."""

    system: Any
    accounts: Any
    params: dict[str, Any]
    rpc_url: str
    chain_id: int
    anvil_version: str


def _rpc(url: str, method: str, params: list[Any], timeout: float = 120.0) -> Any:
    import requests

    response = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=timeout
    )
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        raise ChainError(f"{method} failed: {body['error'].get('message', body['error'])}")
    return body["result"]


def _hard_fork(url: str) -> str:
    """The chain's gas schedule (Anvil's ``anvil_nodeInfo``): recorded beside the figures."""
    try:
        return str(_rpc(url, "anvil_nodeInfo", []).get("hardFork", "unknown"))
    except Exception as exc:  # noqa: BLE001 - informational
        return f"unknown ({type(exc).__name__})"


def _anvil_version() -> str:
    import subprocess

    from nodeclient.localchain import find_executable

    try:
        out = subprocess.run(
            [*find_executable("anvil"), "--version"], capture_output=True, text=True, timeout=20, check=False
        )
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"
    except Exception as exc:  # noqa: BLE001 - the version is informational
        return f"unknown ({type(exc).__name__})"


@contextlib.contextmanager
def _tracing_anvil(home: Path, log: Callable[[str], None]) -> Iterator[tuple[str, int]]:
    """An Anvil with ``--steps-tracing`` (opcode steps for ``debug_traceTransaction``), owned by us.

    `nodeclient.localchain.start_chain` has no way to pass that flag, so this starts the same binary
    with the same mnemonic on a free port in its own process group, and signals only that group.
    """
    import signal
    import subprocess

    from nodeclient.localchain import ANVIL_MNEMONIC, DEFAULT_CHAIN_ID, find_executable, free_port

    port = free_port()
    argv = [
        *find_executable("anvil"),
        "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(DEFAULT_CHAIN_ID),
        "--accounts", "20", "--mnemonic", ANVIL_MNEMONIC, "--steps-tracing",
    ]  # fmt: skip
    log_path = home / "anvil.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-500:]
                raise ChainError(
                    f"anvil exited with code {proc.returncode} before answering on {url}: {tail}"
                )
            try:
                _rpc(url, "eth_chainId", [], timeout=1.0)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    raise ChainError(f"anvil did not answer on {url} within 60 s") from None
                time.sleep(0.1)
        log(f"anvil --steps-tracing (pid {proc.pid}) on {url}")
        yield url, DEFAULT_CHAIN_ID
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own session: pgid == pid
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@contextlib.contextmanager
def _managed_anvil(home: Path, log: Callable[[str], None]) -> Iterator[tuple[str, int]]:
    """An Anvil started and stopped by `nodeclient.localchain.ManagedChain` (its own state directory)."""
    from nodeclient.localchain import ManagedChain

    chain = ManagedChain(home, kind="anvil", accounts=20)
    try:
        state = chain.start()
        log(f"anvil (pid {state.pid}) on {state.url}")
        yield state.url, state.chain_id
    finally:
        chain.stop()


@contextlib.contextmanager
def local_system(
    log: Callable[[str], None] = print, *, steps_tracing: bool = False
) -> Iterator[BenchContext]:
    """Start a private Anvil on a free 127.0.0.1 port, connect Brownie, deploy; stop it all on exit.

    Without ``steps_tracing`` the chain is a `nodeclient.localchain.ManagedChain`
    (own state directory, so nobody else's chain record is touched); with it, `_tracing_anvil`. Brownie
    attaches with `scripts.chainconn.connect_rpc`. Only the process started here is ever stopped.
    """
    from scripts.chainconn import connect_rpc, disconnect_rpc

    home = Path(tempfile.mkdtemp(prefix="kuota-bench-chain-"))
    launcher = _tracing_anvil if steps_tracing else _managed_anvil
    try:
        with launcher(home, log) as (url, chain_id):
            try:
                connect_rpc(url, chain_id=chain_id)
                from brownie import accounts

                from scripts.deploy import deploy_system, load_params

                params = load_params("local")
                params["treasury"] = accounts[1].address
                params["slasher"] = accounts[2].address
                params["laneCloseDelay"] = LANE_CLOSE_DELAY
                started = time.monotonic()
                with contextlib.redirect_stdout(io.StringIO()):  # Brownie prints every deploy transaction
                    system = deploy_system(accounts[0], params, manifest_path=None)
                log(f"deployed in {time.monotonic() - started:.1f} s ({system.gas_used:,} gas)")
                yield BenchContext(
                    system=system,
                    accounts=accounts,
                    params=params,
                    rpc_url=url,
                    chain_id=chain_id,
                    anvil_version=_anvil_version(),
                )
            finally:
                with contextlib.suppress(Exception):
                    disconnect_rpc()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _key(label: str) -> bytes:
    from eth_utils import keccak

    return keccak(text=f"kuota bench {label}")


class _Channel:
    """Off-chain state of one (consumer, node) channel: the consumer's next cumulative receipt."""

    __slots__ = ("amount", "consumer", "key", "nbytes", "node", "session")

    def __init__(self, key: bytes, consumer: str, node: str) -> None:
        from eth_utils import keccak

        self.key = key
        self.consumer = consumer
        self.node = node
        self.session = "0x" + keccak(text=f"kuota bench session {consumer} {node}").hex()
        self.nbytes = 0
        self.amount = 0


@dataclass(frozen=True)
class _Impersonated:
    """A sender Anvil impersonates (``anvil_impersonateAccount``): only its address is needed."""

    address: str


@dataclass(frozen=True)
class _Sent:
    """A mined transaction: what the figures need from its receipt, and its decoded events."""

    txid: str
    gas_used: int
    input: str
    events: dict[str, list[dict[str, Any]]]


class _AbiIndex:
    """Decodes the system's events and custom errors from the contracts' ABIs."""

    _NAMES = ("KuotaToken", "NodeRegistry", "Staking", "PaymentEscrow", "ReceiptSettlement", "RewardPool",
              "PaymentToken", "LaneSettlement")  # fmt: skip

    def __init__(self, web3: Any, system: Any) -> None:
        from eth_utils import keccak

        self._events: dict[tuple[str, bytes], Any] = {}
        self._errors: dict[bytes, tuple[str, list[str]]] = {}
        for name in self._NAMES:
            contract = system.contract(name)
            if contract is None:  # LaneSettlement is optional
                continue
            w3c = web3.eth.contract(address=contract.address, abi=contract.abi)
            for item in contract.abi:
                types = [i["type"] for i in item.get("inputs", [])]
                signature = f"{item.get('name')}({','.join(types)})"
                if item["type"] == "event" and not item.get("anonymous"):
                    self._events[(contract.address.lower(), keccak(text=signature))] = w3c.events[
                        item["name"]
                    ]()
                elif item["type"] == "error":
                    self._errors[keccak(text=signature)[:4]] = (item["name"], types)
        self._errors[bytes.fromhex("08c379a0")] = ("Error", ["string"])
        self._errors[bytes.fromhex("4e487b71")] = ("Panic", ["uint256"])

    def events(self, receipt: Any) -> dict[str, list[dict[str, Any]]]:
        """Event name → the decoded arguments of each occurrence, in log order."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for log in receipt["logs"]:
            if not log["topics"]:
                continue
            event = self._events.get((str(log["address"]).lower(), bytes(log["topics"][0])))
            if event is not None:
                decoded = event.process_log(log)
                out[decoded["event"]].append(dict(decoded["args"]))
        return dict(out)

    def decode_revert(self, exc: Exception) -> str:
        """``Name(arg, ...)`` for a custom error in the exception's revert data, else its message."""
        from eth_abi import decode

        data = getattr(exc, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            raw = bytes.fromhex(data[2:])
            known = self._errors.get(raw[:4])
            if known is not None:
                name, types = known
                try:
                    values = decode(types, raw[4:])
                    return f"{name}({', '.join(str(v) for v in values)})"
                except Exception:  # noqa: BLE001 - fall back to the raw data
                    return f"{name}(<undecodable {raw[4:].hex()}>)"
        return f"{type(exc).__name__}: {exc}"


def next_receipt(
    channels: dict[tuple[str, str], _Channel],
    key: bytes,
    consumer: str,
    node: str,
    domain: Any,
    issued_at: int,
    step: int = UNIT,
) -> tuple[tuple[Any, ...], str, bytes]:
    """The (consumer, node) channel's next cumulative receipt (+1 MiB, +``step``), signed by the
    client's signer under ``domain``: (Solidity args, signature, digest). ``channels`` keeps the state."""
    from nodeclient.receipts import Receipt
    from nodeclient.receipts.signing import receipt_digest, sign_receipt

    channel = channels.get((consumer, node))
    if channel is None:
        channel = channels[(consumer, node)] = _Channel(key, consumer, node)
    channel.nbytes += MIB
    channel.amount += step
    receipt = Receipt(
        consumer=consumer,
        node=node,
        session_id=channel.session,
        cumulative_bytes=channel.nbytes,
        cumulative_amount=channel.amount,
        latency_ms=LATENCY_MS,
        issued_at=issued_at,
    )
    signed = sign_receipt(receipt, channel.key, domain)
    args = (consumer, node, channel.session, channel.nbytes, channel.amount, LATENCY_MS, receipt.issued_at)
    return args, signed.signature, receipt_digest(receipt, domain)


class GasBench:
    """The gas scenarios, run in order on one deployed system (`run_all`)."""

    def __init__(
        self,
        ctx: BenchContext,
        *,
        sizes: Sequence[int] = SETTLE_MANY_SIZES,
        lane_sizes: Sequence[int] = LANE_SIZES,
        trace: bool = True,
        log: Callable[[str], None] = print,
    ) -> None:
        from brownie import web3

        from nodeclient.receipts.signing import address_of_key, receipt_domain

        self.ctx = ctx
        self.s = ctx.system
        self._abi = _AbiIndex(web3, ctx.system)
        self.web3 = web3
        self.sizes = tuple(sizes)
        self.lane_sizes = tuple(lane_sizes) if ctx.system.lanes is not None else ()
        self.trace = trace
        self.log = log
        acc = ctx.accounts
        self.deployer, self.treasury, self.slasher = acc[0], acc[1], acc[2]
        self.operator, self.operator2, self.consumer = acc[3], acc[4], acc[5]
        self.reporter, self.submitter = acc[7], acc[8]
        self.min_stake = int(ctx.params["minStakePerNode"])
        self.epoch_length = int(self.s.rewards.epochLength())
        self.genesis = int(self.s.rewards.genesis())
        self.domain = receipt_domain(ctx.chain_id, self.s.settlement.address)
        self.lane_domain = (
            receipt_domain(ctx.chain_id, self.s.lanes.address) if self.s.lanes is not None else None
        )
        self.lane_channels: dict[tuple[str, str], _Channel] = {}
        self.figures: dict[str, GasFigure] = {}
        self.breakdowns: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        pool = max(max(self.sizes), max(self.lane_sizes, default=0), 4)
        self.consumer_keys = [_key(f"consumer {i}") for i in range(pool)]
        self.consumers = [address_of_key(k) for k in self.consumer_keys]
        self.channels: dict[tuple[str, str], _Channel] = {}
        self.nodes: dict[str, tuple[bytes, str]] = {}
        self._address_of_key = address_of_key

    # --- plumbing ------------------------------------------------------------------------------

    def _record(
        self,
        key: str,
        label: str,
        txs: Sequence[_Sent],
        *,
        count: int = 1,
        unit: str = "tx",
        conditions: str = "",
    ) -> GasFigure:
        figure = GasFigure(
            key=key,
            label=label,
            gas_used=sum(int(tx.gas_used) for tx in txs),
            count=count,
            unit=unit,
            conditions=conditions,
            tx_hashes=[tx.txid for tx in txs],
            calldata_bytes=sum(len(bytes.fromhex(tx.input[2:])) for tx in txs),
        )
        self.figures[key] = figure
        per = f" ({figure.per_unit:,} per {unit})" if count > 1 else ""
        self.log(f"  {key:<28} {figure.gas_used:>10,}{per}")
        return figure

    def _send(self, scenario: str, fn: Any, *args: Any, sender: Any) -> _Sent:
        """Send one transaction (estimated first, so a revert is decoded) and return its receipt.

        web3 directly rather than Brownie's ``transact``: Brownie's confirmation loop sometimes
        reports an instantly mined Anvil transaction as "dropped"; a receipt cannot.
        """
        data = fn.encode_input(*args)
        tx: dict[str, Any] = {
            "from": sender.address,
            "to": fn._address,
            "data": data,
            "maxFeePerGas": 100 * 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        try:
            estimate = int(self.web3.eth.estimate_gas(tx))
        except Exception as exc:  # noqa: BLE001 - web3 raises several revert classes
            raise GasScenarioError(scenario, f"reverts: {self._abi.decode_revert(exc)}") from None
        # Headroom only: gasUsed does not depend on the limit once every call frame has enough.
        tx["gas"] = estimate * 5 // 4 + 20_000
        tx_hash = self.web3.eth.send_transaction(tx)
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=300)
        if int(receipt["status"]) != 1:
            raise GasScenarioError(scenario, f"transaction {tx_hash.hex()} reverted (status 0)")
        return _Sent(
            txid="0x" + bytes(tx_hash).hex().removeprefix("0x"),
            gas_used=int(receipt["gasUsed"]),
            input=data,
            events=self._abi.events(receipt),
        )

    def _bulk(
        self,
        scenario: str,
        sender: Any,
        calls: Sequence[tuple[Any, str, tuple[Any, ...]]],
        gas: int = 300_000,
    ) -> None:
        """Set-up transactions sent without per-transaction estimation (not measured)."""
        hashes = []
        for contract, name, args in calls:
            data = getattr(contract, name).encode_input(*args)
            hashes.append(
                self.web3.eth.send_transaction(
                    {
                        "from": sender.address,
                        "to": contract.address,
                        "data": data,
                        "gas": gas,
                        "maxFeePerGas": 100 * 10**9,
                        "maxPriorityFeePerGas": 10**9,
                    }
                )
            )
        for tx_hash in hashes:
            receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
            if receipt["status"] != 1:
                raise GasScenarioError(scenario, f"set-up transaction {tx_hash.hex()} reverted")

    def _now(self) -> int:
        return int(self.web3.eth.get_block("latest")["timestamp"])

    def _epoch_of(self, timestamp: int) -> int:
        return (timestamp - self.genesis) // self.epoch_length

    def _sleep(self, seconds: int) -> None:
        _rpc(self.ctx.rpc_url, "evm_increaseTime", [int(seconds)])
        _rpc(self.ctx.rpc_url, "evm_mine", [])

    def _room(self, seconds: int) -> None:
        """Make sure at least ``seconds`` remain in the current epoch (else start the next one)."""
        now = self._now()
        end = self.genesis + (self._epoch_of(now) + 1) * self.epoch_length
        if end - now < seconds:
            self._sleep(end - now + 1)

    def _next_epoch(self) -> int:
        """Move to just after the start of the next epoch; return its number."""
        now = self._now()
        epoch = self._epoch_of(now) + 1
        self._sleep(self.genesis + epoch * self.epoch_length - now + 1)
        return epoch

    @staticmethod
    def _usage_epoch(tx: Any) -> int | None:
        if "UsageRecorded" not in tx.events:
            return None
        return int(tx.events["UsageRecorded"][0]["epoch"])

    # --- actors --------------------------------------------------------------------------------

    def _node(self, label: str, payout: str | None = None) -> str:
        key = _key(f"node {label}")
        address = self._address_of_key(key)
        self.nodes[label] = (key, payout or self._address_of_key(_key(f"payout {label}")))
        return address

    def _register_args(self, label: str) -> tuple[Any, ...]:
        from nodeclient.receipts.signing import sign_digest

        key, payout = self.nodes[label]
        node = self._address_of_key(key)
        digest = bytes(self.s.registry.nodeKeyDigest(node, node, self.operator.address))
        signature = sign_digest(digest, key)
        return (node, payout, 1_000_000, 100, "eu-west", f"ipfs://kuota-bench/{label}", signature)

    def _receipt(
        self, consumer_index: int, node: str, step: int = UNIT
    ) -> tuple[tuple[Any, ...], str, bytes]:
        """The channel's next cumulative receipt, signed by the client's signer: (args, signature, digest)."""
        return next_receipt(
            self.channels,
            self.consumer_keys[consumer_index],
            self.consumers[consumer_index],
            node,
            self.domain,
            self._now(),
            step,
        )

    def _settle(self, scenario: str, consumer_index: int, node: str) -> Any:
        args, signature, _ = self._receipt(consumer_index, node)
        return self._send(scenario, self.s.settlement.settle, args, signature, sender=self.submitter)

    def _settle_many(self, scenario: str, consumer_indices: Sequence[int], node: str) -> Any:
        from nodeclient.receipts.crypto import merkle_root

        receipts, signatures, digests = [], [], []
        for index in consumer_indices:
            args, signature, digest = self._receipt(index, node)
            receipts.append(args)
            signatures.append(signature)
            digests.append(digest)
        root = merkle_root(digests)
        tx = self._send(
            scenario, self.s.settlement.settleMany, receipts, signatures, root, sender=self.submitter
        )
        settled = int(tx.events["BatchSettled"][0]["settledCount"])
        if settled != len(receipts):
            raise GasScenarioError(scenario, f"settled {settled} of {len(receipts)} receipts")
        return tx

    def _settle_many_packed(self, scenario: str, consumer_indices: Sequence[int], node: str) -> Any:
        """The node client's batch: ``settleManyPacked`` (161 bytes a receipt, same checks and events)."""
        from nodeclient.receipts.crypto import merkle_root
        from nodeclient.receipts.packing import pack_receipt_args

        packed, digests = b"", []
        for index in consumer_indices:
            args, signature, digest = self._receipt(index, node)
            packed += pack_receipt_args(args, signature)
            digests.append(digest)
        tx = self._send(
            scenario,
            self.s.settlement.settleManyPacked,
            node,
            packed,
            merkle_root(digests),
            sender=self.submitter,
        )
        settled = int(tx.events["BatchSettled"][0]["settledCount"])
        if settled != len(consumer_indices):
            raise GasScenarioError(scenario, f"settled {settled} of {len(consumer_indices)} receipts")
        return tx

    # --- scenarios -----------------------------------------------------------------------------

    def setup(self) -> None:
        """Fund everyone, stake and register every node (registration figures are measured here)."""
        s = self.s
        self.log("set-up: funding, staking, registering (register/stake measured)")
        labels = ["S", "C", "RA", "RB", *[f"M{k}" for k in self.sizes], *[f"L{k}" for k in self.lane_sizes]]
        shared_payout = self._address_of_key(_key("payout shared"))
        for label in labels:
            # Two batch nodes share one payout, so the second earnings withdrawal pays a warm balance.
            self._node(label, shared_payout if label in ("M1", "M10") else None)
        self._send("setup", s.token.transfer, self.operator, 100 * self.min_stake, sender=self.deployer)
        self._send("setup", s.token.transfer, self.operator2, 10 * self.min_stake, sender=self.deployer)
        self._send("setup", s.token.approve, s.staking, 2**256 - 1, sender=self.operator)
        self._send("setup", s.token.approve, s.staking, 2**256 - 1, sender=self.operator2)

        first_stake = self._send("stake", s.staking.stake, self.min_stake, sender=self.operator)
        self._record(
            "stake.first",
            "stake (operator's first, minimum stake)",
            [first_stake],
            conditions="operator had no bonded stake",
        )
        first_register = self._send(
            "register", s.registry.register, *self._register_args("S"), sender=self.operator
        )
        self._record(
            "register.first",
            "register node (operator's first)",
            [first_register],
            conditions="EIP-712 node-key proof verified; operator's node list empty",
        )
        self._record(
            "register_incl_stake",
            "register incl. stake (stake + register)",
            [first_stake, first_register],
            unit="flow",
            conditions="two transactions: stake(minStake) then register (approve not counted)",
        )
        topup = self._send("stake", s.staking.stake, 20 * self.min_stake, sender=self.operator)
        self._record("stake.topup", "stake (top-up)", [topup], conditions="operator already bonded")
        second = self._send("register", s.registry.register, *self._register_args("C"), sender=self.operator)
        self._record(
            "register.next",
            "register node (operator's second)",
            [second],
            conditions="operator already has a node",
        )
        for label in labels:
            if label not in ("S", "C"):
                self._send("setup", s.registry.register, *self._register_args(label), sender=self.operator)

        # Consumers: fresh keys that only sign; the deployer funds their escrow with depositFor.
        usd = s.payment_token
        per_consumer = 1_000 * UNIT
        self._send(
            "setup", usd.mint, self.deployer, per_consumer * (len(self.consumers) + 10), sender=self.deployer
        )
        self._send("setup", usd.approve, s.escrow, 2**256 - 1, sender=self.deployer)
        self._bulk(
            "setup", self.deployer, [(s.escrow, "depositFor", (c, per_consumer)) for c in self.consumers]
        )
        self._send("setup", usd.mint, self.consumer, 10_000 * UNIT, sender=self.consumer)
        self._send("setup", usd.approve, s.escrow, 2**256 - 1, sender=self.consumer)
        first_deposit = self._send("deposit", s.escrow.deposit, 1_000 * UNIT, sender=self.consumer)
        self._record(
            "deposit.first",
            "deposit (consumer's first)",
            [first_deposit],
            conditions="consumer's escrow account empty; allowance set beforehand",
        )
        topup_deposit = self._send("deposit", s.escrow.deposit, 1_000 * UNIT, sender=self.consumer)
        self._record(
            "deposit.topup", "deposit (top-up)", [topup_deposit], conditions="consumer's account nonzero"
        )

    def settle_single(self) -> None:
        """settle(): first of an epoch, cold node, cold channel, warm channel — in one epoch."""
        self.log("settle: one receipt per transaction")
        node_s = self._address_of_key(self.nodes["S"][0])
        node_c = self._address_of_key(self.nodes["C"][0])
        self._next_epoch()  # an epoch nobody has used yet
        epoch_first = self._settle("settle.cold_epoch", 1, node_c)
        cold_node = self._settle("settle.cold_node", 0, node_s)
        cold_channel = self._settle("settle.cold_channel", 2, node_s)
        warm = self._settle("settle.warm", 0, node_s)
        epochs = [self._usage_epoch(tx) for tx in (epoch_first, cold_node, cold_channel, warm)]
        if len(set(epochs)) != 1:
            self.notes.append(f"settle figures straddle epochs {epochs}: the cold ones are flagged")
        self._record(
            "settle.cold_epoch",
            "settle, first in a new epoch",
            [epoch_first],
            conditions="new channel; node's first settlement; first usage of the epoch (snapshot)",
        )
        self._record(
            "settle.cold_node",
            "settle, cold (new channel, node's first)",
            [cold_node],
            conditions="new channel; node had no escrow credit and no reward record; epoch snapshotted",
        )
        self._record(
            "settle.cold_channel",
            "settle, cold channel",
            [cold_channel],
            conditions="first receipt of the channel; node already credited and recorded this epoch",
        )
        attempt = 0
        while epochs[-1] != epochs[-2] and attempt < 3:
            # The warm figure must not include the node's first record of a new epoch: measure again.
            attempt += 1
            self._room(self.epoch_length // 2)
            prime = self._settle("settle", 0, node_s)
            warm = self._settle("settle.warm", 0, node_s)
            epochs = [self._usage_epoch(prime), self._usage_epoch(warm)]
        self._record(
            "settle.warm",
            "settle, warm channel",
            [warm],
            conditions="later receipt of a settled channel; node credited and recorded this epoch",
        )

    def settle_batches(self) -> None:
        """settleMany at each size: a cold batch (new channels, node's first) then a warm batch."""
        self.log("settleMany: distinct consumers per receipt")
        node_c = self._address_of_key(self.nodes["C"][0])
        for size in self.sizes:
            node = self._address_of_key(self.nodes[f"M{size}"][0])
            indices = list(range(size))
            self._room(self.epoch_length // 2)
            self._settle("setup", 1, node_c)  # the epoch is snapshotted before the cold batch
            cold = self._settle_many(f"settleMany.{size}.cold", indices, node)
            warm = self._settle_many(f"settleMany.{size}.warm", indices, node)
            attempt = 0
            prime = cold
            while self._usage_epoch(prime) != self._usage_epoch(warm) and attempt < 3:
                # The warm figure must not include the node's first record of a new epoch.
                attempt += 1
                self._room(self.epoch_length // 2)
                prime = self._settle_many(f"settleMany.{size}", indices, node)
                warm = self._settle_many(f"settleMany.{size}.warm", indices, node)
            self._record(
                f"settleMany.{size}.cold",
                f"settleMany({size}), cold",
                [cold],
                count=size,
                unit="receipt",
                conditions="new channels, distinct consumers; node's first settlement (no credit, "
                "no reward record); epoch snapshotted",
            )
            self._record(
                f"settleMany.{size}.warm",
                f"settleMany({size}), warm",
                [warm],
                count=size,
                unit="receipt",
                conditions="distinct consumers, every channel settled before; node credited and "
                "recorded this epoch",
            )
            packed = self._settle_many_packed(f"settleManyPacked.{size}.warm", indices, node)
            if self._usage_epoch(packed) != self._usage_epoch(warm):
                packed = self._settle_many_packed(f"settleManyPacked.{size}.warm", indices, node)
            self._record(
                f"settleManyPacked.{size}.warm",
                f"settleManyPacked({size}), warm",
                [packed],
                count=size,
                unit="receipt",
                conditions="the node client's batch call (161-byte receipts); same channels as "
                "settleMany's warm batch, settled again",
            )

    def claims(self) -> None:
        """claim(): 1 and 10 epochs, first (cold) and later (warm) claims."""
        self.log(f"claims: usage in {2 * CLAIM_EPOCHS} epochs for two nodes")
        s = self.s
        node_a = self._address_of_key(self.nodes["RA"][0])
        node_b = self._address_of_key(self.nodes["RB"][0])
        # Finalise everything before the claim epochs, so the first claim finalises only its own.
        self._send("setup", s.rewards.finalizeEpochs, 10**6, sender=self.deployer)
        start = self._next_epoch()
        self._send("setup", s.rewards.finalizeEpochs, 10**6, sender=self.deployer)
        for offset in range(2 * CLAIM_EPOCHS):
            tx_a = self._settle("claims", 3, node_a)
            tx_b = self._settle("claims", 3, node_b)
            for tx in (tx_a, tx_b):
                if self._usage_epoch(tx) != start + offset:
                    raise GasScenarioError(
                        "claims", f"usage landed in epoch {self._usage_epoch(tx)}, expected {start + offset}"
                    )
            self._next_epoch()
        e = [start + i for i in range(2 * CLAIM_EPOCHS)]

        def claim(scenario: str, node: str, epochs: list[int]) -> Any:
            tx = self._send(scenario, s.rewards.claim, node, epochs, sender=self.submitter)
            if "RewardClaimed" not in tx.events or len(tx.events["RewardClaimed"]) != len(epochs):
                raise GasScenarioError(scenario, "no RewardClaimed event per epoch")
            return tx

        finalized = int(s.rewards.finalizedThrough())
        tx = claim("claim.1.cold", node_a, e[:1])
        self._record(
            "claim.1.cold",
            "claim 1 epoch, first claim",
            [tx],
            count=1,
            unit="epoch",
            conditions=f"node's first claim; payout held no KUOTA; finalises the epoch "
            f"({int(s.rewards.finalizedThrough()) - finalized} finalised)",
        )
        finalized = int(s.rewards.finalizedThrough())
        tx = claim("claim.10.cold", node_b, e[:CLAIM_EPOCHS])
        self._record(
            "claim.10.cold",
            f"claim {CLAIM_EPOCHS} epochs, first claim",
            [tx],
            count=CLAIM_EPOCHS,
            unit="epoch",
            conditions=f"node's first claim; payout held no KUOTA; finalises "
            f"{int(s.rewards.finalizedThrough()) - finalized} epochs on the way",
        )
        tx = claim("claim.1.warm", node_a, e[1:2])
        self._record(
            "claim.1.warm",
            "claim 1 epoch, warm",
            [tx],
            count=1,
            unit="epoch",
            conditions="payout already holds KUOTA; the epoch was already finalised",
        )
        finalized = int(s.rewards.finalizedThrough())
        tx = claim("claim.1.warm_finalising", node_a, e[CLAIM_EPOCHS : CLAIM_EPOCHS + 1])
        self._record(
            "claim.1.warm_finalising",
            "claim 1 epoch, warm, finalising it",
            [tx],
            count=1,
            unit="epoch",
            conditions=f"payout holds KUOTA; the claim finalises "
            f"{int(s.rewards.finalizedThrough()) - finalized} epoch(s) (lazy finalisation)",
        )
        finalized = int(s.rewards.finalizedThrough())
        fin = self._send("finalizeEpochs", s.rewards.finalizeEpochs, 10**6, sender=self.submitter)
        count = int(s.rewards.finalizedThrough()) - finalized
        self._record(
            "finalizeEpochs",
            f"finalizeEpochs ({count} epochs)",
            [fin],
            count=max(count, 1),
            unit="epoch",
            conditions="epochs with usage, finalised in one call",
        )
        tx = claim("claim.10.warm", node_b, e[CLAIM_EPOCHS:])
        self._record(
            "claim.10.warm",
            f"claim {CLAIM_EPOCHS} epochs, warm",
            [tx],
            count=CLAIM_EPOCHS,
            unit="epoch",
            conditions="payout already holds KUOTA; every epoch already finalised",
        )

    def exits(self) -> None:
        """slash, unbond request/withdraw, escrow thaw/withdraw, node earnings, fee sweep."""
        self.log("slash, unbond, escrow thaw/withdraw, earnings")
        s = self.s
        self._send("setup", s.staking.stake, 5 * self.min_stake, sender=self.operator2)
        tx = self._send(
            "slash", s.staking.slash, self.operator2, self.min_stake // 10, self.reporter, sender=self.slasher
        )
        self._record(
            "slash",
            "slash (reporter share + burn)",
            [tx],
            conditions="from bonded stake; reporter held no KUOTA before",
        )
        tx = self._send("unbond", s.staking.requestUnbond, self.min_stake, sender=self.operator2)
        self._record(
            "unbond.request", "requestUnbond", [tx], conditions="operator has no node; nothing unbonding"
        )
        tx = self._send("thaw", s.escrow.requestThaw, 100 * UNIT, sender=self.consumer)
        self._record("escrow.thaw", "escrow requestThaw", [tx], conditions="nothing thawing before")
        self._sleep(max(int(self.ctx.params["unbondingPeriod"]), int(self.ctx.params["thawingPeriod"])) + 1)
        tx = self._send("unbond.withdraw", s.staking.withdraw, sender=self.operator2)
        self._record(
            "unbond.withdraw", "withdraw unbonded stake", [tx], conditions="after the unbonding period"
        )
        tx = self._send("escrow.withdraw", s.escrow.withdraw, sender=self.consumer)
        self._record(
            "escrow.withdraw", "escrow withdraw (thawed)", [tx], conditions="after the thawing period"
        )
        nodes = {label: self._address_of_key(key) for label, (key, _) in self.nodes.items()}
        if "M1" in nodes and "M10" in nodes:
            tx = self._send("earnings", s.escrow.withdrawEarnings, nodes["M1"], sender=self.submitter)
            self._record(
                "earnings.withdraw.first",
                "withdrawEarnings (node earnings)",
                [tx],
                conditions="payout held no payment token before",
            )
            tx = self._send("earnings", s.escrow.withdrawEarnings, nodes["M10"], sender=self.submitter)
            self._record(
                "earnings.withdraw.warm",
                "withdrawEarnings, payout already funded",
                [tx],
                conditions="payout already holds payment token",
            )
        tx = self._send("fees", s.escrow.sweepFees, sender=self.submitter)
        self._record(
            "fees.sweep",
            "sweepFees (protocol fees to treasury)",
            [tx],
            conditions="treasury held no payment token before",
        )

    def _settle_lanes(self, scenario: str, count: int, node: str) -> Any:
        """``LaneSettlement.settleLanes``: the next receipt of consumers 0..count-1, each from its lane."""
        from nodeclient.receipts.merkle import merkle_root

        from nodeclient.receipts.packing import pack_receipt_args

        packed, digests = b"", []
        now = self._now()
        for index in range(count):
            args, signature, digest = next_receipt(
                self.lane_channels, self.consumer_keys[index], self.consumers[index], node, self.lane_domain, now
            )
            packed += pack_receipt_args(args, signature)
            digests.append(digest)
        tx = self._send(scenario, self.s.lanes.settleLanes, node, packed, merkle_root(digests), sender=self.submitter)
        settled = int(tx.events["LanesSettled"][0]["settledCount"])
        if settled != count:
            raise GasScenarioError(scenario, f"settled {settled} of {count} receipts")
        return tx

    def _fund_lanes(self, nodes: Sequence[str], count: int) -> _Sent:
        """Consumers 0..count-1 allocate to a lane of each of ``nodes`` (Anvil impersonation: the
        consumers' keys only sign receipts); returns consumer 0's allocation (first, then top-up)."""
        lanes = self.s.lanes
        for address in self.consumers[:count]:
            _rpc(self.ctx.rpc_url, "anvil_setBalance", [address, hex(10**18)])
            _rpc(self.ctx.rpc_url, "anvil_impersonateAccount", [address])
        amounts = [100 * UNIT] * len(nodes)
        first = self._send("allocate", lanes.allocateMany, list(nodes), amounts, sender=_Impersonated(self.consumers[0]))
        for address in self.consumers[1:count]:
            self._bulk("setup", _Impersonated(address), [(lanes, "allocateMany", (list(nodes), amounts))])
        return first

    def settle_lanes(self) -> None:
        """settleLanes at each size, warm: every lane funded, node credited and recorded this epoch."""
        if not self.lane_sizes:
            return
        self.log("settleLanes: distinct consumers per receipt, one lane each")
        nodes = [self._address_of_key(self.nodes[f"L{size}"][0]) for size in self.lane_sizes]
        first = self._fund_lanes(nodes, max(self.lane_sizes))
        self._record(
            "lanes.allocateMany",
            f"allocateMany ({len(nodes)} new lanes)",
            [first],
            conditions="consumer's first lanes with these nodes; one escrow debit",
        )
        for size, node in zip(self.lane_sizes, nodes):
            self._room(self.epoch_length // 2)
            prime = self._settle_lanes(f"settleLanes.{size}", size, node)
            warm = self._settle_lanes(f"settleLanes.{size}.warm", size, node)
            if self._usage_epoch(prime) != self._usage_epoch(warm):
                self._room(self.epoch_length // 2)
                self._settle_lanes(f"settleLanes.{size}", size, node)
                warm = self._settle_lanes(f"settleLanes.{size}.warm", size, node)
            self._record(
                f"settleLanes.{size}.warm",
                f"settleLanes({size}), warm",
                [warm],
                count=size,
                unit="receipt",
                conditions="LaneSettlement, 161-byte receipts of distinct consumers, each from its own "
                "funded lane; node credited and recorded this epoch; no per-receipt event",
            )

    def breakdown(self) -> None:
        """Opcode-class breakdown of the figures the targets are about."""
        if not self.trace:
            return
        keys = [
            "settle.warm",
            "settle.cold_channel",
            "settleMany.100.warm",
            "settleManyPacked.100.warm",
            "settleLanes.100.warm",
            "claim.1.warm",
        ]
        names = _contract_names(self.s)
        for key in keys:
            figure = self.figures.get(key)
            if figure is None:
                continue
            self.log(f"  tracing {key} ({figure.tx_hashes[0][:12]}…)")
            try:
                self.breakdowns[key] = trace_breakdown(self.ctx.rpc_url, figure.tx_hashes[0], names)
            except Exception as exc:  # noqa: BLE001 - a failed trace must not lose the measured figures
                self.breakdowns[key] = {"error": f"{type(exc).__name__}: {exc}"}

    def run_all(self) -> dict[str, Any]:
        """Every scenario in order; returns the JSON-ready gas section."""
        started = time.monotonic()
        self.setup()
        self.settle_single()
        self.settle_batches()
        self.settle_lanes()
        self.claims()
        self.exits()
        self.breakdown()
        return {
            "status": "ok",
            "seconds": round(time.monotonic() - started, 1),
            "figures": {k: f.as_dict() for k, f in self.figures.items()},
            "breakdowns": self.breakdowns,
            "notes": self.notes,
        }


# --- where the gas goes ----------------------------------------------------------------------------

_CALLS = {"CALL", "STATICCALL", "DELEGATECALL", "CALLCODE"}


def _classify(op: str, cost: int, enters_frame: bool) -> str:
    if op == "SSTORE":
        if cost >= 20_000:
            return "SSTORE new slot (0→x, 20,000 + 2,100 cold)"
        if cost >= 2_900:
            return "SSTORE update x→y (2,900; +2,100 if cold)"
        return "SSTORE dirty/no-op (100)"
    if op == "SLOAD":
        return "SLOAD cold (2,100)" if cost >= 2_100 else "SLOAD warm (100)"
    if op in _CALLS:
        if not enters_frame and op == "STATICCALL" and cost >= 3_000:
            # A STATICCALL that opens no frame and costs ≥ 3,000 is the ecrecover precompile (0x01):
            # the only precompile these contracts call.
            return "ECRECOVER precompile (3,000 + call)"
        return "external call overhead, cold (2,600+)" if cost >= 2_600 else "external call overhead, warm"
    if op.startswith("LOG"):
        return "LOG (events)"
    if op in ("KECCAK256", "SHA3"):
        return "KECCAK256"
    if op in ("CALLDATALOAD", "CALLDATACOPY", "CALLDATASIZE"):
        return "calldata reads"
    if op in ("MLOAD", "MSTORE", "MSTORE8", "MCOPY"):
        return "memory (incl. expansion)"
    return "other opcodes (stack, arithmetic, jumps)"


def _int(value: Any) -> int:
    """Trace numbers: geth-style integers, or 0x-hex strings from some nodes."""
    if isinstance(value, str):
        return int(value, 16) if value.startswith("0x") else int(value)
    return int(value)


def _calldata_gas(data: bytes) -> int:
    zeros = data.count(0)
    return zeros * 4 + (len(data) - zeros) * 16


def _label(frame: dict[str, Any], names: dict[str, str], selectors: dict[str, str]) -> str:
    to = str(frame.get("to") or "").lower()
    name = names.get(to)
    if name is None:
        return "ecrecover (0x01)" if to and int(to, 16) == 1 else (to or "?")
    selector = str(frame.get("input", "0x"))[:10].lower()
    return f"{name}.{selectors.get(selector, selector)}"


def _frames(frame: dict[str, Any], names: dict[str, str], selectors: dict[str, str], out: list[str]) -> None:
    """Labels of the call frames that run code, in the order the opcode trace enters them (pre-order)."""
    for child in frame.get("calls", []) or []:
        to = str(child.get("to") or "")
        if to and int(to, 16) <= 0x100:
            continue  # precompiles run no opcodes: no frame in the step trace
        out.append(_label(child, names, selectors))
        _frames(child, names, selectors, out)


def _contract_names(system: Any) -> dict[str, dict[str, str]]:
    """address → contract name and selector → function name, to label call frames."""
    names: dict[str, str] = {}
    selectors: dict[str, str] = {}
    for name in _AbiIndex._NAMES:
        contract = system.contract(name)
        if contract is None:
            continue
        names[contract.address.lower()] = name
        for fn_name, selector in getattr(contract, "signatures", {}).items():
            selectors[str(selector).lower()] = fn_name
    return {"names": names, "selectors": selectors}


def _add(table: dict[str, dict[str, int]], bucket: str, cost: int) -> None:
    entry = table.setdefault(bucket, {"gas": 0, "count": 0})
    entry["gas"] += cost
    entry["count"] += 1


def trace_breakdown(
    rpc_url: str, tx_hash: str, names: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    """Sum a transaction's gas by opcode class and by contract function, from Anvil's traces.

    ``debug_traceTransaction`` (opcode steps; Anvil must run with ``--steps-tracing``): each step's
    own cost is the drop in remaining gas to the next step of the same frame; for a step that opens a
    frame, the callee's consumption is subtracted, so the call's own overhead (cold/warm account
    access) and the callee's opcodes are counted once each. The frames are labelled from the
    ``callTracer`` tree (pre-order). The sum of the classes plus 21,000 and the calldata gas
    reconciles with ``gasUsed``; the difference is reported as ``refund`` (0 when nothing is refunded).
    """
    names = names or {"names": {}, "selectors": {}}
    receipt = _rpc(rpc_url, "eth_getTransactionReceipt", [tx_hash])
    tx = _rpc(rpc_url, "eth_getTransactionByHash", [tx_hash])
    gas_used = _int(receipt["gasUsed"])
    data = bytes.fromhex(tx["input"][2:])
    calls = _rpc(rpc_url, "debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}], timeout=600)
    order: list[str] = []
    _frames(calls, names["names"], names["selectors"], order)
    trace = _rpc(
        rpc_url,
        "debug_traceTransaction",
        [tx_hash, {"disableStack": True, "disableMemory": True, "disableStorage": True}],
        timeout=600,
    )
    steps = trace.get("structLogs", [])
    if not steps:
        raise ChainError("the node returned no opcode steps (Anvil needs --steps-tracing)")
    classes: dict[str, dict[str, int]] = {}
    by_frame: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    frame_calls: dict[str, int] = defaultdict(int)
    top = _label(calls, names["names"], names["selectors"])
    frame_calls[top] += 1
    labels = [top]
    next_frame = iter(order)
    opened: list[int] = []
    n = len(steps)
    for i, step in enumerate(steps):
        depth = int(step["depth"])
        nxt = steps[i + 1] if i + 1 < n else None
        nxt_depth = int(nxt["depth"]) if nxt is not None else depth - 1
        if nxt_depth > depth:
            opened.append(i)  # the call's own cost is settled when its frame returns
            label = next(next_frame, "?")
            labels.append(label)
            frame_calls[label] += 1
            continue
        cost = _int(step["gas"]) - _int(nxt["gas"]) if nxt_depth == depth else _int(step.get("gasCost", 0))
        bucket = _classify(step["op"], cost, False)
        _add(classes, bucket, cost)
        _add(by_frame[labels[-1]], bucket, cost)
        if nxt is not None and nxt_depth < depth and opened:
            labels.pop()
            c = opened.pop()
            child_given = _int(steps[c + 1]["gas"])
            child_left = _int(step["gas"]) - _int(step.get("gasCost", 0))
            own = _int(steps[c]["gas"]) - _int(nxt["gas"]) - (child_given - child_left)
            bucket = _classify(steps[c]["op"], own, True)
            _add(classes, bucket, own)
            _add(by_frame[labels[-1]], bucket, own)
    execution = sum(v["gas"] for v in classes.values())
    calldata = _calldata_gas(data)
    precompiles: dict[str, dict[str, int]] = {}

    def _walk(frame: dict[str, Any]) -> None:
        for child in frame.get("calls", []) or []:
            to = str(child.get("to") or "")
            if to and int(to, 16) <= 0x100:
                entry = precompiles.setdefault(
                    _label(child, names["names"], names["selectors"]), {"calls": 0, "gas": 0}
                )
                entry["calls"] += 1
                entry["gas"] += _int(child.get("gasUsed", 0))
            _walk(child)

    _walk(calls)
    frames = {
        label: {
            "calls": frame_calls[label],
            "gas": sum(v["gas"] for v in table.values()),
            "classes": dict(sorted(table.items(), key=lambda kv: -kv[1]["gas"])),
        }
        for label, table in by_frame.items()
    }
    residual = 21_000 + calldata + execution - gas_used
    return {
        "txHash": tx_hash,
        "gasUsed": gas_used,
        # Negative would mean Prague's calldata floor (EIP-7623) set gasUsed, not the execution.
        "calldataFloorApplied": residual < 0,
        "intrinsic": 21_000,
        "calldataGas": calldata,
        "calldataBytes": len(data),
        "executionGas": execution,
        "refund": residual,
        "steps": n,
        "classes": dict(sorted(classes.items(), key=lambda kv: -kv[1]["gas"])),
        "frames": dict(sorted(frames.items(), key=lambda kv: -kv[1]["gas"])),
        "precompiles": precompiles,
    }


def run(
    *,
    quick: bool = False,
    trace: bool = True,
    log: Callable[[str], None] = print,
    floors: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole gas part: own chain, deploy, every scenario, breakdowns; the chain is always stopped.

    ``floors`` (``bench.floors.run``, passed in because the floors build on this module's scenarios)
    measures the protocol models' floors on the same chain, under the same conditions.

    Returns the gas section of ``bench/results.json``; on failure ``{"status": "failed", "error": ...}``
    plus whatever was measured before the failure.
    """
    sizes = QUICK_SETTLE_MANY_SIZES if quick else SETTLE_MANY_SIZES
    lane_sizes = QUICK_LANE_SIZES if quick else LANE_SIZES
    started = time.monotonic()
    bench: GasBench | None = None
    environment: dict[str, Any] = {}
    try:
        with local_system(log, steps_tracing=trace) as ctx:
            environment = {
                "anvil": ctx.anvil_version,
                "chainId": ctx.chain_id,
                "hardFork": _hard_fork(ctx.rpc_url),
            }
            bench = GasBench(ctx, sizes=sizes, lane_sizes=lane_sizes, trace=trace, log=log)
            section = bench.run_all()
            if floors is not None:
                section["floors"] = floors(ctx, log, bench=bench)
    except Exception as exc:  # noqa: BLE001 - report, keep partial figures, let the caller exit non-zero
        section = {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "figures": {k: f.as_dict() for k, f in (bench.figures.items() if bench else [])},
            "breakdowns": bench.breakdowns if bench else {},
            "notes": bench.notes if bench else [],
        }
    section["seconds"] = round(time.monotonic() - started, 1)
    section["environment"] = environment
    section["settleManySizes"] = list(sizes)
    return section


if __name__ == "__main__":  # pragma: no cover - `python bench/gas.py` prints the figures only
    import json

    result = run(quick="--quick" in sys.argv)
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["status"] == "ok" else 1)
