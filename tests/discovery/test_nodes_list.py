"""`kuota nodes list`: every registered node from the chain, its published relay PINGed, filtered and ranked."""

from __future__ import annotations

import pytest
from discovery.conftest import DELAY_S


def _listed(fleet, *args: str) -> dict:
    return fleet.kenv.ok("nodes", "list", "--json", "--probe-timeout", "1", *args)


def _names(fleet, listed: dict) -> list[str]:
    return [fleet.name_of(entry["node"]) for entry in listed["nodes"]]


@pytest.fixture(scope="module")
def everything(fleet) -> dict:
    """One probed listing of the whole fleet (probing is the slow part; read-only, so shared)."""
    return {fleet.name_of(e["node"]): e for e in _listed(fleet)["nodes"]}


def test_list_shows_every_registered_node_with_why_it_is_or_is_not_eligible(fleet, everything):
    assert set(everything) == set(fleet.keys)
    assert {name for name, e in everything.items() if e["eligible"]} == {"slow", "cheap", "fast"}
    assert everything["jailed"]["status"] == "jailed" and everything["jailed"]["ineligibleReason"] == "status jailed"
    unstaked = everything["unstaked"]
    assert unstaked["staked"] is False and unstaked["bonded"] < unstaked["requiredStake"]
    assert "below the required" in unstaked["ineligibleReason"]
    dead = everything["dead"]
    assert dead["ineligibleReason"].startswith("unreachable") and fleet.endpoints["dead"] in dead["ineligibleReason"]
    assert dead["probes"][0]["received"] == 0 and dead["successRate"] == 0
    broken = everything["broken"]
    assert broken["metadata"]["kind"] == "inline" and broken["metadata"]["document"] is None
    assert "not a JSON data URI" in broken["metadata"]["problems"][0]
    assert broken["ineligibleReason"].startswith("no relay endpoint")
    assert broken["probes"] == [] and broken["successRate"] is None  # nothing published, nothing measured


def test_list_measures_latency_and_success_by_ping(fleet, everything):
    for name in ("cheap", "fast", "slow"):
        entry = everything[name]
        assert entry["relay"] == fleet.endpoints[name]
        assert entry["successRate"] == 1.0 and entry["probes"][0]["sent"] == entry["probes"][0]["received"] == 3
    # The proxy holds every reply DELAY_S: the measured round trip shows it, the direct relays do not.
    assert everything["slow"]["latencyMs"] >= DELAY_S * 1000
    assert everything["cheap"]["latencyMs"] < DELAY_S * 1000 / 2
    assert everything["fast"]["latencyMs"] < DELAY_S * 1000 / 2


def test_list_filters_by_region_price_status_and_quality(fleet):
    assert _names(fleet, _listed(fleet, "--region", "us-east", "--no-probe")) == ["fast"]
    assert _names(fleet, _listed(fleet, "--status", "jailed", "--no-probe")) == ["jailed"]
    assert _names(fleet, _listed(fleet, "--max-price", "1000000", "--eligible")) == ["slow", "cheap"]
    # A latency bound drops the slow relay and everything that did not answer at all. (The jailed
    # node's relay answers until its registry cache expires, so it is left out by status here.)
    bounded = _listed(fleet, "--max-latency", str(DELAY_S * 1000 / 2), "--status", "active")
    assert set(_names(fleet, bounded)) == {"cheap", "fast", "unstaked"}
    assert set(_names(fleet, _listed(fleet, "--min-success", "1", "--status", "active"))) == {"cheap", "fast", "slow", "unstaked"}


def test_list_sorts_by_policy_with_eligible_nodes_first(fleet):
    cheapest = _names(fleet, _listed(fleet, "--policy", "cheapest"))
    assert cheapest[:3] == ["slow", "cheap", "fast"]
    assert cheapest[3:] == ["jailed", "unstaked", "dead", "broken"]  # ineligible, by price
    fastest = _names(fleet, _listed(fleet, "--policy", "fastest", "--eligible"))
    assert fastest[-1] == "slow" and set(fastest) == {"slow", "cheap", "fast"}


def test_list_human_output_names_metadata_problems(fleet):
    shown = fleet.kenv.ok("nodes", "list", "--no-probe")
    assert fleet.address("broken") in shown.stdout and "not a JSON data URI" in shown.stdout
    assert "status jailed" in shown.stdout
