"""Client settings: a TOML file, ``KUOTA_*`` environment variables, and command-line flags on top.

Precedence, lowest to highest: built-in defaults → ``<config dir>/config.toml`` → ``ETH_RPC_URL`` →
``KUOTA_*`` environment → flags (the keyword arguments of :func:`load_settings`). ``ETH_RPC_URL`` is the
variable Foundry's ``cast`` and ``forge`` read: a shell set up for them selects the same endpoint for the
selected network, while ``KUOTA_RPC_URL`` and ``--rpc-url`` still win over it. The config dir is the platform's (platformdirs) unless
``KUOTA_HOME`` is set, in which case both configuration and data (keystores, receipt store, nonce
journal) live under it: one variable isolates a whole installation, which is what tests and operators
running two identities on one machine need.

A network profile names an RPC endpoint, the chain id it must serve, the deployment manifest and the
confirmation depth. ``local`` (Anvil, chain 31337) exists by default; testnets are added as
``[networks.<name>]`` tables in the file, or given ad hoc with ``--rpc-url``/``--chain-id``/``--manifest``.

Example ``config.toml``::

    network = "sepolia"
    account = "operator"

    [networks.sepolia]
    rpc_url = "https://rpc.sepolia.org"
    chain_id = 11155111
    manifest = "~/kuota/deployments/11155111.json"
    confirmations = 3

    [settlement]
    module = "lanes"               # settle through LaneSettlement (default "receipts")
    min_value = 5_000_000          # 5 USD of a 6-decimal stablecoin
    max_gas_share_bps = 300        # settle only if gas costs ≤ 3 % of what it collects

    [web]                          # the node's /metrics and /bundles/ (docs/OPERATING.md)
    host = "0.0.0.0"               # off loopback a bearer token is required
    token_file = "/etc/kuota/web-token"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from nodeclient.errors import ConfigError, NotFoundError

__all__ = [
    "APP_NAME",
    "FOUNDRY_RPC_ENV",
    "LOCAL_CHAIN_ID",
    "LOCAL_RPC_URL",
    "InvalidSettingError",
    "NetworkProfile",
    "NetworkSpec",
    "PolicySettings",
    "Settings",
    "SettlementSettings",
    "UnknownNetworkError",
    "WebSettings",
    "config_dir",
    "data_dir",
    "load_settings",
]

APP_NAME = "kuota"
LOCAL_CHAIN_ID = 31337
LOCAL_RPC_URL = "http://127.0.0.1:8545"

# Environment variables read as settings. Others with the prefix (KUOTA_PASSWORD, KUOTA_ANVIL_PORT,
# KUOTA_HOME) belong to other readers and are deliberately not settings: a password in a settings
# object could end up in a repr or a debug dump.
_ENV_KEYS: dict[str, str] = {
    "KUOTA_NETWORK": "network",
    "KUOTA_RPC_URL": "rpc_url",
    "KUOTA_CHAIN_ID": "chain_id",
    "KUOTA_MANIFEST": "manifest",
    "KUOTA_CONFIRMATIONS": "confirmations",
    "KUOTA_ACCOUNT": "account",
    "KUOTA_KEYSTORE": "keystore",
    "KUOTA_DATA_DIR": "data_dir",
    "KUOTA_LOG_FILE": "log_file",
}
_ENV_NESTED_PREFIXES = ("KUOTA_SETTLEMENT__", "KUOTA_REWARDS__", "KUOTA_WEB__")
# Foundry's variable for the RPC endpoint, read below every KUOTA_* variable.
FOUNDRY_RPC_ENV = "ETH_RPC_URL"


class UnknownNetworkError(ConfigError, NotFoundError):
    """The selected network profile is not defined."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown network {name!r}; defined networks: {', '.join(sorted(known))}")


class InvalidSettingError(ConfigError):
    """A setting has a malformed or out-of-range value; the message names the source and the value."""

    def __init__(self, source: str, field: str, value: Any, problem: str) -> None:
        self.field = field
        super().__init__(f"invalid setting {field}={value!r} from {source}: {problem}")


def config_dir() -> Path:
    """Directory of ``config.toml``: ``$KUOTA_HOME`` if set, else the platform's user config dir."""
    home = os.environ.get("KUOTA_HOME")
    return Path(home).expanduser() if home else Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    """Directory of keystores, the receipt store and the transaction journal."""
    explicit = os.environ.get("KUOTA_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("KUOTA_HOME")
    return Path(home).expanduser() / "data" if home else Path(platformdirs.user_data_dir(APP_NAME))


def _check_rpc_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


class NetworkSpec(BaseModel):
    """A network profile as written in the config file (fields left out take defaults)."""

    model_config = ConfigDict(extra="forbid")

    rpc_url: str | None = Field(default=None, description="JSON-RPC endpoint (http or https).")
    chain_id: int | None = Field(default=None, gt=0, description="EIP-155 chain id the RPC must report.")
    manifest: Path | None = Field(default=None, description="Deployment manifest deployments/<chainId>.json.")
    confirmations: int | None = Field(default=None, ge=1, le=100, description="Blocks a tx needs before it counts.")
    finality: Literal["finalized", "depth"] | None = Field(
        default=None, description="When a mined tx is final: the RPC's 'finalized' block, or 'depth' only."
    )
    tx_timeout: float | None = Field(default=None, gt=0, description="Seconds to wait for a tx before giving up.")
    stuck_after: float | None = Field(default=None, gt=0, description="Seconds unmined before a fee bump.")
    fee_bump_percent: int | None = Field(
        default=None, ge=10, le=200, description="Fee increase of a replacement (nodes require >= 10 %)."
    )
    max_fee_gwei: float | None = Field(default=None, gt=0, description="Hard cap on maxFeePerGas, in gwei.")
    request_timeout: float | None = Field(default=None, gt=0, description="Seconds per JSON-RPC request.")
    rpc_retries: int | None = Field(
        default=None, ge=0, le=10, description="Resends of a retry-safe request after a transport fault."
    )

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_rpc_url(value)


class NetworkProfile(BaseModel):
    """A resolved network profile: everything the chain client needs to talk to one deployment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Profile name (``local``, ``sepolia``…).")
    rpc_url: str = Field(description="JSON-RPC endpoint (http or https).")
    chain_id: int = Field(gt=0, description="EIP-155 chain id; the client refuses an RPC that reports another.")
    manifest: Path = Field(description="Deployment manifest path.")
    confirmations: int = Field(default=1, ge=1, le=100, description="Blocks on top of a tx's block, inclusive.")
    finality: Literal["finalized", "depth"] = Field(
        default="finalized",
        description=(
            "When a mined transaction is final (a reorg can no longer remove it): 'finalized' uses the RPC's "
            "'finalized' block where it serves one and the confirmation depth where it does not; 'depth' "
            "always uses the confirmation depth. Until final, the node's ledger re-checks it against the chain."
        ),
    )
    tx_timeout: float = Field(default=180.0, gt=0, description="Seconds to wait for a tx (all replacements).")
    stuck_after: float = Field(default=45.0, gt=0, description="Seconds a tx may stay unmined before a fee bump.")
    fee_bump_percent: int = Field(default=15, ge=10, le=200, description="Replacement fee increase, percent.")
    max_fee_gwei: float | None = Field(default=None, gt=0, description="Hard cap on maxFeePerGas, gwei.")
    request_timeout: float = Field(default=10.0, gt=0, description="Seconds per JSON-RPC request.")
    rpc_retries: int = Field(default=3, ge=0, le=10, description="Retries of a transient RPC fault.")

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_rpc_url(value)


class PolicySettings(BaseModel):
    """When settling receipts or claiming rewards is worth its gas.

    Values are in payment-token base units (6 decimals for the local mock stablecoin). Rewards are
    valued at the protocol's reference price (``amount / rewardPerFeeUnit`` payment units).
    """

    model_config = ConfigDict(extra="forbid")

    min_value: int = Field(default=1_000_000, ge=0, description="Minimum value to act on (1 USD).")
    max_gas_share_bps: int = Field(
        default=500, ge=0, le=10_000, description="Act only if estimated gas cost ≤ this share of the value (bps)."
    )
    force_value: int = Field(
        default=100_000_000, ge=0, description="Act regardless of gas once the value reaches this (100 USD)."
    )
    max_age_seconds: int = Field(
        default=7 * 86_400, ge=0, description="Act regardless of gas once the oldest unsettled item is this old."
    )
    native_price: int = Field(
        default=3_000_000_000,
        ge=0,
        description="Payment-token base units per 1 ETH of gas (3000 USD), to compare gas with value.",
    )
    max_batch: int = Field(default=100, ge=1, le=500, description="Receipts per settleMany transaction.")


class SettlementSettings(PolicySettings):
    """The settlement policy, and the settlement module the node's receipts are signed for and settled by."""

    module: Literal["receipts", "lanes"] = Field(
        default="receipts",
        description="receipts: pooled escrow through ReceiptSettlement; lanes: per-node lanes through LaneSettlement.",
    )


class WebSettings(BaseModel):
    """The node's HTTP service (``/metrics``, ``/bundles/``) that ``kuota node serve`` runs beside the relay.

    Loopback by default. Any other address needs a bearer ``token`` (or ``token_file``): the service
    refuses to start without one, because ``/metrics`` tells anyone who can reach it how much the
    node carries and earns.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run the HTTP service beside the relay.")
    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on (loopback by default).")
    port: int = Field(default=7448, ge=0, le=65535, description="Port to listen on (0: any free port).")
    token: SecretStr | None = Field(
        default=None, description="Bearer token for /metrics (required off loopback); prefer KUOTA_WEB__TOKEN or token_file."
    )
    token_file: Path | None = Field(
        default=None, description="File holding the bearer token (e.g. a systemd credential), read at start."
    )
    public_bundles: bool = Field(
        default=True, description="Serve /bundles/ without the token: bundles are published for auditors."
    )


class Settings(BaseModel):
    """Every setting of the client. Build it with :func:`load_settings`, never directly from user input."""

    model_config = ConfigDict(extra="forbid")

    home: Path = Field(description="Config directory (holds config.toml).")
    data_dir: Path = Field(description="Keystores, receipt store and transaction journal.")
    network: str = Field(default="local", description="Selected network profile.")
    networks: dict[str, NetworkSpec] = Field(default_factory=dict, description="Profiles from the config file.")
    rpc_url: str | None = Field(default=None, description="Override of the selected profile's RPC URL.")
    chain_id: int | None = Field(default=None, gt=0, description="Override of the selected profile's chain id.")
    manifest: Path | None = Field(default=None, description="Override of the selected profile's manifest.")
    confirmations: int | None = Field(default=None, ge=1, le=100, description="Override of the confirmation depth.")
    account: str | None = Field(default=None, description="Default account: keystore alias or address.")
    keystore: Path | None = Field(default=None, description="Explicit keystore file (instead of an alias).")
    settlement: SettlementSettings = Field(
        default_factory=SettlementSettings, description="Receipt settlement policy and module."
    )
    rewards: PolicySettings = Field(
        default_factory=lambda: PolicySettings(min_value=100_000),
        description="Reward claim policy (values at the reference price).",
    )
    web: WebSettings = Field(default_factory=WebSettings, description="The node's HTTP service.")
    log_file: Path | None = Field(
        default=None, description="Also log to this file, rotated at log_max_bytes (journald needs none)."
    )
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024, description="Size at which log_file rotates.")
    log_backups: int = Field(default=5, ge=1, le=100, description="Rotated log files kept.")

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_rpc_url(value)

    def profile(self, name: str | None = None) -> NetworkProfile:
        """Resolve network profile ``name`` (default: the selected one), applying overrides to it.

        Raises:
            UnknownNetworkError: the name is not ``local`` nor defined in the config file, and no
                ``rpc_url`` + ``chain_id`` override makes an ad-hoc profile of it.
            InvalidSettingError: the resolved profile is incomplete or invalid.
        """
        name = name or self.network
        spec = self.networks.get(name, NetworkSpec())
        selected = name == self.network
        values: dict[str, Any] = {k: v for k, v in spec.model_dump().items() if v is not None}
        if name == "local":
            local = _local_chain_defaults()
            for key, value in local.items():
                values.setdefault(key, value)
        if selected:
            # Flags and env apply to the profile in use only, never to a profile named explicitly.
            for key in ("rpc_url", "chain_id", "manifest", "confirmations"):
                override = getattr(self, key)
                if override is not None:
                    values[key] = override
        if name != "local" and name not in self.networks and not ("rpc_url" in values and "chain_id" in values):
            raise UnknownNetworkError(name, ["local", *self.networks])
        for key in ("rpc_url", "chain_id"):
            if key not in values:
                raise InvalidSettingError(f"network {name!r}", key, None, "is required for this network")
        if "manifest" not in values:
            values["manifest"] = _default_manifest(int(values["chain_id"]), self.data_dir)
        values["manifest"] = Path(values["manifest"]).expanduser()
        try:
            return NetworkProfile(name=name, **values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InvalidSettingError(f"network {name!r}", field, err.get("input"), _msg(err)) from None


def _msg(err: dict[str, Any]) -> str:
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


def _local_chain_defaults() -> dict[str, Any]:
    """Defaults of the ``local`` profile, from the state file ``kuota chain up`` writes if there is one."""
    from nodeclient.localchain import read_state

    values: dict[str, Any] = {"rpc_url": LOCAL_RPC_URL, "chain_id": LOCAL_CHAIN_ID}
    try:
        state = read_state()
    except (ConfigError, OSError):  # a damaged or unreadable state file must not break other networks
        return values
    if state is not None:
        values["rpc_url"] = state.url
        values["chain_id"] = state.chain_id
        if state.manifest is not None:
            values["manifest"] = Path(state.manifest)
    return values


def _default_manifest(chain_id: int, data: Path) -> Path:
    """First existing ``<chain_id>.json`` in ./deployments, <data dir>/deployments, <home>/deployments."""
    candidates = [
        Path.cwd() / "deployments" / f"{chain_id}.json",
        data / "deployments" / f"{chain_id}.json",
        config_dir() / "deployments" / f"{chain_id}.json",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    return raw


def _read_env() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for env_key, field in _ENV_KEYS.items():
        if env_key in os.environ and os.environ[env_key] != "":
            values[field] = os.environ[env_key]
    for prefix in _ENV_NESTED_PREFIXES:
        section = prefix.removeprefix("KUOTA_").removesuffix("__").lower()
        for env_key, value in os.environ.items():
            if env_key.startswith(prefix):
                values.setdefault(section, {})[env_key.removeprefix(prefix).lower()] = value
    return values


def _read_foundry_env() -> dict[str, Any]:
    value = os.environ.get(FOUNDRY_RPC_ENV, "")
    return {"rpc_url": value} if value else {}


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from defaults, the config file, ``ETH_RPC_URL``, ``KUOTA_*`` env vars and ``overrides``.

    Keyword overrides are flags (``network``, ``rpc_url``, ``chain_id``, ``manifest``,
    ``confirmations``, ``account``, ``keystore``, ``data_dir``…); ``None`` means "not given".

    Raises:
        ConfigError: the file is not valid TOML, or (``InvalidSettingError``) a value is invalid; the
            message names the source (file, environment, flag) and the value.
    """
    home = config_dir()
    path = home / "config.toml"
    layers = [
        (f"config file {path}", _read_file(path)),
        (f"environment variable {FOUNDRY_RPC_ENV}", _read_foundry_env()),
        ("the environment", _read_env()),
        ("the command line", {k: v for k, v in overrides.items() if v is not None}),
    ]
    merged: dict[str, Any] = {"home": home, "data_dir": data_dir()}
    for source, layer in layers:
        candidate = _merge(merged, layer)
        try:
            Settings.model_validate(candidate)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InvalidSettingError(source, field, err.get("input"), _msg(err)) from None
        merged = candidate
    settings = Settings.model_validate(merged)
    settings.data_dir = settings.data_dir.expanduser()
    return settings
