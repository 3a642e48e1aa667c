"""Put a deployed Kuota system under KUOTA-holder governance: KuotaGovernor proposes, KuotaTimelock executes.

``deploy_governance(deployer, system, params)`` deploys a KuotaTimelock (the deployer its temporary
admin), a KuotaGovernor over KuotaToken's votes and that timelock, makes the governor the timelock's
only proposer and canceller (anyone executes a queued proposal once its delay has passed), hands every
admin and parameter role of the six Kuota contracts to the timelock, gives the guardian PAUSER_ROLE
(pause and unpause only: no role that moves funds), then renounces every role the deployer held,
the timelock's admin role last. After that, a parameter or role changes only by a passed proposal
that waited ``minDelay`` seconds in public.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak, to_checksum_address

__all__ = [
    "ADMIN_ROLES",
    "OPTIONAL_ADMIN_ROLES",
    "PAUSABLE",
    "GovernanceDeployment",
    "GovernanceParams",
    "deploy_governance",
    "governance_manifest",
    "governance_params",
    "role_id",
]

log = logging.getLogger("kuota.deploy.governance")

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

#: Roles the timelock takes over, per manifest contract name. Operational roles (MINTER_ROLE held by
#: the RewardPool, SETTLEMENT_ROLE by the settlement module, SLASHER_ROLE and JAILER_ROLE by the
#: slasher) stay where the deployment put them: governance changes them by proposal.
ADMIN_ROLES: dict[str, tuple[str, ...]] = {
    "KuotaToken": ("DEFAULT_ADMIN_ROLE",),
    "Staking": ("DEFAULT_ADMIN_ROLE", "PARAMETER_ROLE"),
    "NodeRegistry": ("DEFAULT_ADMIN_ROLE", "PARAMETER_ROLE"),
    "PaymentEscrow": ("DEFAULT_ADMIN_ROLE", "PARAMETER_ROLE"),
    "RewardPool": ("DEFAULT_ADMIN_ROLE", "PARAMETER_ROLE", "PAUSER_ROLE"),
    "ReceiptSettlement": ("DEFAULT_ADMIN_ROLE", "PARAMETER_ROLE", "PAUSER_ROLE"),
}
#: The same for contracts a deployment may leave out (LaneSettlement is deployed only when configured).
OPTIONAL_ADMIN_ROLES: dict[str, tuple[str, ...]] = {
    "LaneSettlement": ("DEFAULT_ADMIN_ROLE", "PARAMETER_ROLE", "PAUSER_ROLE"),
}
#: Contracts the guardian may pause.
PAUSABLE: tuple[str, ...] = ("RewardPool", "ReceiptSettlement", "LaneSettlement")


def role_id(name: str) -> bytes:
    """The AccessControl role id: zero for DEFAULT_ADMIN_ROLE, else keccak256 of the name."""
    return b"\x00" * 32 if name == "DEFAULT_ADMIN_ROLE" else keccak(text=name)


@dataclass(frozen=True)
class GovernanceParams:
    """Governor and timelock settings. Voting delay and period are blocks (the token's clock)."""

    voting_delay: int
    voting_period: int
    proposal_threshold: int
    quorum_percent: int
    min_delay: int
    guardian: str

    def __post_init__(self) -> None:
        from nodeclient.deployment import DeployParamsError

        bounds = {
            "voting_delay": (0, 2**48 - 1),
            "voting_period": (1, 2**32 - 1),
            "proposal_threshold": (0, 2**208 - 1),
            "quorum_percent": (0, 100),
            "min_delay": (0, 30 * 86_400),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise DeployParamsError(
                    f"governance parameter {name!r} = {value!r} is outside [{low}, {high}]"
                )


@dataclass
class GovernanceDeployment:
    """The governor and timelock as Brownie contracts, and the transactions this run sent."""

    governor: Any
    timelock: Any
    guardian: str
    transactions: list[Any] = field(default_factory=list)


def governance_manifest(gov: GovernanceDeployment) -> dict[str, str]:
    """The ``contracts`` entries a deployment manifest records for governance."""
    return {
        "KuotaGovernor": to_checksum_address(gov.governor.address),
        "KuotaTimelock": to_checksum_address(gov.timelock.address),
    }


class _Handover:
    """Sends the role transactions of one governance deployment, skipping what already holds."""

    def __init__(self, deployer: Any, tx: dict[str, Any]) -> None:
        self.deployer = deployer
        self.tx = tx
        self.sent: list[Any] = []

    def grant(self, contract: Any, role: str, account: str) -> None:
        if not contract.hasRole(role_id(role), account):
            self.sent.append(contract.grantRole(role_id(role), account, self.tx))

    def renounce(self, contract: Any, role: str) -> None:
        if contract.hasRole(role_id(role), self.deployer):
            self.sent.append(contract.renounceRole(role_id(role), self.deployer, self.tx))


#: Deploy-parameter keys of the ``governance`` object → GovernanceParams fields.
_PARAM_KEYS = {
    "votingDelay": "voting_delay",
    "votingPeriod": "voting_period",
    "proposalThreshold": "proposal_threshold",
    "quorumPercent": "quorum_percent",
    "minDelay": "min_delay",
}


def governance_params(value: Any, pauser: str) -> GovernanceParams | None:
    """The deploy parameters' ``governance`` object (or null) as GovernanceParams; the guardian
    defaults to the deployment's pauser."""
    from nodeclient.deployment import DeployParamsError

    if value is None:
        return None
    if not isinstance(value, dict):
        raise DeployParamsError(f"deploy parameter 'governance' must be an object or null, got {value!r}")
    unknown = sorted(set(value) - set(_PARAM_KEYS) - {"guardian"})
    missing = sorted(set(_PARAM_KEYS) - set(value))
    if unknown or missing:
        raise DeployParamsError(
            f"governance parameters: unknown {unknown or 'none'}, missing {missing or 'none'}; "
            f"expected {', '.join(sorted(_PARAM_KEYS))} and optionally guardian"
        )
    return GovernanceParams(
        guardian=value.get("guardian") or pauser,
        **{field_: value[key] for key, field_ in _PARAM_KEYS.items()},
    )


def deploy_governance(
    deployer: Any,
    contracts: Mapping[str, Any],
    params: GovernanceParams,
    tx_options: dict[str, Any] | None = None,
) -> GovernanceDeployment:
    """Deploy governor and timelock and hand the system's admin roles to the timelock (see module doc).

    Args:
        deployer: the account that holds the system's admin roles now (it holds none afterwards).
        contracts: manifest name → Brownie contract, for at least the names of ``ADMIN_ROLES``.
        params: governor and timelock settings.
        tx_options: Brownie transaction fields (fees, confirmations); ``from`` is the deployer.
    """
    from scripts.brownie_project import load_project

    project = load_project()
    tx = {"from": deployer, **(tx_options or {})}
    timelock = project.KuotaTimelock.deploy(params.min_delay, [], [ZERO_ADDRESS], deployer, tx)
    governor = project.KuotaGovernor.deploy(
        contracts["KuotaToken"],
        timelock,
        params.voting_delay,
        params.voting_period,
        params.proposal_threshold,
        params.quorum_percent,
        tx,
    )
    run = _Handover(deployer, tx)
    run.sent += [timelock.tx, governor.tx]
    run.grant(timelock, "PROPOSER_ROLE", governor.address)
    run.grant(timelock, "CANCELLER_ROLE", governor.address)
    governed = {**ADMIN_ROLES, **{n: r for n, r in OPTIONAL_ADMIN_ROLES.items() if contracts.get(n) is not None}}
    for name, roles in governed.items():
        for role in roles:
            run.grant(contracts[name], role, timelock.address)
    for name in PAUSABLE:
        if name in governed:
            run.grant(contracts[name], "PAUSER_ROLE", params.guardian)
    guardian_is_deployer = params.guardian.lower() == str(deployer.address).lower()
    for name, roles in governed.items():
        for role in roles:
            if not (role == "PAUSER_ROLE" and guardian_is_deployer):
                run.renounce(contracts[name], role)
    run.renounce(timelock, "DEFAULT_ADMIN_ROLE")
    log.info(
        "governance: governor %s, timelock %s (%s transactions)",
        governor.address,
        timelock.address,
        len(run.sent),
    )
    return GovernanceDeployment(
        governor=governor, timelock=timelock, guardian=params.guardian, transactions=run.sent
    )
