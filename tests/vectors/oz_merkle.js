// Reference Merkle tree for the Python tests: @openzeppelin/merkle-tree's SimpleMerkleTree.
// stdin: {"trees": [[leaf hex, ...], ...], "sortLeaves": bool}
// stdout: [{"root": hex, "proofs": [[hex, ...] per leaf, in input order]}, ...]
"use strict";
const { SimpleMerkleTree } = require("@openzeppelin/merkle-tree");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const request = JSON.parse(input);
  const out = request.trees.map((leaves) => {
    const tree = SimpleMerkleTree.of(leaves, { sortLeaves: request.sortLeaves });
    return { root: tree.root, proofs: leaves.map((_, i) => tree.getProof(i)) };
  });
  process.stdout.write(JSON.stringify(out));
});
