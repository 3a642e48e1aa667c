"""The part of a NodeRegistry record every reader of it needs: who runs the node, who is paid, at which price."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NodeIdentity"]


@dataclass(frozen=True)
class NodeIdentity:
    """``NodeRegistry.getNode``'s identity and price fields; readers add what else they need."""

    node: str
    operator: str
    payout: str
    signing_key: str
    price_per_gib: int
