"""Replace the settlement module by governance, losing nothing: deploy the successor, build the proposal.

``deploy_successor`` deploys a ReceiptSettlementV2 over the same escrow, registry and reward pool,
administered by the timelock, with the retiring module's fee rate and that module as its predecessor
(channels it has not written are read through, so nothing settled before can be paid again).
``settlement_swap_proposal`` builds the one proposal that, executed atomically by the timelock:

1. grants the successor SETTLEMENT_ROLE in PaymentEscrow and RewardPool (it can collect and record);
2. gives the guardian PAUSER_ROLE on the successor;
3. pauses the old module and revokes its SETTLEMENT_ROLE in both, and the guardian's PAUSER_ROLE on it
   (the revocations are what retire it: without the roles its settlements revert in the escrow
   whatever its pause state).

Escrow balances, thaws, node credits, stake, node records and reward epochs live in contracts that do
not change, so they stay as they are. ``main`` writes the proposal as a ``kuota gov propose`` file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_utils import to_checksum_address

from nodeclient.governance import Proposal

__all__ = ["deploy_successor", "main", "settlement_swap_proposal", "swapped_manifest", "write_proposal"]


def _call(contract: Any, function: str, *args: Any) -> tuple[str, int, bytes]:
    data = getattr(contract, function).encode_input(*args)
    return to_checksum_address(contract.address), 0, bytes.fromhex(data.removeprefix("0x"))


def deploy_successor(deployer: Any, old: Any, timelock: Any, tx_options: dict[str, Any] | None = None) -> Any:
    """Deploy ReceiptSettlementV2 replacing ``old`` (a Brownie contract), administered by ``timelock``."""
    from scripts.brownie_project import load_project

    return load_project().ReceiptSettlementV2.deploy(
        timelock,
        old.escrow(),
        old.registry(),
        old.rewardPool(),
        old.feeBps(),
        old,
        {"from": deployer, **(tx_options or {})},
    )


def settlement_swap_proposal(escrow: Any, rewards: Any, old: Any, new: Any, guardian: str) -> Proposal:
    """The proposal that wires ``new`` in and retires ``old`` (Brownie contracts), in one execution."""
    from scripts.deploy_governance import role_id

    settlement = role_id("SETTLEMENT_ROLE")
    pauser = role_id("PAUSER_ROLE")
    calls = [
        _call(escrow, "grantRole", settlement, new.address),
        _call(rewards, "grantRole", settlement, new.address),
        _call(new, "grantRole", pauser, guardian),
        _call(old, "pause"),
        _call(escrow, "revokeRole", settlement, old.address),
        _call(rewards, "revokeRole", settlement, old.address),
        _call(old, "revokeRole", pauser, guardian),
    ]
    targets, values, calldatas = zip(*calls, strict=True)
    description = f"Replace settlement module {old.address} by ReceiptSettlementV2 {new.address}"
    return Proposal(tuple(targets), tuple(values), tuple(calldatas), description)


def swapped_manifest(manifest: dict[str, Any], new_address: str) -> dict[str, Any]:
    """The manifest once the swap executed: ``ReceiptSettlement`` is the successor (clients sign for and
    settle through it), the replaced module is listed in ``retiredSettlements`` (auditors replay its
    history under its own EIP-712 domain)."""
    contracts = dict(manifest["contracts"])
    old = contracts["ReceiptSettlement"]
    contracts["ReceiptSettlement"] = to_checksum_address(new_address)
    retired = [*manifest.get("retiredSettlements", []), old]
    return {**manifest, "contracts": contracts, "retiredSettlements": retired}


def write_proposal(proposal: Proposal, path: Path) -> Path:
    """Write ``proposal`` as a ``kuota gov propose`` file."""
    from nodeclient._utils.files import atomic_write

    atomic_write(path, json.dumps(proposal.to_json(), indent=2) + "\n")
    return path


def main() -> None:
    """``brownie run scripts/migrate_settlement.py``: from the local manifest, deploy V2, write the proposal."""
    from brownie import accounts, network

    from nodeclient.deployment import load_manifest
    from scripts.brownie_project import load_project
    from scripts.deploy_system import DEPLOYMENTS_DIR, manifest_path_for

    if not network.is_connected():
        network.connect("development")
    manifest = load_manifest(manifest_path_for(int(network.web3.eth.chain_id), DEPLOYMENTS_DIR))
    project = load_project()
    old = project.ReceiptSettlement.at(manifest.address("ReceiptSettlement"))
    timelock = project.KuotaTimelock.at(manifest.address("KuotaTimelock"))
    new = deploy_successor(accounts[0], old, timelock)
    escrow = project.PaymentEscrow.at(manifest.address("PaymentEscrow"))
    rewards = project.RewardPool.at(manifest.address("RewardPool"))
    guardian = os.environ.get("KUOTA_GUARDIAN", str(accounts[0].address))
    proposal = settlement_swap_proposal(escrow, rewards, old, new, guardian)
    path = write_proposal(proposal, DEPLOYMENTS_DIR / f"proposal-settlement-{new.address}.json")
    print(f"ReceiptSettlementV2 {new.address}; proposal written to {path}")
