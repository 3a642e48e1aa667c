"""settleLanes gas: a warm batch of 100 receipts of distinct consumers, each from its own lane, stays
within the target of 13,500 gas a receipt (whole-transaction gasUsed, as bench/gas.py measures it:
12,972 in docs/GAS.md)."""

from __future__ import annotations

import pytest
from brownie import accounts, web3
from eth_utils import keccak
from lane_helpers import packed
from unit_helpers import UNIT

from nodeclient.receipts.signing import address_of_key

BATCH = 100
TARGET_PER_RECEIPT = 13_500


@pytest.fixture(scope="module", autouse=True)
def setup(funded, lanes):
    return funded


@pytest.fixture(scope="module")
def lane_consumers(system, lanes, deployer, node):
    """100 fresh consumers, each with 10 mUSD in a lane with node A (Anvil impersonates them to allocate)."""
    keys = ["0x" + keccak(text=f"kuota lane gas consumer {i}").hex() for i in range(BATCH)]
    system.payment_token.mint(deployer, BATCH * 10 * UNIT, {"from": deployer})
    system.payment_token.approve(system.escrow, BATCH * 10 * UNIT, {"from": deployer})
    for key in keys:
        address = address_of_key(bytes.fromhex(key[2:]))
        system.escrow.depositFor(address, 10 * UNIT, {"from": deployer})
        web3.provider.make_request("anvil_setBalance", [address, hex(10**18)])
        web3.provider.make_request("anvil_impersonateAccount", [address])
        lanes.allocate(node, 10 * UNIT, {"from": accounts.at(address, force=True)})
    return keys


def test_a_warm_batch_of_100_stays_within_the_target(lanes, sign_lane, node, stranger, lane_consumers):
    def batch(amount: int) -> bytes:
        return packed([sign_lane(key, node, amount, amount * UNIT // 100, session=i) for i, key in enumerate(lane_consumers)])

    lanes.settleLanes(node, batch(1), b"\x01" * 32, {"from": stranger})  # the node's credit and reward record exist
    tx = lanes.settleLanes(node, batch(2), b"\x02" * 32, {"from": stranger})
    assert tx.events["LanesSettled"]["settledCount"] == BATCH
    per_receipt = tx.gas_used / BATCH
    assert per_receipt <= TARGET_PER_RECEIPT, f"settleLanes({BATCH}) costs {per_receipt:,.0f} gas a receipt"
