"""What the chain client hands back: a transaction's fee quote before sending, its result once mined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FeeQuote", "TxResult"]


@dataclass(frozen=True)
class FeeQuote:
    """What a transaction may cost: gas limit and EIP-1559 fee caps."""

    gas_limit: int
    base_fee: int
    max_fee: int
    priority_fee: int
    value: int = 0

    @property
    def max_cost(self) -> int:
        """Upper bound in wei (gas limit × maxFee + value): what the balance must cover."""
        return self.gas_limit * self.max_fee + self.value

    @property
    def expected_cost(self) -> int:
        """Likely gas cost in wei at the current base fee (gas limit × (base + tip))."""
        return self.gas_limit * min(self.max_fee, self.base_fee + self.priority_fee)

    def to_json(self) -> dict[str, int]:
        """Stable machine form."""
        return {
            "gasLimit": self.gas_limit,
            "baseFee": self.base_fee,
            "maxFeePerGas": self.max_fee,
            "maxPriorityFeePerGas": self.priority_fee,
            "value": self.value,
            "maxCost": self.max_cost,
            "expectedCost": self.expected_cost,
        }


@dataclass(frozen=True)
class TxResult:
    """A mined, confirmed, successful transaction."""

    tx_hash: str
    nonce: int
    block_number: int
    gas_used: int
    effective_gas_price: int
    replacements: int
    receipt: Any

    @property
    def gas_cost(self) -> int:
        """Wei paid for gas."""
        return self.gas_used * self.effective_gas_price

    def to_json(self) -> dict[str, Any]:
        """Stable machine form."""
        return {
            "txHash": self.tx_hash,
            "nonce": self.nonce,
            "blockNumber": self.block_number,
            "gasUsed": self.gas_used,
            "effectiveGasPrice": self.effective_gas_price,
            "gasCost": self.gas_cost,
            "replacements": self.replacements,
        }
