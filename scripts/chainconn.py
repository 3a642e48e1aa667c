"""Connect Brownie to an arbitrary JSON-RPC URL without touching the user's ~/.brownie.

Brownie only connects to networks listed in its ``CONFIG.networks`` (normally read from
``~/.brownie/network-config.yaml``). We add one entry to that in-memory dict for the life of this
process and connect to it, so a local chain started by ``kuota chain up`` or a testnet RPC from the
environment works with no ``brownie networks add`` and nothing written to the user's home.

- ``live=False`` (local chains): a development-type network that Brownie *attaches* to (it never
  launches or kills a process: the chain belongs to nodeclient.localchain) and that writes no
  deployment artifacts into ``build/deployments``.
- ``live=True`` (testnets): Brownie's live settings (estimated gas limits, refusing to send a
  transaction that would revert).
"""

from __future__ import annotations

from typing import Any

__all__ = ["RUNTIME_NETWORK_ID", "connect_rpc", "disconnect_rpc"]

RUNTIME_NETWORK_ID = "kuota-runtime"


def connect_rpc(
    url: str, *, chain_id: int, live: bool = False, network_id: str = RUNTIME_NETWORK_ID, explorer: str | None = None
) -> None:
    """Connect Brownie to ``url`` (which must answer with ``chain_id``) as network ``network_id``.

    ``explorer`` is an Etherscan-compatible API URL, used only for source verification.
    """
    from brownie import network
    from brownie._config import CONFIG

    from nodeclient.errors import ChainError

    disconnect_rpc()
    entry: dict[str, Any] = {"id": network_id, "name": f"Kuota ({url})", "host": url, "chainid": str(chain_id)}
    if explorer:
        entry["explorer"] = explorer
    if not live:
        # The presence of "cmd" makes Brownie treat the network as development; connect() is told
        # not to launch it, so the command is never run.
        entry.update({"cmd": "anvil", "cmd_settings": {}})
    CONFIG.networks[network_id] = entry
    try:
        network.connect(network_id, launch_rpc=False)
    except Exception as exc:  # noqa: BLE001 - brownie raises ConnectionError/RPCRequestError/ValueError
        raise ChainError(f"cannot connect to the RPC at {url}: {type(exc).__name__}: {exc}") from None
    try:
        actual = int(network.web3.eth.chain_id)
    except Exception as exc:  # noqa: BLE001 - any transport failure means "the RPC is down" to the user
        disconnect_rpc()
        raise ChainError(f"the RPC at {url} does not answer ({type(exc).__name__})") from None
    if actual != chain_id:
        disconnect_rpc()
        raise ChainError(f"the RPC at {url} is chain {actual}, not the expected chain {chain_id}")
    settings = CONFIG.active_network["settings"]
    # Real fee markets everywhere: estimate gas and price by EIP-1559 rather than Brownie's
    # development defaults (block gas limit, gas price 0), which a chain with a base fee rejects.
    settings.update({"gas_limit": "auto", "gas_buffer": 1.2, "gas_price": None, "priority_fee": "auto"})
    settings["reverting_tx_gas_limit"] = False


def disconnect_rpc() -> None:
    """Disconnect Brownie (never kills any process)."""
    from brownie import network
    from brownie._config import CONFIG

    if network.is_connected():
        network.disconnect(kill_rpc=False)
    else:
        # Brownie counts a network whose RPC stopped answering as "not connected" but keeps it
        # active; clear it so the next connect_rpc starts clean.
        CONFIG.clear_active()
        network.web3.disconnect()
