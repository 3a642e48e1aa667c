"""Command line of ``scripts/deploy.py``: local chains, testnets (keystore, EIP-1559, confirmations), dry runs.

::

    python scripts/deploy.py local  [--rpc-url URL] [--params local] [--manifest-dir DIR] [--json]
    python scripts/deploy.py live   --rpc-url URL --chain-id N --params FILE --keystore FILE
                                    [--password-file FILE] [--priority-fee-gwei G] [--max-fee-gwei G]
                                    [--confirmations N] [--manifest-dir DIR] [--verify] [--yes] [--json]
    python scripts/deploy.py plan   (the same options; no password needed: nothing is signed)

Every option has an environment fallback (``KUOTA_RPC_URL``, ``KUOTA_CHAIN_ID``, ``KUOTA_PARAMS``,
``KUOTA_DEPLOYER_KEYSTORE``, ``KUOTA_DEPLOYER_PASSWORD_FILE`` or ``KUOTA_DEPLOYER_PASSWORD``,
``KUOTA_PRIORITY_FEE_GWEI``, ``KUOTA_MAX_FEE_GWEI``, ``KUOTA_CONFIRMATIONS``, ``KUOTA_DEPLOYMENTS_DIR``,
``KUOTA_DRY_RUN=1``), so ``brownie run scripts/deploy.py live --network <id>`` works from the
environment alone.

The dry run (``plan``) forks the target chain into a throw-away Anvil, impersonates the deployer there
and runs the very same ``deploy_system`` against a copy of the manifest: the steps it prints are the
ones a real run would take (a resumed deploy plans only what is left) and the gas figures are gas used
by real transactions, not estimates of estimates. Nothing is sent to the target chain.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from eth_utils import is_checksum_address, to_checksum_address

from nodeclient.deployment import LOCAL_CHAIN_IDS, DeployParamsError
from nodeclient.errors import ChainError, ConfigError, KeystoreError, KuotaError, RefusedError
from nodeclient.keys import KeyManager, KeystoreNotFoundError, Secret, read_password_file
from scripts.chainconn import connect_rpc, disconnect_rpc
from scripts.deploy_system import (
    DEPLOYMENTS_DIR,
    SystemDeployment,
    TxOptions,
    deploy_system,
    load_params,
    manifest_path_for,
)

__all__ = ["LiveConfig", "deploy_live", "deploy_local", "plan_deploy", "run_cli", "run_live", "run_plan"]

GWEI = 10**9
PASSWORD_ENV = "KUOTA_DEPLOYER_PASSWORD"


@dataclass(frozen=True)
class LiveConfig:
    """Everything a testnet deploy needs; secrets are not in here (the password is read at unlock)."""

    rpc_url: str
    chain_id: int
    params: dict[str, Any]
    keystore: Path | None
    deployer_address: str | None
    password_file: Path | None
    priority_fee: int | None
    max_fee: int | None
    confirmations: int
    manifest_dir: Path
    verify: bool
    allow_mock_payment_token: bool
    explorer_api: str | None = None
    fresh: bool = False


# --- option parsing ----------------------------------------------------------------------------


def _gwei(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"{name} must be a number of gwei, got {value!r}") from None
    if not amount.is_finite() or amount < 0 or amount > 100_000:
        raise ConfigError(f"{name} must be between 0 and 100000 gwei, got {value!r}")
    return int(amount * GWEI)


def _int(value: str | None, name: str, default: int | None = None, low: int = 0, high: int = 2**63) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="scripts/deploy.py", description="Deploy the Kuota contracts.")
    sub = parser.add_subparsers(dest="command")
    for name in ("local", "live", "plan"):
        p = sub.add_parser(name)
        p.add_argument("--rpc-url", default=env("KUOTA_RPC_URL"))
        p.add_argument("--chain-id", default=env("KUOTA_CHAIN_ID"))
        p.add_argument("--params", default=env("KUOTA_PARAMS", "local" if name == "local" else None))
        p.add_argument("--manifest-dir", default=env("KUOTA_DEPLOYMENTS_DIR"))
        p.add_argument("--home", default=None, help="KUOTA_HOME of the local chain (local only).")
        p.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")
        p.add_argument("--fresh", action="store_true", help="Ignore an existing manifest and deploy everything anew.")
        if name != "local":
            p.add_argument("--keystore", default=env("KUOTA_DEPLOYER_KEYSTORE"))
            p.add_argument("--deployer", default=env("KUOTA_DEPLOYER_ADDRESS"), help="Address (plan only).")
            p.add_argument("--password-file", default=env("KUOTA_DEPLOYER_PASSWORD_FILE"))
            p.add_argument("--priority-fee-gwei", default=env("KUOTA_PRIORITY_FEE_GWEI"))
            p.add_argument("--max-fee-gwei", default=env("KUOTA_MAX_FEE_GWEI"))
            p.add_argument("--confirmations", default=env("KUOTA_CONFIRMATIONS"))
            p.add_argument("--verify", action="store_true", help="Publish sources (needs ETHERSCAN_TOKEN).")
            p.add_argument("--explorer-api", default=env("KUOTA_EXPLORER_API"), help="Etherscan-compatible API URL.")
            p.add_argument("--allow-mock-payment-token", action="store_true")
            p.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
            p.add_argument("--dry-run", action="store_true", default=env("KUOTA_DRY_RUN", "") == "1")
    return parser


def _keystore_address(path: Path) -> str:
    """The address a keystore file declares (readable without the password)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeystoreNotFoundError(f"file {str(path)!r}") from None
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"keystore file {path} is not a readable JSON keystore ({type(exc).__name__})") from None
    address = data.get("address") if isinstance(data, dict) else None
    if not isinstance(address, str):
        raise KeystoreError(f"keystore file {path} has no address field")
    return to_checksum_address(address if address.startswith("0x") else "0x" + address)


def _live_config(args: argparse.Namespace) -> LiveConfig:
    if not args.rpc_url:
        raise ConfigError("no RPC URL: pass --rpc-url or set KUOTA_RPC_URL")
    chain_id = _int(args.chain_id, "--chain-id / KUOTA_CHAIN_ID", low=1)
    if chain_id is None:
        raise ConfigError("no chain id: pass --chain-id or set KUOTA_CHAIN_ID (the RPC must report it)")
    if not args.params:
        raise ConfigError("no parameters file: pass --params (copy scripts/params/testnet.template.json)")
    keystore = Path(args.keystore).expanduser() if args.keystore else None
    deployer = args.deployer
    if deployer is not None and not is_checksum_address(deployer):
        raise ConfigError(f"--deployer {deployer!r} is not a checksummed address")
    if keystore is None and deployer is None:
        raise ConfigError("no deployer: pass --keystore (or KUOTA_DEPLOYER_KEYSTORE)")
    confirmations = _int(args.confirmations, "--confirmations / KUOTA_CONFIRMATIONS", default=2, low=1, high=64)
    return LiveConfig(
        rpc_url=args.rpc_url,
        chain_id=chain_id,
        params=load_params(args.params),
        keystore=keystore,
        deployer_address=deployer or (_keystore_address(keystore) if keystore else None),
        password_file=Path(args.password_file).expanduser() if args.password_file else None,
        priority_fee=_gwei(args.priority_fee_gwei, "--priority-fee-gwei"),
        max_fee=_gwei(args.max_fee_gwei, "--max-fee-gwei"),
        confirmations=int(confirmations or 2),
        manifest_dir=Path(args.manifest_dir or DEPLOYMENTS_DIR),
        verify=bool(args.verify),
        allow_mock_payment_token=bool(args.allow_mock_payment_token),
        explorer_api=args.explorer_api,
        fresh=bool(args.fresh),
    )


def _password(config: LiveConfig) -> Secret:
    if config.password_file is not None:
        return read_password_file(config.password_file)
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return Secret(from_env)
    if sys.stdin.isatty():
        return Secret(getpass.getpass(f"Password for {config.keystore}: "))
    raise KeystoreError(f"no password for {config.keystore}: pass --password-file or set {PASSWORD_ENV}")


def _unlock(config: LiveConfig) -> Any:
    """Decrypt the deployer keystore into a Brownie LocalAccount (the key never leaves memory)."""
    from brownie import accounts

    assert config.keystore is not None
    manager = KeyManager(config.keystore.parent)
    info = manager.info_for_file(config.keystore)
    signer = manager.unlock(info, _password(config))
    account = accounts.add(signer.private_key_bytes().hex())
    return account


def _fees(w3: Any, config: LiveConfig) -> TxOptions:
    latest = w3.eth.get_block("latest")
    base_fee = int(latest.get("baseFeePerGas") or 0)
    priority = config.priority_fee if config.priority_fee is not None else int(w3.eth.max_priority_fee)
    max_fee = config.max_fee if config.max_fee is not None else 2 * base_fee + priority
    if max_fee < priority:
        raise ConfigError(f"max fee {max_fee / GWEI} gwei is below the priority fee {priority / GWEI} gwei")
    if max_fee < base_fee:
        raise ConfigError(f"max fee {max_fee / GWEI} gwei is below the current base fee {base_fee / GWEI} gwei")
    return TxOptions(priority_fee=priority, max_fee=max_fee, required_confs=config.confirmations)


def _check_payment_token(config: LiveConfig) -> None:
    mock = config.params.get("paymentToken") is None and config.chain_id not in LOCAL_CHAIN_IDS
    if mock and not config.allow_mock_payment_token:
        raise DeployParamsError(
            f"paymentToken is null, which deploys MockUSD (anyone can mint it) on chain {config.chain_id}; "
            "set paymentToken to the stablecoin's address, or pass --allow-mock-payment-token on a testnet"
        )


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
    # Brownie prints every transaction on stdout; --json promises one JSON object there.
    if enabled:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    else:
        yield


def _summary(system: SystemDeployment, path: Path) -> dict[str, Any]:
    return {
        "manifestPath": str(path),
        "manifest": system.manifest,
        "transactions": len(system.transactions),
        "gasUsed": system.gas_used,
    }


# --- the three commands ------------------------------------------------------------------------


def deploy_local(
    rpc_url: str | None, params_name: str, manifest_dir: Path | None, home: str | None, fresh: bool = False
) -> tuple[SystemDeployment, Path]:
    """Deploy with the chain's unlocked ``accounts[0]`` on a local chain (``kuota chain up`` or URL)."""
    from brownie import accounts, network

    from nodeclient import localchain

    recorded: localchain.ChainState | None = None
    if rpc_url is None:
        recorded = localchain.attach(home)
        rpc_url = recorded.url
    chain_id = recorded.chain_id if recorded else _rpc_chain_id(rpc_url)
    connect_rpc(rpc_url, chain_id=chain_id, live=False)
    try:
        if recorded is not None and manifest_dir is None:
            manifest_dir = localchain.kuota_home(home) / "deployments"
        path = manifest_path_for(chain_id, manifest_dir or DEPLOYMENTS_DIR)
        if not accounts:
            raise ChainError(f"the RPC at {rpc_url} has no unlocked accounts; use `live` with a keystore")
        options = TxOptions(priority_fee=int(network.web3.eth.max_priority_fee))
        system = deploy_system(
            accounts[0], load_params(params_name), manifest_path=path, tx_options=options, resume=not fresh
        )
        if recorded is not None:
            localchain.record_manifest(path, home)
        return system, path
    finally:
        disconnect_rpc()


def _rpc_chain_id(url: str) -> int:
    from nodeclient.chain.rpc import connect

    try:
        return int(connect(url, timeout=10).eth.chain_id)
    except Exception as exc:  # noqa: BLE001 - any transport failure is "RPC down" to the user
        raise ChainError(f"the RPC at {url} does not answer ({type(exc).__name__})") from None


def deploy_live(config: LiveConfig, *, assume_yes: bool, connected: bool = False) -> tuple[SystemDeployment, Path]:
    """Deploy (or resume deploying) on a testnet with a keystore deployer and EIP-1559 fees."""
    from brownie import network

    _check_payment_token(config)
    if not connected:
        if config.verify and not (config.explorer_api and os.environ.get("ETHERSCAN_TOKEN")):
            # Checked before any transaction: a deploy that cannot verify should not start.
            raise ConfigError("--verify needs --explorer-api (or KUOTA_EXPLORER_API) and ETHERSCAN_TOKEN")
        connect_rpc(
            config.rpc_url,
            chain_id=config.chain_id,
            live=config.chain_id not in LOCAL_CHAIN_IDS,
            explorer=config.explorer_api,
        )
    try:
        w3 = network.web3
        deployer = _unlock(config)
        options = _fees(w3, config)
        path = manifest_path_for(config.chain_id, config.manifest_dir)
        balance = int(w3.eth.get_balance(deployer.address))
        print(
            f"Deploying Kuota to chain {config.chain_id} at {config.rpc_url}\n"
            f"  deployer {deployer.address}, balance {balance / 10**18:.6f} ETH\n"
            f"  fees: priority {options.priority_fee / GWEI:g} gwei, max {options.max_fee / GWEI:g} gwei; "
            f"{options.required_confs} confirmations\n"
            f"  manifest {path}{' (resuming)' if path.exists() else ''}\n"
            f"  run `python scripts/deploy.py plan ...` first for the exact gas",
            file=sys.stderr,
        )
        if not assume_yes:
            if not sys.stdin.isatty():
                raise RefusedError("refusing to deploy without confirmation: stdin is not a terminal; pass --yes")
            print("Send the transactions? [y/N] ", end="", file=sys.stderr, flush=True)
            if input().strip().lower() not in ("y", "yes"):
                raise RefusedError("deploy cancelled by the user")
        system = deploy_system(deployer, config.params, manifest_path=path, tx_options=options, resume=not config.fresh)
        if config.verify:
            _verify_sources(system)
        return system, path
    finally:
        if not connected:
            disconnect_rpc()


def _verify_sources(system: SystemDeployment) -> None:
    """Etherscan-style source verification through Brownie (needs ETHERSCAN_TOKEN and network access).

    Not covered by the test suite: it needs a public explorer API, which an offline test cannot reach.
    """
    if not os.environ.get("ETHERSCAN_TOKEN"):
        raise ConfigError("--verify needs ETHERSCAN_TOKEN in the environment")
    from brownie._config import CONFIG

    if "explorer" not in CONFIG.active_network:
        raise ConfigError("--verify needs an explorer API URL: pass --explorer-api or use `brownie run --network <id>`")
    from scripts.brownie_project import load_project

    project = load_project()
    for name, address in system.manifest["contracts"].items():
        if name == "PaymentToken" and system.manifest["params"].get("paymentToken"):
            continue  # an existing token, not ours to verify
        container = project["MockUSD" if name == "PaymentToken" else name]
        container.publish_source(system.contract(name))
        print(f"verification submitted for {name} at {address}", file=sys.stderr)


def plan_deploy(config: LiveConfig) -> dict[str, Any]:
    """Dry run on an Anvil fork of the target: the steps left to do and the gas they really use."""
    from brownie import accounts, network

    from nodeclient.localchain import ManagedChain

    _check_payment_token(config)
    target_chain = _rpc_chain_id(config.rpc_url)
    if target_chain != config.chain_id:
        raise ChainError(f"the RPC at {config.rpc_url} is chain {target_chain}, not the expected chain {config.chain_id}")
    assert config.deployer_address is not None
    address = config.deployer_address
    real_manifest = manifest_path_for(config.chain_id, config.manifest_dir)
    with tempfile.TemporaryDirectory(prefix="kuota-plan-") as tmp:
        plan_manifest = Path(tmp) / "deployments" / f"{config.chain_id}.json"
        if real_manifest.exists() and not config.fresh:
            plan_manifest.parent.mkdir(parents=True)
            shutil.copy(real_manifest, plan_manifest)
        from web3 import HTTPProvider, Web3

        target = Web3(HTTPProvider(config.rpc_url, request_kwargs={"timeout": 10}))
        real_balance = int(target.eth.get_balance(address))
        with ManagedChain(Path(tmp) / "home", chain_id=config.chain_id, fork_url=config.rpc_url) as fork:
            connect_rpc(fork.url, chain_id=config.chain_id, live=False)
            try:
                w3 = network.web3
                # The fork is ours: give the impersonated deployer enough ether that the plan never
                # stops for funds; the real balance is compared with the cost below instead.
                w3.provider.make_request("anvil_setBalance", [address, hex(10**24)])
                deployer = accounts.at(address, force=True)
                options = _fees(w3, config)
                steps: list[str] = []
                system = deploy_system(
                    deployer,
                    config.params,
                    manifest_path=plan_manifest,
                    tx_options=TxOptions(priority_fee=options.priority_fee, max_fee=options.max_fee),
                    on_step=steps.append,
                )
                base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas") or 0)
            finally:
                disconnect_rpc()
    txs = [
        {"step": f"{tx.contract_name}.{tx.fn_name}" if tx.fn_name else str(tx.contract_name), "gasUsed": int(tx.gas_used)}
        for tx in system.transactions
    ]
    total = sum(t["gasUsed"] for t in txs)
    expected_price = min(options.max_fee or 0, base_fee + (options.priority_fee or 0))
    return {
        "chainId": config.chain_id,
        "deployer": address,
        "resuming": real_manifest.exists() and not config.fresh,
        "transactions": txs,
        "totalGas": total,
        "priorityFeeWei": options.priority_fee,
        "maxFeeWei": options.max_fee,
        "expectedCostWei": total * expected_price,
        "maxCostWei": total * (options.max_fee or 0),
        "deployerBalanceWei": real_balance,
        "enoughFunds": real_balance >= total * (options.max_fee or 0),
    }


def _print_plan(plan: dict[str, Any]) -> None:
    print(f"Plan for chain {plan['chainId']} (deployer {plan['deployer']}{', resuming' if plan['resuming'] else ''}):")
    if not plan["transactions"]:
        print("  nothing to do: the deployment is complete")
    for tx in plan["transactions"]:
        print(f"  {tx['step']:<42} {tx['gasUsed']:>10,} gas")
    print(f"  {'total':<42} {plan['totalGas']:>10,} gas")
    print(
        f"  cost at current fees ≈ {plan['expectedCostWei'] / 10**18:.6f} ETH "
        f"(at most {plan['maxCostWei'] / 10**18:.6f} ETH); deployer has {plan['deployerBalanceWei'] / 10**18:.6f} ETH"
        + ("" if plan["enoughFunds"] else "  <-- NOT ENOUGH")
    )


def run_cli(argv: list[str]) -> int:
    """``python scripts/deploy.py <local|live|plan> ...``; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv or ["local"])
    command = args.command or "local"
    dry_run = getattr(args, "dry_run", False)  # only `live` and `plan` take --dry-run
    try:
        with _stdout_to_stderr(args.json):
            if command == "local":
                system, path = deploy_local(
                    args.rpc_url, args.params, Path(args.manifest_dir) if args.manifest_dir else None, args.home,
                    fresh=args.fresh,
                )
                result: dict[str, Any] = _summary(system, path)
            elif command == "plan" or dry_run:
                result = plan_deploy(_live_config(args))
                if not args.json:
                    _print_plan(result)
            else:
                system, path = deploy_live(_live_config(args), assume_yes=args.yes)
                result = _summary(system, path)
        if args.json:
            print(json.dumps(result, sort_keys=True))
        elif command != "plan" and not dry_run:
            print(f"Kuota deployed on chain {result['manifest']['chainId']}; manifest {result['manifestPath']}")
            for name, address in result["manifest"]["contracts"].items():
                print(f"  {name:<18} {address}")
            print(f"  transactions sent: {result['transactions']}, gas used: {result['gasUsed']:,}")
        return 0
    except KuotaError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        mapped = _chain_failure(exc)
        if mapped is None:
            raise
        print(f"Error: {mapped}", file=sys.stderr)
        return mapped.exit_code


def _chain_failure(exc: Exception) -> KuotaError | None:
    """Turn Brownie/web3/transport failures into one clear line; anything else stays a bug."""
    import requests
    from brownie.exceptions import RPCRequestError, VirtualMachineError
    from web3.exceptions import Web3Exception

    from nodeclient.errors import InsufficientFundsError, TransactionError

    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "insufficient funds" in text.lower():
        return InsufficientFundsError(f"the deployer cannot pay for the transaction: {text}")
    if isinstance(exc, VirtualMachineError):
        return TransactionError(f"a deploy transaction reverted: {text}")
    if isinstance(exc, (RPCRequestError, Web3Exception, requests.RequestException, ConnectionError, TimeoutError)):
        return ChainError(f"the chain failed the request: {type(exc).__name__}: {text}")
    if isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], dict) and "message" in exc.args[0]:
        return TransactionError(f"the RPC rejected a transaction: {exc.args[0]['message']}")
    return None


def run_live() -> SystemDeployment | None:
    """``brownie run scripts/deploy.py live [--network id]``: configuration from the environment."""
    from brownie import network

    args = _parser().parse_args(["live"])
    connected = network.is_connected()
    if connected and not args.rpc_url:
        args.rpc_url = network.web3.provider.endpoint_uri
        args.chain_id = args.chain_id or str(network.web3.eth.chain_id)
    config = _live_config(args)
    if args.dry_run:
        _print_plan(plan_deploy(config))
        return None
    system, path = deploy_live(config, assume_yes=args.yes, connected=connected)
    print(f"manifest written to {path}")
    return system


def run_plan() -> None:
    """``brownie run scripts/deploy.py plan``: configuration from the environment."""
    from brownie import network

    args = _parser().parse_args(["plan"])
    if network.is_connected() and not args.rpc_url:
        args.rpc_url = network.web3.provider.endpoint_uri
        args.chain_id = args.chain_id or str(network.web3.eth.chain_id)
        disconnect_rpc()
    _print_plan(plan_deploy(_live_config(args)))
