"""Which destinations a node will connect to on a consumer's behalf.

A relay on a home machine must not become a door into the owner's LAN: by default every resolved
address that is private, loopback, link-local, multicast, reserved or unspecified is refused, and the
node connects to the checked IP address itself (not the name again), so DNS rebinding between the
check and the connect cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

from nodeclient.relay.errors import TargetRefusedError

__all__ = ["TargetPolicy", "parse_host_port"]

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)


def parse_host_port(host: object, port: object) -> tuple[str, int]:
    """Validate a destination's host (DNS name or IP literal) and port; raises ``TargetRefusedError``."""
    shown = f"{host!r}:{port!r}"[:300]
    if not isinstance(host, str) or not host:
        raise TargetRefusedError(shown, "host must be a non-empty string")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise TargetRefusedError(shown, "port must be an integer in 1..65535")
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(literal)
        return literal, port
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise TargetRefusedError(shown, "host is neither an IP address nor a valid DNS name")
    return host, port


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Destination rules: private ranges (off by default) and an optional port allow-list."""

    allow_private: bool = False
    allowed_ports: frozenset[int] | None = None

    def _check_ip(self, target: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        if self.allow_private:
            return
        if (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
            or (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None)
        ):
            raise TargetRefusedError(target, f"resolves to non-public address {ip} (private targets are off)")

    async def resolve(self, host: object, port: object) -> tuple[str, int]:
        """Check the destination and resolve it to one permitted (ip, port)."""
        name, number = parse_host_port(host, port)
        target = f"{name}:{number}"
        if self.allowed_ports is not None and number not in self.allowed_ports:
            raise TargetRefusedError(target, f"port {number} is not in the node's allowed ports")
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(name, number, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), 10
            )
        except (TimeoutError, OSError) as exc:
            raise TargetRefusedError(target, f"cannot resolve ({exc})") from None
        last: TargetRefusedError | None = None
        for _family, _type, _proto, _canon, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            try:
                self._check_ip(target, ip)
            except TargetRefusedError as exc:
                last = exc
                continue
            return str(ip), number
        raise last or TargetRefusedError(target, "resolves to no address")
