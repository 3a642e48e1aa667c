"""Deploy the Kuota system: thin Brownie entry points over the pure, resumable ``deploy_system``.

The deployment itself (order, roles, resumable manifest) is :mod:`scripts.deploy_system`; its
names are re-exported here because ``scripts.deploy`` is where tests and tools have always found them.

Entry points (``brownie run scripts/deploy.py <fn>`` or plain ``python scripts/deploy.py``):

- ``main``  local development chain, ``scripts/params/local.json``, unlocked ``accounts[0]``.
- ``live``  a testnet by configuration alone: RPC from ``KUOTA_RPC_URL`` (or the ``--network`` Brownie
  is connected to), deployer from an encrypted keystore, EIP-1559 fees, a confirmation depth;
  ``KUOTA_DRY_RUN=1`` prints the plan and the estimated gas instead (see ``plan``).
- ``plan``  the dry run on its own: deploys on a throw-away Anvil fork of the target chain and
  reports every step with the gas it really used, without sending anything to the target.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    # `python scripts/deploy.py` and `brownie run` put scripts/ first on sys.path, not the root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.deploy_system import (
    DEPLOY_ORDER,
    DEPLOYMENTS_DIR,
    PARAMS_DIR,
    ROOT,
    SystemDeployment,
    TxOptions,
    deploy_system,
    load_params,
    manifest_path_for,
    validate_params,
)

__all__ = [
    "DEPLOYMENTS_DIR",
    "DEPLOY_ORDER",
    "PARAMS_DIR",
    "ROOT",
    "SystemDeployment",
    "TxOptions",
    "deploy_system",
    "live",
    "load_params",
    "main",
    "manifest_path_for",
    "plan",
    "validate_params",
]


# --- entry points -----------------------------------------------------------------------------


def _print_summary(system: SystemDeployment, manifest_path: Path | None) -> None:
    print(f"Kuota deployed on chain {system.manifest['chainId']} by {system.manifest['deployer']}")
    for name, address in system.manifest["contracts"].items():
        print(f"  {name:<18} {address}")
    print(f"  transactions sent this run: {len(system.transactions)}, gas used: {system.gas_used}")
    if manifest_path is not None:
        print(f"  manifest: {manifest_path}")


def main() -> SystemDeployment:
    """Local development chain: ``accounts[0]`` deploys with ``scripts/params/local.json``."""
    from brownie import accounts, network

    if not network.is_connected():
        network.connect("development")
    params = load_params(os.environ.get("KUOTA_PARAMS", "local"))
    chain_id = int(network.web3.eth.chain_id)
    path = manifest_path_for(chain_id, Path(os.environ.get("KUOTA_DEPLOYMENTS_DIR", DEPLOYMENTS_DIR)))
    system = deploy_system(accounts[0], params, manifest_path=path)
    _print_summary(system, path)
    return system


def live() -> SystemDeployment | None:
    """Testnet deploy driven by the environment (see docs/DEPLOY.md); ``KUOTA_DRY_RUN=1`` only plans."""
    from scripts.deploy_live import run_live

    return run_live()


def plan() -> None:
    """Dry run: print the plan and the estimated gas without sending anything to the target chain."""
    from scripts.deploy_live import run_plan

    run_plan()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from scripts.deploy_live import run_cli

    sys.exit(run_cli(sys.argv[1:]))
