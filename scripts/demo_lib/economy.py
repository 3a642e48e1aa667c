"""The demo economy, step by step, through the real ``kuota`` CLI.

Cast: three node operators (each with a wallet and a node key, different prices, capacities and
distances), two consumers, one auditor. The chain is an Anvil this process starts and always stops.

1. chain up (Anvil, free port, L2-like base fee) and ``kuota deploy local``
2. accounts for everyone (``kuota account new``), local faucet (``kuota chain fund``)
3. operators: ``kuota stake add`` then ``kuota node register``
4. consumers: ``kuota escrow deposit``
5. operators run ``kuota node serve`` (the metered relay); consumers ``kuota consume fetch`` real
   bytes from a loopback HTTP server through each node, over links with different latencies, signing
   receipts as bytes arrive
6. operators: ``kuota receipts settle`` (gas-aware policy) — then the epoch ends (``kuota chain advance``)
7. operators: ``kuota rewards claim`` and ``kuota node withdraw-earnings``
8. one consumer: ``kuota escrow thaw``, thawing period passes, ``kuota escrow withdraw``
9. the auditor: ``kuota audit replay`` over the chain and the bundles the operators published
10. the summary, from ``kuota earnings``, ``kuota receipts list`` and ``kuota escrow show``
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeclient.localchain import ManagedChain, exit_with_parent, free_port
from scripts.demo_lib.content import ContentServer
from scripts.demo_lib.netem import DelayLink
from scripts.demo_lib.runner import KUOTA_BIN, Actor, KuotaRunner, StepFailed

__all__ = ["DemoConfig", "NodeSpec", "run_economy"]

MIB = 1024 * 1024
USD = 10**6  # MockUSD has 6 decimals
ROOT = Path(__file__).resolve().parents[2]

#: Base fee the demo chain starts at (0.001 gwei) and the fee cap every actor's client applies: the
#: level of an L2 where bandwidth micro-payments are meant to settle. The gas-aware policy prices
#: gas at its default 3000 USD per ETH.
BASE_FEE_WEI = 1_000_000
MAX_FEE_GWEI = 0.001


@dataclass(frozen=True)
class NodeSpec:
    """One operator's node: price (USD per GiB), capacity, region and one-way distance (ms)."""

    name: str
    price_usd_per_gib: str
    capacity_mbps: int
    region: str
    one_way_ms: float


@dataclass(frozen=True)
class DemoConfig:
    """What the economy looks like. ``traffic[consumer][node]`` is MiB fetched, per round."""

    nodes: tuple[NodeSpec, ...] = (
        NodeSpec("op-lisbon", "3.00", 200, "eu-west", 10.0),
        NodeSpec("op-ohio", "2.00", 500, "us-east", 90.0),
        NodeSpec("op-mumbai", "1.25", 100, "ap-south", 230.0),
    )
    consumers: tuple[str, ...] = ("alice", "bob")
    #: MiB each consumer fetches through each node, one matrix per epoch. Sized so that in the first
    #: epoch the cheapest node has earned less than the settlement threshold: the gas-aware policy
    #: defers it, and it settles everything at the end of the second epoch.
    rounds: tuple[tuple[tuple[int, ...], ...], ...] = (
        ((8, 6, 4), (4, 8, 6)),
        ((4, 4, 4), (4, 8, 4)),
    )
    deposit_usd: str = "25"
    stake_kuota: str = "1500"
    subprocess_mode: bool = False
    verbose: bool = False
    keep: bool = False


class DemoError(StepFailed):
    """Raised when a check between steps fails (a figure the demo relies on is not what it should be)."""

    def __init__(self, step: str, problem: str) -> None:
        Exception.__init__(self, f"step '{step}' failed: {problem}")
        self.step = step
        self.exit_code = 1


class Relay:
    """A ``kuota node serve`` process of one operator, reached through a delay link."""

    def __init__(self, actor: Actor, content_port: int, log_dir: Path, one_way_ms: float) -> None:
        self.actor = actor
        self.ready_file = actor.home / "relay.ready"
        self.log_path = log_dir / f"relay-{actor.name}.log"
        env = {**os.environ, **actor.env}
        # Each node's HTTP service (metrics, bundles, the dashboard) on its own free loopback port:
        # the default, 7448, can be had by one node only.
        self.web_port = free_port()
        args = [
            str(KUOTA_BIN), "node", "serve",
            "--node-account", "node",
            "--host", "127.0.0.1", "--port", "0", "--web-port", str(self.web_port),
            "--allow-private-targets", "--allow-port", str(content_port),
            "--no-settle", "--ready-file", str(self.ready_file),
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                args,
                env={k: v for k, v in env.items() if v is not None},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Even if the demo is killed with SIGKILL, the kernel stops its relays (Linux).
                preexec_fn=exit_with_parent,  # noqa: PLW1509 - only prctl runs in the child
            )
        self.one_way_ms = one_way_ms
        self.port = 0
        self.link: DelayLink | None = None

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"{self.actor.name} relay", f"`kuota node serve` exited {self.proc.returncode}: {_tail(self.log_path)}")
            if self.ready_file.is_file():
                parts = self.ready_file.read_text().split()
                if len(parts) >= 2 and parts[1].isdigit():
                    self.port = int(parts[1])
                    self.link = DelayLink(self.port, self.one_way_ms).start()
                    return
            time.sleep(0.1)
        raise DemoError(f"{self.actor.name} relay", f"not ready after {timeout:.0f} s: {_tail(self.log_path)}")

    @property
    def address(self) -> str:
        assert self.link is not None
        return f"127.0.0.1:{self.link.port}"

    def stop(self) -> None:
        if self.link is not None:
            self.link.stop()
            self.link = None
        if self.proc.poll() is None:
            # SIGINT: the relay's own graceful shutdown (stores flushed, sessions closed).
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def _tail(path: Path, lines: int = 6) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


def _config_toml(url: str, manifest: Path) -> str:
    return (
        'network = "demo"\n'
        'account = "main"\n\n'
        "[networks.demo]\n"
        f'rpc_url = "{url}"\n'
        "chain_id = 31337\n"
        f'manifest = "{manifest}"\n'
        "confirmations = 1\n"
        f"max_fee_gwei = {MAX_FEE_GWEI}\n\n"
        "[settlement]\n"
        "min_value = 20000          # settle once 0.02 USD is owed...\n"
        "max_gas_share_bps = 1000   # ...and gas costs at most 10 % of it\n\n"
        "[rewards]\n"
        "min_value = 1000           # claim once 0.001 USD of rewards (at the reference price) is due...\n"
        "max_gas_share_bps = 2000   # ...and gas costs at most 20 % of it\n"
    )


class Economy:
    """Holds the demo's state between steps; ``run`` drives them and returns the summary."""

    def __init__(self, config: DemoConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.log_dir = workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.runner = KuotaRunner(subprocess_mode=config.subprocess_mode, verbose=config.verbose, log_dir=self.log_dir)
        self.chain = ManagedChain(workdir / "chain", base_fee_wei=BASE_FEE_WEI)
        self.content = ContentServer()
        self.relays: list[Relay] = []
        self.operators: list[Actor] = []
        self.consumers: list[Actor] = []
        self.auditor: Actor | None = None
        self.manifest_path: Path | None = None
        self.timings: dict[str, float] = {}
        self.facts: dict[str, Any] = {}
        # Unset the user's own KUOTA_* variables for every actor: the demo must not touch their setup.
        self._clean_env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("KUOTA_")}

    # -- plumbing ------------------------------------------------------------------------------

    def _phase(self, name: str) -> _Phase:
        return _Phase(self, name)

    def kuota(self, step: str, actor: Actor | None, *args: str) -> Any:
        return self.runner.run(step, actor, list(args))

    def _actor(self, name: str, role: str, url: str) -> Actor:
        home = self.workdir / "actors" / name
        home.mkdir(parents=True, exist_ok=True)
        assert self.manifest_path is not None
        (home / "config.toml").write_text(_config_toml(url, self.manifest_path))
        env = {
            **self._clean_env,
            "KUOTA_HOME": str(home),
            # A fresh random password per actor and run; it only ever travels in this environment.
            "KUOTA_PASSWORD": secrets.token_urlsafe(18),
        }
        return Actor(name=name, role=role, home=home, env=env)

    # -- the steps -----------------------------------------------------------------------------

    def start(self) -> None:
        with self._phase("chain up + deploy"):
            state = self.chain.start()
            self.facts["chain"] = {"url": state.url, "chainId": state.chain_id, "pid": state.pid}
            chain_env = {**self._clean_env, "KUOTA_HOME": str(self.chain.home)}
            # `kuota deploy` runs Brownie, which narrates every transaction on stderr: run it as a
            # process so that narration lands in the log, not on the summary's terminal.
            out = self.runner.run("deploy", None, ["deploy", "local", "--json"], env=chain_env, as_process=True)
            self.manifest_path = Path(out["manifestPath"])
            self.facts["deploy"] = {"transactions": out["transactions"], "gasUsed": out["gasUsed"]}
            self.facts["contracts"] = out["manifest"]["contracts"]
            self.epoch_length = int(out["manifest"]["params"]["epochLength"])
            self.thawing_period = int(out["manifest"]["params"]["thawingPeriod"])
            self.content.start()
        self._chain_env = chain_env

    def chain_cmd(self, step: str, *args: str) -> Any:
        return self.runner.run(step, None, ["chain", *args], env=self._chain_env)

    def new_account(self, step: str, actor: Actor, alias: str) -> str:
        """Create ``alias`` for ``actor`` through ``kuota account import``.

        The key is fresh and random; its keystore uses a cheap scrypt cost (n = 2**12) because these
        are throw-away accounts on a throw-away chain and a default-cost keystore (n = 2**18) takes
        a second or more to open on a small machine, for every command. ``kuota account new`` keeps
        the default cost. The seed file is deleted as soon as it is imported.
        """
        from eth_account import Account

        password = actor.env["KUOTA_PASSWORD"]
        assert password is not None
        seed = actor.home / f".seed-{alias}.json"
        keystore = Account.encrypt(Account.create().key, password, kdf="scrypt", iterations=2**12)
        seed.write_text(json.dumps(keystore))
        seed.chmod(0o600)
        try:
            out = self.kuota(step, actor, "account", "import", alias, "--keystore-file", str(seed), "--json")
        finally:
            seed.unlink(missing_ok=True)
        return str(out["address"])

    def accounts(self) -> None:
        url = self.facts["chain"]["url"]
        with self._phase("accounts + faucet"):
            for spec in self.config.nodes:
                op = self._actor(spec.name, "operator", url)
                op.address = self.new_account("account", op, "main")
                op.node_address = self.new_account("node key", op, "node")
                op.extra["spec"] = spec
                self.operators.append(op)
                # Operators need KUOTA to stake and a little ether for gas; node keys never send transactions.
                self.chain_cmd("faucet", "fund", op.address, "--eth", "1", "--kuota", self.config.stake_kuota, "--json")
            for name in self.config.consumers:
                consumer = self._actor(name, "consumer", url)
                consumer.address = self.new_account("account", consumer, "main")
                self.consumers.append(consumer)
                self.chain_cmd("faucet", "fund", consumer.address, "--eth", "1", "--usd", self.config.deposit_usd, "--json")
            self.auditor = self._actor("auditor", "auditor", url)

    def stake_and_register(self) -> None:
        with self._phase("stake + register"):
            for op in self.operators:
                spec: NodeSpec = op.extra["spec"]
                self.kuota("stake", op, "stake", "add", self.config.stake_kuota, "--yes", "--json")
                self.kuota(
                    "register", op, "node", "register",
                    "--node-account", "node",
                    "--price", spec.price_usd_per_gib,
                    "--capacity", str(spec.capacity_mbps),
                    "--region", spec.region,
                    "--metadata-uri", f"https://example.invalid/{spec.name}.json",
                    "--yes", "--json",
                )

    def deposit(self) -> None:
        with self._phase("escrow deposits"):
            for consumer in self.consumers:
                self.kuota("deposit", consumer, "escrow", "deposit", self.config.deposit_usd, "--yes", "--json")

    def start_relays(self) -> None:
        with self._phase("relays start"):
            for op in self.operators:
                self.relays.append(Relay(op, self.content.port, self.log_dir, op.extra["spec"].one_way_ms))
            for relay in self.relays:
                relay.wait_ready()
                if self.config.verbose:
                    print(f"   {relay.actor.name}: dashboard at http://127.0.0.1:{relay.web_port}/", file=sys.stderr)

    def epoch(self, number: int, matrix: tuple[tuple[int, ...], ...]) -> None:
        """One epoch: traffic through every relay, then each operator's gas-aware settlement."""
        if number == 0:
            # Start the first round at an epoch boundary too: every round then has a whole epoch
            # (60 s of chain time) for its traffic and settlements (see the report on gas margins).
            self.chain_cmd("align", "advance", "--next-epoch", "--json")
        with self._phase(f"round {number + 1}: traffic"):
            for consumer, sizes in zip(self.consumers, matrix):
                for relay, mib in zip(self.relays, sizes):
                    if mib <= 0:
                        continue
                    out = self.kuota(
                        "consume", consumer, "consume", "fetch", self.content.url(mib * MIB),
                        "--node", relay.actor.node_address, "--relay", relay.address,
                        "--output", os.devnull, "--json",
                    )
                    self.facts.setdefault("fetches", []).append(
                        {**out, "round": number + 1, "consumerName": consumer.name, "operator": relay.actor.name,
                         "requestedBytes": mib * MIB}
                    )
        with self._phase(f"round {number + 1}: settle"):
            for op in self.operators:
                out = self.kuota("settle", op, "receipts", "settle", "--yes", "--json")
                self.facts.setdefault("settlements", []).append({**out, "round": number + 1, "operator": op.name})
        with self._phase(f"round {number + 1}: epoch ends"):
            self.chain_cmd("advance", "advance", "--next-epoch", "--json")

    def stop_relays(self) -> None:
        with self._phase("relays stop"):
            for relay in self.relays:
                relay.stop()

    def claim(self) -> None:
        with self._phase("claim + withdraw earnings"):
            for op in self.operators:
                out = self.kuota("claim", op, "rewards", "claim", "--node", op.node_address, "--yes", "--json")
                record = {"policy": out.get("plan", {}).get("decision"), "forced": False, "result": out.get("result")}
                if out.get("result") is None:
                    # The gas-aware policy chose to wait (a demo's rewards are tiny next to gas); an
                    # operator may claim anyway, which the demo does so the payout is visible.
                    forced = self.kuota(
                        "claim (forced)", op, "rewards", "claim", "--node", op.node_address, "--force", "--yes", "--json"
                    )
                    record.update({"forced": True, "result": forced.get("result")})
                self.facts.setdefault("claims", {})[op.name] = record
                self.kuota("withdraw earnings", op, "node", "withdraw-earnings", op.node_address, "--yes", "--json")

    def refund_one_consumer(self) -> None:
        with self._phase("consumer thaws + withdraws"):
            leaver = self.consumers[-1]
            account = self.kuota("escrow show", leaver, "escrow", "show", "--json")
            available = int(account["available"])
            if available <= 0:
                raise DemoError("thaw", f"{leaver.name} has nothing available to thaw")
            self.kuota("thaw", leaver, "escrow", "thaw", str(available), "--units", "--yes", "--json")
            self.chain_cmd("advance", "advance", str(self.thawing_period + 1), "--json")
            self.facts["withdrawal"] = {
                "consumer": leaver.name,
                "result": self.kuota("withdraw", leaver, "escrow", "withdraw", "--yes", "--json"),
            }

    def audit(self) -> None:
        assert self.auditor is not None
        with self._phase("audit replay"):
            published = self.auditor.home / "bundles"
            published.mkdir(exist_ok=True)
            for op in self.operators:
                for bundle in (op.home / "data" / "bundles").glob("*.json"):
                    shutil.copy(bundle, published / bundle.name)
            self.facts["audit"] = self.runner.run(
                "audit", self.auditor,
                ["audit", "replay", "--allow-unconfirmed", "--bundles", str(published), "--jobs", "1", "--json"],
            )

    def collect(self) -> dict[str, Any]:
        with self._phase("summary"):
            nodes = []
            for op in self.operators:
                earnings = self.kuota("earnings", op, "earnings", "--node", op.node_address, "--json")
                channels = self.kuota("receipts", op, "receipts", "list", "--json")
                nodes.append({"operator": op, "earnings": earnings, "channels": channels})
            consumers = [
                {"consumer": c, "escrow": self.kuota("escrow show", c, "escrow", "show", "--json")} for c in self.consumers
            ]
        return {"nodes": nodes, "consumers": consumers}

    def stop(self) -> None:
        for relay in self.relays:
            try:
                relay.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"warning: stopping {relay.actor.name}'s relay: {exc}", file=sys.stderr)
        self.content.stop()
        self.chain.stop()


class _Phase:
    def __init__(self, economy: Economy, name: str) -> None:
        self.economy = economy
        self.name = name

    def __enter__(self) -> None:
        self.started = time.monotonic()
        if self.economy.config.verbose:
            print(f"== {self.name}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        self.economy.timings[self.name] = round(time.monotonic() - self.started, 2)


def run_economy(config: DemoConfig, workdir: Path) -> tuple[Economy, dict[str, Any]]:
    """Run every step; the chain and relays are stopped whatever happens."""
    economy = Economy(config, workdir)
    try:
        economy.start()
        economy.accounts()
        economy.stake_and_register()
        economy.deposit()
        economy.start_relays()
        for number, matrix in enumerate(config.rounds):
            economy.epoch(number, matrix)
        economy.stop_relays()
        economy.claim()
        economy.refund_one_consumer()
        economy.audit()
        collected = economy.collect()
    finally:
        economy.stop()
    return economy, collected
