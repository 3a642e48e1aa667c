"""Local development chains (Anvil, or Ganache 7): start, inspect, attach to and stop them safely.

A chain started here is recorded in a state file (``$KUOTA_HOME/chain.json``): its pid, the process's
start time and command line, its URL, chain id and genesis hash. Everything that later uses the chain
checks that record against reality first, because a state file outlives the process it describes:

- the pid may be dead, or reused by an unrelated program (start time and command line differ);
- something else may answer on the port (a different genesis hash, or a different chain id).

In each of those cases we refuse to attach (``StaleChainError``) and ``stop_chain`` refuses to kill:
it only ever signals the process group it started itself, after the identity check.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import requests

from nodeclient._utils.abi_fragments import MOCK_MINT_ABI
from nodeclient._utils.files import atomic_write
from nodeclient.errors import EXIT_REFUSED, ChainError, ConfigError, InsufficientFundsError, NotFoundError

__all__ = [
    "ANVIL_MNEMONIC",
    "DEFAULT_CHAIN_ID",
    "ChainAlreadyRunningError",
    "ChainKind",
    "ChainNotRunningError",
    "ChainStartError",
    "ChainState",
    "ChainStatus",
    "ExecutableNotFoundError",
    "LocalChainError",
    "ManagedChain",
    "PortInUseError",
    "StaleChainError",
    "advance_time",
    "attach",
    "chain_status",
    "exit_with_parent",
    "find_executable",
    "free_port",
    "fund_account",
    "kuota_home",
    "port_is_free",
    "read_state",
    "record_manifest",
    "start_chain",
    "state_path",
    "stop_chain",
]

#: The well-known development mnemonic (Anvil's and Hardhat's default). Its keys are public: never
#: use these accounts on a real network.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID = 31337
LOOPBACK = "127.0.0.1"

ChainKind = Literal["anvil", "ganache"]
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


class LocalChainError(ChainError):
    """A local chain could not be started, inspected or stopped."""


class ExecutableNotFoundError(NotFoundError):
    """The chain executable (anvil or ganache) is not installed where we look."""

    def __init__(self, kind: str, searched: list[str]) -> None:
        super().__init__(
            f"cannot find the {kind} executable (looked in {', '.join(searched)} and on PATH); "
            "run `make setup` to install the pinned toolchain"
        )


class PortInUseError(LocalChainError):
    """The requested port already has a listener: we never start a second chain on it or attach to it."""

    exit_code = EXIT_REFUSED

    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__(f"port {port} on {LOOPBACK} is already in use; pick another with --port or omit it for a free one")


class ChainAlreadyRunningError(LocalChainError):
    """A chain recorded in the state file is still running."""

    exit_code = EXIT_REFUSED

    def __init__(self, state: ChainState) -> None:
        super().__init__(
            f"a local {state.kind} chain is already running at {state.url} (pid {state.pid}); "
            "run `kuota chain down` first"
        )


class ChainNotRunningError(NotFoundError):
    """No chain is recorded in the state file."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"no local chain is recorded in {path}; start one with `kuota chain up`")


class StaleChainError(LocalChainError):
    """The state file describes a chain that is gone or has been replaced: refuse to use it."""

    exit_code = EXIT_REFUSED

    def __init__(self, path: Path, reason: str) -> None:
        self.reason = reason
        super().__init__(f"refusing to attach to the chain recorded in {path}: {reason}")


class ChainStartError(LocalChainError):
    """The chain process exited or did not answer in time; the message quotes its last log lines."""


@dataclass(frozen=True)
class ChainState:
    """What we recorded about a chain we started."""

    kind: str
    pid: int
    host: str
    port: int
    url: str
    chain_id: int
    genesis_hash: str
    started_at: str
    process_start: str
    cmdline: list[str] = field(default_factory=list)
    log_path: str = ""
    accounts: int = 20
    manifest: str | None = None

    def to_json(self) -> str:
        """The state file's content."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, path: Path) -> ChainState:
        """Parse a state file; ``ConfigError`` naming the file if it is not ours or is damaged."""
        try:
            raw = json.loads(text)
            return cls(**raw)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"local chain state file {path} is damaged ({exc}); delete it") from None


@dataclass(frozen=True)
class ChainStatus:
    """Result of checking a state file against the live process and RPC."""

    state: ChainState | None
    running: bool
    problem: str | None
    block_number: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for ``kuota chain status --json``."""
        out: dict[str, Any] = {"running": self.running, "problem": self.problem, "blockNumber": self.block_number}
        if self.state is not None:
            out.update(
                {
                    "kind": self.state.kind,
                    "pid": self.state.pid,
                    "url": self.state.url,
                    "port": self.state.port,
                    "chainId": self.state.chain_id,
                    "genesisHash": self.state.genesis_hash,
                    "startedAt": self.state.started_at,
                    "log": self.state.log_path,
                    "manifest": self.state.manifest,
                }
            )
        return out


# --- locations and executables -----------------------------------------------------------------


def kuota_home(home: str | Path | None = None) -> Path:
    """Kuota's data directory: ``home``, else ``$KUOTA_HOME``, else the platform's user data dir."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("KUOTA_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("kuota", appauthor=False)


def state_path(home: str | Path | None = None) -> Path:
    """The local chain state file: ``<home>/chain.json``."""
    return kuota_home(home) / "chain.json"


def find_executable(kind: str) -> list[str]:
    """The argv prefix that runs ``kind`` (``anvil`` or ``ganache``).

    Anvil: the native binary npm installed (not the Node wrapper, which would put a second process
    between us and the chain), else ``anvil`` on PATH. Ganache: ``node`` + its CLI script.
    """
    modules = _PROJECT_ROOT / "node_modules"
    if kind == "anvil":
        native = sorted(modules.glob("@foundry-rs/anvil-*/bin/anvil"))
        searched = [str(modules / "@foundry-rs/anvil-*/bin/anvil")]
        for candidate in native:
            if os.access(candidate, os.X_OK):
                return [str(candidate)]
        found = shutil.which("anvil")
        if found:
            return [found]
        raise ExecutableNotFoundError(kind, searched)
    if kind == "ganache":
        script = modules / "ganache" / "dist" / "node" / "cli.js"
        node = shutil.which("node")
        if script.is_file() and node:
            return [node, str(script)]
        found = shutil.which("ganache")
        if found:
            return [found]
        raise ExecutableNotFoundError(kind, [str(script)])
    raise ConfigError(f"unknown chain kind {kind!r}; expected 'anvil' or 'ganache'")


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if nothing listens on ``host:port`` and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# --- processes ---------------------------------------------------------------------------------


def _psutil() -> Any:
    """psutil, imported on first use: it belongs to the development install, not the runtime one."""
    try:
        import psutil
    except ImportError:
        raise LocalChainError(
            "managing a local chain needs psutil, which the runtime install leaves out; "
            "install it with: pip install 'kuota-nodeclient[localchain]'"
        ) from None
    return psutil


def _process_identity(pid: int) -> tuple[list[str], str] | None:
    """(command line, start-time token) of a live, non-zombie process, or None if there is none."""
    psutil = _psutil()
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.cmdline(), _start_token(proc)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _start_token(proc: Any) -> str:
    """When ``proc`` started, in a form that stays equal for the life of the process.

    On Linux that is the start time in clock ticks since boot (/proc/<pid>/stat field 22): psutil's
    ``create_time`` adds the boot time the kernel derives from the wall clock, which moves when the
    clock is stepped (a VM resuming, NTP), so one process could look like another. Elsewhere,
    ``create_time`` is what there is.
    """
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return f"{proc.create_time():.2f}"
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    return "ticks:" + stat.rpartition(")")[2].split()[19]


def _listens_on(pid: int, port: int) -> bool | None:
    """Whether ``pid`` (or a child, for wrapper scripts) listens on ``port``; None if we cannot tell."""
    psutil = _psutil()
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            # psutil 6 renamed connections() to net_connections(); the dev pins still have 5.9.
            lister = getattr(proc, "net_connections", None) or proc.connections
            for conn in lister(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return True
    except psutil.AccessDenied:
        return None
    except psutil.NoSuchProcess:
        return False
    return False


def _identity_problem(state: ChainState) -> str | None:
    identity = _process_identity(state.pid)
    if identity is None:
        return f"process {state.pid} is no longer running"
    cmdline, started = identity
    if not _same_start(started, state) or cmdline != state.cmdline:
        shown = " ".join(cmdline)[:120] or "?"
        return f"pid {state.pid} now belongs to a different program ({shown})"
    return None


def _same_start(started: str, state: ChainState) -> bool:
    if state.process_start.startswith("ticks:") or started == state.process_start:
        return started == state.process_start
    # A record written before start times were kept in clock ticks: a create_time, good to a second.
    psutil = _psutil()
    try:
        return abs(psutil.Process(state.pid).create_time() - float(state.process_start)) < 1.0
    except (psutil.Error, ValueError):
        return False


def _listener_problem(state: ChainState) -> str | None:
    # Two chains started in the same second have the same genesis hash (same mnemonic, same
    # timestamp), so the genesis check alone cannot tell them apart: the port must be our process's.
    if _listens_on(state.pid, state.port) is False:
        return f"process {state.pid} does not listen on the recorded port {state.port}"
    return None


def _reap(pid: int) -> None:
    # If the chain is our own child (tests, the demo), collect its exit status so no zombie is left.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# --- RPC ---------------------------------------------------------------------------------------


def _rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 3.0) -> Any:
    response = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=timeout
    )
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        raise LocalChainError(f"{method} on {url} failed: {body['error'].get('message', body['error'])}")
    return body["result"]


def _genesis_hash(url: str) -> str:
    return str(_rpc(url, "eth_getBlockByNumber", ["0x0", False])["hash"])


# --- start / status / stop ---------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _command(kind: str, port: int, chain_id: int, accounts: int, block_time: int | None) -> list[str]:
    argv = find_executable(kind)
    if kind == "anvil":
        argv += [
            "--host", LOOPBACK, "--port", str(port), "--chain-id", str(chain_id),
            "--accounts", str(accounts), "--mnemonic", ANVIL_MNEMONIC,
        ]
        if block_time:
            argv += ["--block-time", str(block_time)]
        return argv
    # Ganache 7: shanghai is its newest fork and the EVM version the contracts are compiled for.
    argv += [
        "--server.host", LOOPBACK, "--server.port", str(port), "--chain.chainId", str(chain_id),
        "--chain.hardfork", "shanghai", "--wallet.totalAccounts", str(accounts),
        "--wallet.mnemonic", ANVIL_MNEMONIC, "--wallet.defaultBalance", "10000",
    ]
    if block_time:
        argv += ["--miner.blockTime", str(block_time)]
    return argv


def _write_state(path: Path, state: ChainState) -> None:
    atomic_write(path, state.to_json())


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def read_state(home: str | Path | None = None) -> ChainState | None:
    """The recorded chain, or None if there is no state file."""
    path = state_path(home)
    try:
        return ChainState.from_json(path.read_text(), path)
    except FileNotFoundError:
        return None


def _rpc_problem(state: ChainState) -> tuple[str | None, int | None]:
    try:
        chain_id = int(_rpc(state.url, "eth_chainId"), 16)
        genesis = _genesis_hash(state.url)
        block = int(_rpc(state.url, "eth_blockNumber"), 16)
    except (requests.RequestException, LocalChainError, ValueError, KeyError, TypeError) as exc:
        return f"the RPC at {state.url} does not answer ({type(exc).__name__})", None
    if chain_id != state.chain_id:
        return f"the RPC at {state.url} is chain {chain_id}, not the recorded {state.chain_id}", block
    if genesis != state.genesis_hash:
        return f"the RPC at {state.url} has genesis {genesis}, not the recorded {state.genesis_hash}", block
    return None, block


def chain_status(home: str | Path | None = None) -> ChainStatus:
    """Check the recorded chain: process identity, then RPC chain id and genesis hash."""
    state = read_state(home)
    if state is None:
        return ChainStatus(state=None, running=False, problem="no chain recorded")
    problem = _identity_problem(state) or _listener_problem(state)
    if problem is not None:
        return ChainStatus(state=state, running=False, problem=problem)
    problem, block = _rpc_problem(state)
    return ChainStatus(state=state, running=problem is None, problem=problem, block_number=block)


def attach(home: str | Path | None = None) -> ChainState:
    """The recorded chain if it is exactly the one we started and it answers; else raise.

    Raises:
        ChainNotRunningError: nothing is recorded.
        StaleChainError: the process is gone or replaced, or the RPC is a different chain.
    """
    path = state_path(home)
    status = chain_status(home)
    if status.state is None:
        raise ChainNotRunningError(path)
    if not status.running:
        raise StaleChainError(path, status.problem or "unknown problem")
    return status.state


def _check_start_arguments(kind: str, port: int | None, chain_id: int, accounts: int) -> None:
    if kind not in ("anvil", "ganache"):
        raise ConfigError(f"unknown chain kind {kind!r}; expected 'anvil' or 'ganache'")
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 0 < chain_id < 2**53:
        raise ConfigError(f"chain id must be a positive integer below 2**53, got {chain_id!r}")
    if port is not None and (isinstance(port, bool) or not 1024 <= port < 65536):
        # Privileged ports are refused even as root: a dev chain has no business there.
        raise ConfigError(f"port must be between 1024 and 65535, got {port}")
    if not 1 <= accounts <= 1000:
        raise ConfigError(f"accounts must be between 1 and 1000, got {accounts}")


def _fork_and_fee_arguments(kind: str, fork_url: str | None, base_fee_wei: int | None) -> list[str]:
    argv: list[str] = []
    if fork_url is not None:
        if kind != "anvil":
            raise ConfigError("forking is supported with anvil only")
        # auto-impersonate: a dry run sends from the real deployer's address without its key.
        argv += ["--fork-url", fork_url, "--auto-impersonate"]
    if base_fee_wei is not None:
        if isinstance(base_fee_wei, bool) or not isinstance(base_fee_wei, int) or base_fee_wei < 0:
            raise ConfigError(f"base fee must be a non-negative integer of wei, got {base_fee_wei!r}")
        # An L2-like fee level for demos; Ganache has no equivalent flag, so Anvil only.
        if kind != "anvil":
            raise ConfigError("an initial base fee can be set with anvil only")
        argv += ["--block-base-fee-per-gas", str(base_fee_wei)]
    return argv


def _clear_stale_record(home: str | Path | None) -> None:
    previous = read_state(home)
    if previous is not None:
        if _identity_problem(previous) is None:
            raise ChainAlreadyRunningError(previous)
        # The recorded process is gone (or its pid was reused): the record is stale, not a chain.
        state_path(home).unlink(missing_ok=True)


def _launch(argv: list[str], log_path: Path, die_with_parent: bool) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        # A new session: the chain survives the `kuota chain up` process, and stop_chain can signal
        # exactly this process group (the chain and any helper it spawned), nothing else.
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Only prctl runs between fork and exec (no lock is taken), which is safe with threads.
            preexec_fn=exit_with_parent if die_with_parent else None,  # noqa: PLW1509
        )


def _kill_and_fail(proc: subprocess.Popen[bytes], message: str) -> ChainStartError:
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)
    return ChainStartError(message)


def _await_genesis(proc: subprocess.Popen[bytes], kind: str, url: str, chain_id: int, timeout: float, log: Path) -> str:
    """The genesis hash once the new chain answers as ``chain_id``; kills it and raises otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ChainStartError(f"{kind} exited with code {proc.returncode} before answering on {url}: {_tail(log)}")
        try:
            answered = int(_rpc(url, "eth_chainId", timeout=1.0), 16)
            genesis = _genesis_hash(url)
        except (requests.RequestException, LocalChainError, ValueError, KeyError):
            time.sleep(0.1)
            continue
        if answered != chain_id:
            raise _kill_and_fail(proc, f"{kind} on {url} reports chain id {answered}, expected {chain_id}")
        return genesis
    raise _kill_and_fail(proc, f"{kind} did not answer on {url} within {timeout:.0f} s: {_tail(log)}")


def start_chain(
    *,
    kind: str = "anvil",
    port: int | None = None,
    chain_id: int = DEFAULT_CHAIN_ID,
    home: str | Path | None = None,
    accounts: int = 20,
    block_time: int | None = None,
    fork_url: str | None = None,
    base_fee_wei: int | None = None,
    die_with_parent: bool = False,
    timeout: float = 60.0,
) -> ChainState:
    """Start a chain on ``port`` (or a free one), wait until it answers, record it, and return it.

    Raises:
        ChainAlreadyRunningError: the recorded chain's process is still alive.
        PortInUseError: the requested port is taken.
        ChainStartError: the process exited or did not answer within ``timeout`` seconds.
    """
    _check_start_arguments(kind, port, chain_id, accounts)
    path = state_path(home)
    _clear_stale_record(home)
    if port is not None and not port_is_free(port):
        raise PortInUseError(port)
    chosen = port if port is not None else free_port()
    argv = _command(kind, chosen, chain_id, accounts, block_time) + _fork_and_fee_arguments(kind, fork_url, base_fee_wei)
    log_path = path.parent / f"chain-{kind}-{chosen}.log"
    proc = _launch(argv, log_path, die_with_parent)
    url = f"http://{LOOPBACK}:{chosen}"
    genesis = _await_genesis(proc, kind, url, chain_id, timeout, log_path)
    identity = _process_identity(proc.pid)
    if identity is None:
        raise ChainStartError(f"{kind} (pid {proc.pid}) exited right after starting: {_tail(log_path)}")
    cmdline, started = identity
    state = ChainState(
        kind=kind, pid=proc.pid, host=LOOPBACK, port=chosen, url=url, chain_id=chain_id, genesis_hash=genesis,
        started_at=_now(), process_start=started, cmdline=cmdline, log_path=str(log_path), accounts=accounts,
    )
    _write_state(path, state)
    return state


def exit_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux: have the kernel send SIGTERM to the chain when the process that owns it dies, even by
    # SIGKILL, so a chain owned by a demo or a test run can never outlive it. Elsewhere a no-op.
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        # Only ever our own group: we started the chain as a session leader, so pgid == pid.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def record_manifest(manifest: str | Path, home: str | Path | None = None) -> ChainState:
    """Remember the deployment manifest of the running local chain (the ``local`` profile reads it)."""
    state = attach(home)
    updated = ChainState(**{**asdict(state), "manifest": str(Path(manifest).resolve())})
    _write_state(state_path(home), updated)
    return updated


def stop_chain(home: str | Path | None = None, timeout: float = 10.0) -> str:
    """Stop the recorded chain if (and only if) it is the process we started; remove the record.

    Returns a one-line description of what happened.

    Raises:
        ChainNotRunningError: nothing is recorded.
    """
    path = state_path(home)
    state = read_state(home)
    if state is None:
        raise ChainNotRunningError(path)
    problem = _identity_problem(state)
    if problem is not None:
        path.unlink(missing_ok=True)
        return f"not stopping anything: {problem}; removed the stale record {path}"
    _signal_group(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(state.pid)
        if _process_identity(state.pid) is None:
            break
        time.sleep(0.05)
    else:
        _signal_group(state.pid, signal.SIGKILL)
        time.sleep(0.1)
        _reap(state.pid)
    path.unlink(missing_ok=True)
    return f"stopped {state.kind} (pid {state.pid}) at {state.url}"


# --- development conveniences on the recorded chain --------------------------------------------

def _web3(state: ChainState) -> Any:
    from nodeclient.chain.rpc import connect

    return connect(state.url, timeout=30)


def fund_account(
    address: str,
    *,
    eth_wei: int = 0,
    usd_units: int = 0,
    kuota_wei: int = 0,
    home: str | Path | None = None,
) -> dict[str, Any]:
    """Give ``address`` ether, MockUSD and KUOTA on the recorded local chain (a faucet for development).

    Ether comes from the chain's first unlocked account, MockUSD is minted (its mint is open: it only
    exists on local chains), KUOTA is transferred from the deployer (the first unlocked account holds
    the initial supply after `kuota deploy local`). Only ever acts on the chain `kuota chain up`
    recorded, after the same identity checks as ``attach``.

    Returns the transaction hashes and the new balances.
    """
    from eth_utils import is_checksum_address

    from nodeclient.abi import load_abi
    from nodeclient.deployment import load_manifest

    if not isinstance(address, str) or not is_checksum_address(address):
        raise ConfigError(f"address {address!r} is not a checksummed address")
    for name, value in (("eth", eth_wei), ("usd", usd_units), ("kuota", kuota_wei)):
        if value < 0:
            raise ConfigError(f"--{name} amount must not be negative, got {value}")
    state = attach(home)
    w3 = _web3(state)
    funder = w3.eth.accounts[0]
    txs: dict[str, str] = {}

    def send(label: str, tx: dict[str, Any]) -> None:
        tx_hash = w3.eth.send_transaction({"from": funder, **tx})
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1:
            raise LocalChainError(f"funding {label} for {address} failed in transaction {tx_hash.hex()}")
        txs[label] = "0x" + bytes(tx_hash).hex().removeprefix("0x")

    if eth_wei:
        send("eth", {"to": address, "value": eth_wei})
    balances: dict[str, int] = {"eth": int(w3.eth.get_balance(address))}
    if usd_units or kuota_wei:
        if not state.manifest:
            raise NotFoundError(f"no contracts are deployed on the chain at {state.url}; run `kuota deploy local` first")
        deployment = load_manifest(state.manifest, expected_chain_id=state.chain_id)
        usd = w3.eth.contract(address=deployment.address("PaymentToken"), abi=MOCK_MINT_ABI + load_abi("PaymentToken"))
        token = w3.eth.contract(address=deployment.address("KuotaToken"), abi=load_abi("KuotaToken"))
        if usd_units:
            send("usd", usd.functions.mint(address, usd_units).build_transaction({"from": funder}))
        if kuota_wei:
            held = int(token.functions.balanceOf(funder).call())
            if held < kuota_wei:
                raise InsufficientFundsError(f"the faucet account {funder} holds {held} KUOTA wei, less than {kuota_wei}")
            send("kuota", token.functions.transfer(address, kuota_wei).build_transaction({"from": funder}))
        balances["usd"] = int(usd.functions.balanceOf(address).call())
        balances["kuota"] = int(token.functions.balanceOf(address).call())
    return {"address": address, "transactions": txs, "balances": balances}


def advance_time(seconds: int | None = None, home: str | Path | None = None, *, next_epoch: bool = False) -> dict[str, int]:
    """Move the recorded local chain's clock forward and mine a block.

    Either by ``seconds``, or (``next_epoch``) to one second into the next RewardPool epoch, so that
    what follows has a whole epoch before the next boundary.
    """
    state = attach(home)
    before = int(_rpc(state.url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    epoch: int | None = None
    if next_epoch:
        if seconds is not None:
            raise ConfigError("give either a number of seconds or --next-epoch, not both")
        from nodeclient.abi import load_abi
        from nodeclient.deployment import load_manifest

        if not state.manifest:
            raise NotFoundError(f"no contracts are deployed on the chain at {state.url}; run `kuota deploy local` first")
        deployment = load_manifest(state.manifest, expected_chain_id=state.chain_id)
        pool = _web3(state).eth.contract(address=deployment.address("RewardPool"), abi=load_abi("RewardPool"))
        genesis = int(pool.functions.genesis().call())
        length = int(pool.functions.epochLength().call())
        # The latest block may be old and the chain's clock may run ahead of ours (earlier advances):
        # mine one block to learn the chain's "now", then aim at an absolute time from there.
        _rpc(state.url, "evm_mine", [])
        now = int(_rpc(state.url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        epoch = (now - genesis) // length + 1
        target = genesis + epoch * length + 1
        try:
            _rpc(state.url, "evm_setNextBlockTimestamp", [target])
            _rpc(state.url, "evm_mine", [])
        except LocalChainError:
            # Ganache 7 has no evm_setNextBlockTimestamp; its evm_mine takes the timestamp instead.
            _rpc(state.url, "evm_mine", [{"timestamp": target}])
    else:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 < seconds <= 10 * 365 * 86_400:
            raise ConfigError(f"seconds must be a positive integer of at most ten years, got {seconds!r}")
        _rpc(state.url, "evm_increaseTime", [seconds])
        _rpc(state.url, "evm_mine", [])
    latest = _rpc(state.url, "eth_getBlockByNumber", ["latest", False])
    out = {"blockNumber": int(latest["number"], 16), "timestamp": int(latest["timestamp"], 16), "previous": before}
    if epoch is not None:
        out["epoch"] = epoch
    return out


class ManagedChain:
    """A chain owned by this Python process: started on enter, stopped on exit and at interpreter exit.

    Used by the demo and the tests so that no chain outlives them, even on an exception or Ctrl-C.
    """

    def __init__(self, home: str | Path, **start_kwargs: Any) -> None:
        self.home = Path(home)
        self.start_kwargs = start_kwargs
        self.state: ChainState | None = None

    def start(self) -> ChainState:
        """Start the chain and register the atexit stop."""
        self.start_kwargs.setdefault("die_with_parent", True)
        self.state = start_chain(home=self.home, **self.start_kwargs)
        atexit.register(self.stop)
        return self.state

    def stop(self) -> None:
        """Stop the chain if it is still ours; safe to call twice."""
        if self.state is None:
            return
        try:
            stop_chain(self.home)
        except ChainNotRunningError:
            pass
        finally:
            self.state = None
            atexit.unregister(self.stop)

    def __enter__(self) -> ChainState:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # pragma: no cover - manual smoke test
    s = start_chain(home=sys.argv[1] if len(sys.argv) > 1 else None)
    print(s.to_json())
