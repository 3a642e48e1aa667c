"""A Ganache 7 node for the smoke test: started on a free loopback port, always stopped afterwards.

Only the process this fixture starts is ever signalled (by its own pid, never by name). Ganache runs
the shanghai fork, the newest it has, which is the EVM version the contracts are compiled for.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GANACHE_BIN = ROOT / "node_modules" / ".bin" / "ganache"
# Ganache's well-known development mnemonic: deliberately not Anvil's, so nothing here can work by
# accident against the Anvil chain of the test session.
GANACHE_MNEMONIC = "candy maple cake sugar pudding cream honey rich smooth crumble sweet treat"
GANACHE_CHAIN_ID = 1337
START_TIMEOUT_S = float(os.environ.get("KUOTA_GANACHE_START_TIMEOUT", "60"))


@dataclass(frozen=True)
class GanacheNode:
    url: str
    chain_id: int
    mnemonic: str
    pid: int


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rpc(url: str, method: str, timeout: float = 2.0):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["result"]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    # The process leads its own session (start_new_session), so this reaches Ganache and nothing else.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def ganache(tmp_path_factory) -> Iterator[GanacheNode]:
    if not GANACHE_BIN.exists():
        pytest.fail(f"{GANACHE_BIN} is missing: run `make setup` (npm installs Ganache 7)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("ganache") / "ganache.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            str(GANACHE_BIN),
            "--chain.hardfork",
            "shanghai",
            "--chain.chainId",
            str(GANACHE_CHAIN_ID),
            "--server.host",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--wallet.mnemonic",
            GANACHE_MNEMONIC,
            "--wallet.totalAccounts",
            "8",
            "--logging.quiet",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"Ganache exited with code {process.returncode}: {log_path.read_text()[-2000:]}")
            try:
                chain_id = int(_rpc(url, "eth_chainId"), 16)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Ganache did not answer on {url} within {START_TIMEOUT_S:.0f} s")
                time.sleep(0.25)
        yield GanacheNode(url=url, chain_id=chain_id, mnemonic=GANACHE_MNEMONIC, pid=process.pid)
    finally:
        _stop(process)
        log.close()
