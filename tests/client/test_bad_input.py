"""Malformed and hostile inputs: each gets one clear error line naming the bad value, the right exit
code, no traceback, and leaves the receipt store (and the chain state it cares about) unchanged.

Exit codes (nodeclient.errors): 2 bad input, 3 not found, 4 chain, 5 insufficient funds, 8 refused.
"""

from __future__ import annotations

import json
import socket

import pytest
from eth_account import Account

from nodeclient.receipts import Receipt, ReceiptSigner, receipt_domain
from nodeclient.receipts.store import ReceiptStore
from nodeclient.settlement import store_path
from tests.conftest import anvil_private_key

SESSION = "0x" + "22" * 32
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def world(funded, tmp_path_factory):
    """Operator staked with one registered node; the node's store holds one valid receipt."""
    k = funded
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1", "--capacity", "10",
         "--region", "x", *k.pw(), "--yes")
    k.ok("escrow", "deposit", "50", "--account", "consumer", *k.pw(), "--yes")
    tmp = tmp_path_factory.mktemp("bad")
    domain = receipt_domain(k.chain_id, k.contracts["ReceiptSettlement"])
    consumer = ReceiptSigner(bytes(Account.from_key(anvil_private_key(5)).key), domain)
    good = consumer.sign(Receipt(consumer=consumer.address, node=k.addresses["node"], session_id=SESSION,
                                 cumulative_bytes=1000, cumulative_amount=500_000, latency_ms=30, issued_at=1_700_000_100))
    path = tmp / "good.json"
    path.write_text(good.to_json())
    k.ok("receipts", "import", str(path), "--node", k.addresses["node"])
    return {"k": k, "tmp": tmp, "domain": domain, "consumer": consumer, "good": good}


def receipt_json(world, **changes):
    """A correctly signed receipt (newer than the stored one) as a dict, then ``changes`` applied."""
    signer = changes.pop("_signer", world["consumer"])
    base = {"consumer": signer.address, "node": world["k"].addresses["node"], "session_id": SESSION,
            "cumulative_bytes": 2000, "cumulative_amount": 900_000, "latency_ms": 30, "issued_at": 1_700_000_200}
    base.update(changes.pop("_fields", {}))
    data = json.loads(signer.sign(Receipt(**base)).to_json())
    data.update(changes)
    return data


def snapshot(world):
    """Everything a bad input must not change: stored receipts, channels, batches."""
    k = world["k"]
    path = store_path(k.home / "data", k.chain_id, k.contracts["ReceiptSettlement"])
    store = ReceiptStore(path)
    try:
        return (
            [s.digest_hex for s in store.iter_receipts()],
            [(c.consumer, c.node, c.latest.digest_hex, c.settled_amount) for c in store.channels()],
            [(b.id, b.state) for b in store.batches()],
        )
    finally:
        store.close()


def write(world, name, content):
    path = world["tmp"] / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def foreign_manifest(world, **contracts):
    manifest = json.loads(world["k"].manifest.read_text())
    manifest["contracts"].update(contracts)
    return write(world, "foreign.json", manifest)


def high_s(world):
    data = receipt_json(world)
    sig = bytes.fromhex(data["signature"][2:])
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    data["signature"] = "0x" + (r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])).hex()
    return data


def other_signer(world):
    domain = world["domain"]
    return ReceiptSigner(bytes(Account.from_key(anvil_private_key(6)).key), domain)


def stranger_signed(world):
    # Signed by consumer2's key but claiming to be from consumer: the recovered signer differs.
    data = receipt_json(world, _signer=other_signer(world))
    data["consumer"] = world["consumer"].address
    return data


def other_domain(world, chain_id=None, contract=None):
    domain = receipt_domain(chain_id or world["k"].chain_id, contract or world["k"].contracts["ReceiptSettlement"])
    signer = ReceiptSigner(bytes(Account.from_key(anvil_private_key(5)).key), domain)
    return receipt_json(world, _signer=signer)


def mixed_case_bad_checksum(address: str) -> str:
    body = address[2:]
    flipped = "".join(c.swapcase() if c.isalpha() else c for c in body)
    return "0x" + flipped


# Each case: (id, build(world) -> args, exit code, text the error line must contain).
IMPORT = ["receipts", "import"]


def imp(world, name, content, node=None):
    return [*IMPORT, str(write(world, name, content)), "--node", node or world["k"].addresses["node"]]


CASES = [
    ("truncated-json", lambda w: imp(w, "t.json", json.dumps(receipt_json(w))[:-20]), 2, "t.json"),
    ("wrong-type-amount", lambda w: imp(w, "wt.json", receipt_json(w, cumulativeAmount="lots")), 2, "lots"),
    ("float-amount", lambda w: imp(w, "fl.json", receipt_json(w, cumulativeAmount=1.5)), 2, "cumulativeAmount"),
    ("negative-amount", lambda w: imp(w, "neg.json", receipt_json(w, cumulativeAmount=-5)), 2, "-5"),
    ("overflow-amount", lambda w: imp(w, "ovf.json", receipt_json(w, cumulativeAmount=2**256)), 2, "cumulativeAmount"),
    ("overflow-latency", lambda w: imp(w, "lat.json", receipt_json(w, latencyMs=2**32)), 2, "latencyMs"),
    ("non-checksummed-consumer", lambda w: imp(w, "cs.json", receipt_json(w, consumer=mixed_case_bad_checksum(w["consumer"].address))), 2, "consumer"),
    ("zero-node-address", lambda w: imp(w, "zero.json", receipt_json(w, node="0x" + "00" * 20)), 2, "node"),
    ("missing-field", lambda w: imp(w, "miss.json", {k: v for k, v in receipt_json(w).items() if k != "issuedAt"}), 2, "issuedAt"),
    ("extra-field", lambda w: imp(w, "extra.json", {**receipt_json(w), "bonus": 1}), 2, "bonus"),
    ("wrong-signer", lambda w: imp(w, "ws.json", stranger_signed(w)), 2, "recovers to"),
    ("other-chain-id", lambda w: imp(w, "chain.json", other_domain(w, chain_id=1)), 2, "recovers to"),
    ("foreign-contract-domain", lambda w: imp(w, "fc.json", other_domain(w, contract="0x" + "12" * 20)), 2, "recovers to"),
    ("high-s-signature", lambda w: imp(w, "hs.json", high_s(w)), 2, "high s"),
    ("garbage-signature", lambda w: imp(w, "gs.json", receipt_json(w, signature="0x" + "ab" * 10)), 2, "signature"),
    ("replayed-older-receipt", lambda w: imp(w, "old.json", receipt_json(w, _fields={"cumulative_amount": 400_000, "cumulative_bytes": 500})), 2, "400000"),
    ("receipt-names-other-node", lambda w: imp(w, "rn.json", receipt_json(w, _fields={"node": w["k"].addresses["operator"]})), 2, "node"),
    ("empty-file", lambda w: imp(w, "empty.json", ""), 2, "empty"),
    ("binary-garbage", lambda w: imp(w, "bin.json", b"\xff\xfe\x00garbage"), 2, "UTF-8"),
    ("stale-second-of-two", lambda w: imp(w, "mix.jsonl", "\n".join(json.dumps(x) for x in [
        receipt_json(w), receipt_json(w, _fields={"cumulative_amount": 850_000, "cumulative_bytes": 2100})])), 2, "850000"),
    ("missing-receipt-file", lambda w: [*IMPORT, str(w["tmp"] / "nope.json"), "--node", w["k"].addresses["node"]], 3, "nope.json"),
    ("unregistered-node", lambda w: imp(w, "un.json", receipt_json(w, _fields={"node": w["k"].addresses["newkey"]}), node=w["k"].addresses["newkey"]), 3, "not registered"),
    ("negative-stake", lambda w: ["stake", "add", "-5", "--account", "operator", *w["k"].pw(), "--yes"], 2, "-5"),
    ("non-numeric-stake", lambda w: ["stake", "add", "1e30", "--account", "operator", *w["k"].pw(), "--yes"], 2, "1e30"),
    ("too-many-decimals", lambda w: ["escrow", "deposit", "0.0000001", "--account", "consumer", *w["k"].pw(), "--yes"], 2, "6 decimals"),
    ("overflowing-stake", lambda w: ["stake", "add", str(2**256), "--units", "--account", "operator", *w["k"].pw(), "--yes"], 2, "maximum"),
    ("deposit-more-than-balance", lambda w: ["escrow", "deposit", "5000", "--account", "consumer", *w["k"].pw(), "--yes"], 5, "5,000"),
    ("stake-more-than-balance", lambda w: ["stake", "add", "99999999", "--account", "operator", *w["k"].pw(), "--yes"], 5, "99,999,999"),
    ("register-without-stake", lambda w: ["node", "register", "--account", "operator2", "--node-account", "node2", "--price", "1",
                                          "--capacity", "1", "--region", "x", *w["k"].pw(), "--yes"], 5, "stake add"),
    ("string-too-long-decoded-revert", lambda w: ["node", "update", w["k"].addresses["node"], "--region", "r" * 5000,
                                                  "--account", "operator", *w["k"].pw(), "--yes"], 4, "RegistryStringTooLong(field=region"),
    ("unbond-too-much-decoded-revert", lambda w: ["stake", "unbond", "1000", "--account", "operator", *w["k"].pw(), "--yes"], 5, "StakingStakeLocked(operator="),
    ("payout-bad-checksum", lambda w: ["node", "update", w["k"].addresses["node"], "--payout", mixed_case_bad_checksum(w["k"].addresses["payout"]),
                                       "--account", "operator", *w["k"].pw(), "--yes"], 2, "checksum"),
    ("payout-zero-address", lambda w: ["node", "update", w["k"].addresses["node"], "--payout", "0x" + "00" * 20,
                                       "--account", "operator", *w["k"].pw(), "--yes"], 2, "zero address"),
    ("not-the-operator", lambda w: ["node", "update", w["k"].addresses["node"], "--region", "y", "--account", "operator2", *w["k"].pw(), "--yes"], 2, "not the operator"),
    ("sign-negative-bytes", lambda w: ["receipts", "sign", "--node", w["k"].addresses["node"], "--amount", "1", "--bytes", "-1",
                                       "--account", "consumer", *w["k"].pw()], 2, "-1"),
    ("sign-overflow-amount", lambda w: ["receipts", "sign", "--node", w["k"].addresses["node"], "--amount-units", str(2**128), "--bytes", "1",
                                        "--account", "consumer", *w["k"].pw()], 2, "uint128"),
    ("sign-for-unknown-node", lambda w: ["receipts", "sign", "--node", w["k"].addresses["newkey"], "--amount", "1", "--bytes", "1",
                                         "--account", "consumer", *w["k"].pw()], 3, "not registered"),
    ("withdraw-nothing-thawing", lambda w: ["escrow", "withdraw", "--account", "consumer", *w["k"].pw(), "--yes"], 8, "nothing is thawing"),
    ("claim-unfinished-epoch", lambda w: ["rewards", "claim", "--node", w["k"].addresses["node"], "--epoch", "999999",
                                          "--account", "operator", *w["k"].pw(), "--yes"], 2, "999999"),
    ("wrong-password", lambda w: ["stake", "add", "1", "--account", "operator", "--password-file", str(write(w, "wp.txt", "not the password\n")), "--yes"], 2, "wrong password"),
    ("missing-keystore", lambda w: ["stake", "add", "1", "--account", "nosuch", *w["k"].pw(), "--yes"], 3, "nosuch"),
    ("keystore-not-a-keystore", lambda w: ["stake", "add", "1", "--keystore", str(write(w, "ks.json", {"hello": 1})), *w["k"].pw(), "--yes"], 2, "ks.json"),
    ("missing-password-file", lambda w: ["stake", "add", "1", "--account", "operator", "--password-file", str(w["tmp"] / "nopw"), "--yes"], 3, "nopw"),
    ("wrong-chain-id", lambda w: ["stake", "show", "--account", "operator", "--chain-id", "5"], 4, "chain id 31337"),
    ("rpc-down", lambda w: ["stake", "show", "--account", "operator", "--rpc-url", f"http://127.0.0.1:{closed_port()}"], 4, "unreachable"),
    ("rpc-bad-scheme", lambda w: ["stake", "show", "--account", "operator", "--rpc-url", "ftp://127.0.0.1:1"], 2, "ftp://"),
    ("foreign-contract", lambda w: ["stake", "show", "--account", "operator", "--manifest",
                                    str(foreign_manifest(w, ReceiptSettlement=w["k"].contracts["PaymentEscrow"]))], 4, "ReceiptSettlement"),
    ("foreign-staking", lambda w: ["stake", "show", "--account", "operator", "--manifest",
                                   str(foreign_manifest(w, Staking=w["k"].contracts["RewardPool"]))], 4, "Staking"),
    ("manifest-truncated", lambda w: ["stake", "show", "--account", "operator", "--manifest", str(write(w, "mt.json", w["k"].manifest.read_text()[:50]))], 2, "mt.json"),
    ("manifest-missing", lambda w: ["stake", "show", "--account", "operator", "--manifest", str(w["tmp"] / "none.json")], 3, "none.json"),
    ("unknown-network", lambda w: ["stake", "show", "--account", "operator", "--network", "atlantis"], 3, "atlantis"),
    ("declined-confirmation", lambda w: ["stake", "add", "1", "--account", "operator", *w["k"].pw()], 8, "declined"),
    ("bad-account-alias", lambda w: ["account", "new", "../evil", *w["k"].pw()], 2, "../evil"),
    ("bad-private-key", lambda w: ["account", "import", "x1", "--private-key-file", str(write(w, "pk.txt", "0x1234zz")), *w["k"].pw()], 2, "private key"),
]


@pytest.mark.parametrize("case_id, build, code, text", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(world, case_id, build, code, text):
    k = world["k"]
    before = snapshot(world)
    args = build(world)
    # An unknown profile is only unknown without an ad-hoc --rpc-url (the fixture sets one in the env).
    extra_env = {"KUOTA_RPC_URL": ""} if case_id == "unknown-network" else None
    result = k.run(*args, input="n\n", extra_env=extra_env)
    message = result.output
    assert result.exit_code == code, f"{case_id}: exit {result.exit_code}, expected {code}:\n{message}"
    assert "Traceback" not in message
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, f"{case_id}: expected one error line, got:\n{result.stderr}"
    assert text in error_lines[0], f"{case_id}: {text!r} not in {error_lines[0]!r}"
    assert snapshot(world) == before, f"{case_id}: the receipt store changed"
    print(f"\n[{case_id}] exit {result.exit_code}: {error_lines[0]}")


def test_case_count():
    assert len({c[0] for c in CASES}) >= 30
