"""Fixtures and helpers for the contract unit tests.

Every unit test runs against the system deployed by ``scripts/deploy.py`` (the root ``kuota`` fixture),
with one staked operator, one registered node and one funded consumer set up once per module;
``fn_isolation`` reverts the chain after each test.

Custom errors are asserted exactly: `unit_helpers.custom_error` builds the revert data the contract must return
(selector of the error's signature + ABI-encoded arguments) and renders it through Brownie's own
decoder, so ``brownie.reverts(custom_error("StakingZeroAmount()"))`` matches that error with those
argument values and nothing else.

Receipts are signed with the operators' signer, ``nodeclient.receipts.signing.sign_receipt``.
"""

from __future__ import annotations

from typing import Any

import pytest
from brownie import chain
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from unit_helpers import RECEIPT_TYPES, UNIT, Signed, anvil_key, node_key_signature

from nodeclient.receipts import Receipt
from nodeclient.receipts.signing import receipt_digest, receipt_domain, sign_digest, sign_receipt

# --------------------------------------------------------------------------------------------
# Keys and accounts


@pytest.fixture(scope="session")
def consumer_key(consumer) -> str:
    key = anvil_key(5)
    assert Account.from_key(key).address == consumer.address
    return key


@pytest.fixture(scope="session")
def consumer2_key(consumer2) -> str:
    key = anvil_key(6)
    assert Account.from_key(key).address == consumer2.address
    return key


@pytest.fixture(scope="session")
def node_key():
    """The registered node's key (its address is the node id)."""
    return Account.from_key(keccak(text="kuota unit test node key A"))


@pytest.fixture(scope="session")
def node_key2():
    return Account.from_key(keccak(text="kuota unit test node key B"))


@pytest.fixture(scope="session")
def payout(accounts):
    return accounts[10]


@pytest.fixture(scope="session")
def payout2(accounts):
    return accounts[11]


# --------------------------------------------------------------------------------------------
# The deployed system with actors in place


@pytest.fixture(scope="module")
def system(kuota):
    return kuota


@pytest.fixture(scope="module")
def params(local_params) -> dict:
    return local_params


@pytest.fixture(scope="module")
def staked(system, deployer, operator, operator2, params):
    """Both operators hold 10 × minStake of KUOTA and have bonded 2 × minStake."""
    min_stake = params["minStakePerNode"]
    for op in (operator, operator2):
        system.token.transfer(op, 10 * min_stake, {"from": deployer})
        system.token.approve(system.staking, 2**256 - 1, {"from": op})
        system.staking.stake(2 * min_stake, {"from": op})
    return system


@pytest.fixture(scope="module")
def node(staked, operator, node_key, payout):
    """Address of node A, registered by ``operator`` with payout ``payout``."""
    system = staked
    sig = node_key_signature(system.registry, node_key, node_key.address, operator.address)
    system.registry.register(
        node_key.address, payout, 1_000_000, 1000, "eu-west", "ipfs://node-a", sig, {"from": operator}
    )
    return node_key.address


@pytest.fixture(scope="module")
def funded(node, system, deployer, consumer, consumer2):
    """Both consumers hold 1,000,000 mUSD, have approved the escrow and deposited 1,000 mUSD."""
    for c in (consumer, consumer2):
        system.payment_token.mint(c, 1_000_000 * UNIT, {"from": deployer})
        system.payment_token.approve(system.escrow, 2**256 - 1, {"from": c})
        system.escrow.deposit(1_000 * UNIT, {"from": c})
    return system


@pytest.fixture(scope="module")
def sign(system):
    """``sign(key, node, cumulative_bytes, cumulative_amount, ...)`` → `Signed`, by the client's signer.

    ``chain_id`` and ``settlement`` override the EIP-712 domain (for replay tests).
    """

    def _sign(
        key: str,
        node: str,
        cumulative_bytes: int,
        cumulative_amount: int,
        *,
        session: int = 1,
        latency_ms: int = 20,
        issued_at: int | None = None,
        consumer: str | None = None,
        chain_id: int | None = None,
        settlement: Any = None,
    ) -> Signed:
        signer = Account.from_key(key)
        fields = {
            "consumer": consumer or signer.address,
            "node": node,
            "sessionId": "0x" + session.to_bytes(32, "big").hex(),
            "cumulativeBytes": cumulative_bytes,
            "cumulativeAmount": cumulative_amount,
            "latencyMs": latency_ms,
            "issuedAt": issued_at if issued_at is not None else chain.time(),
        }
        verifying = getattr(settlement, "address", None) or system.settlement.address
        domain = {"name": "Kuota", "version": "1", "chainId": chain_id or chain.id, "verifyingContract": verifying}
        args = tuple(fields.values())
        if cumulative_bytes >= 2**128 or cumulative_amount >= 2**128:
            # The client refuses values the contract cannot store; sign them with eth-account to
            # check that the contract refuses them too.
            message = encode_typed_data(full_message={
                "domain": domain, "types": RECEIPT_TYPES, "primaryType": "Receipt", "message": fields,
            })
            signature = "0x" + bytes(Account.sign_message(message, key).signature).hex()
            return Signed(args=args, signature=signature)
        receipt = Receipt.model_validate(fields)
        client_domain = receipt_domain(domain["chainId"], verifying)
        if receipt.consumer == signer.address:
            return Signed(args=args, signature=sign_receipt(receipt, key, client_domain).signature, receipt=receipt)
        # A key signing for someone else's channel: the client refuses, so sign the raw digest.
        digest = receipt_digest(receipt, client_domain)
        return Signed(args=args, signature="0x" + sign_digest(digest, key).hex(), receipt=receipt)

    return _sign


@pytest.fixture(scope="module")
def node2(node, staked, operator2, node_key2, payout2):
    """Address of node B, registered by ``operator2`` with payout ``payout2``."""
    system = staked
    sig = node_key_signature(system.registry, node_key2, node_key2.address, operator2.address)
    system.registry.register(
        node_key2.address, payout2, 2_000_000, 500, "us-east", "ipfs://node-b", sig, {"from": operator2}
    )
    return node_key2.address
