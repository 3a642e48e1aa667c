"""``WebConfig``: what the node's HTTP service binds to and whom it lets in, checked before it binds.

The service listens on loopback unless told otherwise. Off loopback a bearer token is mandatory:
``resolve_web_config`` refuses to build a config without one, so a node never exposes its
``/metrics`` to the network by accident. The token lives only in this object (never in its repr).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from nodeclient.config import WebSettings
from nodeclient.web.errors import WebConfigError

__all__ = ["DEFAULT_MAX_RANGE_BYTES", "MIN_TOKEN_CHARS", "WebConfig", "is_loopback", "resolve_web_config"]

#: Longest byte range one request may ask of a bundle; a whole bundle is fetched without a Range.
DEFAULT_MAX_RANGE_BYTES = 4 * 1024 * 1024
#: Shortest bearer token accepted (16 random bytes in hex are 32 characters).
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; any other name may resolve off the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebConfig:
    """A checked web service configuration. ``token`` None means no authentication (loopback only)."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = field(default=None, repr=False)
    public_bundles: bool = True
    max_range_bytes: int = DEFAULT_MAX_RANGE_BYTES

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise WebConfigError("port", self.port, "must be in 0..65535")
        if self.max_range_bytes <= 0:
            raise WebConfigError("max_range_bytes", self.max_range_bytes, "must be positive")
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            # The value is a secret: name its length, never the token itself.
            raise WebConfigError("token", f"<{len(self.token)} characters>", f"must be at least {MIN_TOKEN_CHARS} characters")
        if self.token is None and not is_loopback(self.host):
            raise WebConfigError(
                "host", self.host,
                "is not a loopback address, so a bearer token is required: set web.token_file (or "
                "KUOTA_WEB__TOKEN) to a random secret, or listen on 127.0.0.1",
            )


def _read_token_file(path: Path) -> str:
    try:
        token = path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise WebConfigError("token_file", str(path), f"cannot be read ({exc.strerror or exc})") from None
    if not token:
        raise WebConfigError("token_file", str(path), "is empty")
    return token


def resolve_web_config(
    settings: WebSettings, *, host: str | None = None, port: int | None = None, max_range_bytes: int | None = None
) -> WebConfig:
    """The checked config from the ``[web]`` settings, with ``host`` / ``port`` flags on top.

    The token comes from ``token_file`` when set, else ``token`` (config file or ``KUOTA_WEB__TOKEN``).
    """
    if settings.token_file is not None:
        token: str | None = _read_token_file(settings.token_file)
    else:
        token = settings.token.get_secret_value() if settings.token is not None else None
    return WebConfig(
        host=host if host is not None else settings.host,
        port=port if port is not None else settings.port,
        token=token or None,
        public_bundles=settings.public_bundles,
        max_range_bytes=max_range_bytes or DEFAULT_MAX_RANGE_BYTES,
    )
