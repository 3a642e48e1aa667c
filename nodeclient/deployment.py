"""Deployment manifests: where the Kuota contracts live on a chain, and proof they match our ABIs.

``scripts/deploy.py`` writes ``deployments/<chainId>.json``; the client and the auditor read it with
``load_manifest``, which refuses anything it cannot trust: a malformed file, a non-checksummed or zero
address, a missing contract, an unfinished deploy, or an ``abiHash`` that differs from the ABIs this
client ships (the contracts would not be the ones the client knows how to talk to).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eth_utils import is_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nodeclient.abi import CONTRACT_NAMES, abi_hash
from nodeclient.errors import ConfigError, NotFoundError

__all__ = [
    "KUOTA_CONTRACTS",
    "LOCAL_CHAIN_IDS",
    "AbiMismatchError",
    "DeployParamsError",
    "Deployment",
    "DeploymentConflictError",
    "ManifestError",
    "ManifestNotFoundError",
    "find_manifest",
    "load_manifest",
    "local_chain_ids",
]

#: The contract names every manifest must record (the payment token included).
KUOTA_CONTRACTS: tuple[str, ...] = CONTRACT_NAMES

#: Chain ids of throw-away local chains (Anvil/Hardhat 31337, Ganache 1337): their manifests are
#: git-ignored and a restarted chain may be redeployed over an old manifest.
LOCAL_CHAIN_IDS: frozenset[int] = frozenset({31337, 1337})

_ZERO = "0x" + "00" * 20


def local_chain_ids() -> frozenset[int]:
    """Chain ids treated as disposable local chains."""
    return LOCAL_CHAIN_IDS


class ManifestError(ConfigError):
    """A deployment manifest is malformed or inconsistent; the message names the file and the field."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"deployment manifest {path}: {problem}")


class ManifestNotFoundError(NotFoundError):
    """No manifest for a chain id in any of the searched directories."""

    def __init__(self, chain_id: int, searched: list[Path]) -> None:
        self.chain_id = chain_id
        where = ", ".join(str(p) for p in searched) or "(no directories)"
        super().__init__(
            f"no deployment manifest {chain_id}.json for chain id {chain_id} in {where}; "
            "deploy first (`kuota deploy`) or pass the manifest path"
        )


class AbiMismatchError(ManifestError):
    """The manifest's ``abiHash`` differs from the ABIs this client ships."""

    def __init__(self, path: Path | str, recorded: str, shipped: str) -> None:
        super().__init__(
            path,
            f"abiHash {recorded} does not match the ABIs shipped with this client ({shipped}); "
            "the contracts were built from different sources: upgrade the client or redeploy",
        )


class DeployParamsError(ConfigError):
    """A deploy parameter is missing, of the wrong type or out of bounds."""


class DeploymentConflictError(ConfigError):
    """An existing manifest disagrees with the chain or with the parameters of a resumed deploy."""


class Deployment(BaseModel):
    """A validated deployment manifest (``deployments/<chainId>.json``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow")

    chain_id: int = Field(alias="chainId", gt=0, description="EIP-155 chain id the contracts live on.")
    deployer: str = Field(description="Checksummed address that deployed the contracts.")
    block_number: int = Field(alias="blockNumber", ge=0, description="Block of the first deploy transaction.")
    contracts: dict[str, str] = Field(description="Contract name → checksummed address.")
    params: dict[str, Any] = Field(default_factory=dict, description="Resolved deploy parameters.")
    abi_hash: str = Field(alias="abiHash", description="keccak256 of the canonical ABIs, 0x-hex.")
    genesis_hash: str | None = Field(default=None, alias="genesisHash", description="Hash of block 0.")
    complete: bool = Field(default=True, description="False while a deploy is still in progress.")
    source: str | None = Field(default=None, exclude=True, description="The file this was read from.")

    @field_validator("deployer")
    @classmethod
    def _checksummed_deployer(cls, value: str) -> str:
        if not isinstance(value, str) or not is_checksum_address(value):
            raise ValueError(f"deployer {value!r} is not a checksummed address")
        return value

    @field_validator("abi_hash")
    @classmethod
    def _hex32(cls, value: str) -> str:
        if not (isinstance(value, str) and value.startswith("0x") and len(value) == 66):
            raise ValueError(f"abiHash {value!r} is not a 0x-prefixed 32-byte hex string")
        int(value, 16)
        return value.lower()

    @model_validator(mode="after")
    def _contracts_complete(self) -> Deployment:
        missing = [name for name in KUOTA_CONTRACTS if name not in self.contracts]
        if missing:
            raise ValueError(f"contracts is missing {', '.join(missing)}")
        for name, address in self.contracts.items():
            if not isinstance(address, str) or not is_checksum_address(address):
                raise ValueError(f"contracts.{name} = {address!r} is not a checksummed address")
            if address == _ZERO:
                raise ValueError(f"contracts.{name} is the zero address")
        if not self.complete:
            raise ValueError("the deploy that wrote it has not finished (complete=false); re-run it to resume")
        return self

    def address(self, name: str) -> str:
        """Checksummed address of contract ``name``; ``ConfigError`` if the manifest lacks it."""
        try:
            return self.contracts[name]
        except KeyError:
            raise ConfigError(f"deployment on chain {self.chain_id} records no contract named {name!r}") from None


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ())) or "(top level)"
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc != "(top level)" else msg


def load_manifest(path: str | Path, *, check_abi: bool = True, expected_chain_id: int | None = None) -> Deployment:
    """Read and validate a deployment manifest.

    Args:
        path: the JSON manifest.
        check_abi: compare ``abiHash`` with the ABIs shipped in ``nodeclient/abi``.
        expected_chain_id: if given, the manifest must be for this chain.

    Raises:
        ManifestNotFoundError: the file does not exist.
        ManifestError: the file is not JSON, a field is malformed, a contract is missing, the chain id
            is not the expected one, or (``AbiMismatchError``) the ABIs differ.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotFoundError(f"deployment manifest {path} does not exist") from None
    except OSError as exc:
        raise ManifestError(path, f"cannot be read ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise ManifestError(path, f"must hold a JSON object, not {type(raw).__name__}")
    for key in ("chainId", "blockNumber"):
        # pydantic would coerce "31337" or 1.0; a manifest with such values was not written by us.
        if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], int)):
            raise ManifestError(path, f"{key} must be an integer, got {raw[key]!r}")
    try:
        deployment = Deployment.model_validate({**raw, "source": str(path)})
    except ValidationError as exc:
        raise ManifestError(path, _describe(exc.errors()[0])) from None
    if expected_chain_id is not None and deployment.chain_id != expected_chain_id:
        raise ManifestError(path, f"is for chain id {deployment.chain_id}, but the RPC is chain {expected_chain_id}")
    if check_abi:
        shipped = abi_hash()
        if deployment.abi_hash != shipped.lower():
            raise AbiMismatchError(path, deployment.abi_hash, shipped)
    return deployment


def find_manifest(chain_id: int, search_dirs: Iterable[str | Path]) -> Path:
    """Return the first ``<chain_id>.json`` found in ``search_dirs`` (in order).

    Raises:
        ManifestNotFoundError: none of the directories holds one.
    """
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise ConfigError(f"chain id must be a positive integer, got {chain_id!r}")
    searched: list[Path] = []
    for directory in search_dirs:
        candidate = Path(directory) / f"{chain_id}.json"
        searched.append(Path(directory))
        if candidate.is_file():
            return candidate
    raise ManifestNotFoundError(chain_id, searched)
