"""Fixtures for the deploy tests: chains of our own on free ports, and the deploy script as a process.

Chains started here belong to this test process (``ManagedChain``): they are stopped at the end of
each test, and at interpreter exit if a test dies first. Nothing here touches port 8545.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import HTTPProvider, Web3

from nodeclient.localchain import ChainState, ManagedChain

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_SCRIPT = ROOT / "scripts" / "deploy.py"
SCRIPT_TIMEOUT = 300


def run_deploy_script(args: list[str], env: dict[str, str] | None = None, timeout: float = SCRIPT_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``scripts/deploy.py`` with this interpreter; output captured as text."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, str(DEPLOY_SCRIPT), *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object a ``--json`` run prints as its last stdout line."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    assert lines, "no output on stdout"
    return json.loads(lines[-1])


def web3_at(url: str) -> Web3:
    return Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))


@pytest.fixture
def start_chain(tmp_path: Path) -> Iterator[Callable[..., ChainState]]:
    """Start chains of our own (free ports, one KUOTA_HOME each); all stopped after the test."""
    chains: list[ManagedChain] = []

    def start(name: str = "chain", **kwargs: Any) -> ChainState:
        managed = ManagedChain(tmp_path / f"home-{name}", **kwargs)
        chains.append(managed)
        return managed.start()

    yield start
    for managed in chains:
        managed.stop()
