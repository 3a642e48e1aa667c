"""Exactly-once effects of the money-moving commands under RPC faults.

The real ``kuota`` commands (``stake add``, ``stake unbond``, ``escrow deposit``, ``receipts
settle``, ``rewards claim``) talk to the test Anvil through :class:`FaultProxy`. A clean run first
lists the JSON-RPC methods a command uses; then, for the last call of every such
method and every fault kind, the command runs once with that fault injected, and the chain is read
directly (not through the proxy) for the command's effect:

* **ok**: the command succeeded and its effect is on chain exactly once;
* **clean error**: it exited with a one-line error and a non-zero code, its effect is there at most
  once, and a rerun (no fault) succeeds with the effect exactly once;
* **bad**: anything else (a traceback, a double or a missing effect, a rerun that fails).

The client's own retries are off (``rpc_retries = 0``) for the whole matrix, so every fault reaches
the code that sends, confirms and journals; one more pass with one retry (the shipped policy) over
the broadcast and the receipt reads shows those faults are then absorbed. The closing table counts the outcomes by
fault kind; ``bad`` must be 0.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from brownie import chain

from tests.client.conftest import KuotaEnv, make_home
from tests.faults.proxy import FAULT_KINDS, Fault, FaultProxy

CLIENT_TIMEOUT = 1.0  # seconds per JSON-RPC request (the profile's request_timeout)
HOLD = CLIENT_TIMEOUT + 0.4  # a "timeout" fault holds the request this long, past the client's patience
USD = 10**6
KUOTA = 10**18
OUTCOMES = ("ok", "clean error", "bad")
# With the shipped retry policy these faults must be absorbed: the raw transaction may be resent
# (same bytes, same hash) and the receipt read is a read.
RETRY_PASS = ("eth_sendRawTransaction", "eth_getTransactionReceipt")


@dataclass
class Tally:
    """Outcomes by (command, fault kind), and what went wrong in each bad case."""

    counts: Counter[tuple[str, str, str]]
    bad: list[str]

    def add(self, command: str, kind: str, outcome: str, detail: str = "") -> None:
        self.counts[(command, kind, outcome)] += 1
        print(f"{time.monotonic():.1f} {command} / {kind}: {outcome} {detail if outcome == 'bad' else ''}", flush=True)
        if outcome == "bad":
            self.bad.append(f"{command} / {kind}: {detail}")

    def table(self) -> str:
        commands = sorted({c for c, _, _ in self.counts})
        lines = [f"{'command':<24}{'fault':<10}" + "".join(f"{o:>13}" for o in OUTCOMES)]
        for command in commands:
            for kind in FAULT_KINDS:
                row = [self.counts[(command, kind, o)] for o in OUTCOMES]
                if any(row):
                    lines.append(f"{command:<24}{kind:<10}" + "".join(f"{n:>13}" for n in row))
        totals = [sum(n for (_, _, o), n in self.counts.items() if o == out) for out in OUTCOMES]
        by_kind = {k: sum(n for (_, kk, _), n in self.counts.items() if kk == k) for k in FAULT_KINDS}
        lines.append(f"{'total':<34}" + "".join(f"{n:>13}" for n in totals))
        lines.append("faults injected by kind: " + ", ".join(f"{k} {n}" for k, n in by_kind.items()))
        return "\n".join(lines)


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    result = Tally(Counter(), [])
    yield result
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    text = "\nRPC fault matrix (outcomes per injected fault)\n" + result.table() + "\n"
    if reporter is not None:
        reporter.write_line(text)
    (Path(str(request.config.rootpath)) / "build" / "fault-matrix.txt").write_text(text)


@pytest.fixture(scope="module")
def proxy(rpc_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(rpc_url, hold=HOLD) as running:
        yield running


class World:
    """A client home whose RPC is the fault proxy, plus direct (unproxied) runs for the setup."""

    def __init__(self, k: KuotaEnv, direct_url: str, proxy: FaultProxy) -> None:
        self.k = k
        self.direct = {"KUOTA_RPC_URL": direct_url}
        self.proxy = proxy
        self.retries(0)

    def retries(self, n: int) -> None:
        """Write the profile: short request time-out, ``n`` client retries, bounded tx waits."""
        (self.k.home / "config.toml").write_text(
            f"[networks.local]\nrequest_timeout = {CLIENT_TIMEOUT}\nrpc_retries = {n}\ntx_timeout = 20\nstuck_after = 15\n"
        )

    def setup(self, *args: str) -> Any:
        """Run a command straight against Anvil (no faults) and require success."""
        return self.k.ok(*args, extra_env=self.direct)

    def spend(self, *args: str, account: str) -> tuple[str, ...]:
        return (*args, "--account", account, *self.k.pw(), "--yes", "--json")


@pytest.fixture
def world(funded: KuotaEnv, kuota: Any, rpc_url: str, proxy: FaultProxy, tmp_path: Path) -> World:
    """A new home through the proxy, with a staked, registered node and a funded consumer escrow."""
    w = World(make_home(tmp_path / "home", proxy.url, kuota.manifest), rpc_url, proxy)
    k = w.k
    w.setup(*w.spend("stake", "add", "3000", account="operator"))
    w.setup(
        *w.spend("node", "register", "--node-account", "node", "--payout", k.addresses["payout"], "--price", "0.25",
                 "--capacity", "100", "--region", "eu-west", account="operator")
    )
    w.setup(*w.spend("escrow", "deposit", "600", account="consumer"))
    return w


def methods_of(w: World, run: Callable[[], Any]) -> Counter[str]:
    """JSON-RPC methods (and call counts) of one clean run of a command through the proxy."""
    w.proxy.arm(Fault("none", "none"))
    result = run()
    assert result.exit_code == 0, result.output
    calls = Counter(w.proxy.calls)
    w.proxy.disarm()
    return calls


def faults_for(calls: Counter[str]) -> list[Fault]:
    """Every kind at the last call of every method the command uses.

    The last call is the one that matters: for the methods of the send path it comes after the
    broadcast (the transaction may be mined while the client sees an error), for reads it is the
    report after the effect; the first calls are reads before anything is signed. ``FAULTS_FIRST=1``
    adds the first calls too (four times as long on a loaded two-core machine).
    """
    out = []
    for method, count in sorted(calls.items()):
        occurrences = {1, count} if os.environ.get("FAULTS_FIRST") == "1" else {count}
        out.extend(Fault(method, kind, n) for n in sorted(occurrences) for kind in FAULT_KINDS)
    return out


def run_case(
    w: World,
    tally: Tally,
    command: str,
    fault: Fault,
    run: Callable[[], Any],
    measure: Callable[[], tuple[int, ...]],
    expected: tuple[int, ...],
) -> None:
    """Inject ``fault`` into one run of the command and classify the outcome (see module docstring)."""
    before = measure()

    def delta() -> tuple[int, ...]:
        return tuple(a - b for a, b in zip(measure(), before, strict=True))

    w.proxy.arm(fault)
    try:
        first = run()
    except Exception as exc:  # noqa: BLE001 - an escaped exception is a bad outcome, counted and reported
        w.proxy.disarm()
        w.proxy.wait_idle()
        tally.add(command, fault.kind, "bad", f"{fault.method}#{fault.occurrence}: {type(exc).__name__}: {exc}")
        return
    w.proxy.disarm()
    w.proxy.wait_idle()  # a held request may still reach the node: let it, then look
    if not fault.fired:
        return  # this run took another path (fewer calls): nothing was injected
    what = f"{fault.method}#{fault.occurrence}"
    if first.exit_code == 0:
        got = delta()
        outcome = "ok" if got == expected else "bad"
        tally.add(command, fault.kind, outcome, f"{what}: succeeded with effect {got}, expected {expected}")
        return
    message = first.output.strip().splitlines()[-1] if first.output.strip() else ""
    partial = delta()
    clean = first.exit_code not in (0, 1) and "Traceback" not in first.output
    if not clean or any(p not in (0, e) for p, e in zip(partial, expected, strict=True)):
        tally.add(command, fault.kind, "bad", f"{what}: exit {first.exit_code}, effect {partial}: {message}")
        return
    rerun = run()
    got = delta()
    if rerun.exit_code != 0 or got != expected:
        tally.add(command, fault.kind, "bad", f"{what}: rerun exit {rerun.exit_code}, effect {got}: {rerun.output[-300:]}")
        return
    tally.add(command, fault.kind, "clean error")


def run_matrix(
    w: World,
    tally: Tally,
    command: str,
    run: Callable[[], Any],
    measure: Callable[[], tuple[int, ...]],
    expected: Callable[[], tuple[int, ...]],
    prepare: Callable[[], None] = lambda: None,
) -> None:
    """The whole matrix of one command, then the retry pass over the broadcast and the receipt reads.

    ``prepare`` runs before every case (fresh receipts, a new reward); ``expected`` is read after it.
    """
    prepare()
    calls = methods_of(w, run)
    cases = [(fault, command, 0) for fault in faults_for(calls)]
    cases += [
        (Fault(method, kind, calls[method]), f"{command} (retry)", 1) for method in RETRY_PASS for kind in FAULT_KINDS
    ]
    for fault, label, retries in cases:
        w.retries(retries)
        prepare()
        run_case(w, tally, label, fault, run, measure, expected())
    w.retries(0)


def test_stake_add_and_unbond_happen_exactly_once_under_rpc_faults(world, kuota, tally):
    w, operator = world, world.k.addresses["operator"]

    def bonded() -> tuple[int, ...]:
        return (kuota.staking.bondedOf(operator), kuota.staking.unbondingOf(operator)[0])

    add = w.spend("stake", "add", "1", account="operator")
    run_matrix(w, tally, "stake add", lambda: w.k.run(*add), bonded, lambda: (1 * KUOTA, 0))
    unbond = w.spend("stake", "unbond", "1", account="operator")
    run_matrix(w, tally, "stake unbond", lambda: w.k.run(*unbond), bonded, lambda: (-1 * KUOTA, 1 * KUOTA))
    assert not tally.bad, "\n".join(tally.bad)


def test_escrow_deposit_happens_exactly_once_under_rpc_faults(world, kuota, tally):
    w, consumer = world, world.k.addresses["consumer2"]

    def escrowed() -> tuple[int, ...]:
        return (kuota.escrow.accountOf(consumer)[0], -kuota.payment_token.balanceOf(consumer))

    deposit = w.spend("escrow", "deposit", "1", account="consumer2")
    run_matrix(w, tally, "escrow deposit", lambda: w.k.run(*deposit), escrowed, lambda: (1 * USD, 1 * USD))
    assert not tally.bad, "\n".join(tally.bad)


class Receipts:
    """Cumulative receipts of the consumer for the node, one more USD each time."""

    def __init__(self, w: World, tmp: Path) -> None:
        self.w = w
        self.cumulative = 0
        self.file = tmp / "receipts.jsonl"

    def next(self) -> None:
        """Sign one more USD and import it into the node's store (no RPC faults in the setup)."""
        self.cumulative += 1
        k, node = self.w.k, self.w.k.addresses["node"]
        self.file.unlink(missing_ok=True)
        self.w.setup("receipts", "sign", "--node", node, "--amount", str(self.cumulative), "--bytes",
                     str(self.cumulative * 2**30), "--latency-ms", "40", "--out", str(self.file),
                     "--account", "consumer", *k.pw())
        self.w.setup("receipts", "import", str(self.file), "--node", node, "--json")


def test_receipts_settle_happens_exactly_once_under_rpc_faults(world, kuota, tally, tmp_path):
    w = world
    node, consumer = w.k.addresses["node"], w.k.addresses["consumer"]
    receipts = Receipts(w, tmp_path)

    def settled() -> tuple[int, ...]:
        return (kuota.settlement.channelOf(consumer, node)[0], kuota.escrow.creditOf(node))

    fee = USD * kuota.settlement.feeBps() // 10_000
    settle = w.spend("receipts", "settle", "--node", node, "--force", account="operator")
    run_matrix(
        w, tally, "receipts settle", lambda: w.k.run(*settle), settled, lambda: (USD, USD - fee), receipts.next
    )
    assert not tally.bad, "\n".join(tally.bad)


def test_rewards_claim_happens_exactly_once_under_rpc_faults(world, kuota, tally, tmp_path):
    w = world
    node, payout = w.k.addresses["node"], w.k.addresses["payout"]
    receipts = Receipts(w, tmp_path)
    owed: dict[str, int] = {}

    def earn() -> None:
        """Settle one more USD, let its epoch end, and note what the node may claim."""
        receipts.next()
        w.setup(*w.spend("receipts", "settle", "--node", node, "--force", account="operator"))
        chain.sleep(kuota.rewards.epochLength() + 1)
        chain.mine()
        owed["claimable"] = w.setup("rewards", "show", "--node", node, "--json")["claimableTotal"]
        assert owed["claimable"] > 0

    def rewarded() -> tuple[int, ...]:
        return (kuota.token.balanceOf(payout),)

    claim = w.spend("rewards", "claim", "--node", node, "--force", account="operator")
    run_matrix(w, tally, "rewards claim", lambda: w.k.run(*claim), rewarded, lambda: (owed["claimable"],), earn)
    assert not tally.bad, "\n".join(tally.bad)
