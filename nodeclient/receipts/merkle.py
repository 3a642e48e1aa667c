"""Merkle root over receipt digests, OpenZeppelin ``MerkleProof`` convention.

Parent = keccak256 of the two children sorted ascending (so a proof needs no left/right flags), an
odd node at the end of a level is carried up unchanged, and a single leaf is its own root. Leaves
are the receipts' EIP-712 digests in bundle order; they are already hashes of typed data, so they
are not hashed again (64-byte second-preimage confusion needs a 64-byte leaf, and these are 32).
Proofs from `merkle_proof` verify with OpenZeppelin's ``MerkleProof.verify``.
"""

from __future__ import annotations

from collections.abc import Sequence

from nodeclient.errors import ReceiptError
from nodeclient.receipts._keccak import keccak256

__all__ = ["hash_pair", "merkle_proof", "merkle_root", "verify_proof"]


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of the two 32-byte nodes in ascending order (OZ ``Hashes.commutativeKeccak256``)."""
    return keccak256(a + b) if a <= b else keccak256(b + a)


def _check(leaves: Sequence[bytes]) -> None:
    if not leaves:
        raise ReceiptError("A Merkle root needs at least one leaf; the batch has no receipts.")
    for i, leaf in enumerate(leaves):
        if len(leaf) != 32:
            raise ReceiptError(f"Merkle leaf {i} is {len(leaf)} bytes; leaves are 32-byte digests.")


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root of ``leaves`` (32-byte digests, in order)."""
    _check(leaves)
    level = list(leaves)
    while len(level) > 1:
        nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling path of leaf ``index``, bottom-up (levels where the node is carried up add nothing)."""
    _check(leaves)
    if not 0 <= index < len(leaves):
        raise ReceiptError(f"Merkle leaf index {index} is outside 0..{len(leaves) - 1}.")
    proof: list[bytes] = []
    level = list(leaves)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        index //= 2
    return proof


def verify_proof(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True if ``proof`` links ``leaf`` to ``root`` (same fold as OZ ``MerkleProof.processProof``)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root
