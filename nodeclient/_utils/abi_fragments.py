"""ABI fragments the shipped ABIs leave out, for development chains only."""

from __future__ import annotations

from typing import Any

__all__ = ["MOCK_MINT_ABI"]

#: ``mint(address,uint256)`` of MockUSD, the payment token deployed on local chains. The shipped
#: PaymentToken ABI is plain ERC20, because a real network's payment token has no open mint.
MOCK_MINT_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "mint",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [],
    }
]
