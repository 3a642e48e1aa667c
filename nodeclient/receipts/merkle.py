"""Merkle root and proofs over receipt digests: re-exported from `nodeclient.receipts.crypto`.

The tree is OpenZeppelin's ``SimpleMerkleTree`` with ``sortLeaves: false``; see docs/PROTOCOL.md,
"Bundles", for the exact layout.
"""

from __future__ import annotations

from nodeclient.receipts.crypto import hash_pair, merkle_proof, merkle_root, verify_proof

__all__ = ["hash_pair", "merkle_proof", "merkle_root", "verify_proof"]
