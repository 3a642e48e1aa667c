"""First end-to-end pass: stake, register and deposit through the CLI."""

from __future__ import annotations


def test_stake_register_deposit(funded):
    k = funded
    out = k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes", "--json")
    assert out["stake"]["bonded"] == 1000 * 10**18
    out = k.ok(
        "node", "register", "--account", "operator", "--node-account", "node", "--price", "0.5", "--capacity", "100",
        "--region", "eu-west", *k.pw(), "--yes", "--json",
    )
    assert out["node"]["status"] == "Active"
    assert out["node"]["node"] == k.addresses["node"]
    out = k.ok("escrow", "deposit", "100", "--account", "consumer", *k.pw(), "--yes", "--json")
    assert out["escrow"]["available"] == 100 * 10**6
