"""The one pricing rule both sides compute, so a receipt's amount is a function of its bytes.

``amount = base_amount + floor((cumulative_bytes - base_bytes) * price_per_gib / 2**30)``

``base_*`` are the channel's cumulative figures when the session started (receipts are cumulative per
(consumer, node) channel across sessions, and the price may change between sessions). Rounding down
means the consumer never pays more than price × bytes; the node loses less than one payment-token
base unit per session to rounding.
"""

from __future__ import annotations

__all__ = ["GIB", "amount_for", "bytes_for_amount", "cumulative_amount"]

GIB = 1 << 30


def amount_for(num_bytes: int, price_per_gib: int) -> int:
    """Payment-token base units owed for ``num_bytes`` at ``price_per_gib`` (rounded down)."""
    if num_bytes < 0 or price_per_gib < 0:
        raise ValueError(f"bytes ({num_bytes}) and price ({price_per_gib}) must be non-negative")
    return num_bytes * price_per_gib // GIB


def cumulative_amount(base_bytes: int, base_amount: int, cumulative_bytes: int, price_per_gib: int) -> int:
    """The cumulative amount a receipt for ``cumulative_bytes`` must carry in a session with this base."""
    if cumulative_bytes < base_bytes:
        raise ValueError(f"cumulative bytes {cumulative_bytes} are below the session base {base_bytes}")
    return base_amount + amount_for(cumulative_bytes - base_bytes, price_per_gib)


def bytes_for_amount(amount: int, price_per_gib: int) -> int:
    """The most bytes whose price (rounded down) is at most ``amount``; unlimited price 0 raises."""
    if price_per_gib <= 0:
        raise ValueError(f"price per GiB must be positive to bound bytes by an amount, got {price_per_gib}")
    # floor(b * p / G) <= a  <=>  b * p < (a + 1) * G  <=>  b <= ((a + 1) * G - 1) // p
    return ((amount + 1) * GIB - 1) // price_per_gib
