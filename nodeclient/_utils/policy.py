"""The gas-aware rule shared by settlement and reward claims: act when it is worth the gas."""

from __future__ import annotations

from dataclasses import dataclass

from nodeclient.config import PolicySettings

__all__ = ["Decision", "decide", "gas_in_payment_units"]


@dataclass(frozen=True)
class Decision:
    """Whether to act now, and the reason in words (shown to the operator and in ``--json``)."""

    act: bool
    reason: str
    value: int
    gas_cost_wei: int
    gas_value: int

    def to_json(self) -> dict[str, object]:
        """Stable machine form."""
        return {"act": self.act, "reason": self.reason, "value": self.value, "gasCostWei": self.gas_cost_wei, "gasValue": self.gas_value}


def gas_in_payment_units(gas_cost_wei: int, policy: PolicySettings) -> int:
    """Gas cost converted to payment-token base units at the configured native price (rounded up)."""
    return -(-gas_cost_wei * policy.native_price // 10**18)


def decide(
    value: int,
    gas_cost_wei: int,
    policy: PolicySettings,
    *,
    age_seconds: int | None = None,
    urgent: str | None = None,
    force: bool = False,
) -> Decision:
    """Apply the policy (see ``PolicySettings``) to ``value`` (payment units) against its gas cost.

    Order: forced → nothing to collect → urgent (consumer thawing; still never at a loss) → value at
    the ceiling → oldest item past the age limit → below the threshold → gas above its share → act.
    """
    gas_value = gas_in_payment_units(gas_cost_wei, policy)

    def out(act: bool, reason: str) -> Decision:
        return Decision(act, reason, value, gas_cost_wei, gas_value)

    if force:
        return out(value > 0, "forced" if value > 0 else "nothing to collect")
    if value <= 0:
        return out(False, "nothing to collect")
    if urgent is not None:
        if gas_value >= value:
            return out(False, f"{urgent}, but gas ({gas_value}) would cost more than the value ({value})")
        return out(True, urgent)
    if value >= policy.force_value:
        return out(True, f"value {value} reached the ceiling {policy.force_value}")
    if age_seconds is not None and policy.max_age_seconds and age_seconds >= policy.max_age_seconds:
        return out(True, f"oldest unsettled item is {age_seconds} s old (limit {policy.max_age_seconds} s)")
    if value < policy.min_value:
        return out(False, f"value {value} is below the threshold {policy.min_value}")
    if gas_value * 10_000 > value * policy.max_gas_share_bps:
        return out(False, f"gas ({gas_value}) would exceed {policy.max_gas_share_bps} bps of the value ({value})")
    return out(True, f"value {value} ≥ threshold {policy.min_value} and gas {gas_value} within {policy.max_gas_share_bps} bps")
