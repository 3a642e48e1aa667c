"""Node metadata: `kuota node register|update --relay` write a checked inline document to the registry;
readers take others' documents leniently and say what is wrong with them."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from discovery.conftest import STAKE_PER_NODE

from nodeclient.discovery.metadata import read_metadata_uri


def _stake_more(fleet, operator, deployer) -> None:
    system = fleet.system
    system.token.transfer(operator, STAKE_PER_NODE, {"from": deployer})
    system.token.approve(system.staking, STAKE_PER_NODE, {"from": operator})
    system.staking.stake(STAKE_PER_NODE, {"from": operator})


def _register(fleet, *args: str):
    k = fleet.kenv
    return k.run("node", "register", "--account", "operator", "--node-account", "node", "--capacity", "10",
                 *k.pw(), "--yes", *args)


def _document(fleet, node: str) -> dict:
    uri = fleet.system.registry.getNode(node)[8]
    assert uri.startswith("data:application/json,")
    reading = read_metadata_uri(uri)
    assert reading.problems == ()
    return reading.metadata.to_json()


def test_register_publishes_relays_and_update_keeps_the_document_in_step(fleet, operator, deployer):
    _stake_more(fleet, operator, deployer)
    node = fleet.kenv.addresses["node"]
    result = _register(fleet, "--price", "0.25", "--region", "ap-south", "--relay", "127.0.0.1:7447",
                       "--relay", "[::1]:7448", "--bundles", "http://127.0.0.1:8080/bundles/")
    assert result.exit_code == 0, result.output + result.stderr
    assert _document(fleet, node) == {
        "v": 1, "relay": ["127.0.0.1:7447", "[::1]:7448"], "region": "ap-south", "pricePerGiB": "250000",
        "bundles": "http://127.0.0.1:8080/bundles/",
    }
    listed = fleet.kenv.ok("nodes", "list", "--no-probe", "--region", "ap-south", "--json")["nodes"]
    assert [e["node"] for e in listed] == [node] and listed[0]["metadata"]["problems"] == []

    # A new price or region is written into the document too, so it never contradicts the registry.
    fleet.kenv.ok("node", "update", node, "--price", "0.5", "--region", "ap-east", "--account", "operator", *fleet.kenv.pw(), "--yes")
    doc = _document(fleet, node)
    assert doc["pricePerGiB"] == "500000" and doc["region"] == "ap-east" and doc["relay"] == ["127.0.0.1:7447", "[::1]:7448"]
    assert fleet.system.registry.getNode(node)[3] == 500_000
    # --relay replaces the endpoints; the bundles URL stays.
    fleet.kenv.ok("node", "update", node, "--relay", "127.0.0.1:9000", "--account", "operator", *fleet.kenv.pw(), "--yes")
    doc = _document(fleet, node)
    assert doc["relay"] == ["127.0.0.1:9000"] and doc["bundles"] == "http://127.0.0.1:8080/bundles/"
    assert doc["pricePerGiB"] == "500000"


def test_register_refuses_bad_metadata_with_the_value_and_registers_nothing(fleet, operator, deployer):
    _stake_more(fleet, operator, deployer)
    node = fleet.kenv.addresses["node"]
    cases = [
        (("--relay", "127.0.0.1"), "invalid node metadata relay endpoint '127.0.0.1': not HOST:PORT"),
        (("--relay", "127.0.0.1:70000"), "'127.0.0.1:70000'"),
        (("--relay", "bad_host!:80"), "'bad_host!:80': the host is not a DNS name"),
        (tuple(a for i in range(5) for a in ("--relay", f"127.0.0.1:{7000 + i}")), "give 1 to 4 HOST:PORT endpoints"),
        (("--relay", "127.0.0.1:1", "--relay", "127.0.0.1:1"), "an endpoint is listed twice"),
        (("--relay", "127.0.0.1:1", "--bundles", "ftp://x/"), "invalid node metadata bundles 'ftp://x/'"),
        (("--bundles", "http://x/"), "give --relay too"),
        (("--relay", "127.0.0.1:1", "--metadata-uri", "ipfs://x"), "not both"),
        (tuple(a for i in range(4) for a in ("--relay", f"relay-{i}.{'a' * 40}.example.org:7447")),
         "the registry stores at most 256"),
        (("--metadata-uri", "data:application/json," + quote('{"v":1,"relay":["127.0.0.1:1"],"extra":1}')),
         "unknown metadata keys ignored: extra"),
        (("--metadata-uri", "data:application/json," + quote('{"v":1,"relay":["127.0.0.1:1"],"region":"eu-west"}')),
         "differs from the registry's 'ap-south'"),
    ]
    for args, expected in cases:
        result = _register(fleet, "--price", "0.25", "--region", "ap-south", *args)
        assert result.exit_code == 2, (args, result.output, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
    assert fleet.system.registry.statusOf(node) == 0


def test_update_refuses_a_region_the_document_cannot_carry(fleet):
    k, node = fleet.kenv, fleet.address("cheap")
    before = fleet.system.registry.getNode(node)[8]
    # The fleet's nodes belong to the Brownie operator, the same account as the client's "operator".
    result = k.run("node", "update", node, "--region", "eu west", "--account", "operator", *k.pw(), "--yes")
    assert result.exit_code == 2 and "invalid node metadata region 'eu west'" in result.stderr
    assert fleet.system.registry.getNode(node)[8] == before


def test_others_metadata_is_read_leniently_and_every_problem_reported(fleet, operator):
    system, node = fleet.system, fleet.address("fast")
    doc = {"v": 1, "relay": ["nope", fleet.endpoints["fast"]], "region": "us-east", "pricePerGiB": "7", "colour": "red"}
    uri = "data:application/json;base64," + base64.b64encode(json.dumps(doc).encode()).decode()
    system.registry.update(node, operator, 2_000_000, 100, "us-east", uri, {"from": operator})
    entry = fleet.kenv.ok("nodes", "list", "--region", "us-east", "--probe-timeout", "1", "--json")["nodes"][0]
    # The valid endpoint is kept and measured; the bad one, the stray key and the wrong price are reported.
    assert entry["relay"] == fleet.endpoints["fast"] and entry["eligible"] is True
    problems = entry["metadata"]["problems"]
    assert "unknown metadata keys ignored: colour" in problems
    assert any("relay endpoint 'nope'" in p for p in problems)
    assert any("pricePerGiB 7 differs from the registry's 2000000" in p for p in problems)
    # A document of an unknown version, or an external URI, is reported and the node is never eligible.
    for bad, expected in (
        ("data:application/json," + quote(json.dumps({"v": 2, "relay": [fleet.endpoints["fast"]]})), "metadata version 2 is not supported"),
        ("https://example.org/node.json", "scheme 'https' is not fetched"),
        ("", "no metadata URI"),
    ):
        system.registry.update(node, operator, 2_000_000, 100, "us-east", bad, {"from": operator})
        entry = fleet.kenv.ok("nodes", "list", "--region", "us-east", "--json")["nodes"][0]
        assert entry["eligible"] is False and expected in entry["metadata"]["problems"][0]
