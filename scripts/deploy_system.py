"""One pure, resumable ``deploy_system(deployer, params)`` for the whole Kuota system.

``deploy_system`` deploys the contracts in the order fixed by docs/dev/BRIEF.md, wires the roles,
and (when given a path) writes the manifest ``deployments/<chainId>.json`` after every contract. A
deploy that is interrupted resumes from that manifest: contracts recorded there are checked (code
present, constructor parameters equal, key views equal) and reused, role grants are skipped when
``hasRole`` already holds, so re-running a finished deploy sends no transaction at all.

The entry points that drive it are ``scripts/deploy.py`` (Brownie and plain Python) and its command
line in ``scripts/deploy_live.py``; this module imports neither, so they can both import it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import is_checksum_address, keccak, to_checksum_address

from nodeclient._utils.files import atomic_write
from nodeclient.abi import abi_hash
from nodeclient.deployment import (
    DeploymentConflictError,
    DeployParamsError,
    local_chain_ids,
)
from scripts.brownie_project import ROOT, load_project

__all__ = [
    "DEPLOYMENTS_DIR",
    "DEPLOY_ORDER",
    "PARAMS_DIR",
    "ROOT",
    "SystemDeployment",
    "TxOptions",
    "deploy_system",
    "load_params",
    "load_project",
    "manifest_path_for",
    "validate_params",
]

PARAMS_DIR = ROOT / "scripts" / "params"
DEPLOYMENTS_DIR = ROOT / "deployments"

log = logging.getLogger("kuota.deploy")

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
DEFAULT_ADMIN_ROLE = b"\x00" * 32


def _role(name: str) -> bytes:
    return keccak(text=name)


# --- parameters -------------------------------------------------------------------------------

# name -> (minimum, maximum); maxima are the Solidity types' ranges or the contracts' bounds.
_INT_PARAMS: dict[str, tuple[int, int]] = {
    "tokenCap": (1, 2**208 - 1),  # ERC20Votes checkpoints hold 208 bits
    "tokenInitialSupply": (0, 2**256 - 1),
    "unbondingPeriod": (0, 2**64 - 1),
    "slashReporterBps": (0, 10_000),
    "minStakePerNode": (1, 2**256 - 1),
    "thawingPeriod": (0, 30 * 86_400),
    "epochLength": (1, 2**64 - 1),
    "emissionPerEpoch": (0, 2**256 - 1),
    "rewardPerFeeUnit": (0, 2**256 - 1),
    "maxNodeShareBps": (1, 10_000),
    "latencyLowMs": (0, 60_000),
    "latencyHighMs": (1, 60_000),
    "latencyFloorBps": (0, 10_000),
    "feeBps": (0, 2_000),
}
_ADDRESS_PARAMS = ("paymentToken", "treasury", "slasher", "pauser")
# Optional: the close delay (seconds) of LaneSettlement, deployed only when this is set. Bounds are
# LaneSettlement.MIN_CLOSE_DELAY and MAX_CLOSE_DELAY.
_LANE_CLOSE_DELAY = "laneCloseDelay"
_LANE_CLOSE_DELAY_BOUNDS = (600, 30 * 86_400)

# Which parameters each contract's constructor (or its one-off wiring) depends on: a resumed deploy
# may reuse a recorded contract only if these are unchanged.
_CONSTRUCTOR_PARAMS: dict[str, tuple[str, ...]] = {
    "PaymentToken": ("paymentToken",),
    "KuotaToken": ("tokenCap", "tokenInitialSupply"),
    "Staking": ("unbondingPeriod", "slashReporterBps"),
    "NodeRegistry": ("minStakePerNode",),
    "PaymentEscrow": ("thawingPeriod", "treasury"),
    "RewardPool": (
        "epochLength",
        "emissionPerEpoch",
        "rewardPerFeeUnit",
        "maxNodeShareBps",
        "latencyLowMs",
        "latencyHighMs",
        "latencyFloorBps",
    ),
    "ReceiptSettlement": ("feeBps",),
    "LaneSettlement": ("feeBps", "laneCloseDelay"),
    "KuotaTimelock": ("timelock",),
}

DEPLOY_ORDER: tuple[str, ...] = (
    "PaymentToken",
    "KuotaToken",
    "Staking",
    "NodeRegistry",
    "PaymentEscrow",
    "RewardPool",
    "ReceiptSettlement",
)


def load_params(name_or_path: str | Path) -> dict[str, Any]:
    """Read a parameters file: a name under ``scripts/params/`` (``local``) or a path to a JSON file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PARAMS_DIR / f"{name_or_path}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DeployParamsError(f"parameters file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise DeployParamsError(f"parameters file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(raw, dict):
        raise DeployParamsError(f"parameters file {path} must hold a JSON object, not {type(raw).__name__}")
    # Keys starting with "_" are comments in the template.
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def validate_params(params: dict[str, Any], deployer_address: str) -> dict[str, Any]:
    """Check every parameter and return a resolved copy (null treasury/slasher/pauser → deployer).

    Raises ``DeployParamsError`` naming the first bad key and its value.
    """
    if not isinstance(params, dict):
        raise DeployParamsError(f"deploy parameters must be a dict, not {type(params).__name__}")
    unknown = sorted(
        set(params) - set(_INT_PARAMS) - set(_ADDRESS_PARAMS) - {"timelock", "governance", _LANE_CLOSE_DELAY}
    )
    if unknown:
        raise DeployParamsError(f"unknown deploy parameter {unknown[0]!r}; known: {', '.join(sorted(_INT_PARAMS))}, ...")
    resolved: dict[str, Any] = {}
    for key, (low, high) in _INT_PARAMS.items():
        if key not in params:
            raise DeployParamsError(f"deploy parameter {key!r} is missing")
        value = params[key]
        # bool is an int subclass in Python; a JSON true is never a valid amount.
        if isinstance(value, bool) or not isinstance(value, int):
            raise DeployParamsError(f"deploy parameter {key!r} must be an integer, got {value!r}")
        if not low <= value <= high:
            raise DeployParamsError(f"deploy parameter {key!r} = {value} is outside [{low}, {high}]")
        resolved[key] = value
    if resolved["tokenInitialSupply"] > resolved["tokenCap"]:
        raise DeployParamsError(
            f"tokenInitialSupply {resolved['tokenInitialSupply']} exceeds tokenCap {resolved['tokenCap']}"
        )
    if resolved["latencyLowMs"] >= resolved["latencyHighMs"]:
        raise DeployParamsError(
            f"latencyLowMs {resolved['latencyLowMs']} must be below latencyHighMs {resolved['latencyHighMs']}"
        )
    for key in _ADDRESS_PARAMS:
        value = params.get(key)
        if value is None:
            resolved[key] = None if key == "paymentToken" else deployer_address
            continue
        if not isinstance(value, str) or not is_checksum_address(value):
            raise DeployParamsError(f"deploy parameter {key!r} must be a checksummed address or null, got {value!r}")
        if value == ZERO_ADDRESS:
            raise DeployParamsError(f"deploy parameter {key!r} must not be the zero address")
        resolved[key] = value
    resolved[_LANE_CLOSE_DELAY] = _validate_lane_close_delay(params.get(_LANE_CLOSE_DELAY))
    resolved["timelock"] = _validate_timelock(params.get("timelock"))
    from scripts.deploy_governance import governance_params

    resolved["governance"] = governance_params(params.get("governance"), resolved["pauser"])
    if resolved["timelock"] is not None and resolved["governance"] is not None:
        raise DeployParamsError("deploy parameters 'timelock' and 'governance' exclude each other: governance deploys its own")
    return resolved


def _validate_lane_close_delay(value: Any) -> int | None:
    if value is None:
        return None
    low, high = _LANE_CLOSE_DELAY_BOUNDS
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DeployParamsError(
            f"deploy parameter {_LANE_CLOSE_DELAY!r} must be null or an integer of seconds in [{low}, {high}], "
            f"got {value!r}"
        )
    return value


def _validate_timelock(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DeployParamsError(f"deploy parameter 'timelock' must be an object or null, got {value!r}")
    delay = value.get("minDelay")
    if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 30 * 86_400:
        raise DeployParamsError(f"timelock.minDelay must be an integer of seconds in [0, 2592000], got {delay!r}")
    out: dict[str, Any] = {"minDelay": delay}
    for key in ("proposers", "executors"):
        members = value.get(key)
        if not isinstance(members, list) or (key == "proposers" and not members):
            raise DeployParamsError(f"timelock.{key} must be a list of checksummed addresses, got {members!r}")
        for member in members:
            if not isinstance(member, str) or not is_checksum_address(member):
                raise DeployParamsError(f"timelock.{key} holds {member!r}, which is not a checksummed address")
        out[key] = list(members)
    return out


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TxOptions:
    """How transactions are sent: EIP-1559 fees (wei) or a legacy gas price, and confirmations."""

    priority_fee: int | None = None
    max_fee: int | None = None
    gas_price: int | None = None
    required_confs: int = 1

    def as_brownie(self, sender: Any) -> dict[str, Any]:
        """The Brownie transaction dict for ``sender``."""
        tx: dict[str, Any] = {"from": sender, "required_confs": self.required_confs}
        if self.gas_price is not None:
            tx["gas_price"] = self.gas_price
        else:
            if self.priority_fee is not None:
                tx["priority_fee"] = self.priority_fee
            if self.max_fee is not None:
                tx["max_fee"] = self.max_fee
        return tx


@dataclass
class SystemDeployment:
    """The deployed system: Brownie contract objects, the manifest, and what this run sent."""

    token: Any
    registry: Any
    staking: Any
    escrow: Any
    settlement: Any
    rewards: Any
    payment_token: Any
    manifest: dict[str, Any]
    timelock: Any = None
    lanes: Any = None
    """LaneSettlement, when the parameters set ``laneCloseDelay``."""
    transactions: list[Any] = field(default_factory=list)

    @property
    def gas_used(self) -> int:
        """Gas used by the transactions this run sent (0 for a finished deploy re-run)."""
        return sum(int(tx.gas_used) for tx in self.transactions)

    def contract(self, name: str) -> Any:
        """The contract recorded under manifest name ``name`` (``KuotaToken``, ``PaymentToken``, ...)."""
        by_name = {
            "KuotaToken": self.token,
            "NodeRegistry": self.registry,
            "Staking": self.staking,
            "PaymentEscrow": self.escrow,
            "ReceiptSettlement": self.settlement,
            "RewardPool": self.rewards,
            "PaymentToken": self.payment_token,
            "KuotaTimelock": self.timelock,
            "LaneSettlement": self.lanes,
        }
        return by_name[name]


# --- deployment -------------------------------------------------------------------------------


def manifest_path_for(chain_id: int, directory: Path = DEPLOYMENTS_DIR) -> Path:
    """``deployments/<chainId>.json``."""
    return directory / f"{chain_id}.json"


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    # Write-then-rename so an interrupted deploy never leaves a half-written manifest behind.
    atomic_write(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


class _Deployer:
    """One deploy run: the state machine behind ``deploy_system``."""

    def __init__(
        self,
        deployer: Any,
        params: dict[str, Any],
        manifest_path: Path | None,
        resume: bool,
        tx_options: TxOptions,
        on_step: Callable[[str], None] | None,
    ) -> None:
        from brownie import web3

        self.web3 = web3
        self.project = load_project()
        self.deployer = deployer
        self.address = to_checksum_address(deployer.address)
        self.params = validate_params(params, self.address)
        self.manifest_path = Path(manifest_path) if manifest_path is not None else None
        self.tx = tx_options
        self.on_step = on_step
        self.chain_id = int(web3.eth.chain_id)
        self.genesis_hash = web3.eth.get_block(0)["hash"].hex()
        if not self.genesis_hash.startswith("0x"):
            self.genesis_hash = "0x" + self.genesis_hash
        self.sent: list[Any] = []
        self.contracts: dict[str, Any] = {}
        if self.manifest_path is not None:
            self._check_shipped_abis()
        self.manifest = self._initial_manifest(resume)

    @staticmethod
    def _check_shipped_abis() -> None:
        """A manifest's abiHash vouches for the ABIs in nodeclient/abi: they must be this build's."""
        from scripts.export_abis import export_abis

        stale = export_abis(check=True)
        if stale:
            raise DeploymentConflictError(
                f"the ABIs shipped in nodeclient/abi differ from the compiled contracts for {', '.join(stale)}; "
                "run `make abi` before deploying, or clients would talk to these contracts with wrong ABIs"
            )

    # manifest handling -------------------------------------------------------------------------

    def _fresh_manifest(self) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "genesisHash": self.genesis_hash,
            "deployer": self.address,
            "blockNumber": None,
            "contracts": {},
            "deployTransactions": {},
            "params": _jsonable_params(self.params),
            "abiHash": abi_hash(),
            "complete": False,
        }

    def _initial_manifest(self, resume: bool) -> dict[str, Any]:
        fresh = self._fresh_manifest()
        if self.manifest_path is None or not resume or not self.manifest_path.exists():
            return fresh
        try:
            old = json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise DeploymentConflictError(
                f"manifest {self.manifest_path} is not valid JSON ({exc.msg}); move it away to deploy afresh"
            ) from exc
        if old.get("chainId") != self.chain_id:
            raise DeploymentConflictError(
                f"manifest {self.manifest_path} is for chain id {old.get('chainId')!r}, but the RPC is chain {self.chain_id}"
            )
        if old.get("genesisHash") not in (None, self.genesis_hash):
            if self.chain_id in local_chain_ids():
                # A restarted local chain reuses its chain id; the old manifest describes a chain
                # that no longer exists, so a fresh deploy is the only sensible resume.
                log.info("manifest %s is from an earlier local chain; deploying afresh", self.manifest_path)
                return fresh
            raise DeploymentConflictError(
                f"manifest {self.manifest_path} was written on a chain with genesis {old.get('genesisHash')}, "
                f"but chain {self.chain_id} has genesis {self.genesis_hash}"
            )
        if old.get("deployer") != self.address:
            raise DeploymentConflictError(
                f"manifest {self.manifest_path} was deployed by {old.get('deployer')}, not by {self.address}; "
                "resume with the same deployer or move the manifest away"
            )
        old_params = old.get("params", {})
        for name in old.get("contracts", {}):
            for key in _CONSTRUCTOR_PARAMS.get(name, ()):
                if old_params.get(key) != fresh["params"].get(key):
                    raise DeploymentConflictError(
                        f"{name} at {old['contracts'][name]} was deployed with {key}={old_params.get(key)!r}, "
                        f"but the parameters now say {key}={fresh['params'].get(key)!r}; "
                        "restore the parameter or move the manifest away to deploy afresh"
                    )
        for key in ("slasher", "pauser"):
            if old.get("complete") and old_params.get(key) != fresh["params"].get(key):
                raise DeploymentConflictError(
                    f"the finished deployment granted roles to {key}={old_params.get(key)!r}, but the parameters "
                    f"now say {fresh['params'].get(key)!r}; change roles through governance, not by redeploying"
                )
        if old.get("contracts") and old.get("abiHash") != fresh["abiHash"]:
            # The recorded contracts were built from other sources than the ones being deployed now:
            # mixing them (or calling a finished deploy "done") would leave a system whose ABIs lie.
            raise DeploymentConflictError(
                f"manifest {self.manifest_path} records contracts built with abiHash {old.get('abiHash')}, but the "
                f"current build has {fresh['abiHash']}; deploy afresh (--fresh, or move the manifest away)"
            )
        fresh["contracts"] = dict(old.get("contracts", {}))
        fresh["deployTransactions"] = dict(old.get("deployTransactions", {}))
        fresh["blockNumber"] = old.get("blockNumber")
        fresh["complete"] = bool(old.get("complete"))
        return fresh

    def _save(self) -> None:
        if self.manifest_path is not None:
            _write_manifest(self.manifest_path, self.manifest)

    def _step_done(self, step: str) -> None:
        self._save()
        if self.on_step is not None:
            self.on_step(step)

    # contracts ---------------------------------------------------------------------------------

    def _container(self, name: str) -> Any:
        return self.project[name]

    def _deploy(self, name: str, container_name: str, *args: Any) -> Any:
        recorded = self.manifest["contracts"].get(name)
        container = self._container(container_name)
        if recorded is not None:
            if not self.web3.eth.get_code(recorded):
                raise DeploymentConflictError(
                    f"the manifest records {name} at {recorded}, but there is no code there on chain {self.chain_id}"
                )
            contract = container.at(recorded, persist=False)
            log.info("%s: reusing %s", name, recorded)
        else:
            contract = container.deploy(*args, self.tx.as_brownie(self.deployer))
            self.sent.append(contract.tx)
            self.manifest["contracts"][name] = to_checksum_address(contract.address)
            self.manifest["deployTransactions"][name] = contract.tx.txid
            if self.manifest["blockNumber"] is None:
                self.manifest["blockNumber"] = int(contract.tx.block_number)
            log.info("%s: deployed at %s (gas %s)", name, contract.address, contract.tx.gas_used)
        self.contracts[name] = contract
        self._step_done(name)
        return contract

    def _transact(self, description: str, fn: Any, *args: Any) -> None:
        tx = fn(*args, self.tx.as_brownie(self.deployer))
        self.sent.append(tx)
        log.info("%s (gas %s)", description, tx.gas_used)

    def _grant(self, contract_name: str, role_name: str, account: str) -> None:
        contract = self.contracts[contract_name]
        role = DEFAULT_ADMIN_ROLE if role_name == "DEFAULT_ADMIN_ROLE" else _role(role_name)
        if not contract.hasRole(role, account):
            self._transact(f"{contract_name}.grantRole({role_name}, {account})", contract.grantRole, role, account)
        self._step_done(f"grant:{contract_name}:{role_name}")

    def _renounce(self, contract_name: str, role_name: str) -> None:
        contract = self.contracts[contract_name]
        role = DEFAULT_ADMIN_ROLE if role_name == "DEFAULT_ADMIN_ROLE" else _role(role_name)
        if contract.hasRole(role, self.address):
            self._transact(
                f"{contract_name}.renounceRole({role_name})", contract.renounceRole, role, self.address
            )
        self._step_done(f"renounce:{contract_name}:{role_name}")

    def _check_views(self) -> None:
        """Recorded contracts must hold the parameters the manifest says: catches a hand-edited manifest."""
        p = self.params
        c = self.contracts
        checks: list[tuple[str, Any, Any]] = [
            ("KuotaToken.cap", c["KuotaToken"].cap(), p["tokenCap"]),
            ("Staking.stakeToken", c["Staking"].stakeToken(), c["KuotaToken"].address),
            ("Staking.unbondingPeriod", c["Staking"].unbondingPeriod(), p["unbondingPeriod"]),
            ("Staking.slashReporterBps", c["Staking"].slashReporterBps(), p["slashReporterBps"]),
            ("NodeRegistry.minStakePerNode", c["NodeRegistry"].minStakePerNode(), p["minStakePerNode"]),
            ("PaymentEscrow.paymentToken", c["PaymentEscrow"].paymentToken(), c["PaymentToken"].address),
            ("RewardPool.epochLength", c["RewardPool"].epochLength(), p["epochLength"]),
        ]
        for label, actual, expected in checks:
            if str(actual) != str(expected):
                raise DeploymentConflictError(f"{label} on chain is {actual}, but this deployment expects {expected}")

    def run(self) -> SystemDeployment:
        p = self.params
        me = self.address
        if p["paymentToken"] is None:
            payment = self._deploy("PaymentToken", "MockUSD")
        else:
            self.manifest["contracts"].setdefault("PaymentToken", p["paymentToken"])
            if not self.web3.eth.get_code(p["paymentToken"]):
                raise DeployParamsError(f"paymentToken {p['paymentToken']} has no code on chain {self.chain_id}")
            payment = self._container("MockUSD").at(p["paymentToken"], persist=False)
            self.contracts["PaymentToken"] = payment
        token = self._deploy("KuotaToken", "KuotaToken", me, p["tokenCap"], p["tokenInitialSupply"], me)
        staking = self._deploy("Staking", "Staking", me, token, p["unbondingPeriod"], p["slashReporterBps"])
        registry = self._deploy("NodeRegistry", "NodeRegistry", me, staking, p["minStakePerNode"])
        current = to_checksum_address(staking.registry())
        if current == ZERO_ADDRESS:
            self._transact("Staking.setRegistry", staking.setRegistry, registry)
        elif current != registry.address:
            raise DeploymentConflictError(f"Staking {staking.address} is wired to registry {current}, not {registry.address}")
        self._step_done("wire:Staking.setRegistry")
        escrow = self._deploy(
            "PaymentEscrow", "PaymentEscrow", me, payment, registry, p["treasury"], p["thawingPeriod"]
        )
        rewards = self._deploy(
            "RewardPool",
            "RewardPool",
            me,
            token,
            registry,
            p["epochLength"],
            p["emissionPerEpoch"],
            p["rewardPerFeeUnit"],
            p["maxNodeShareBps"],
            p["latencyLowMs"],
            p["latencyHighMs"],
            p["latencyFloorBps"],
        )
        settlement = self._deploy("ReceiptSettlement", "ReceiptSettlement", me, escrow, registry, rewards, p["feeBps"])
        lanes = None
        if p[_LANE_CLOSE_DELAY] is not None:
            lanes = self._deploy(
                "LaneSettlement", "LaneSettlement", me, escrow, registry, rewards, p["feeBps"], p[_LANE_CLOSE_DELAY]
            )
        self._check_views()

        self._grant("KuotaToken", "MINTER_ROLE", rewards.address)
        if lanes is not None:
            # Before ReceiptSettlement's grant: RewardPool caches the SETTLEMENT_ROLE holder granted
            # last for its cheap path, and ReceiptSettlement calls it once per call, lanes once per batch.
            self._grant("PaymentEscrow", "LANES_ROLE", lanes.address)
            self._grant("RewardPool", "SETTLEMENT_ROLE", lanes.address)
            self._grant("LaneSettlement", "PAUSER_ROLE", p["pauser"])
        self._grant("PaymentEscrow", "SETTLEMENT_ROLE", settlement.address)
        self._grant("RewardPool", "SETTLEMENT_ROLE", settlement.address)
        self._grant("Staking", "SLASHER_ROLE", p["slasher"])
        self._grant("NodeRegistry", "JAILER_ROLE", p["slasher"])
        self._grant("ReceiptSettlement", "PAUSER_ROLE", p["pauser"])
        self._grant("RewardPool", "PAUSER_ROLE", p["pauser"])

        timelock = None
        if p["timelock"] is not None:
            timelock = self._hand_over_to_timelock(p["timelock"], p["pauser"])
        if p["governance"] is not None:
            timelock = self._hand_over_to_governance(p["governance"])

        self.manifest["complete"] = True
        self._save()
        return SystemDeployment(
            token=token,
            registry=registry,
            staking=staking,
            escrow=escrow,
            settlement=settlement,
            rewards=rewards,
            payment_token=payment,
            manifest=dict(self.manifest),
            timelock=timelock,
            lanes=lanes,
            transactions=list(self.sent),
        )

    def _hand_over_to_timelock(self, cfg: dict[str, Any], pauser: str) -> Any:
        """Give DEFAULT_ADMIN_ROLE and PARAMETER_ROLE to a TimelockController, then renounce ours.

        The timelock is its own admin (admin argument zero), so after this no single key can change a
        parameter or a role without the delay. PAUSER_ROLE stays with ``pauser`` (pausing must be
        fast); the deployer, which the constructors made a pauser too, gives it up unless it is that
        pauser.
        """
        timelock = self._deploy(
            "KuotaTimelock", "KuotaTimelock", cfg["minDelay"], cfg["proposers"], cfg["executors"], ZERO_ADDRESS
        )
        governed = ("KuotaToken", "Staking", "NodeRegistry", "PaymentEscrow", "RewardPool", "ReceiptSettlement")
        governed += tuple(name for name in ("LaneSettlement",) if name in self.contracts)
        for name in governed:
            self._grant(name, "DEFAULT_ADMIN_ROLE", timelock.address)
            if name != "KuotaToken":
                self._grant(name, "PARAMETER_ROLE", timelock.address)
        for name in governed:
            if name != "KuotaToken":
                self._renounce(name, "PARAMETER_ROLE")
            self._renounce(name, "DEFAULT_ADMIN_ROLE")
        if pauser.lower() != self.address.lower():
            for name in ("ReceiptSettlement", "RewardPool", "LaneSettlement"):
                if name in self.contracts:
                    self._renounce(name, "PAUSER_ROLE")
        return timelock

    def _hand_over_to_governance(self, params: Any) -> Any:
        """KuotaGovernor + KuotaTimelock take every admin role (``scripts/deploy_governance.py``)."""
        from scripts.deploy_governance import deploy_governance, governance_manifest

        recorded = self.manifest["contracts"].get("KuotaTimelock")
        if recorded is not None and "KuotaGovernor" in self.manifest["contracts"]:
            return self._container("KuotaTimelock").at(recorded, persist=False)
        gov = deploy_governance(self.deployer, self.contracts, params, self.tx.as_brownie(self.deployer))
        self.sent.extend(gov.transactions)
        self.manifest["contracts"].update(governance_manifest(gov))
        self._step_done("governance")
        return gov.timelock


def _jsonable_params(params: dict[str, Any]) -> dict[str, Any]:
    jsonable = {k: params[k] for k in sorted(params)}
    if jsonable.get("governance") is not None:
        jsonable["governance"] = dataclasses.asdict(jsonable["governance"])
    return jsonable


def deploy_system(
    deployer: Any,
    params: dict[str, Any],
    *,
    manifest_path: Path | None = None,
    resume: bool = True,
    tx_options: TxOptions | None = None,
    on_step: Callable[[str], None] | None = None,
) -> SystemDeployment:
    """Deploy (or finish deploying) the whole Kuota system from ``deployer`` on the connected chain.

    Args:
        deployer: a Brownie account (unlocked, or a ``LocalAccount`` from a keystore).
        params: deploy parameters (``scripts/params/*.json``); ``paymentToken`` null deploys MockUSD,
            ``treasury``/``slasher``/``pauser`` null mean the deployer.
        manifest_path: where to write the manifest after every step; ``None`` writes nothing.
        resume: reuse what an existing manifest at ``manifest_path`` records (checked on chain).
        tx_options: fees and confirmation depth for every transaction.
        on_step: called with a step name after each step is durable (tests use it to interrupt).

    Returns:
        The deployed contracts, the manifest, and the transactions this call sent.

    Raises:
        DeployParamsError: a parameter is missing or out of range.
        DeploymentConflictError: the manifest disagrees with the chain or with ``params``.
    """
    run = _Deployer(deployer, params, manifest_path, resume, tx_options or TxOptions(), on_step)
    return run.run()
