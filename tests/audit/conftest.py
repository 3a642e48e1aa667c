"""The economy every audit test replays: two operators, two nodes, four consumers, single and batched
settlements with published bundles, a partial payment topped up later, thaws, epochs, claims,
earnings withdrawals and a fee sweep — all real transactions on the test Anvil.

Module-scoped (Brownie resets the chain per module); ``fn_isolation`` reverts whatever a test adds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import (
    UNIT,
    Economy,
    anvil_key,
    node_key_signature,
    settle_batch,
    settle_one,
    signed_receipt_json,
)
from brownie import chain
from eth_account import Account
from eth_utils import keccak


@pytest.fixture(scope="module")
def economy(kuota, accounts, deployer, operator, operator2, consumer, consumer2, local_params, rpc_url,
            tmp_path_factory) -> Economy:
    system = kuota
    chain_id = chain.id
    root_dir = tmp_path_factory.mktemp("audit")
    bundle_dir = root_dir / "bundles"
    bundle_dir.mkdir()
    manifest_path = root_dir / f"{chain_id}.json"
    manifest_path.write_text(json.dumps(system.manifest, indent=2))

    min_stake = local_params["minStakePerNode"]
    for op in (operator, operator2):
        system.token.transfer(op, 10 * min_stake, {"from": deployer})
        system.token.approve(system.staking, 2**256 - 1, {"from": op})
        system.staking.stake(2 * min_stake, {"from": op})
    key_a = Account.from_key(keccak(text="kuota audit test node A"))
    key_b = Account.from_key(keccak(text="kuota audit test node B"))
    system.registry.register(key_a.address, accounts[10], 1_000_000, 100, "eu-west", "ipfs://a",
                             node_key_signature(system.registry.address, chain_id, key_a, operator.address),
                             {"from": operator})
    system.registry.register(key_b.address, accounts[11], 2_000_000, 1000, "us-east", "ipfs://b",
                             node_key_signature(system.registry.address, chain_id, key_b, operator2.address),
                             {"from": operator2})

    consumer3, consumer4 = accounts[12], accounts[13]
    keys = {a.address: anvil_key(i) for a, i in ((consumer, 5), (consumer2, 6), (consumer3, 12), (consumer4, 13))}
    token = system.payment_token
    for c in (consumer, consumer2):
        token.mint(c, 10_000 * UNIT, {"from": deployer})
    # consumer3's money comes from node A's operator: the funding-graph warning must see it.
    token.mint(operator, 500 * UNIT, {"from": deployer})
    token.transfer(consumer3, 200 * UNIT, {"from": operator})
    token.mint(consumer4, 100 * UNIT, {"from": deployer})
    for c in (consumer, consumer2, consumer3, consumer4):
        token.approve(system.escrow, 2**256 - 1, {"from": c})
    system.escrow.deposit(1_000 * UNIT, {"from": consumer})
    system.escrow.deposit(1_000 * UNIT, {"from": consumer2})
    system.escrow.deposit(100 * UNIT, {"from": consumer3})
    system.escrow.deposit(1 * UNIT, {"from": consumer4})

    eco = Economy(system=system, manifest_path=manifest_path, rpc_url=rpc_url, chain_id=chain_id,
                  bundle_dir=bundle_dir, node_a=key_a.address, node_b=key_b.address, keys=keys,
                  funded_consumer=consumer3.address, operator=operator.address)
    settlement = system.settlement.address

    def sign(c: Any, node: str, nbytes: int, amount: int, latency: int, *, session: int = 1, back: int = 5) -> dict:
        return signed_receipt_json(keys[c.address], node, nbytes, amount, issued_at=chain.time() - back,
                                   latency_ms=latency, session=session, chain_id=chain_id, settlement=settlement)

    mib = 2**20
    # A single settle on node A.
    settle_one(eco, sign(consumer, key_a.address, 1 * mib, 1 * UNIT, 30, back=30), operator)
    # Batch 1 on node A: three channels with intermediate receipts.
    batch1 = [sign(consumer, key_a.address, n * mib, n * UNIT, 30, back=20 - n) for n in (2, 3, 4)]
    batch1 += [sign(consumer2, key_a.address, n * mib, n * UNIT, 200, back=20 - n) for n in (1, 2, 3)]
    batch1 += [sign(consumer3, key_a.address, n * mib, n * UNIT // 2, 20, back=20 - n) for n in (1, 2)]
    settle_batch(eco, key_a.address, batch1, operator)

    chain.sleep(61)
    chain.mine()
    # Batch 2 on node B (next epoch), settled by a stranger: the node is still the one paid.
    batch2 = [sign(consumer, key_b.address, n * mib, n * UNIT, 80, back=10 - n) for n in (1, 2)]
    batch2 += [sign(consumer2, key_b.address, 3 * mib, 3 * UNIT // 2, 90, back=4)]
    settle_batch(eco, key_b.address, batch2, accounts[8])
    # consumer4 owes 3 USD but holds 1: paid 1, then the same receipt settles the rest after a top-up.
    partial = sign(consumer4, key_b.address, 3 * mib, 3 * UNIT, 60, back=3)
    settle_one(eco, partial, operator2)
    system.escrow.deposit(5 * UNIT, {"from": consumer4})
    settle_one(eco, partial, operator2)
    # Thaw, cancel, thaw again; the withdrawal comes after the thawing period.
    system.escrow.requestThaw(100 * UNIT, {"from": consumer2})
    system.escrow.cancelThaw({"from": consumer2})
    system.escrow.requestThaw(50 * UNIT, {"from": consumer2})

    chain.sleep(700)
    chain.mine()
    system.escrow.withdraw({"from": consumer2})
    system.rewards.finalizeEpochs(1000, {"from": deployer})
    epochs_a = sorted({int(e["epoch"]) for e in _usage_events(system, key_a.address)})
    system.rewards.claim(key_a.address, epochs_a, {"from": accounts[8]})
    system.escrow.withdrawEarnings(key_a.address, {"from": accounts[8]})
    system.escrow.sweepFees({"from": deployer})
    # An open epoch with usage at the end of the range.
    settle_batch(eco, key_a.address, [sign(consumer, key_a.address, 6 * mib, 6 * UNIT, 35, back=2, session=2)],
                 operator)
    chain.mine(3)
    return eco


def _usage_events(system: Any, node: str) -> list[Any]:
    logs = system.rewards.events.UsageRecorded.get_logs(from_block=0)
    return [log["args"] for log in logs if log["args"]["node"] == node]


@pytest.fixture(scope="module")
def bundle_files(economy) -> list[Path]:
    return sorted(economy.bundle_dir.glob("*.json"))


@pytest.fixture
def audit_options(economy):
    """``AuditOptions`` for the economy with overrides."""
    from nodeclient.audit import AuditOptions
    from nodeclient.deployment import load_manifest

    deployment = load_manifest(economy.manifest_path)

    def _options(**overrides: Any) -> Any:
        values: dict[str, Any] = {"rpc_url": economy.rpc_url, "deployment": deployment, "confirmations": 0,
                                      "bundle_dir": economy.bundle_dir, "jobs": 1}
        values.update(overrides)
        return AuditOptions(**values)

    return _options
