"""Session handshake messages: the consumer's signed hello and the node's signed welcome.

Both are EIP-712 typed data in the domain ``{name: "Kuota Relay", version: "1", chainId,
verifyingContract: ReceiptSettlement}``: a hello cannot be replayed on another chain or deployment, and
it is not a Receipt (another domain name), so no handshake signature can ever be settled.

- ``RelayHello(address consumer,address node,bytes32 sessionId,uint256 pricePerGiB,bytes32 challenge,uint64 issuedAt)``
  signed by the consumer. ``challenge`` is the node's fresh random nonce from the CHALLENGE frame, so a
  captured hello is worthless on any other connection.
- ``RelayWelcome(address node,address consumer,bytes32 sessionId,uint256 pricePerGiB,uint256 creditBytes,uint256 receiptIntervalBytes,uint256 baseBytes,uint256 baseAmount,bytes32 helloDigest)``
  signed by the node's registered signing key (NodeRegistry ``getNode(node).signingKey``): the consumer
  knows it talks to the node it chose, at the terms it agreed to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Self

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import is_address, keccak, to_checksum_address

from nodeclient.relay.errors import HandshakeError

__all__ = [
    "HELLO_SKEW_S",
    "Hello",
    "Welcome",
    "new_challenge",
    "new_session_id",
    "relay_domain",
]

HELLO_SKEW_S = 300
"""How far (seconds) a hello's ``issuedAt`` may be from the node's clock."""

_UINT64 = (1 << 64) - 1
_UINT256 = (1 << 256) - 1

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_HELLO_TYPE = [
    {"name": "consumer", "type": "address"},
    {"name": "node", "type": "address"},
    {"name": "sessionId", "type": "bytes32"},
    {"name": "pricePerGiB", "type": "uint256"},
    {"name": "challenge", "type": "bytes32"},
    {"name": "issuedAt", "type": "uint64"},
]
_WELCOME_TYPE = [
    {"name": "node", "type": "address"},
    {"name": "consumer", "type": "address"},
    {"name": "sessionId", "type": "bytes32"},
    {"name": "pricePerGiB", "type": "uint256"},
    {"name": "creditBytes", "type": "uint256"},
    {"name": "receiptIntervalBytes", "type": "uint256"},
    {"name": "baseBytes", "type": "uint256"},
    {"name": "baseAmount", "type": "uint256"},
    {"name": "helloDigest", "type": "bytes32"},
]


def relay_domain(chain_id: int, settlement: str) -> dict[str, Any]:
    """The EIP-712 domain of handshake messages for one deployment."""
    return {"name": "Kuota Relay", "version": "1", "chainId": chain_id, "verifyingContract": settlement}


def new_session_id() -> str:
    """A fresh random bytes32 session id (0x-hex)."""
    return "0x" + os.urandom(32).hex()


def new_challenge() -> str:
    """A fresh random bytes32 challenge (0x-hex)."""
    return "0x" + os.urandom(32).hex()


def _digest(signable: SignableMessage) -> bytes:
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def _address(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not is_address(value):
        raise HandshakeError(f"field {field!r} is {value!r}, not an address")
    return to_checksum_address(value)


def _bytes32(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or len(value) != 66 or not value.startswith("0x"):
        raise HandshakeError(f"field {field!r} is {value!r}, not a 0x-prefixed 32-byte hex string")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise HandshakeError(f"field {field!r} is {value!r}, not hex") from None
    return value.lower()


def _uint(body: dict[str, Any], field: str, maximum: int = _UINT256) -> int:
    value = body.get(field)
    # bool is an int subclass: refuse it explicitly, True is not a price.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise HandshakeError(f"field {field!r} is {value!r}, not an integer in [0, {maximum}]")
    return value


def _signature(body: dict[str, Any]) -> str:
    value = body.get("signature")
    if not isinstance(value, str) or len(value) != 132 or not value.startswith("0x"):
        raise HandshakeError(f"field 'signature' is {str(value)[:140]!r}, not 0x + 65 bytes of hex")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise HandshakeError("field 'signature' is not hex") from None
    return value


def _recover(signable: SignableMessage, signature: str) -> str:
    try:
        return to_checksum_address(Account.recover_message(signable, signature=signature))
    except Exception as exc:  # noqa: BLE001 - eth-keys raises several types for malformed r/s/v
        raise HandshakeError(f"signature does not recover ({exc})") from None


class _SignedTypedData:
    """Signing and recovery shared by the two handshake messages (each defines ``signable``)."""

    __slots__ = ()
    signature: str

    def signable(self, chain_id: int, settlement: str) -> SignableMessage:
        raise NotImplementedError

    def signed(self, private_key: str | bytes, chain_id: int, settlement: str) -> Self:
        """A copy carrying the signature of ``private_key`` over this message."""
        sig = Account.sign_message(self.signable(chain_id, settlement), private_key).signature
        return replace(self, signature="0x" + bytes(sig).hex())  # type: ignore[type-var]

    def recover(self, chain_id: int, settlement: str) -> str:
        """The address that signed this message."""
        return _recover(self.signable(chain_id, settlement), self.signature)


@dataclass(frozen=True, slots=True)
class Hello(_SignedTypedData):
    """The consumer's signed session request."""

    consumer: str
    node: str
    session_id: str
    price_per_gib: int
    challenge: str
    issued_at: int
    signature: str = ""

    def signable(self, chain_id: int, settlement: str) -> SignableMessage:
        """The EIP-712 message the consumer signs."""
        return encode_typed_data(
            full_message={
                "types": {"EIP712Domain": _DOMAIN_TYPE, "RelayHello": _HELLO_TYPE},
                "primaryType": "RelayHello",
                "domain": relay_domain(chain_id, settlement),
                "message": {
                    "consumer": self.consumer,
                    "node": self.node,
                    "sessionId": bytes.fromhex(self.session_id[2:]),
                    "pricePerGiB": self.price_per_gib,
                    "challenge": bytes.fromhex(self.challenge[2:]),
                    "issuedAt": self.issued_at,
                },
            }
        )

    def digest(self, chain_id: int, settlement: str) -> str:
        """The EIP-712 digest (0x-hex) the welcome binds to."""
        return "0x" + _digest(self.signable(chain_id, settlement)).hex()

    def to_json(self) -> dict[str, Any]:
        """Wire form (EIP-712 field names)."""
        return {
            "consumer": self.consumer,
            "node": self.node,
            "sessionId": self.session_id,
            "pricePerGiB": self.price_per_gib,
            "challenge": self.challenge,
            "issuedAt": self.issued_at,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Hello:
        """Parse and type-check a wire hello; raises ``HandshakeError`` naming the bad field."""
        return cls(
            consumer=_address(body, "consumer"),
            node=_address(body, "node"),
            session_id=_bytes32(body, "sessionId"),
            price_per_gib=_uint(body, "pricePerGiB"),
            challenge=_bytes32(body, "challenge"),
            issued_at=_uint(body, "issuedAt", _UINT64),
            signature=_signature(body),
        )


@dataclass(frozen=True, slots=True)
class Welcome(_SignedTypedData):
    """The node's signed acceptance: the session's terms and the channel's starting point."""

    node: str
    consumer: str
    session_id: str
    price_per_gib: int
    credit_bytes: int
    receipt_interval_bytes: int
    base_bytes: int
    base_amount: int
    hello_digest: str
    signature: str = ""
    base_receipt: dict[str, Any] | None = None
    """The consumer's own latest signed receipt on this channel (self-authenticating, not in the signature)."""

    def signable(self, chain_id: int, settlement: str) -> SignableMessage:
        """The EIP-712 message the node's signing key signs."""
        return encode_typed_data(
            full_message={
                "types": {"EIP712Domain": _DOMAIN_TYPE, "RelayWelcome": _WELCOME_TYPE},
                "primaryType": "RelayWelcome",
                "domain": relay_domain(chain_id, settlement),
                "message": {
                    "node": self.node,
                    "consumer": self.consumer,
                    "sessionId": bytes.fromhex(self.session_id[2:]),
                    "pricePerGiB": self.price_per_gib,
                    "creditBytes": self.credit_bytes,
                    "receiptIntervalBytes": self.receipt_interval_bytes,
                    "baseBytes": self.base_bytes,
                    "baseAmount": self.base_amount,
                    "helloDigest": bytes.fromhex(self.hello_digest[2:]),
                },
            }
        )

    def to_json(self) -> dict[str, Any]:
        """Wire form."""
        return {
            "node": self.node,
            "consumer": self.consumer,
            "sessionId": self.session_id,
            "pricePerGiB": self.price_per_gib,
            "creditBytes": self.credit_bytes,
            "receiptIntervalBytes": self.receipt_interval_bytes,
            "baseBytes": self.base_bytes,
            "baseAmount": self.base_amount,
            "helloDigest": self.hello_digest,
            "signature": self.signature,
            "baseReceipt": self.base_receipt,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Welcome:
        """Parse and type-check a wire welcome; raises ``HandshakeError`` naming the bad field."""
        base_receipt = body.get("baseReceipt")
        if base_receipt is not None and not isinstance(base_receipt, dict):
            raise HandshakeError(f"field 'baseReceipt' is {type(base_receipt).__name__}, expected an object")
        return cls(
            node=_address(body, "node"),
            consumer=_address(body, "consumer"),
            session_id=_bytes32(body, "sessionId"),
            price_per_gib=_uint(body, "pricePerGiB"),
            credit_bytes=_uint(body, "creditBytes"),
            receipt_interval_bytes=_uint(body, "receiptIntervalBytes"),
            base_bytes=_uint(body, "baseBytes"),
            base_amount=_uint(body, "baseAmount"),
            hello_digest=_bytes32(body, "helloDigest"),
            signature=_signature(body),
            base_receipt=base_receipt,
        )
