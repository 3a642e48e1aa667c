"""Bundles and Merkle roots: round trip, atomic content-addressed files, and every tamper case named."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from eth_utils import keccak
from receipt_helpers import CONSUMER2_KEY, CONSUMER_KEY, NODE, OTHER_NODE, SETTLEMENT, make_receipt

from nodeclient.errors import ReceiptError
from nodeclient.receipts import (
    BundleError,
    BundleRecordError,
    ReceiptOutcome,
    ReceiptSigner,
    ReceiptStore,
    build_bundle,
    check_bundle,
    load_bundle,
    merkle_proof,
    merkle_root,
    prepare_batch,
    receipt_digest,
    receipt_domain,
    sign_receipt,
    verify_many,
    verify_proof,
    write_bundle,
)
from nodeclient.receipts.bundles import canonical_json


def _h(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


# ------------------------------------------------------------------ merkle


def test_merkle_root_small_trees_by_hand():
    leaves = [keccak(bytes([i])) for i in range(5)]
    assert merkle_root(leaves[:1]) == leaves[0]
    assert merkle_root(leaves[:2]) == _h(leaves[0], leaves[1])
    # OpenZeppelin's array layout (leaf k at 2n-2-k, children of i at 2i+1, 2i+2): with three leaves
    # the third sits one level up; with five, the fifth pairs with the (0, 1) node.
    assert merkle_root(leaves[:3]) == _h(_h(leaves[0], leaves[1]), leaves[2])
    assert merkle_root(leaves[:5]) == _h(_h(_h(leaves[0], leaves[1]), leaves[4]), _h(leaves[2], leaves[3]))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 8, 9, 33])
def test_merkle_proofs_verify_and_reject_wrong_leaf(size):
    leaves = [keccak(b"leaf%d" % i) for i in range(size)]
    root = merkle_root(leaves)
    for index in range(size):
        proof = merkle_proof(leaves, index)
        assert verify_proof(leaves[index], proof, root)
        assert not verify_proof(keccak(b"other"), proof, root)


def test_merkle_rejects_empty_and_bad_leaves():
    with pytest.raises(ReceiptError, match="at least one leaf"):
        merkle_root([])
    with pytest.raises(ReceiptError, match="leaf 1 is 31 bytes"):
        merkle_root([b"\x00" * 32, b"\x00" * 31])


# ------------------------------------------------------------------ bundles


@pytest.fixture(scope="module")
def receipts(domain):
    s1, s2 = ReceiptSigner(CONSUMER_KEY, domain), ReceiptSigner(CONSUMER2_KEY, domain)
    out = [s1.sign(make_receipt(a, consumer=s1.address, issued_at=1_700_000_000 + a)) for a in (10, 20, 30)]
    out += [s2.sign(make_receipt(a, consumer=s2.address, issued_at=1_700_000_000 + a)) for a in (5, 15)]
    random.Random(3).shuffle(out)
    return out


@pytest.fixture
def bundle_path(tmp_path, receipts, domain):
    return write_bundle(build_bundle(receipts, domain, NODE), tmp_path)


def test_bundle_roundtrip(bundle_path, receipts, domain):
    data = bundle_path.read_bytes()
    assert bundle_path.name == hashlib.sha256(data).hexdigest() + ".json"
    doc = json.loads(data)
    assert canonical_json(doc) == data and b" " not in data and b"\n" not in data
    assert list(doc) == sorted(doc) and doc["version"] == 1 and doc["chainId"] == 31337
    keys = [(r["consumer"].lower(), r["cumulativeAmount"], r["issuedAt"]) for r in doc["receipts"]]
    assert keys == sorted(keys)
    bundle = load_bundle(bundle_path, expected_domain=domain, expected_node=NODE)
    assert set(bundle.receipts) == set(receipts)
    assert bundle.root == merkle_root([receipt_digest(r, domain) for r in bundle.receipts])
    assert doc["root"] == "0x" + bundle.root.hex()
    assert bundle.last_per_channel()[bundle.receipts[-1].consumer].cumulative_amount in (30, 15)


def test_write_is_idempotent_and_leaves_no_temp_files(bundle_path, receipts, domain):
    again = write_bundle(build_bundle(list(reversed(receipts)), domain, NODE), bundle_path.parent)
    assert again == bundle_path
    assert [p.name for p in bundle_path.parent.iterdir()] == [bundle_path.name]


def test_build_refuses_other_node_and_empty(receipts, domain):
    with pytest.raises(ReceiptError, match="not the bundle's node"):
        build_bundle(receipts, domain, OTHER_NODE)
    with pytest.raises(ReceiptError, match="at least one receipt"):
        build_bundle([], domain, NODE)


def _rewrite(path, mutate):
    """Apply ``mutate`` to the parsed bundle and save it canonically under its (new) content name."""
    doc = json.loads(path.read_bytes())
    mutate(doc)
    data = canonical_json(doc)
    new = path.parent / (hashlib.sha256(data).hexdigest() + ".json")
    new.write_bytes(data)
    return new


def _flip_sig(doc):
    sig = doc["receipts"][2]["signature"]
    doc["receipts"][2]["signature"] = sig[:20] + ("0" if sig[20] != "0" else "1") + sig[21:]


def _root_for(doc, domain):
    from nodeclient.receipts import Receipt

    return "0x" + merkle_root([
        receipt_digest(Receipt.model_validate({k: v for k, v in r.items() if k != "signature"}), domain)
        for r in doc["receipts"]
    ]).hex()


TAMPERS = {
    "flipped_signature_byte": (_flip_sig, 2, "signature"),
    "changed_amount": (lambda d: d["receipts"][1].update(cumulativeAmount=d["receipts"][1]["cumulativeAmount"] + 1),
                       1, "signature"),
    "duplicated_receipt": (lambda d: d["receipts"].insert(1, dict(d["receipts"][0])), 1, None),
    "reordered": (lambda d: d["receipts"].insert(0, d["receipts"].pop(2)), 1, None),
    "other_node_in_record": (lambda d: d["receipts"][4].update(node=OTHER_NODE), 4, "node"),
    "lower_case_address": (lambda d: d["receipts"][0].update(consumer=d["receipts"][0]["consumer"].lower()), 0, None),
    "negative_bytes": (lambda d: d["receipts"][3].update(cumulativeBytes=-1), 3, "cumulativeBytes"),
    "missing_field": (lambda d: d["receipts"][3].pop("latencyMs"), 3, "latencyMs"),
    "high_s": (lambda d: d["receipts"][0].update(signature=_high_s(d["receipts"][0]["signature"])), 0, "signature"),
}


def _high_s(sig: str) -> str:
    from nodeclient.receipts.model import SECP256K1_N

    raw = bytes.fromhex(sig[2:])
    s = SECP256K1_N - int.from_bytes(raw[32:64], "big")
    return "0x" + (raw[:32] + s.to_bytes(32, "big") + bytes([55 - raw[64]])).hex()


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_tampered_record_is_named_by_index_and_field(bundle_path, domain, case):
    mutate, index, field = TAMPERS[case]
    tampered = _rewrite(bundle_path, mutate)
    check = check_bundle(tampered, expected_domain=domain)
    assert not check.ok
    assert any(p.index == index and (field is None or p.field == field) for p in check.problems), check.problems
    with pytest.raises(BundleRecordError) as info:
        load_bundle(tampered, expected_domain=domain)
    assert f"receipt {info.value.index}" in str(info.value) and str(tampered) in str(info.value)


def test_receipt_signed_for_another_chain_is_named(tmp_path, receipts, domain):
    foreign = sign_receipt(make_receipt(40, issued_at=1_700_000_040), CONSUMER_KEY, receipt_domain(1, SETTLEMENT))
    path = write_bundle(build_bundle([*receipts, foreign], domain, NODE), tmp_path)
    check = check_bundle(path, expected_domain=domain)
    index = next(i for i, r in enumerate(json.loads(path.read_bytes())["receipts"]) if r["signature"] == foreign.signature)
    assert [(p.index, p.field) for p in check.problems] == [(index, "signature")]
    assert "not to the consumer" in check.problems[0].message


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda d: d.update(root="0x" + "00" * 32), "does not match the receipts' root"),
    (lambda d: d.update(version=2), "'version' is 2"),
    (lambda d: d.pop("node"), "header keys"),
    (lambda d: d.update(receipts=[]), "non-empty array"),
    (lambda d: d.update(chainId="31337"), "'chainId'"),
    (lambda d: d.update(settlement="0x1234"), "settlement"),
])
def test_tampered_header_is_a_bundle_error(bundle_path, domain, mutate, needle):
    tampered = _rewrite(bundle_path, mutate)
    with pytest.raises(BundleError, match=needle):
        load_bundle(tampered, expected_domain=domain)


def test_file_name_whitespace_domain_root_and_future_checks(bundle_path, domain, tmp_path):
    renamed = tmp_path / ("0" * 64 + ".json")
    renamed.write_bytes(bundle_path.read_bytes())
    with pytest.raises(BundleError, match="does not match its content hash"):
        load_bundle(renamed)
    pretty = json.dumps(json.loads(bundle_path.read_bytes()), indent=1, sort_keys=True).encode()
    pretty_path = tmp_path / (hashlib.sha256(pretty).hexdigest() + ".json")
    pretty_path.write_bytes(pretty)
    with pytest.raises(BundleError, match="not canonical JSON"):
        load_bundle(pretty_path)
    with pytest.raises(BundleError, match="expected chainId 1"):
        load_bundle(bundle_path, expected_domain=receipt_domain(1, SETTLEMENT))
    with pytest.raises(BundleError, match="committed bundleRoot"):
        load_bundle(bundle_path, expected_root=b"\x11" * 32)
    with pytest.raises(BundleRecordError, match="in the future"):
        load_bundle(bundle_path, not_after=1_700_000_010)
    with pytest.raises(BundleError, match="cannot be read"):
        load_bundle(tmp_path / "absent.json")
    garbage = b"{not json"
    garbage_path = tmp_path / (hashlib.sha256(garbage).hexdigest() + ".json")
    garbage_path.write_bytes(garbage)
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(garbage_path)


def test_prepare_batch_bundles_intermediate_receipts_and_records_root(tmp_path, domain):
    signer = ReceiptSigner(CONSUMER_KEY, domain)
    signer2 = ReceiptSigner(CONSUMER2_KEY, domain)
    with ReceiptStore(tmp_path / "r.db") as store:
        for a in (1, 2, 3):
            store.accept(signer.sign(make_receipt(a)), expected_domain=domain, expected_node=NODE)
        store.accept(signer2.sign(make_receipt(9, consumer=signer2.address)), expected_domain=domain, expected_node=NODE)
        latest = [c.latest for c in store.unsettled_channels()]
        prepared = prepare_batch(store, latest, domain, tmp_path / "bundles")
        batch = store.batch(prepared.batch_id)
        assert batch.state == "pending" and batch.bundle_file == prepared.path.name
        assert batch.bundle_root == "0x" + prepared.bundle.root.hex()
        assert len(prepared.bundle.receipts) == 4
        assert [r.cumulative_amount for r in prepared.receipts] == [c.receipt.cumulative_amount for c in latest]
        loaded = load_bundle(prepared.path, expected_domain=domain, expected_root=prepared.bundle.root)
        assert loaded.receipts == prepared.bundle.receipts
        store.mark_submitted(prepared.batch_id, "0x" + "ab" * 32, 0)
        store.mark_confirmed(prepared.batch_id, [ReceiptOutcome("settled", r.cumulative_amount, 0)
                                                 for r in prepared.receipts])
        store.accept(signer.sign(make_receipt(4)), expected_domain=domain, expected_node=NODE)
        second = prepare_batch(store, [store.latest(signer.address, NODE)], domain, tmp_path / "bundles")
        assert [r.cumulative_amount for r in second.bundle.receipts] == [4]  # only what came after


# ------------------------------------------------------------------ verify_many


def test_verify_many_parallel_equals_sequential_and_names_bad_records(domain):
    signer = ReceiptSigner(CONSUMER_KEY, domain)
    items = [signer.sign(make_receipt(a + 1)).to_json_dict() for a in range(5000)]
    items[17]["cumulativeAmount"] += 1  # signature no longer matches
    items[4242]["signature"] = "0x1234"  # malformed
    items[999]["node"] = "0x" + "0" * 40  # invalid field
    sequential = verify_many(items, domain, processes=1)
    parallel = verify_many(items, domain, processes=2, chunk_size=1000)
    assert sequential == parallel
    bad = [(c.index, c.field) for c in parallel if not c.ok]
    assert bad == [(17, "signature"), (999, "node"), (4242, "signature")]
    assert all(c.digest is not None for c in parallel if c.index not in (999, 4242))
