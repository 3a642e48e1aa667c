"""Root fixtures: role-named accounts, the RPC URL of the test chain, and the deployed Kuota system.

Brownie's pytest plugin launches Anvil on ``KUOTA_ANVIL_PORT`` (chosen free by tools/run_tests.py).
Its ``module_isolation`` resets the chain at the start of every module, so the system fixture is
module-scoped; ``fn_isolation`` then snapshots after it and reverts after each test.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from eth_account import Account

ROOT = Path(__file__).resolve().parents[1]
# tests/standalone runs without Brownie, in .venv-latest, through tools/client_latest.sh (`make test`
# calls it after this suite): it needs the chain that script starts, not this suite's fixtures.
collect_ignore = ["standalone"]
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"

Account.enable_unaudited_hdwallet_features()


def anvil_private_key(index: int) -> str:
    """Private key (0x-hex) of Anvil's default account ``index``: for tests that drive the real client."""
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key.hex()


def _port_is_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pytest_configure(config):
    """Point Brownie's development network at this run's own port, and refuse a stale chain there.

    Brownie attaches silently to anything already listening on its port; an Anvil orphaned by an
    unclean exit would make this run test against an old chain. Brownie connects only after
    collection, so changing its network config here takes effect.
    """
    from brownie._config import CONFIG

    # Every `kuota node serve` a test starts gets its HTTP service on a free port, not the fixed
    # default 7448 that parallel runs (and two nodes in one test) would fight over.
    os.environ.setdefault("KUOTA_WEB__PORT", "0")

    port = int(os.environ.get("KUOTA_ANVIL_PORT", "8545"))
    if _port_is_taken(port):
        pytest.exit(
            f"something already listens on 127.0.0.1:{port}; refusing to attach to a stale chain "
            "(run the tests through tools/run_tests.py, which picks a free port)",
            returncode=4,
        )
    settings = CONFIG.networks["development"].setdefault("cmd_settings", {})
    settings.update({"port": port, "accounts": 20, "base_fee": 0})
    # The client reads Foundry's ETH_RPC_URL; one left in a developer's shell must not point the
    # client under test at another chain (tests that exercise it set it themselves).
    os.environ.pop("ETH_RPC_URL", None)


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    pass


@pytest.fixture(scope="session")
def rpc_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('KUOTA_ANVIL_PORT', '8545')}"


@pytest.fixture(scope="session")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def treasury(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def slasher(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def operator(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def operator2(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def consumer(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def consumer2(accounts):
    return accounts[6]


@pytest.fixture(scope="session")
def auditor(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[8]


@pytest.fixture(scope="session")
def local_params(treasury, slasher) -> dict:
    params = json.loads((ROOT / "scripts" / "params" / "local.json").read_text())
    params["treasury"] = treasury.address
    params["slasher"] = slasher.address
    return params


@pytest.fixture(scope="module")
def kuota(deployer, local_params):
    """The whole system, deployed by the same code path as ``scripts/deploy.py``."""
    from scripts.deploy import deploy_system

    return deploy_system(deployer, local_params, manifest_path=None)
