"""`deploy_system` on the Brownie test chain (Anvil): contracts, wiring, manifest, resume, idempotence."""

from __future__ import annotations

import json

import brownie
import pytest
from brownie import ZERO_ADDRESS, web3
from brownie.exceptions import decode_typed_error
from eth_abi import encode as abi_encode
from eth_utils import keccak

from nodeclient.abi import abi_hash
from nodeclient.deployment import (
    DeploymentConflictError,
    DeployParamsError,
    ManifestError,
    load_manifest,
)
from scripts.deploy import DEPLOY_ORDER, TxOptions, deploy_system


def role(name: str) -> bytes:
    return keccak(text=name)


class Interrupt(Exception):
    """Raised from the step hook to cut a deploy short, as a crash would."""


def unauthorized(account, role_name: str) -> str:
    """Brownie's revert string for OpenZeppelin's ``AccessControlUnauthorizedAccount(account, role)``."""
    signature = "AccessControlUnauthorizedAccount(address,bytes32)"
    data = keccak(text=signature)[:4] + abi_encode(["address", "bytes32"], [account.address, role(role_name)])
    return decode_typed_error("0x" + data.hex())


def stop_after(count: int):
    seen: list[str] = []

    def hook(step: str) -> None:
        seen.append(step)
        if len(seen) == count:
            raise Interrupt(step)

    return hook, seen


def nonce(account) -> int:
    return web3.eth.get_transaction_count(account.address)


def test_deploys_every_contract_and_writes_the_manifest(deployer, local_params, treasury, slasher, tmp_path):
    path = tmp_path / "deployments" / "31337.json"
    system = deploy_system(deployer, local_params, manifest_path=path)

    manifest = json.loads(path.read_text())
    assert manifest == system.manifest
    assert manifest["chainId"] == web3.eth.chain_id
    assert manifest["deployer"] == deployer.address
    assert manifest["abiHash"] == abi_hash()
    assert manifest["complete"] is True
    assert set(manifest["contracts"]) == set(DEPLOY_ORDER)
    assert manifest["contracts"]["KuotaToken"] == system.token.address
    assert manifest["contracts"]["PaymentToken"] == system.payment_token.address
    first_block = min(web3.eth.get_transaction_receipt(tx)["blockNumber"] for tx in manifest["deployTransactions"].values())
    assert manifest["blockNumber"] == first_block
    assert manifest["params"]["treasury"] == treasury.address
    assert manifest["params"]["feeBps"] == 500
    for address in manifest["contracts"].values():
        assert web3.eth.get_code(address) != b""

    loaded = load_manifest(path, expected_chain_id=web3.eth.chain_id)
    assert loaded.address("ReceiptSettlement") == system.settlement.address
    # 7 contracts + setRegistry + 5 grants (the constructors already gave the deployer PAUSER_ROLE)
    assert len(system.transactions) == 13
    assert system.gas_used == sum(tx.gas_used for tx in system.transactions) > 0


def test_wires_roles_exactly_as_the_brief_says(kuota, deployer, slasher, stranger):
    assert kuota.token.hasRole(role("MINTER_ROLE"), kuota.rewards)
    assert not kuota.token.hasRole(role("MINTER_ROLE"), deployer)
    assert kuota.escrow.hasRole(role("SETTLEMENT_ROLE"), kuota.settlement)
    assert kuota.rewards.hasRole(role("SETTLEMENT_ROLE"), kuota.settlement)
    assert kuota.staking.hasRole(role("SLASHER_ROLE"), slasher)
    assert kuota.registry.hasRole(role("JAILER_ROLE"), slasher)
    assert kuota.settlement.hasRole(role("PAUSER_ROLE"), deployer)
    assert kuota.rewards.hasRole(role("PAUSER_ROLE"), deployer)
    for contract in (kuota.escrow, kuota.rewards, kuota.staking, kuota.registry):
        assert not contract.hasRole(role("SETTLEMENT_ROLE"), stranger)
    assert kuota.staking.registry() == kuota.registry
    assert kuota.staking.stakeToken() == kuota.token
    assert kuota.escrow.paymentToken() == kuota.payment_token
    assert kuota.token.balanceOf(deployer) == 10**26
    assert kuota.token.cap() == 10**27
    assert kuota.settlement.feeBps() == 500
    assert kuota.rewards.epochLength() == 60
    assert kuota.registry.minStakePerNode() == 1000 * 10**18
    assert kuota.escrow.thawingPeriod() == 600
    assert kuota.escrow.treasury() == kuota.manifest["params"]["treasury"]


def test_rerunning_a_finished_deploy_sends_no_transaction(deployer, local_params, tmp_path):
    path = tmp_path / "31337.json"
    first = deploy_system(deployer, local_params, manifest_path=path)
    before = nonce(deployer)
    height = web3.eth.block_number
    again = deploy_system(deployer, local_params, manifest_path=path)
    assert again.transactions == []
    assert nonce(deployer) == before
    assert web3.eth.block_number == height
    assert again.manifest["contracts"] == first.manifest["contracts"]
    assert again.manifest["blockNumber"] == first.manifest["blockNumber"]


@pytest.mark.parametrize("steps_before_crash", [1, 3, 4, 8])
def test_an_interrupted_deploy_resumes_without_redeploying(deployer, local_params, tmp_path, steps_before_crash):
    path = tmp_path / "31337.json"
    hook, seen = stop_after(steps_before_crash)
    with pytest.raises(Interrupt):
        deploy_system(deployer, local_params, manifest_path=path, on_step=hook)
    partial = json.loads(path.read_text())
    assert partial["complete"] is False
    recorded = dict(partial["contracts"])
    assert set(recorded) == {name for name in DEPLOY_ORDER if name in seen}
    # A half-finished manifest is refused by the client.
    with pytest.raises(ManifestError):
        load_manifest(path)

    sent_before = nonce(deployer)
    resumed = deploy_system(deployer, local_params, manifest_path=path)
    for name, address in recorded.items():
        assert resumed.manifest["contracts"][name] == address
    constructors = [tx for tx in resumed.transactions if tx.contract_address]
    assert len(constructors) == len(DEPLOY_ORDER) - len(recorded)
    assert nonce(deployer) - sent_before == len(resumed.transactions)
    assert resumed.manifest["blockNumber"] == partial["blockNumber"]
    assert load_manifest(path).complete
    assert resumed.staking.registry() == resumed.registry


def test_resume_after_a_crash_during_wiring_grants_only_what_is_missing(deployer, local_params, tmp_path):
    path = tmp_path / "31337.json"
    # 7 contracts and setRegistry are steps 1..8; crash after the second grant.
    hook, seen = stop_after(10)
    with pytest.raises(Interrupt):
        deploy_system(deployer, local_params, manifest_path=path, on_step=hook)
    assert seen[-1].startswith("grant:")
    resumed = deploy_system(deployer, local_params, manifest_path=path)
    # Left: RewardPool SETTLEMENT_ROLE, SLASHER_ROLE, JAILER_ROLE (PAUSER_ROLE is already held).
    assert [tx.fn_name for tx in resumed.transactions] == ["grantRole"] * 3
    assert resumed.token.hasRole(role("MINTER_ROLE"), resumed.rewards)


def test_resume_refuses_changed_constructor_parameters(deployer, local_params, tmp_path):
    path = tmp_path / "31337.json"
    hook, _ = stop_after(3)
    with pytest.raises(Interrupt):
        deploy_system(deployer, local_params, manifest_path=path, on_step=hook)
    changed = {**local_params, "unbondingPeriod": 1200}
    with pytest.raises(DeploymentConflictError, match="unbondingPeriod=600.*unbondingPeriod=1200"):
        deploy_system(deployer, changed, manifest_path=path)
    # A parameter of a contract not deployed yet may still change.
    resumed = deploy_system(deployer, {**local_params, "feeBps": 300}, manifest_path=path)
    assert resumed.settlement.feeBps() == 300


def test_resume_refuses_a_manifest_whose_contract_has_no_code(deployer, local_params, tmp_path):
    path = tmp_path / "31337.json"
    hook, _ = stop_after(2)
    with pytest.raises(Interrupt):
        deploy_system(deployer, local_params, manifest_path=path, on_step=hook)
    manifest = json.loads(path.read_text())
    manifest["contracts"]["KuotaToken"] = "0x000000000000000000000000000000000000dEaD"
    path.write_text(json.dumps(manifest))
    with pytest.raises(DeploymentConflictError, match="KuotaToken at 0x000000000000000000000000000000000000dEaD"):
        deploy_system(deployer, local_params, manifest_path=path)


def test_resume_refuses_another_chain_or_deployer(deployer, stranger, local_params, tmp_path):
    path = tmp_path / "31337.json"
    hook, _ = stop_after(2)
    with pytest.raises(Interrupt):
        deploy_system(deployer, local_params, manifest_path=path, on_step=hook)
    with pytest.raises(DeploymentConflictError, match=f"deployed by {deployer.address}, not by {stranger.address}"):
        deploy_system(stranger, local_params, manifest_path=path)
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "chainId": 5}))
    with pytest.raises(DeploymentConflictError, match="is for chain id 5"):
        deploy_system(deployer, local_params, manifest_path=path)


def test_resume_refuses_contracts_built_from_other_sources(deployer, local_params, tmp_path):
    path = tmp_path / "31337.json"
    deploy_system(deployer, local_params, manifest_path=path)
    manifest = json.loads(path.read_text())
    other = "0x" + "cd" * 32
    path.write_text(json.dumps({**manifest, "abiHash": other}))
    before = nonce(deployer)
    with pytest.raises(DeploymentConflictError, match=f"built with abiHash {other}"):
        deploy_system(deployer, local_params, manifest_path=path)
    assert nonce(deployer) == before


def test_a_manifest_from_an_earlier_local_chain_is_replaced(deployer, local_params, tmp_path):
    path = tmp_path / "31337.json"
    hook, _ = stop_after(2)
    with pytest.raises(Interrupt):
        deploy_system(deployer, local_params, manifest_path=path, on_step=hook)
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "genesisHash": "0x" + "11" * 32}))
    fresh = deploy_system(deployer, local_params, manifest_path=path)
    constructors = [tx for tx in fresh.transactions if tx.contract_address]
    assert len(constructors) == len(DEPLOY_ORDER)
    assert fresh.manifest["contracts"]["PaymentToken"] != manifest["contracts"]["PaymentToken"]


def test_resume_false_deploys_afresh(deployer, local_params, tmp_path):
    path = tmp_path / "31337.json"
    first = deploy_system(deployer, local_params, manifest_path=path)
    second = deploy_system(deployer, local_params, manifest_path=path, resume=False)
    assert second.manifest["contracts"]["KuotaToken"] != first.manifest["contracts"]["KuotaToken"]
    assert json.loads(path.read_text())["contracts"] == second.manifest["contracts"]


def test_an_existing_payment_token_is_used_not_redeployed(deployer, local_params, tmp_path):
    from brownie import MockUSD

    usd = MockUSD.deploy({"from": deployer})
    system = deploy_system(deployer, {**local_params, "paymentToken": usd.address}, manifest_path=tmp_path / "m.json")
    assert system.payment_token == usd
    assert system.escrow.paymentToken() == usd
    assert "PaymentToken" not in system.manifest["deployTransactions"]


def test_explicit_fees_are_used(deployer, local_params):
    system = deploy_system(deployer, local_params, tx_options=TxOptions(priority_fee=3 * 10**9, max_fee=7 * 10**9))
    tx = web3.eth.get_transaction(system.transactions[0].txid)
    assert tx["type"] == 2
    assert tx["maxPriorityFeePerGas"] == 3 * 10**9
    assert tx["maxFeePerGas"] == 7 * 10**9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"feeBps": 2001}, "'feeBps' = 2001 is outside [0, 2000]"),
        ({"feeBps": True}, "'feeBps' must be an integer, got True"),
        ({"feeBps": "500"}, "'feeBps' must be an integer, got '500'"),
        ({"epochLength": 0}, "'epochLength' = 0 is outside"),
        ({"tokenCap": -1}, "'tokenCap' = -1 is outside"),
        ({"tokenInitialSupply": 10**28}, "tokenInitialSupply 10000000000000000000000000000 exceeds tokenCap"),
        ({"latencyLowMs": 500}, "latencyLowMs 500 must be below latencyHighMs 500"),
        ({"treasury": "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"}, "'treasury' must be a checksummed address"),
        ({"slasher": ZERO_ADDRESS}, "'slasher' must not be the zero address"),
        ({"paymentToken": 42}, "'paymentToken' must be a checksummed address or null, got 42"),
        ({"surprise": 1}, "unknown deploy parameter 'surprise'"),
        ({"timelock": {"minDelay": -1, "proposers": [], "executors": []}}, "timelock.minDelay"),
    ],
)
def test_bad_parameters_are_named(deployer, local_params, change, message):
    before = nonce(deployer)
    with pytest.raises(DeployParamsError) as excinfo:
        deploy_system(deployer, {**local_params, **change})
    assert message in str(excinfo.value)
    assert nonce(deployer) == before


def test_a_missing_parameter_is_named(deployer, local_params):
    params = dict(local_params)
    del params["thawingPeriod"]
    with pytest.raises(DeployParamsError, match="'thawingPeriod' is missing"):
        deploy_system(deployer, params)


def test_admin_roles_can_be_handed_to_a_timelock(deployer, local_params, accounts, tmp_path):
    multisig = accounts[9]
    params = {**local_params, "timelock": {"minDelay": 3600, "proposers": [multisig.address], "executors": [multisig.address]}}
    path = tmp_path / "31337.json"
    system = deploy_system(deployer, params, manifest_path=path)
    timelock = system.timelock
    assert system.manifest["contracts"]["KuotaTimelock"] == timelock.address
    assert timelock.getMinDelay() == 3600
    assert timelock.hasRole(timelock.PROPOSER_ROLE(), multisig)
    admin = b"\x00" * 32
    for contract in (system.token, system.staking, system.registry, system.escrow, system.rewards, system.settlement):
        assert contract.hasRole(admin, timelock)
        assert not contract.hasRole(admin, deployer)
    for contract in (system.staking, system.registry, system.escrow, system.rewards, system.settlement):
        assert contract.hasRole(role("PARAMETER_ROLE"), timelock)
        assert not contract.hasRole(role("PARAMETER_ROLE"), deployer)
    # Pausing stays fast: the pauser keeps its role outside the timelock.
    assert system.settlement.hasRole(role("PAUSER_ROLE"), deployer)
    # The deployer can no longer change a parameter directly.
    with brownie.reverts(unauthorized(deployer, "PARAMETER_ROLE")):
        system.settlement.setFeeBps(100, {"from": deployer})
    # And re-running the finished handover sends nothing.
    assert deploy_system(deployer, params, manifest_path=path).transactions == []


def test_timelock_handover_leaves_pausing_to_the_named_pauser_only(deployer, local_params, accounts, tmp_path):
    multisig, pauser = accounts[9], accounts[10]
    params = {**local_params, "pauser": pauser.address,
              "timelock": {"minDelay": 3600, "proposers": [multisig.address], "executors": [multisig.address]}}
    system = deploy_system(deployer, params, manifest_path=tmp_path / "31337.json")
    for contract in (system.settlement, system.rewards):
        assert contract.hasRole(role("PAUSER_ROLE"), pauser)
        assert not contract.hasRole(role("PAUSER_ROLE"), deployer)
    with brownie.reverts(unauthorized(deployer, "PAUSER_ROLE")):
        system.settlement.pause({"from": deployer})
    system.settlement.pause({"from": pauser})
    assert system.settlement.paused()
