"""`nodeclient.deployment.load_manifest` / `find_manifest`: every way a manifest can be untrustworthy."""

from __future__ import annotations

import json

import pytest

from nodeclient.abi import abi_hash
from nodeclient.deployment import (
    AbiMismatchError,
    ManifestError,
    ManifestNotFoundError,
    find_manifest,
    load_manifest,
)
from nodeclient.errors import EXIT_BAD_INPUT, EXIT_NOT_FOUND, ConfigError, NotFoundError

ADDRESSES = {
    "KuotaToken": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "NodeRegistry": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "Staking": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    "PaymentEscrow": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    "ReceiptSettlement": "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
    "RewardPool": "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707",
    "PaymentToken": "0x0165878A594ca255338adfa4d48449f69242Eb8F",
}


def good() -> dict:
    return {
        "chainId": 31337,
        "deployer": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "blockNumber": 1,
        "contracts": dict(ADDRESSES),
        "params": {"feeBps": 500},
        "abiHash": abi_hash(),
    }


def write(tmp_path, data) -> str:
    path = tmp_path / "31337.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_a_good_manifest_loads(tmp_path):
    deployment = load_manifest(write(tmp_path, good()), expected_chain_id=31337)
    assert deployment.chain_id == 31337
    assert deployment.address("RewardPool") == ADDRESSES["RewardPool"]
    assert deployment.block_number == 1
    with pytest.raises(ConfigError, match="records no contract named 'Nope'"):
        deployment.address("Nope")


def with_change(**changes) -> dict:
    data = good()
    data.update(changes)
    return data


def without_contract(name: str) -> dict:
    data = good()
    del data["contracts"][name]
    return data


def with_contract(name: str, value) -> dict:
    data = good()
    data["contracts"][name] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"chainId": 31337, ', "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object, not list"),
        (with_change(chainId="31337"), "chainId must be an integer, got '31337'"),
        (with_change(chainId=True), "chainId must be an integer, got True"),
        (with_change(chainId=0), "chainId"),
        (with_change(blockNumber=-1), "blockNumber"),
        (with_change(deployer="0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"), "is not a checksummed address"),
        (without_contract("ReceiptSettlement"), "contracts is missing ReceiptSettlement"),
        (with_contract("Staking", "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0"), "contracts.Staking = "),
        (with_contract("Staking", "0x0000000000000000000000000000000000000000"), "contracts.Staking is the zero address"),
        (with_contract("Staking", 12), "contracts.Staking"),
        (with_change(abiHash="0x1234"), "abiHash '0x1234' is not a 0x-prefixed 32-byte hex string"),
        (with_change(complete=False), "has not finished (complete=false)"),
    ],
)
def test_malformed_manifests_are_refused_naming_the_problem(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(path)
    assert message in str(excinfo.value)
    assert path in str(excinfo.value)
    assert excinfo.value.exit_code == EXIT_BAD_INPUT


def test_a_manifest_for_another_chain_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="is for chain id 31337, but the RPC is chain 5"):
        load_manifest(write(tmp_path, good()), expected_chain_id=5)


def test_an_abi_hash_mismatch_is_refused(tmp_path):
    other = "0x" + "ab" * 32
    with pytest.raises(AbiMismatchError, match=f"abiHash {other} does not match the ABIs shipped"):
        load_manifest(write(tmp_path, with_change(abiHash=other)))
    # ...unless the caller asks not to compare (a tool that only needs addresses).
    assert load_manifest(write(tmp_path, with_change(abiHash=other)), check_abi=False).abi_hash == other


def test_a_missing_manifest_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist") as excinfo:
        load_manifest(tmp_path / "nope.json")
    assert excinfo.value.exit_code == EXIT_NOT_FOUND


def test_find_manifest_searches_in_order(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (second / "31337.json").write_text("{}")
    assert find_manifest(31337, [first, second]) == second / "31337.json"
    (first / "31337.json").write_text("{}")
    assert find_manifest(31337, [first, second]) == first / "31337.json"
    with pytest.raises(ManifestNotFoundError, match="no deployment manifest 5.json for chain id 5"):
        find_manifest(5, [first, second])
    with pytest.raises(ConfigError, match="chain id must be a positive integer, got -1"):
        find_manifest(-1, [first])
