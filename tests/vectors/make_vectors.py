"""Generate tests/vectors/receipts.json: golden EIP-712 receipt vectors, computed with eth-account.

The vectors are produced by eth-account's generic typed-data encoder and signer, not by
``nodeclient.receipts``: the Python fast path, the contract's ``hashReceipt`` and any other
language's implementation are all checked against this independent reference.

The private keys are keccak256 of fixed 32-byte seeds that are written in the file. They are
public, for tests only, and must never hold funds on any chain.

    python tests/vectors/make_vectors.py          # rewrite receipts.json
    python tests/vectors/make_vectors.py --check  # exit 1 if receipts.json differs from a regeneration
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

OUT = Path(__file__).resolve().parent / "receipts.json"
RECEIPT_TYPE = (
    "Receipt(address consumer,address node,bytes32 sessionId,uint256 cumulativeBytes,"
    "uint256 cumulativeAmount,uint32 latencyMs,uint64 issuedAt)"
)
U32, U64, U128 = 2**32 - 1, 2**64 - 1, 2**128 - 1

SEEDS = [bytes([i]) * 32 for i in (0x01, 0x02, 0x03)]  # fixed 32-byte seeds; key = keccak256(seed)
DOMAINS = [
    {"name": "Kuota", "version": "1", "chainId": 31337, "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3"},
    {"name": "Kuota", "version": "1", "chainId": 1, "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
]

TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Receipt": [
        {"name": "consumer", "type": "address"},
        {"name": "node", "type": "address"},
        {"name": "sessionId", "type": "bytes32"},
        {"name": "cumulativeBytes", "type": "uint256"},
        {"name": "cumulativeAmount", "type": "uint256"},
        {"name": "latencyMs", "type": "uint32"},
        {"name": "issuedAt", "type": "uint64"},
    ],
}


def _cases(consumer: str, node: str) -> list[tuple[str, dict[str, Any]]]:
    base = {"consumer": consumer, "node": node}
    return [
        ("zeros", {**base, "sessionId": "0x" + "00" * 32, "cumulativeBytes": 0, "cumulativeAmount": 0,
                   "latencyMs": 0, "issuedAt": 0}),
        ("typical", {**base, "sessionId": "0x" + "5e" * 32, "cumulativeBytes": 1_073_741_824,
                     "cumulativeAmount": 1_000_000, "latencyMs": 42, "issuedAt": 1_700_000_000}),
        ("one", {**base, "sessionId": "0x" + "00" * 31 + "01", "cumulativeBytes": 1, "cumulativeAmount": 1,
                 "latencyMs": 1, "issuedAt": 1}),
        ("max_uint128_cumulative", {**base, "sessionId": "0x" + "ff" * 32, "cumulativeBytes": U128,
                                    "cumulativeAmount": U128, "latencyMs": 50, "issuedAt": 1_800_000_000}),
        ("max_uint32_latency_uint64_time", {**base, "sessionId": "0x" + "a5" * 32, "cumulativeBytes": 12_345,
                                            "cumulativeAmount": 678, "latencyMs": U32, "issuedAt": U64}),
        ("all_max", {**base, "sessionId": "0x" + "ff" * 32, "cumulativeBytes": U128, "cumulativeAmount": U128,
                     "latencyMs": U32, "issuedAt": U64}),
    ]


def build() -> dict[str, Any]:
    keys = []
    for seed in SEEDS:
        private_key = keccak(seed)
        keys.append({"seed": "0x" + seed.hex(), "privateKey": "0x" + private_key.hex(),
                     "address": Account.from_key(private_key).address})
    node = keys[2]["address"]
    domains = []
    for domain in DOMAINS:
        probe = encode_typed_data(full_message={"types": TYPES, "primaryType": "Receipt", "domain": domain,
                                                "message": _cases(keys[0]["address"], node)[0][1]})
        domains.append({**domain, "separator": "0x" + probe.header.hex()})
    vectors = []
    for d_index, domain in enumerate(DOMAINS):
        for k_index in (0, 1):
            key = keys[k_index]
            for name, message in _cases(key["address"], node):
                signable = encode_typed_data(full_message={"types": TYPES, "primaryType": "Receipt",
                                                           "domain": domain, "message": message})
                digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
                signed = Account.sign_message(signable, key["privateKey"])
                vectors.append({
                    "name": f"{name}/chain{domain['chainId']}/key{k_index}",
                    "domain": d_index,
                    "key": k_index,
                    "receipt": message,
                    "structHash": "0x" + signable.body.hex(),
                    "digest": "0x" + digest.hex(),
                    "signature": "0x" + bytes(signed.signature).hex(),
                })
    return {
        "_comment": "Golden EIP-712 receipt vectors generated by tests/vectors/make_vectors.py with eth-account. "
                    "privateKey = keccak256(seed): PUBLIC TEST KEYS, never fund them.",
        "receiptType": RECEIPT_TYPE,
        "typeHash": "0x" + keccak(text=RECEIPT_TYPE).hex(),
        "keys": keys,
        "domains": domains,
        "vectors": vectors,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} differs from a fresh generation", file=sys.stderr)
            return 1
        print(f"{OUT}: up to date ({len(json.loads(text)['vectors'])} vectors)")
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
