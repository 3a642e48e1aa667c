"""The bundle Merkle tree is exactly @openzeppelin/merkle-tree's SimpleMerkleTree (sortLeaves: false).

The reference runs in Node (``oz_merkle.js`` next to this file, the npm package from package.json);
every root and every proof of every tree size up to 40, and of 64, 100 and 257 leaves, must be equal
byte for byte, and each proof must fold back to the root.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nodeclient.receipts import (
    Receipt,
    address_of_key,
    build_bundle,
    merkle_proof,
    merkle_root,
    receipt_domain,
    sign_receipt,
    verify_proof,
)
from nodeclient.receipts.crypto import hash_pair, keccak256

HERE = Path(__file__).resolve().parent
SIZES = [*range(1, 41), 64, 100, 257]


def _openzeppelin(trees: list[list[bytes]]) -> list[dict]:
    node = shutil.which("node")
    assert node is not None, "node is required: the reference tree is the npm package @openzeppelin/merkle-tree"
    request = {"trees": [["0x" + leaf.hex() for leaf in leaves] for leaves in trees], "sortLeaves": False}
    result = subprocess.run(
        [node, str(HERE / "oz_merkle.js")], input=json.dumps(request), capture_output=True, text=True,
        timeout=120, check=False, cwd=HERE,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _leaves(count: int, salt: str = "") -> list[bytes]:
    return [keccak256(f"kuota merkle leaf {salt}{i}".encode()) for i in range(count)]


@pytest.fixture(scope="module")
def reference() -> dict[int, tuple[list[bytes], dict]]:
    trees = [_leaves(n) for n in SIZES]
    return {len(leaves): (leaves, ref) for leaves, ref in zip(trees, _openzeppelin(trees), strict=True)}


@pytest.mark.parametrize("size", SIZES)
def test_root_equals_openzeppelin_simple_merkle_tree(reference, size):
    leaves, ref = reference[size]
    assert "0x" + merkle_root(leaves).hex() == ref["root"]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 13, 100])
def test_every_proof_equals_openzeppelin_and_verifies(reference, size):
    leaves, ref = reference[size]
    root = merkle_root(leaves)
    for index, leaf in enumerate(leaves):
        proof = merkle_proof(leaves, index)
        assert ["0x" + p.hex() for p in proof] == ref["proofs"][index]
        assert verify_proof(leaf, proof, root)
        assert not verify_proof(keccak256(leaf), proof, root)


def test_five_leaves_pair_the_first_four_and_lift_the_fifth_one_level():
    a, b, c, d, e = _leaves(5, "shape")
    # OZ array layout: leaf k at 8 - k; node 3 = (a, b), 2 = (c, d), 1 = (node 3, e), root = (1, 2).
    assert merkle_root([a, b, c, d, e]) == hash_pair(hash_pair(hash_pair(a, b), e), hash_pair(c, d))


def test_leaf_order_changes_the_root_like_the_reference():
    leaves = _leaves(7, "order")
    swapped = [leaves[1], leaves[0], *leaves[2:]]
    ours = [merkle_root(leaves), merkle_root(swapped), merkle_root(leaves[::-1])]
    refs = _openzeppelin([leaves, swapped, leaves[::-1]])
    assert ["0x" + r.hex() for r in ours] == [r["root"] for r in refs]
    # Swapping a leaf pair is invisible to commutative hashing; reversing seven leaves is not.
    assert ours[0] == ours[1] and ours[0] != ours[2]


@pytest.mark.parametrize("count", [5, 7])
def test_bundle_root_is_the_openzeppelin_root_of_its_digests(count):
    key = keccak256(b"kuota merkle vector consumer")
    consumer = address_of_key(key)
    node = "0x" + "42" * 20
    domain = receipt_domain(31337, "0x" + "ab" * 20)
    receipts = [
        sign_receipt(Receipt(consumer=consumer, node=node, session_id="0x" + "01" * 32, cumulative_bytes=i * 1000,
                             cumulative_amount=i * 7, latency_ms=20, issued_at=1_700_000_000 + i), key, domain)
        for i in range(1, count + 1)
    ]
    bundle = build_bundle(receipts, domain, node)
    (ref,) = _openzeppelin([list(bundle.digests)])
    assert "0x" + bundle.root.hex() == ref["root"]
