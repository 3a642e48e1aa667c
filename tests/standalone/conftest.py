"""Fixtures of the standalone client tests: no Brownie, only the installed ``nodeclient``.

``tools/client_latest.sh`` runs these in ``.venv-latest`` (newest web3/eth-account) with
``--confcutdir`` so that the Brownie conftest of ``tests/`` is never loaded. The chain is the one the
script started with ``kuota chain up`` in ``$KUOTA_HOME``, the system deployed on it by Brownie from
the dev venv; the ``local`` profile finds both through the state file, so no flag names them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account

from nodeclient.cli.main import cli
from nodeclient.keys import KeyManager, Secret
from nodeclient.localchain import ANVIL_MNEMONIC

PASSWORD = "correct horse battery staple"
# Anvil account index of each role (0 deployed the system and holds the KUOTA supply).
ROLES = {"deployer": 0, "operator": 3, "consumer": 5, "node": 10}

Account.enable_unaudited_hdwallet_features()


@dataclass(frozen=True)
class Standalone:
    """The client installation under test: its home, keystore addresses and password file."""

    home: Path
    addresses: dict[str, str]
    password_file: Path

    def run(self, *args: str) -> Any:
        return CliRunner().invoke(cli, list(args), env={"KUOTA_HOME": str(self.home), "KUOTA_PASSWORD": ""},
                                  catch_exceptions=False)

    def ok(self, *args: str) -> Any:
        """Run and assert exit 0; the parsed JSON under ``--json``, else the result."""
        result = self.run(*args)
        assert result.exit_code == 0, f"kuota {' '.join(args)} exited {result.exit_code}:\n{result.output}"
        return json.loads(result.stdout.strip().splitlines()[-1]) if "--json" in args else result

    def pw(self) -> list[str]:
        return ["--password-file", str(self.password_file)]


@pytest.fixture(scope="session")
def kuota_home() -> Path:
    home = os.environ.get("KUOTA_HOME")
    if not home or not (Path(home) / "chain.json").is_file():
        pytest.exit("tests/standalone run through tools/client_latest.sh (it starts and deploys the chain)", 2)
    return Path(home)


@pytest.fixture(scope="session")
def k(kuota_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Standalone:
    password_file = tmp_path_factory.mktemp("pw") / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    keys = KeyManager(kuota_home / "data", kdf_iterations=2**10)
    addresses = {}
    for role, index in ROLES.items():
        key = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key.hex()
        addresses[role] = keys.import_private_key(role, Secret(key), Secret(PASSWORD)).address
    return Standalone(kuota_home, addresses, password_file)
