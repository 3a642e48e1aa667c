"""Helpers for the audit tests: a small but complete local economy, bundles, and RPC proxies.

The economy is built with real transactions on the test Anvil (Brownie accounts send them) and real
consumer signatures (``nodeclient.receipts.signing``, the signer consumers run). Bundles are written
here in the published format with an independent Merkle implementation, so the auditor's own root
code is checked against a second one rather than against itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from nodeclient.receipts import Receipt
from nodeclient.receipts.signing import receipt_digest, receipt_domain, sign_receipt
from tests.loopback import LoopbackServer

__all__ = [
    "ANVIL_MNEMONIC",
    "UNIT",
    "BatchInfo",
    "Economy",
    "RpcProxy",
    "anvil_key",
    "bundle_bytes",
    "node_key_signature",
    "receipt_tuple",
    "reference_root",
    "settle_batch",
    "settle_one",
    "signed_receipt_json",
    "write_bundle",
]

UNIT = 10**6
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()


def anvil_key(index: int) -> str:
    """Private key of Anvil's default account ``index``."""
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key.hex()


def node_key_signature(registry_address: str, chain_id: int, key: Any, operator: str) -> str:
    """EIP-712 ``NodeKey(node, key, operator)`` signed by the node key (proof of possession)."""
    typed = {
        "domain": {"name": "Kuota NodeRegistry", "version": "1", "chainId": chain_id,
                   "verifyingContract": registry_address},
        "types": {"NodeKey": [{"name": "node", "type": "address"}, {"name": "key", "type": "address"},
                              {"name": "operator", "type": "address"}]},
        "primaryType": "NodeKey",
        "message": {"node": key.address, "key": key.address, "operator": operator},
    }
    return "0x" + bytes(Account.sign_message(encode_typed_data(full_message=typed), key.key).signature).hex()


def signed_receipt_json(
    key: str, node: str, cumulative_bytes: int, cumulative_amount: int, *, issued_at: int,
    latency_ms: int = 30, session: int = 1, chain_id: int, settlement: str,
) -> dict[str, Any]:
    """A receipt in its published JSON form, signed by ``key`` (the consumer) under the given domain."""
    receipt = Receipt(
        consumer=Account.from_key(key).address, node=node, session_id="0x" + session.to_bytes(32, "big").hex(),
        cumulative_bytes=cumulative_bytes, cumulative_amount=cumulative_amount, latency_ms=latency_ms,
        issued_at=issued_at,
    )
    signed = sign_receipt(receipt, key, receipt_domain(chain_id, settlement))
    return {
        "consumer": receipt.consumer, "node": to_checksum_address(node), "sessionId": receipt.session_id,
        "cumulativeBytes": cumulative_bytes, "cumulativeAmount": cumulative_amount, "latencyMs": latency_ms,
        "issuedAt": issued_at, "signature": signed.signature,
    }


def _digest(item: dict[str, Any], chain_id: int, settlement: str) -> bytes:
    receipt = Receipt(
        consumer=item["consumer"], node=item["node"], session_id=item["sessionId"],
        cumulative_bytes=item["cumulativeBytes"], cumulative_amount=item["cumulativeAmount"],
        latency_ms=item["latencyMs"], issued_at=item["issuedAt"],
    )
    return receipt_digest(receipt, receipt_domain(chain_id, settlement))


def reference_root(receipts: list[dict[str, Any]], chain_id: int, settlement: str) -> bytes:
    """@openzeppelin/merkle-tree SimpleMerkleTree root (sortLeaves: false) over the receipts' digests.

    An independent, recursive statement of that tree: a heap of 2n-1 nodes whose node i has the
    children 2i+1 and 2i+2, with leaf k stored at index 2n-2-k.
    """
    leaves = [_digest(r, chain_id, settlement) for r in receipts]
    size = 2 * len(leaves) - 1

    def node(i: int) -> bytes:
        if 2 * i + 1 >= size:
            return leaves[size - 1 - i]
        return keccak(b"".join(sorted((node(2 * i + 1), node(2 * i + 2)))))

    return node(0)


def canonical_order(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bundle order: (consumer lower-case, cumulativeAmount, issuedAt)."""
    return sorted(receipts, key=lambda r: (r["consumer"].lower(), r["cumulativeAmount"], r["issuedAt"]))


def bundle_bytes(doc: dict[str, Any]) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def write_bundle(directory: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` as ``<sha256>.json`` into ``directory``; returns the path."""
    data = bundle_bytes(doc)
    path = directory / f"{hashlib.sha256(data).hexdigest()}.json"
    path.write_bytes(data)
    return path


@dataclass
class BatchInfo:
    """One ``settleMany`` of the economy with its published bundle."""

    node: str
    root: str
    doc: dict[str, Any]
    path: Path
    tx_hash: str
    block: int


@dataclass
class Economy:
    """The deployed, exercised system the audit tests replay."""

    system: Any
    manifest_path: Path
    rpc_url: str
    chain_id: int
    bundle_dir: Path
    node_a: str
    node_b: str
    keys: dict[str, str]
    batches: list[BatchInfo] = field(default_factory=list)
    settled_events: int = 0
    skipped_events: int = 0
    funded_consumer: str = ""
    operator: str = ""


class _Handler(BaseHTTPRequestHandler):
    server: _ProxyServer

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = json.loads(body)
        response = self.server.proxy.handle(request)
        data = json.dumps(response).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: RpcProxy


class RpcProxy(LoopbackServer):
    """A JSON-RPC proxy on 127.0.0.1 in front of the test chain.

    ``max_log_range`` makes it refuse ``eth_getLogs`` spans above N blocks with ``limit_message``
    (a provider's wording); ``rewrite_logs`` lets a test alter the logs it returns (a lying RPC).
    """

    def __init__(
        self,
        upstream: str,
        *,
        max_log_range: int | None = None,
        limit_message: str = "query exceeds max block range {n}",
        limit_code: int = -32005,
        rewrite_logs: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
        refuse_batches: bool = False,
    ) -> None:
        self.refuse_batches = refuse_batches
        self.batches = 0
        self.upstream = upstream
        self.max_log_range = max_log_range
        self.limit_message = limit_message
        self.limit_code = limit_code
        self.rewrite_logs = rewrite_logs
        self.refused = 0
        self.log_calls = 0
        self._session = requests.Session()
        super().__init__(_ProxyServer, _Handler)

    def handle(self, request: Any) -> Any:
        if isinstance(request, list):
            self.batches += 1
            if self.refuse_batches:  # some providers answer a batch with one error object
                return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch requests are not supported"}}
            return self._session.post(self.upstream, json=request, timeout=30).json()
        if request.get("method") == "eth_getLogs":
            self.log_calls += 1
            params = request["params"][0]
            start, end = int(params["fromBlock"], 16), int(params["toBlock"], 16)
            if self.max_log_range is not None and end - start + 1 > self.max_log_range:
                self.refused += 1
                message = self.limit_message.format(n=self.max_log_range, start=hex(start),
                                                     end=hex(start + self.max_log_range - 1))
                return {"jsonrpc": "2.0", "id": request["id"], "error": {"code": self.limit_code, "message": message}}
        response = self._session.post(self.upstream, json=request, timeout=30).json()
        if request.get("method") == "eth_getLogs" and self.rewrite_logs is not None and "result" in response:
            response["result"] = self.rewrite_logs(response["result"])
        return response


def receipt_tuple(r: dict[str, Any]) -> tuple:
    """The calldata tuple of a receipt in JSON form."""
    return (r["consumer"], r["node"], r["sessionId"], r["cumulativeBytes"], r["cumulativeAmount"], r["latencyMs"],
            r["issuedAt"])


def settle_batch(eco: Economy, node: str, receipts: list[dict[str, Any]], sender: Any) -> BatchInfo:
    """Publish a bundle of ``receipts`` and settle the last receipt of each channel with its root."""
    system = eco.system
    settlement = system.settlement.address
    ordered = canonical_order(receipts)
    root = "0x" + reference_root(ordered, eco.chain_id, settlement).hex()
    doc = {"version": 1, "chainId": eco.chain_id, "settlement": settlement, "node": node, "root": root,
           "receipts": ordered}
    path = write_bundle(eco.bundle_dir, doc)
    last: dict[str, dict[str, Any]] = {}
    for r in ordered:
        last[r["consumer"]] = r
    finals = list(last.values())
    tx = system.settlement.settleMany([receipt_tuple(r) for r in finals], [r["signature"] for r in finals], root,
                                      {"from": sender})
    eco.settled_events += len(tx.events["ReceiptSettled"]) if "ReceiptSettled" in tx.events else 0
    eco.skipped_events += len(tx.events["ReceiptSkipped"]) if "ReceiptSkipped" in tx.events else 0
    info = BatchInfo(node=node, root=root, doc=doc, path=path, tx_hash=tx.txid, block=tx.block_number)
    eco.batches.append(info)
    return info


def settle_one(eco: Economy, receipt: dict[str, Any], sender: Any) -> Any:
    tx = eco.system.settlement.settle(receipt_tuple(receipt), receipt["signature"], {"from": sender})
    eco.settled_events += 1
    return tx
