"""``kuota gov``: a proposal goes from ``propose`` to ``execute`` through the CLI on the local chain
(blocks mined and time advanced between the steps), with the same --yes/--json conventions as the
other commands, and refusals that name the value and send nothing."""

from __future__ import annotations

import json

import pytest
from brownie import chain
from gov_helpers import MIN_DELAY, VOTING_DELAY, VOTING_PERIOD

from scripts.deploy_governance import governance_manifest
from tests.client.conftest import make_home


@pytest.fixture(scope="module")
def kenv(kuota, governed, rpc_url, tmp_path_factory):
    manifest = dict(kuota.manifest)
    manifest["contracts"] = {**manifest["contracts"], **governance_manifest(governed)}
    return make_home(tmp_path_factory.mktemp("gov"), rpc_url, manifest, roles={"deployer": 0, "stranger": 8})


@pytest.fixture
def proposal_file(tmp_path):
    path = tmp_path / "proposal.json"
    body = {
        "description": "Emission 777 KUOTA an epoch",
        "actions": [{"contract": "RewardPool", "function": "setEmissionPerEpoch", "args": [777 * 10**18]}],
    }
    path.write_text(json.dumps(body))
    return path


def _gov(kenv, *args, account="deployer"):
    return kenv.ok("gov", *args, "--account", account, *kenv.pw(), "--yes", "--json")


def test_proposal_from_propose_to_execute_through_cli(kuota, kenv, proposal_file):
    proposed = _gov(kenv, "propose", str(proposal_file))
    pid = proposed["proposalId"]
    assert proposed["status"]["state"] == "Pending"
    chain.mine(VOTING_DELAY + 1)
    voted = _gov(kenv, "vote", pid, "for", "--reason", "tested")
    assert voted["status"]["votes"]["for"] == kuota.token.getVotes(kenv.addresses["deployer"])
    chain.mine(VOTING_PERIOD + 1)
    status = kenv.ok("gov", "status", str(proposal_file), "--json")
    assert status["state"] == "Succeeded" and status["proposalId"] == pid
    queued = _gov(kenv, "queue", str(proposal_file))
    assert queued["status"]["state"] == "Queued" and queued["status"]["eta"] > 0
    # Too early: refused before anything is sent, with the time left.
    early = kenv.run("gov", "execute", str(proposal_file), "--account", "deployer", *kenv.pw(), "--yes")
    assert early.exit_code == 2 and "queued until" in early.output
    assert kuota.rewards.emissionPerEpoch() != 777 * 10**18
    chain.sleep(MIN_DELAY + 1)
    chain.mine()
    executed = _gov(kenv, "execute", str(proposal_file))
    assert executed["status"]["state"] == "Executed"
    assert kuota.rewards.emissionPerEpoch() == 777 * 10**18


def test_propose_below_threshold_is_refused_with_the_votes(kenv, proposal_file):
    result = kenv.run("gov", "propose", str(proposal_file), "--account", "stranger", *kenv.pw(), "--yes")
    assert result.exit_code == 2
    assert f"proposer {kenv.addresses['stranger']} has 0 votes" in result.output


def test_vote_on_unknown_proposal_is_not_found(kenv):
    result = kenv.run("gov", "status", "12345")
    assert result.exit_code == 3 and "proposal 12345 was never proposed" in result.output


def test_bad_proposal_file_names_the_problem(kenv, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {"description": "x", "actions": [{"contract": "RewardPool", "function": "nope", "args": []}]}
        )
    )
    result = kenv.run("gov", "status", str(path))
    assert result.exit_code == 2 and "RewardPool.nope" in result.output
