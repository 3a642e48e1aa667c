"""KuotaToken: metadata, capped minting by MINTER_ROLE only, burning and EIP-2612 permit."""

from __future__ import annotations

import brownie
from brownie import chain
from eth_account import Account
from eth_account.messages import encode_typed_data
from unit_helpers import anvil_key, custom_error, role


def test_metadata_and_initial_supply(system, deployer, params):
    token = system.token
    assert (token.name(), token.symbol(), token.decimals()) == ("Kuota", "KUOTA", 18)
    assert token.cap() == params["tokenCap"]
    assert token.totalSupply() == params["tokenInitialSupply"] == token.balanceOf(deployer)


def test_only_the_reward_pool_mints_and_never_above_cap(system, deployer, stranger, params):
    token = system.token
    token.grantRole(role("MINTER_ROLE"), stranger, {"from": deployer})  # stand in for the pool
    token.mint(stranger, 5, {"from": stranger})
    assert token.balanceOf(stranger) == 5
    room = params["tokenCap"] - token.totalSupply()
    with brownie.reverts(custom_error("ERC20ExceededCap(uint256,uint256)", params["tokenCap"] + 1, params["tokenCap"])):
        token.mint(stranger, room + 1, {"from": stranger})
    token.mint(stranger, room, {"from": stranger})
    assert token.totalSupply() == params["tokenCap"]


def test_burn_reduces_supply(system, deployer):
    supply = system.token.totalSupply()
    system.token.burn(10**18, {"from": deployer})
    assert system.token.totalSupply() == supply - 10**18


def test_permit_sets_allowance_from_a_signature(system, consumer, stranger):
    token = system.token
    deadline = chain.time() + 3_600
    typed = {
        "domain": {"name": "Kuota", "version": "1", "chainId": chain.id, "verifyingContract": token.address},
        "types": {
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ]
        },
        "primaryType": "Permit",
        "message": {
            "owner": consumer.address,
            "spender": stranger.address,
            "value": 123,
            "nonce": token.nonces(consumer),
            "deadline": deadline,
        },
    }
    signed = Account.sign_message(encode_typed_data(full_message=typed), anvil_key(5))
    token.permit(consumer, stranger, 123, deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"), {"from": stranger})
    assert token.allowance(consumer, stranger) == 123
    assert token.nonces(consumer) == 1
