"""The one bearer-token check of the node's HTTP endpoints (metrics, bundles, the dashboard's API)."""

from __future__ import annotations

import hmac
from typing import Any

__all__ = ["bearer_authorized"]


def bearer_authorized(request: Any, token: str) -> bool:
    """Whether ``request`` (an aiohttp request) carries ``Authorization: Bearer <token>``."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison: the time taken must not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())
