"""The one place that opens JSON-RPC connections, and the one retry policy for transient faults.

Every reader and writer of the chain (the transaction client, the auditor, the relay's view of the
registry and escrow, local-chain management, the deploy scripts) gets its ``Web3`` / ``AsyncWeb3``
from here, so that time-outs and retries behave alike.

Which requests may be sent again blindly after a transport fault (a 5xx, a reset connection, a
time-out), when the client cannot know whether the node acted on the first one:

* reads (``eth_call``, ``eth_getLogs``, receipts, balances, nonces, …): asking twice changes nothing;
* ``eth_sendRawTransaction``: the same signed bytes have the same hash, so a node that already has
  the transaction answers "already known" (still pending) or "nonce too low" (mined), and the sender
  (:mod:`nodeclient.chain.sending`) reads both as "ours is out there" and looks for its receipt;
* never requests that act each time they arrive: ``eth_sendTransaction`` (the node signs a new
  transaction per call), ``eth_sign*``, and the test-chain controls (``evm_mine``,
  ``evm_increaseTime``, ``anvil_*``, ``hardhat_*``), which web3's default list would resend.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests
from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3
from web3.providers.rpc.utils import ExceptionRetryConfiguration

__all__ = [
    "RETRY_SAFE_METHODS",
    "TRANSIENT_ERRORS",
    "connect",
    "connect_async",
    "connect_profile",
    "endpoint_of",
    "is_transient",
    "rpc_message",
]

# Transport faults after which the node may or may not have seen the request.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (requests.ConnectionError, requests.Timeout, requests.HTTPError)

#: JSON-RPC methods that may be resent after a transport fault (see the module docstring).
RETRY_SAFE_METHODS: tuple[str, ...] = (
    "web3_clientVersion",
    "net_version",
    "eth_chainId",
    "eth_syncing",
    "eth_blockNumber",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_feeHistory",
    "eth_getBalance",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_getProof",
    "eth_getTransactionCount",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_call",
    "eth_estimateGas",
    "eth_createAccessList",
    "eth_getLogs",
    "eth_sendRawTransaction",
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a transport fault (the request may be asked again, if it is retry-safe)."""
    return isinstance(exc, TRANSIENT_ERRORS)


def rpc_message(exc: BaseException) -> str:
    """The node's own words for a JSON-RPC error (``error.message``), else the exception's text."""
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return str(response["error"].get("message", exc))
    return str(getattr(exc, "user_message", None) or exc)


def endpoint_of(w3: Web3) -> str:
    """The URL a connection talks to (for error messages)."""
    return str(getattr(w3.provider, "endpoint_uri", w3.provider))


def connect(url: str, *, timeout: float = 30.0, retries: int = 0, backoff: float = 0.25) -> Web3:
    """A synchronous connection to ``url``.

    ``retries`` counts attempts after the first one on a transient transport fault of a
    retry-safe method (web3 counts total attempts); ``0`` leaves every fault to the caller.
    """
    retry: ExceptionRetryConfiguration | None = None
    if retries > 0:
        retry = ExceptionRetryConfiguration(
            errors=TRANSIENT_ERRORS, retries=retries + 1, backoff_factor=backoff, method_allowlist=RETRY_SAFE_METHODS
        )
    provider = HTTPProvider(
        url,
        request_kwargs={"timeout": timeout},
        exception_retry_configuration=retry,
        # web3 asks eth_chainId before every call it fills in (dozens per command); a chain id
        # cannot change under a running node, and the client checks it once when it connects.
        cache_allowed_requests=True,
        cacheable_requests={"eth_chainId"},
        request_cache_validation_threshold=None,
    )
    return Web3(provider)


class Endpoint(Protocol):
    """What a connection is built from: a network profile (``nodeclient.config.NetworkProfile``).

    Structural, so that this module does not import the configuration, which imports the local
    chain's management, which connects through here.
    """

    rpc_url: str
    request_timeout: float
    rpc_retries: int


def connect_profile(profile: Endpoint) -> Web3:
    """The connection a network profile asks for (its request time-out and retry count)."""
    return connect(profile.rpc_url, timeout=profile.request_timeout, retries=profile.rpc_retries)


def connect_async(url: str, *, timeout: float = 10.0, **request_kwargs: Any) -> AsyncWeb3:
    """An asyncio connection to ``url`` for code that must not block its event loop on the chain."""
    import aiohttp

    provider = AsyncHTTPProvider(
        url,
        request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout), **request_kwargs},
        exception_retry_configuration=None,
    )
    return AsyncWeb3(provider)
