"""Gas floors of Kuota's protocol models, measured with probe contracts on the bench chain.

`contracts/test/GasFloorProbe.sol` holds minimal contracts that do only the irreducible work of each
model (EIP-712 receipt verification, the channel and balance slots, the once-per-call node credit,
fee, reward weight and epoch total; for claims the record, the epoch, the payout and the mint) and
nothing else. Deployed on the chain `bench.gas` already measured the real contracts on, each probe
runs under the same WARM conditions as the real scenario it is compared with, and every figure is
``gasUsed`` from a real transaction's receipt (whole transaction, incl. the 21,000 base and calldata).

If a floor is above a gas target, no implementation of that model can meet the target: the
model has to change (fewer slots per receipt, no per-receipt event, ...), not the code.

``run(ctx, log)`` returns the ``gas.floors`` section of ``bench/results.json``: ``figures`` keyed
``floor.settle.pooled``, ``floor.settleMany.<n>.{pooled,pooled_logged,channel_funded}`` (ABI calldata)
and ``floor.settleMany.<n>.{pooled,pooled_logged,channel_funded}_packed`` (161-byte packed receipts),
``floor.claim.{mint_inline,mint_inline_no_event,via_token,via_token_registry}`` (the `GasFigure.as_dict` form).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gas import (
    UNIT,
    BenchContext,
    GasBench,
    GasFigure,
    GasScenarioError,
    _Channel,
    _key,
    _Sent,
    next_receipt,
)

__all__ = ["FLOOR_BATCH_SIZES", "FLOOR_ROWS", "FloorBench", "run"]

FLOOR_DOMAIN_NAME = "KuotaFloor"
FLOOR_BATCH_SIZES: tuple[int, ...] = (10, 100)
FEE_BPS = 500  # SettlementFloorProbe.FEE_BPS
LATENCY_MS = 30

#: The batch models: (key suffix, probe function, what the table calls it); each is measured with ABI
#: calldata (`Receipt[]`, `bytes[]`) and packed (161 bytes a receipt, as `settleManyPacked`).
BATCH_MODELS: tuple[tuple[str, str, str], ...] = (
    ("pooled", "settleManyPooled", "pooled escrow, no events"),
    ("pooled_logged", "settleManyPooledLogged", "pooled escrow + Kuota's events"),
    ("channel_funded", "settleManyChannelFunded", "per-channel escrow, no events"),
)


def _batch_rows(
    size: int, abi_target: str | None, packed_target: str | None
) -> list[tuple[str, str, str, str | None]]:
    """Floor rows of one batch size: each model with ABI calldata (beside the real `settleMany`) and
    packed (beside the real `settleManyPacked`, which takes the same 161-byte layout)."""
    rows: list[tuple[str, str, str, str | None]] = []
    for model, _, what in BATCH_MODELS:
        rows.append(
            (
                f"floor.settleMany.{size}.{model}",
                f"settleMany({size}), {what}",
                f"settleMany.{size}.warm",
                abi_target,
            )
        )
        rows.append(
            (
                f"floor.settleMany.{size}.{model}_packed",
                f"settleMany({size}), {what}, packed calldata",
                f"settleManyPacked.{size}.warm",
                packed_target,
            )
        )
    return rows


#: The floors table: (floor key, model, the real figure of the same run it is the floor of, the
#: gas target key in `bench.gas.TARGETS` it is compared with, or None).
FLOOR_ROWS: list[tuple[str, str, str, str | None]] = [
    ("floor.settle.pooled", "settle, pooled escrow, 1 contract, no event", "settle.warm", "settle.warm"),
    *_batch_rows(100, "settleMany.100.warm", "settleManyPacked.100.warm"),
    *_batch_rows(10, None, None),
    (
        "floor.claim.mint_inline_no_event",
        "claim 1 epoch, mint inline, no event",
        "claim.1.warm",
        "claim.1.warm",
    ),
    ("floor.claim.mint_inline", "claim 1 epoch, mint inline + RewardClaimed", "claim.1.warm", "claim.1.warm"),
    (
        "floor.claim.via_token",
        "claim 1 epoch, mint via separate token + RewardClaimed",
        "claim.1.warm",
        "claim.1.warm",
    ),
    (
        "floor.claim.via_token_registry",
        "claim 1 epoch, payout from separate registry, mint via token + RewardClaimed",
        "claim.1.warm",
        "claim.1.warm",
    ),
]


class FloorBench:
    """Deploys the probes next to the measured system and measures each floor, warm."""

    def __init__(self, bench: GasBench, *, sizes: Sequence[int] = FLOOR_BATCH_SIZES) -> None:
        from nodeclient.receipts.signing import address_of_key

        self.b = bench
        self.web3 = bench.web3
        self.log = bench.log
        self.deployer = bench.deployer
        self.submitter = bench.submitter
        self.sizes = tuple(sizes)
        self.figures: dict[str, GasFigure] = {}
        self.notes: list[str] = []
        pool = max(self.sizes)
        self.consumer_keys = [_key(f"floor consumer {i}") for i in range(pool)]
        self.consumers = [address_of_key(k) for k in self.consumer_keys]
        self.channels: dict[tuple[str, str], _Channel] = {}
        self._address_of_key = address_of_key
        from scripts.deploy_system import load_project

        self.project = load_project()

    # --- plumbing ------------------------------------------------------------------------------

    def _deploy(self, name: str, *args: Any) -> Any:
        """Deploy with web3 (no Brownie confirmation loop) and return the Brownie contract object."""
        container = self.project[name]
        factory = self.web3.eth.contract(abi=container.abi, bytecode=container.bytecode)
        tx_hash = factory.constructor(*args).transact({"from": self.deployer.address})
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if int(receipt["status"]) != 1:
            raise GasScenarioError("floors", f"deploying {name} reverted")
        return container.at(receipt["contractAddress"])

    def _record(
        self, key: str, label: str, tx: _Sent, *, count: int = 1, unit: str = "tx", conditions: str
    ) -> None:
        figure = GasFigure(
            key=key,
            label=label,
            gas_used=int(tx.gas_used),
            count=count,
            unit=unit,
            conditions=conditions,
            tx_hashes=[tx.txid],
            calldata_bytes=len(bytes.fromhex(tx.input[2:])),
        )
        self.figures[key] = figure
        per = f" ({figure.per_unit:,} per {unit})" if count > 1 else ""
        self.log(f"  {key:<38} {figure.gas_used:>10,}{per}")

    def _node(self, label: str) -> str:
        return self._address_of_key(_key(f"floor node {label}"))

    def _receipt(self, index: int, node: str) -> tuple[tuple[Any, ...], str, bytes]:
        """The channel's next cumulative receipt (+1 MiB, +1 unit) under the probe's domain."""
        return next_receipt(
            self.channels, self.consumer_keys[index], self.consumers[index], node, self.domain, self.b._now()
        )

    def _batch(self, size: int, node: str) -> tuple[list[tuple[Any, ...]], list[str], bytes]:
        from nodeclient.receipts.crypto import merkle_root

        receipts, signatures, digests = [], [], []
        for index in range(size):
            args, signature, digest = self._receipt(index, node)
            receipts.append(args)
            signatures.append(signature)
            digests.append(digest)
        return receipts, signatures, merkle_root(digests)

    def _send_batch(self, scenario: str, fn_name: str, size: int, node: str) -> _Sent:
        receipts, signatures, root = self._batch(size, node)
        fn = getattr(self.settlement, fn_name)
        logged = "Logged" in fn_name
        if fn_name.endswith("Packed"):
            from nodeclient.receipts.packing import pack_receipt_args

            packed = b"".join(pack_receipt_args(r, sig) for r, sig in zip(receipts, signatures, strict=True))
            args: tuple[Any, ...] = (node, packed, root) if logged else (node, packed)
        else:
            args = (receipts, signatures, root) if logged else (receipts, signatures)
        tx = self.b._send(scenario, fn, *args, sender=self.submitter)
        if logged:
            # The probe is not in the bench's event decoder: count its ReceiptSettled logs by topic.
            topic = self.settlement.topics["ReceiptSettled"]
            logs = self.web3.eth.get_transaction_receipt(tx.txid)["logs"]
            settled = sum(
                1
                for entry in logs
                if entry["topics"] and "0x" + bytes(entry["topics"][0]).hex().removeprefix("0x") == topic
            )
            if settled != size:
                raise GasScenarioError(scenario, f"{settled} ReceiptSettled events for {size} receipts")
        return tx

    def _warm_pair(self, send: Callable[[str], _Sent], scenario: str) -> _Sent:
        """Prime then measure in one probe epoch (node weight and epoch total nonzero → nonzero)."""
        for _attempt in range(3):
            self.b._room(self.b.epoch_length // 2)
            epoch = int(self.settlement.currentEpoch())
            send(scenario + " (prime)")
            measured = send(scenario)
            if int(self.settlement.currentEpoch()) == epoch:
                return measured
        raise GasScenarioError(scenario, "prime and measured transaction kept landing in different epochs")

    def _check_channel(self, scenario: str, index: int, node: str, *, funded: bool = False) -> None:
        """The probe's channel advanced by exactly what the receipts owed (consumers are funded)."""
        consumer = self.consumers[index]
        expected = self.channels[(consumer, node)]
        if funded:
            _, amount, nbytes = self.settlement.fundedChannelOf(consumer, node)
        else:
            amount, nbytes = self.settlement.channelOf(consumer, node)
        if (int(amount), int(nbytes)) != (expected.amount, expected.nbytes):
            raise GasScenarioError(
                scenario, f"channel at ({amount}, {nbytes}), expected ({expected.amount}, {expected.nbytes})"
            )

    # --- settlement floors ---------------------------------------------------------------------

    def settlement_floors(self) -> None:
        from eth_utils import to_checksum_address

        from nodeclient.receipts.signing import ReceiptDomain

        self.log("floors: SettlementFloorProbe (pooled and per-channel escrow)")
        rewards = self.b.s.rewards
        self.settlement = self._deploy(
            "SettlementFloorProbe", int(rewards.genesis()), int(rewards.epochLength())
        )
        self.domain = ReceiptDomain(
            chain_id=self.b.ctx.chain_id,
            verifying_contract=to_checksum_address(self.settlement.address),
            name=FLOOR_DOMAIN_NAME,
        )
        per_consumer = 10**6 * UNIT
        self.b._bulk(
            "floors setup",
            self.deployer,
            [(self.settlement, "fund", (c, per_consumer)) for c in self.consumers],
        )
        node_s = self._node("settle")
        single = self._warm_pair(
            lambda scenario: self.b._send(
                scenario, self.settlement.settlePooled, *self._receipt(0, node_s)[:2], sender=self.submitter
            ),
            "floor.settle.pooled",
        )
        self._check_channel("floor.settle.pooled", 0, node_s)
        self._record(
            "floor.settle.pooled",
            "settlePooled (probe), warm channel",
            single,
            conditions="probe: one receipt, EIP-712 + ecrecover, channel + pooled consumer balance, node "
            "credit, accrued fee, node epoch weight, epoch total, all in one contract; no event, no external "
            "call, no registry read; channel settled before, node aggregates nonzero this epoch",
        )
        what_of = {
            "pooled": "per receipt: channel + pooled consumer balance; no events",
            "pooled_logged": (
                "per receipt: channel + pooled consumer balance + ReceiptSettled (every field, digest, "
                "signature, paid, fee); one BatchSettled"
            ),
            "channel_funded": (
                "per receipt: one per-channel escrow slot (funded, settled amount, bytes); no pooled "
                "balance; no events"
            ),
        }
        calldata_abi = "ABI calldata (Receipt[] and bytes[] signatures, 384 bytes a receipt)"
        calldata_packed = (
            "packed calldata as ReceiptSettlement.settleManyPacked (node once, 161 bytes a receipt, the "
            "EIP-712 words rebuilt in one reused memory array)"
        )
        models = []
        for model, fn_name, _ in BATCH_MODELS:
            models.append((model, fn_name, f"{calldata_abi}; {what_of[model]}"))
            models.append((f"{model}_packed", f"{fn_name}Packed", f"{calldata_packed}; {what_of[model]}"))
        for size in self.sizes:
            for model, fn_name, what in models:
                node = self._node(f"{model} {size}")
                funded = model.startswith("channel_funded")
                if funded:
                    self.b._bulk(
                        "floors setup",
                        self.deployer,
                        [
                            (self.settlement, "fundChannel", (c, node, 10**6 * UNIT))
                            for c in self.consumers[:size]
                        ],
                    )
                key = f"floor.settleMany.{size}.{model}"
                tx = self._warm_pair(
                    lambda scenario, f=fn_name, n=node, k=size: self._send_batch(scenario, f, k, n), key
                )
                for index in (0, size - 1):
                    self._check_channel(key, index, node, funded=funded)
                self._record(
                    key,
                    f"{fn_name}({size}) (probe), warm",
                    tx,
                    count=size,
                    unit="receipt",
                    conditions=f"probe: {what}; node credit, fee, node epoch weight and epoch total once per "
                    "batch; distinct consumers, every channel settled before, node aggregates nonzero this epoch",
                )

    # --- claim floors --------------------------------------------------------------------------

    def claim_floors(self) -> None:
        self.log("floors: ClaimFloorProbe (one warm epoch)")
        probe = self._deploy("ClaimFloorProbe")
        token = self.project["FloorRewardToken"].at(probe.token())
        weight, paid, total = 3 * 10**15, 10_000 * 10**18, 7 * 10**15
        reward = weight * paid // total
        variants = [
            ("mint_inline_no_event", "claimMintInline" + "NoEvent", probe, "inline _mint, no event"),
            ("mint_inline", "claimMintInline", probe, "inline _mint (no external call) + RewardClaimed"),
            (
                "via_token",
                "claimViaToken",
                token,
                (
                    "mint through a separate OZ ERC20 whose minter is immutable (one external call, no "
                    "AccessControl read) + RewardClaimed"
                ),
            ),
            (
                "via_token_registry",
                "claimViaTokenAndRegistry",
                token,
                (
                    "payout read by an external call to a separate minimal registry (instead of this "
                    "contract's mapping), mint through the separate token (two external calls) + RewardClaimed"
                ),
            ),
        ]
        registry = self.project["FloorPayoutRegistry"].at(probe.registry())
        setup: list[tuple[Any, str, tuple[Any, ...]]] = []
        for epoch in (1, 2):
            setup.append((probe, "setEpoch", (epoch, paid, total)))
        for model, _, _, _ in variants:
            node = self._node(f"claim {model}")
            payout = self._address_of_key(_key(f"floor payout {model}"))
            setup.append((probe, "setPayout", (node, payout)))
            setup.append((registry, "setPayout", (node, payout)))
            setup += [(probe, "setRecord", (node, epoch, weight)) for epoch in (1, 2)]
        self.b._bulk("floors setup", self.deployer, setup)
        for model, fn_name, minted, what in variants:
            node = self._node(f"claim {model}")
            payout = self._address_of_key(_key(f"floor payout {model}"))
            fn = getattr(probe, fn_name)
            self.b._send("floors prime", fn, node, 1, sender=self.submitter)  # payout now holds tokens
            before = int(minted.balanceOf(payout))
            tx = self.b._send(f"floor.claim.{model}", fn, node, 2, sender=self.submitter)
            if int(minted.balanceOf(payout)) - before != reward:
                raise GasScenarioError(
                    f"floor.claim.{model}", "the claim did not mint weight × paid / totalCapped"
                )
            self._record(
                f"floor.claim.{model}",
                f"{fn_name} (probe), 1 epoch, warm",
                tx,
                unit="epoch",
                conditions=f"probe: (node, epoch) record read and marked claimed, epoch {{paid, totalCapped}} "
                f"read, payout read from a mapping in the same contract, reward = weight × paid / totalCapped, "
                f"{what}; payout already holds the token, record and epoch nonzero, epoch not yet claimed",
            )

    def run_all(self) -> dict[str, Any]:
        started = time.monotonic()
        self.settlement_floors()
        self.claim_floors()
        return {
            "status": "ok",
            "seconds": round(time.monotonic() - started, 1),
            "figures": {k: f.as_dict() for k, f in self.figures.items()},
            "notes": self.notes,
        }


def run(
    ctx: BenchContext,
    log: Callable[[str], None] = print,
    *,
    bench: GasBench | None = None,
    sizes: Sequence[int] = FLOOR_BATCH_SIZES,
) -> dict[str, Any]:
    """Deploy the probes on ``ctx``'s chain and measure every floor; never raises.

    Returns ``{"status": "ok", "figures": {...}}`` or ``{"status": "failed", "error": ..., "figures":
    what was measured before the failure}``.
    """
    floors: FloorBench | None = None
    try:
        floors = FloorBench(bench or GasBench(ctx, trace=False, log=log), sizes=sizes)
        return floors.run_all()
    except Exception as exc:  # noqa: BLE001 - reported in results.json; the real figures are kept
        return {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "figures": {k: f.as_dict() for k, f in (floors.figures.items() if floors else [])},
            "notes": floors.notes if floors else [],
        }
