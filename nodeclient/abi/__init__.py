"""ABIs of the Kuota contracts, shipped with the client so it never needs Brownie or a compiler.

The JSON files beside this module are written by ``scripts/export_abis.py`` from the Brownie build;
``abi_hash`` is the value a deployment manifest records, so a client can tell that the contracts it
talks to are the ones its ABIs describe.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from eth_utils import keccak

from nodeclient.errors import ConfigError

__all__ = ["CONTRACT_NAMES", "OPTIONAL_CONTRACT_NAMES", "abi_hash", "canonical_json", "load_abi"]

CONTRACT_NAMES: tuple[str, ...] = (
    "KuotaToken",
    "NodeRegistry",
    "Staking",
    "PaymentEscrow",
    "ReceiptSettlement",
    "RewardPool",
    "PaymentToken",
)
#: Contracts a deployment may add: governance (``scripts/deploy_governance.py``), the settlement
#: module that replaces ReceiptSettlement by proposal (``scripts/migrate_settlement.py``) and the lane
#: settlement module beside it (deploy parameter ``laneCloseDelay``). A manifest must record every
#: one of ``CONTRACT_NAMES``, and these only once deployed.
OPTIONAL_CONTRACT_NAMES: tuple[str, ...] = ("KuotaGovernor", "KuotaTimelock", "ReceiptSettlementV2", "LaneSettlement")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the byte form every Kuota hash is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@cache
def load_abi(name: str) -> list[dict[str, Any]]:
    """Return the ABI of contract ``name`` (one of ``CONTRACT_NAMES`` or ``OPTIONAL_CONTRACT_NAMES``)."""
    known = CONTRACT_NAMES + OPTIONAL_CONTRACT_NAMES
    if name not in known:
        raise ConfigError(f"unknown contract name {name!r}; expected one of {', '.join(known)}")
    try:
        text = resources.files(__name__).joinpath(f"{name}.json").read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"the ABI file for {name} is missing from the installed package ({exc.filename})") from exc
    return json.loads(text)


def abi_hash() -> str:
    """keccak256 of the canonical JSON of ``{name: abi}`` for every shipped contract, as 0x-hex."""
    names = CONTRACT_NAMES + OPTIONAL_CONTRACT_NAMES
    return "0x" + keccak(canonical_json({name: load_abi(name) for name in names})).hex()
