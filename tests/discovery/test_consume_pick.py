"""`kuota consume` without --node/--relay: it picks a node by policy, says which and why, and pays it."""

from __future__ import annotations

import json

from discovery.conftest import DELAY_S

from nodeclient.relay.pricing import amount_for

KIB = 1024


def _consume(fleet, origin, *args: str, json_out: bool = True):
    k = fleet.kenv
    extra = ("--json",) if json_out else ()
    return k.run("consume", "fetch", origin.url(64 * KIB), "--account", "consumer", *k.pw(), "--max-spend", "1000000",
                 "--probe-timeout", "1", *args, *extra, "-o", str(k.home / "body.bin"))


def _picked(fleet, origin, *args: str) -> dict:
    result = _consume(fleet, origin, *args)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_consume_picks_the_cheapest_eligible_node_and_pays_it(fleet, origin):
    summary = _picked(fleet, origin)
    picked = summary["picked"]
    # jailed (100), unstaked (200), dead (300) and broken (400) are cheaper, and each is skipped for its reason.
    assert picked["node"] == fleet.address("slow") and picked["relay"] == fleet.endpoints["slow"]
    assert picked["reason"].startswith("cheapest eligible node: 500000 base units per GiB")
    skipped = {fleet.name_of(s["node"]): s["reason"] for s in picked["skipped"]}
    assert skipped["jailed"] == "status jailed"
    assert "below the required" in skipped["unstaked"]
    assert skipped["dead"].startswith("unreachable")
    assert skipped["broken"].startswith("no relay endpoint")
    assert skipped["cheap"].startswith("ranked after the chosen node")
    # The session really ran against the picked node, at its registered price.
    assert summary["status"] == 200 and summary["bodyBytes"] == 64 * KIB
    assert summary["pricePerGiB"] == 500_000 and summary["spent"] == amount_for(summary["signedBytes"], 500_000)
    assert summary["lastReceipt"]["node"] == fleet.address("slow")


def test_consume_cheapest_within_a_latency_bound_skips_the_slow_node(fleet, origin):
    bound = str(DELAY_S * 1000 / 2)
    picked = _picked(fleet, origin, "--max-latency", bound)["picked"]
    assert picked["node"] == fleet.address("cheap")
    assert f"within {float(bound):g} ms" in picked["reason"]
    skipped = {fleet.name_of(s["node"]): s["reason"] for s in picked["skipped"]}
    assert skipped["slow"].startswith("latency ") and f"above the bound {float(bound):g} ms" in skipped["slow"]


def test_consume_fastest_in_a_region_and_max_price_filters(fleet, origin):
    fastest = _picked(fleet, origin, "--policy", "fastest", "--region", "eu-west")["picked"]
    assert fastest["node"] == fleet.address("cheap") and fastest["reason"].startswith("lowest latency eligible node")
    # us-east has one node; a price cap below it leaves nothing, and the error names why.
    refused = _consume(fleet, origin, "--region", "us-east", "--max-price", "1999999")
    assert refused.exit_code == 3
    assert "no eligible node" in refused.stderr and "above the maximum 1999999" in refused.stderr


def test_consume_says_on_stderr_which_node_it_picked_and_why(fleet, origin):
    result = _consume(fleet, origin, "--max-latency", str(DELAY_S * 1000 / 2), json_out=False)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"picked node {fleet.address('cheap')} at {fleet.endpoints['cheap']}: cheapest eligible node" in result.stderr
    assert f"skipped node {fleet.address('jailed')}: status jailed" in result.stderr


def test_consume_with_only_node_uses_its_published_relay(fleet, origin):
    summary = _picked(fleet, origin, "--node", fleet.address("fast"))
    assert summary["picked"]["relay"] == fleet.endpoints["fast"] and summary["pricePerGiB"] == 2_000_000
    jailed = _consume(fleet, origin, "--node", fleet.address("jailed"))
    assert jailed.exit_code == 3 and "status jailed" in jailed.stderr


def test_consume_relay_without_node_is_refused_before_anything_is_signed(fleet, origin):
    result = _consume(fleet, origin, "--relay", fleet.endpoints["cheap"])
    assert result.exit_code == 2 and "needs --node" in result.stderr
    assert origin.stats.requests == 0
