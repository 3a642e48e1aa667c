"""The one place that opens JSON-RPC connections.

Every reader and writer of the chain (the transaction client, the auditor, the relay's view of the
registry and escrow, local-chain management) gets its ``Web3`` / ``AsyncWeb3`` from here, so that
time-outs and the retry policy for transient transport faults are set once and behave alike.
"""

from __future__ import annotations

from typing import Any

import requests
from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3
from web3.providers.rpc.utils import ExceptionRetryConfiguration

__all__ = ["TRANSIENT_ERRORS", "connect", "connect_async"]

# Transport faults after which the same read may simply be asked again.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (requests.ConnectionError, requests.Timeout, requests.HTTPError)


def connect(url: str, *, timeout: float = 30.0, retries: int = 0, backoff: float = 0.25) -> Web3:
    """A synchronous connection to ``url``.

    ``retries`` counts attempts after the first one on a transient transport fault (web3 counts
    total attempts); ``0`` leaves every fault to the caller, which the auditor wants so that it can
    report an unreachable endpoint at once.
    """
    retry: ExceptionRetryConfiguration | None = None
    if retries > 0:
        retry = ExceptionRetryConfiguration(errors=TRANSIENT_ERRORS, retries=retries + 1, backoff_factor=backoff)
    provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=retry)
    return Web3(provider)


def connect_async(url: str, *, timeout: float = 10.0, **request_kwargs: Any) -> AsyncWeb3:
    """An asyncio connection to ``url`` for code that must not block its event loop on the chain."""
    import aiohttp

    provider = AsyncHTTPProvider(
        url,
        request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout), **request_kwargs},
        exception_retry_configuration=None,
    )
    return AsyncWeb3(provider)
