"""Fixtures for driving the real ``kuota`` client against the deployed system on the test Anvil.

Each module gets the system deployed (root ``kuota`` fixture), a manifest written to a temp dir, and
a ``KUOTA_HOME`` of its own with keystores of Anvil's funded accounts (scrypt n=2**10 so the suite
stays fast on two cores; the production default is used by the tests of ``account new``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account

from nodeclient.cli.main import cli
from nodeclient.keys import KeyManager, Secret
from tests.conftest import ROOT, anvil_private_key

PASSWORD = "correct horse battery staple"

# Roles of the client tests → Anvil account index (the root conftest uses 0-8 for Brownie roles).
ROLES = {"deployer": 0, "operator": 3, "operator2": 4, "consumer": 5, "consumer2": 6, "node": 10, "node2": 11, "newkey": 12, "payout": 13}


@dataclass
class KuotaEnv:
    """One installation of the client: its home, manifest, network flags and runner helpers."""

    home: Path
    manifest: Path
    rpc_url: str
    chain_id: int
    addresses: dict[str, str]
    password_file: Path
    contracts: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a CLI run: this home, this network, no password in the environment."""
        return {
            "KUOTA_HOME": str(self.home),
            "KUOTA_RPC_URL": self.rpc_url,
            "KUOTA_CHAIN_ID": str(self.chain_id),
            "KUOTA_MANIFEST": str(self.manifest),
            "KUOTA_PASSWORD": "",
        }

    def run(self, *args: str, input: str | None = None, extra_env: dict[str, str] | None = None) -> Any:
        """Run ``kuota ARGS`` in-process through click's CliRunner."""
        runner = CliRunner()
        env = {**self.env, **(extra_env or {})}
        return runner.invoke(cli, list(args), env=env, input=input, catch_exceptions=False)

    def ok(self, *args: str, **kwargs: Any) -> Any:
        """Run and assert exit 0; return the parsed JSON if ``--json`` was passed, else the result."""
        result = self.run(*args, **kwargs)
        assert result.exit_code == 0, f"kuota {' '.join(args)} exited {result.exit_code}:\n{result.output}\n{getattr(result, 'stderr', '')}"
        if "--json" in args:
            return json.loads(result.stdout.strip().splitlines()[-1])
        return result

    def subprocess(
        self, *args: str, timeout: float = 120, env_extra: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess:
        """Run the installed ``kuota`` entry point in a real subprocess."""
        env = {**os.environ, **self.env, **(env_extra or {})}
        env.pop("KUOTA_PASSWORD", None)
        return subprocess.run(
            [str(Path(sys.executable).parent / "kuota"), *args],
            env=env, cwd=str(self.home), capture_output=True, text=True, timeout=timeout, check=False, **kwargs,
        )

    def subprocess_popen(self, *args: str) -> subprocess.Popen:
        """Start ``kuota ARGS`` in a subprocess without waiting (for kill tests)."""
        env = {**os.environ, **self.env}
        env.pop("KUOTA_PASSWORD", None)
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "kuota"), *args], env=env, cwd=str(self.home),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def pw(self) -> list[str]:
        """``--password-file`` flags."""
        return ["--password-file", str(self.password_file)]


def make_home(tmp: Path, rpc_url: str, manifest: dict[str, Any], roles: dict[str, int] | None = None) -> KuotaEnv:
    """A fresh KUOTA_HOME with the manifest and keystores for ``roles``."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    manifest_path = tmp / "deployments" / f"{manifest['chainId']}.json"
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest))
    password_file = tmp / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    keys = KeyManager(home / "data", kdf_iterations=2**10)
    addresses: dict[str, str] = {}
    for role, index in (roles or ROLES).items():
        info = keys.import_private_key(role, Secret(anvil_private_key(index)), Secret(PASSWORD))
        addresses[role] = info.address
    return KuotaEnv(
        home=home, manifest=manifest_path, rpc_url=rpc_url, chain_id=int(manifest["chainId"]), addresses=addresses,
        password_file=password_file, contracts=dict(manifest["contracts"]),
    )


@pytest.fixture(scope="module")
def kenv(kuota, rpc_url, tmp_path_factory) -> KuotaEnv:
    """A client installation against this module's deployment."""
    return make_home(tmp_path_factory.mktemp("kuota"), rpc_url, kuota.manifest)


@pytest.fixture(scope="module")
def funded(kuota, kenv, accounts):
    """KUOTA for the operators and mock USD for the consumers (from the deployer, via Brownie)."""
    deployer = accounts[0]
    for role in ("operator", "operator2"):
        kuota.token.transfer(kenv.addresses[role], 10_000 * 10**18, {"from": deployer})
    for role in ("consumer", "consumer2"):
        kuota.payment_token.mint(kenv.addresses[role], 1_000 * 10**6, {"from": deployer})
    return kenv


@pytest.fixture
def fresh(funded, kuota, rpc_url, tmp_path) -> KuotaEnv:
    """A new client home (empty journal and store) against the module's funded deployment."""
    return make_home(tmp_path / "fresh", rpc_url, kuota.manifest)


def anvil_key(index: int) -> str:
    """Re-export for tests that need raw keys (leak checks)."""
    return anvil_private_key(index)


__all__ = ["PASSWORD", "ROLES", "ROOT", "Account", "KuotaEnv", "anvil_key", "make_home"]
