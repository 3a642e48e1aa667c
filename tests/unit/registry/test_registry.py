"""NodeRegistry: registration with key proof and stake, updates, key rotation, exit, jail."""

from __future__ import annotations

import brownie
import pytest
from eth_account import Account
from eth_utils import keccak
from unit_helpers import custom_error, node_key_signature, plain

MIN = 1_000 * 10**18
ACTIVE, EXITING, JAILED = 1, 2, 3


@pytest.fixture(scope="module", autouse=True)
def setup(node):
    return node


@pytest.fixture(scope="session")
def fresh_key():
    return Account.from_key(keccak(text="kuota unit test node key C"))


def _register(system, operator, key, payout, **overrides):
    args = {
        "payout": payout,
        "price": 7,
        "capacity": 100,
        "region": "ap-south",
        "uri": "https://example.org/c.json",
        "signature": node_key_signature(system.registry, key, key.address, operator.address),
    }
    args.update(overrides)
    return system.registry.register(
        key.address,
        args["payout"],
        args["price"],
        args["capacity"],
        args["region"],
        args["uri"],
        args["signature"],
        {"from": operator},
    )


def test_register_stores_node_and_emits(system, node, operator, payout, node_key):
    info = system.registry.getNode(node)
    assert info[0] == operator and info[1] == payout and info[2] == node_key.address
    assert (info[3], info[4], info[6], info[7], info[8]) == (1_000_000, 1000, ACTIVE, "eu-west", "ipfs://node-a")
    assert system.registry.statusOf(node) == ACTIVE
    assert system.registry.payoutOf(node) == payout
    assert system.registry.operatorOf(node) == operator
    assert list(system.registry.nodesOf(operator)) == [node]


def test_register_second_node_needs_stake_for_both(system, operator, fresh_key, payout):
    # Operator has 2 × MIN bonded: a second node fits, a third does not.
    tx = _register(system, operator, fresh_key, payout)
    ev = tx.events["NodeRegistered"]
    assert (ev["node"], ev["operator"], ev["pricePerGiB"], ev["region"]) == (
        fresh_key.address,
        operator.address,
        7,
        "ap-south",
    )
    assert system.registry.requiredStake(operator) == 2 * MIN
    third = Account.from_key(keccak(text="kuota unit test node key D"))
    with brownie.reverts(
        custom_error("RegistryInsufficientStake(address,uint256,uint256)", operator, 2 * MIN, 3 * MIN)
    ):
        _register(system, operator, third, payout)


def test_register_rejects_duplicate(system, operator, node_key, payout):
    with brownie.reverts(custom_error("RegistryNodeAlreadyRegistered(address)", node_key.address)):
        _register(system, operator, node_key, payout)


def test_register_rejects_signature_by_another_key(system, operator, fresh_key, node_key, payout):
    # node_key signs the statement for fresh_key's address: possession of fresh_key is not proven.
    forged = node_key_signature(system.registry, node_key, fresh_key.address, operator.address)
    with brownie.reverts(
        custom_error("RegistryInvalidKeySignature(address,address)", fresh_key.address, _recovered(system, forged, fresh_key, operator))
    ):
        _register(system, operator, fresh_key, payout, signature=forged)


def _recovered(system, signature, key, operator):
    digest = bytes(system.registry.nodeKeyDigest(key.address, key.address, operator.address))
    return Account._recover_hash(digest, signature=bytes.fromhex(signature[2:]))


def test_register_rejects_signature_for_another_operator(system, operator, operator2, fresh_key, payout):
    # A key signature made for operator2 cannot be used by operator (no stealing a node id).
    sig = node_key_signature(system.registry, fresh_key, fresh_key.address, operator2.address)
    with brownie.reverts(
        custom_error(
            "RegistryInvalidKeySignature(address,address)", fresh_key.address, _recovered(system, sig, fresh_key, operator)
        )
    ):
        _register(system, operator, fresh_key, payout, signature=sig)


def test_register_rejects_bad_fields(system, operator, fresh_key, payout):
    with brownie.reverts(custom_error("RegistryZeroAddress(string)", "payout")):
        _register(system, operator, fresh_key, brownie.ZERO_ADDRESS)
    with brownie.reverts(custom_error("RegistryStringTooLong(string,uint256,uint256)", "region", 33, 32)):
        _register(system, operator, fresh_key, payout, region="x" * 33)
    with brownie.reverts(custom_error("RegistryStringTooLong(string,uint256,uint256)", "metadataURI", 257, 256)):
        _register(system, operator, fresh_key, payout, uri="u" * 257)


def test_node_key_must_not_be_the_operator_wallet(system, operator, node, payout):
    from unit_helpers import anvil_key

    operator_key = Account.from_key(anvil_key(3))
    assert operator_key.address == operator.address
    with brownie.reverts(custom_error("RegistryNodeKeyIsOperator(address)", operator)):
        _register(system, operator, operator_key, payout)
    sig = node_key_signature(system.registry, operator_key, node, operator.address)
    with brownie.reverts(custom_error("RegistryNodeKeyIsOperator(address)", operator)):
        system.registry.rotateKey(node, operator, sig, {"from": operator})


def test_register_without_stake_is_rejected(system, stranger, fresh_key, payout):
    with brownie.reverts(custom_error("RegistryInsufficientStake(address,uint256,uint256)", stranger, 0, MIN)):
        _register(system, stranger, fresh_key, payout)


def test_update_by_operator_only(system, node, operator, stranger, payout2):
    with brownie.reverts(custom_error("RegistryNotNodeOperator(address,address,address)", node, stranger, operator)):
        system.registry.update(node, payout2, 5, 50, "eu", "", {"from": stranger})
    tx = system.registry.update(node, payout2, 5, 50, "eu", "", {"from": operator})
    assert plain(tx.events["NodeUpdated"].values()) == (node, payout2.address, 5, 50, "eu", "")
    assert system.registry.payoutOf(node) == payout2
    with brownie.reverts(custom_error("RegistryNodeNotRegistered(address)", stranger)):
        system.registry.update(stranger, payout2, 5, 50, "eu", "", {"from": operator})


def test_rotate_key_needs_proof_from_new_key(system, node, operator, fresh_key, node_key):
    sig = node_key_signature(system.registry, fresh_key, node, operator.address)
    tx = system.registry.rotateKey(node, fresh_key.address, sig, {"from": operator})
    assert plain(tx.events["NodeKeyRotated"].values()) == (node, node_key.address, fresh_key.address)
    assert system.registry.getNode(node)[2] == fresh_key.address
    # The node id does not change: settlement still knows it.
    assert system.registry.statusOf(node) == ACTIVE
    stale = node_key_signature(system.registry, node_key, node, operator.address)
    digest = bytes(system.registry.nodeKeyDigest(node, fresh_key.address, operator.address))
    recovered = Account._recover_hash(digest, signature=bytes.fromhex(stale[2:]))
    with brownie.reverts(custom_error("RegistryInvalidKeySignature(address,address)", fresh_key.address, recovered)):
        system.registry.rotateKey(node, fresh_key.address, stale, {"from": operator})


def test_exit_and_status_transitions(system, node, operator, slasher, stranger):
    with brownie.reverts(custom_error("RegistryNotNodeOperator(address,address,address)", node, stranger, operator)):
        system.registry.requestExit(node, {"from": stranger})
    tx = system.registry.requestExit(node, {"from": operator})
    assert plain(tx.events["NodeExitRequested"].values()) == (node, operator.address)
    assert system.registry.statusOf(node) == EXITING
    assert system.registry.requiredStake(operator) == 0
    with brownie.reverts(custom_error("RegistryInvalidStatus(address,uint8)", node, EXITING)):
        system.registry.requestExit(node, {"from": operator})
    # Jailing an exiting node brings its stake requirement back: exit does not escape jail.
    system.registry.jail(node, "double signing", {"from": slasher})
    assert system.registry.statusOf(node) == JAILED
    assert system.registry.requiredStake(operator) == MIN


def test_jail_and_unjail(system, node, slasher):
    with brownie.reverts(custom_error("RegistryStringTooLong(string,uint256,uint256)", "reason", 257, 256)):
        system.registry.jail(node, "r" * 257, {"from": slasher})
    tx = system.registry.jail(node, "inflated receipts", {"from": slasher})
    assert plain(tx.events["NodeJailed"].values()) == (node, "inflated receipts")
    with brownie.reverts(custom_error("RegistryInvalidStatus(address,uint8)", node, JAILED)):
        system.registry.jail(node, "again", {"from": slasher})
    tx = system.registry.unjail(node, {"from": slasher})
    assert tx.events["NodeUnjailed"]["node"] == node
    assert system.registry.statusOf(node) == ACTIVE
    with brownie.reverts(custom_error("RegistryInvalidStatus(address,uint8)", node, ACTIVE)):
        system.registry.unjail(node, {"from": slasher})


def test_unjail_returns_an_exiting_node_to_exiting(system, node, operator, slasher):
    system.registry.requestExit(node, {"from": operator})
    system.registry.jail(node, "double signing", {"from": slasher})
    assert system.registry.requiredStake(operator) == MIN
    tx = system.registry.unjail(node, {"from": slasher})
    assert tx.events["NodeUnjailed"]["node"] == node
    # The exit request survives the jail: Exiting again, and the stake requirement released again.
    assert system.registry.statusOf(node) == EXITING
    assert system.registry.getNode(node)[6] == EXITING
    assert system.registry.requiredStake(operator) == 0
    with brownie.reverts(custom_error("RegistryInvalidStatus(address,uint8)", node, EXITING)):
        system.registry.unjail(node, {"from": slasher})
    with brownie.reverts(custom_error("RegistryInvalidStatus(address,uint8)", node, EXITING)):
        system.registry.requestExit(node, {"from": operator})
    # A second jail and unjail keep it Exiting, and the count never goes below zero.
    system.registry.jail(node, "again", {"from": slasher})
    assert system.registry.requiredStake(operator) == MIN
    system.registry.unjail(node, {"from": slasher})
    assert system.registry.statusOf(node) == EXITING
    assert system.registry.requiredStake(operator) == 0


def test_min_stake_is_bounded_and_evented(system, deployer):
    with brownie.reverts(
        custom_error("RegistryParameterOutOfBounds(string,uint256,uint256,uint256)", "minStakePerNode", 0, 1, 10**27)
    ):
        system.registry.setMinStakePerNode(0, {"from": deployer})
    with brownie.reverts(
        custom_error(
            "RegistryParameterOutOfBounds(string,uint256,uint256,uint256)", "minStakePerNode", 10**27 + 1, 1, 10**27
        )
    ):
        system.registry.setMinStakePerNode(10**27 + 1, {"from": deployer})
    tx = system.registry.setMinStakePerNode(2 * MIN, {"from": deployer})
    assert plain(tx.events["ParameterUpdated"].values()) == ("minStakePerNode", MIN, 2 * MIN)
