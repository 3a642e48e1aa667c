"""Helpers shared by the integration and stateful tests: actors with real keys, signed receipts, node
registration with a node-key proof, and the reward figures the contracts promise.

Everything signs with real secp256k1 keys: consumers are Anvil accounts whose private keys come from
the Anvil mnemonic, node keys are fixed test keys. Receipts are signed by the client's signer
(``nodeclient.receipts.signing``), the code consumers run; eth-account's EIP-712 encoder signs node
keys and serves as an independent cross-check. The contract's ``ecrecover`` must agree either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

__all__ = [
    "ANVIL_MNEMONIC",
    "BPS",
    "RECEIPT_TYPES",
    "Actor",
    "BatchReader",
    "NodeKey",
    "Receipt",
    "anvil_key",
    "check_error",
    "event_list",
    "ints",
    "latency_multiplier_bps",
    "node_key",
    "receipt_domain",
    "register_node",
    "reverts_with",
    "sign_node_key",
    "sign_receipt",
    "sign_receipt_eth_account",
]

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
BPS = 10_000

Account.enable_unaudited_hdwallet_features()

RECEIPT_TYPES = {
    "Receipt": [
        {"name": "consumer", "type": "address"},
        {"name": "node", "type": "address"},
        {"name": "sessionId", "type": "bytes32"},
        {"name": "cumulativeBytes", "type": "uint256"},
        {"name": "cumulativeAmount", "type": "uint256"},
        {"name": "latencyMs", "type": "uint32"},
        {"name": "issuedAt", "type": "uint64"},
    ]
}
_NODE_KEY_TYPES = {
    "NodeKey": [
        {"name": "node", "type": "address"},
        {"name": "key", "type": "address"},
        {"name": "operator", "type": "address"},
    ]
}


@dataclass(frozen=True)
class Actor:
    """A Brownie account together with its private key (for off-chain signatures)."""

    account: Any
    private_key: str

    @property
    def address(self) -> str:
        return self.account.address


@dataclass(frozen=True)
class NodeKey:
    """A node's signing key: its address is the node's id in the registry."""

    private_key: str

    @property
    def address(self) -> str:
        return Account.from_key(self.private_key).address


@dataclass(frozen=True)
class Receipt:
    """The EIP-712 ``Receipt`` struct, in the contract's field order."""

    consumer: str
    node: str
    session_id: bytes
    cumulative_bytes: int
    cumulative_amount: int
    latency_ms: int
    issued_at: int

    def as_tuple(self) -> tuple:
        """The calldata tuple Brownie encodes for ``Receipt calldata``."""
        return (
            self.consumer,
            self.node,
            "0x" + self.session_id.hex(),
            self.cumulative_bytes,
            self.cumulative_amount,
            self.latency_ms,
            self.issued_at,
        )

    def as_message(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "node": self.node,
            "sessionId": self.session_id,
            "cumulativeBytes": self.cumulative_bytes,
            "cumulativeAmount": self.cumulative_amount,
            "latencyMs": self.latency_ms,
            "issuedAt": self.issued_at,
        }


def anvil_key(index: int) -> str:
    """Private key of Anvil's default account ``index`` (same derivation as ``anvil_private_key``)."""
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key.hex()


def node_key(label: str) -> NodeKey:
    """A fixed, reproducible node key (never an Anvil account, so it holds no ether)."""
    return NodeKey("0x" + keccak(text=f"kuota-test-node-key:{label}").hex())


def receipt_domain(chain_id: int, settlement_address: str) -> dict[str, Any]:
    return {
        "name": "Kuota",
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(settlement_address),
    }


def _sign_typed(private_key: str, domain: dict, types: dict, primary: str, message: dict) -> bytes:
    full = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **types,
        },
        "primaryType": primary,
        "domain": domain,
        "message": message,
    }
    signed = Account.sign_message(encode_typed_data(full_message=full), private_key)
    return bytes(signed.signature)


def sign_receipt(receipt: Receipt, private_key: str, chain_id: int, settlement_address: str) -> bytes:
    """65-byte r‖s‖v signature of ``receipt`` by ``private_key``, made by the client's signer
    (``nodeclient.receipts.signing``, the code consumers run) under the settlement's domain."""
    from nodeclient.receipts import Receipt as ClientReceipt
    from nodeclient.receipts.signing import receipt_domain as client_domain
    from nodeclient.receipts.signing import sign_receipt as client_sign

    client_receipt = ClientReceipt(
        consumer=receipt.consumer,
        node=receipt.node,
        session_id="0x" + receipt.session_id.hex(),
        cumulative_bytes=receipt.cumulative_bytes,
        cumulative_amount=receipt.cumulative_amount,
        latency_ms=receipt.latency_ms,
        issued_at=receipt.issued_at,
    )
    signed = client_sign(client_receipt, private_key, client_domain(chain_id, settlement_address))
    signature = signed.signature
    return bytes.fromhex(signature[2:]) if isinstance(signature, str) else bytes(signature)


def sign_receipt_eth_account(
    receipt: Receipt, private_key: str, chain_id: int, settlement_address: str
) -> bytes:
    """The same signature made independently with eth-account's EIP-712 encoder (a cross-check)."""
    domain = receipt_domain(chain_id, settlement_address)
    return _sign_typed(private_key, domain, RECEIPT_TYPES, "Receipt", receipt.as_message())


def sign_node_key(key: NodeKey, node: str, operator: str, chain_id: int, registry_address: str) -> bytes:
    """The registry's proof of possession: ``NodeKey(node, key, operator)`` signed by ``key``."""
    domain = {
        "name": "Kuota NodeRegistry",
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(registry_address),
    }
    message = {"node": node, "key": key.address, "operator": operator}
    return _sign_typed(key.private_key, domain, _NODE_KEY_TYPES, "NodeKey", message)


def register_node(
    system: Any,
    operator: Any,
    key: NodeKey,
    payout: str,
    chain_id: int,
    price_per_gib: int = 10**6,
    capacity_mbps: int = 100,
    region: str = "eu-west",
    metadata_uri: str = "ipfs://kuota-test-node",
) -> Any:
    """Register ``key``'s address as a node of ``operator`` (who must already have the stake)."""
    signature = sign_node_key(key, key.address, operator.address, chain_id, system.registry.address)
    return system.registry.register(
        key.address, payout, price_per_gib, capacity_mbps, region, metadata_uri, signature, {"from": operator}
    )


def latency_multiplier_bps(latency_ms: int, low_ms: int, high_ms: int, floor_bps: int) -> int:
    """The BRIEF's curve: 10000 at or below ``low_ms``, linear down to ``floor_bps`` at ``high_ms``."""
    if latency_ms <= low_ms:
        return BPS
    if latency_ms >= high_ms:
        return floor_bps
    return BPS - (BPS - floor_bps) * (latency_ms - low_ms) // (high_ms - low_ms)


def ints(values: Any) -> tuple[int, ...]:
    """A view's tuple of integers as plain ints (Brownie's ReturnValue refuses to compare with ints)."""
    return tuple(int(v) for v in values)


def event_list(tx: Any, name: str) -> list[Any]:
    """The ``name`` events a transaction emitted (an empty list when there are none)."""
    return list(tx.events[name]) if name in tx.events else []


class BatchReader:
    """Many contract view calls in one JSON-RPC batch (one HTTP round trip instead of one per call).

    Invariants read dozens of views after every step; on a shared 2-core machine each separate
    request costs tens of milliseconds, so they go to Anvil as a single batch. Calls are encoded and
    decoded by Brownie's own ``ContractCall`` objects, so the results are exactly what ``fn(*args)``
    returns. The session ignores proxy variables: the chain is on loopback.
    """

    def __init__(self, rpc_url: str) -> None:
        self._url = rpc_url
        self._session = requests.Session()
        self._session.trust_env = False

    def __call__(self, calls: list[tuple[Any, tuple]]) -> list[Any]:
        """Results of ``fn(*args)`` for each ``(fn, args)`` in ``calls``, read at the latest block."""
        if not calls:
            return []
        payload = [
            {
                "jsonrpc": "2.0",
                "id": index,
                "method": "eth_call",
                "params": [{"to": fn._address, "data": fn.encode_input(*args)}, "latest"],
            }
            for index, (fn, args) in enumerate(calls)
        ]
        response = self._session.post(self._url, json=payload, timeout=60)
        response.raise_for_status()
        by_id = {item["id"]: item for item in response.json()}
        results = []
        for index, (fn, args) in enumerate(calls):
            item = by_id[index]
            if "error" in item:
                raise AssertionError(f"view {fn._name}{args} reverted: {item['error']}")
            results.append(fn.decode_output(item["result"]))
        return results


def check_error(message: str, name: str, values: tuple | None = None) -> None:
    """Assert that Brownie's decoded revert ``message`` is custom error ``name`` with ``values``.

    Brownie renders a decoded custom error as ``"Name: v1, v2"``; addresses compare case-insensitively.
    """
    got_name, _, got_values = message.partition(": ")
    assert got_name == name, f"expected {name}{values or ''}, got {message!r}"
    if values is not None:
        expected = ", ".join(str(v) for v in values)
        assert got_values.lower() == expected.lower(), f"expected {name}: {expected}, got {message!r}"


@contextmanager
def reverts_with(name: str, *values: Any) -> Iterator[None]:
    """The block must revert with custom error ``name`` (and exactly ``values``, when given)."""
    from brownie.exceptions import VirtualMachineError

    try:
        yield
    except VirtualMachineError as exc:
        check_error(str(exc.revert_msg), name, values if values else None)
    else:
        raise AssertionError(f"expected a revert with {name}, nothing reverted")
