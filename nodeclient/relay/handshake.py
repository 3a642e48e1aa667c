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
- ``RelayLink(address node,bytes32 linkKey,bytes32 challenge)`` signed by the same registered key, sent
  in the CHALLENGE: the X25519 key of this connection's encrypted link (``nodeclient.relay.link``). The
  consumer verifies it against the registry before it sends anything, so the link ends at the node.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self

from eth_utils import is_address, to_checksum_address

from nodeclient.errors import ReceiptError
from nodeclient.receipts.crypto import (
    checksum_address,
    decode_type,
    domain_separator,
    eip712_digest,
    hash_static_struct,
    recover_address,
)
from nodeclient.receipts.signing import PrivateKeyLike, sign_digest
from nodeclient.relay.errors import HandshakeError

__all__ = [
    "HELLO_SKEW_S",
    "HELLO_TYPE",
    "LINK_TYPE",
    "WELCOME_TYPE",
    "Hello",
    "LinkAttestation",
    "Welcome",
    "new_challenge",
    "new_session_id",
    "relay_domain",
]

HELLO_SKEW_S = 300
"""How far (seconds) a hello's ``issuedAt`` may be from the node's clock."""

HELLO_TYPE = (
    "RelayHello(address consumer,address node,bytes32 sessionId,uint256 pricePerGiB,bytes32 challenge,"
    "uint64 issuedAt)"
)
WELCOME_TYPE = (
    "RelayWelcome(address node,address consumer,bytes32 sessionId,uint256 pricePerGiB,uint256 creditBytes,"
    "uint256 receiptIntervalBytes,uint256 baseBytes,uint256 baseAmount,bytes32 helloDigest)"
)
LINK_TYPE = "RelayLink(address node,bytes32 linkKey,bytes32 challenge)"
_DOMAIN_NAME = "Kuota Relay"
_DOMAIN_VERSION = "1"

_UINT64 = (1 << 64) - 1
_UINT256 = (1 << 256) - 1


def relay_domain(chain_id: int, settlement: str) -> dict[str, Any]:
    """The EIP-712 domain of handshake messages for one deployment."""
    return {"name": _DOMAIN_NAME, "version": _DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": settlement}


def new_session_id() -> str:
    """A fresh random bytes32 session id (0x-hex)."""
    return "0x" + os.urandom(32).hex()


def new_challenge() -> str:
    """A fresh random bytes32 challenge (0x-hex)."""
    return "0x" + os.urandom(32).hex()


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


def _uint64(body: dict[str, Any], field: str) -> int:
    return _uint(body, field, _UINT64)


#: How a wire field of each EIP-712 type is checked.
_PARSERS = {"address": _address, "bytes32": _bytes32, "uint256": _uint, "uint64": _uint64}


def _attribute(field_name: str) -> str:
    """The Python attribute of an EIP-712 field: ``sessionId`` → ``session_id``, ``pricePerGiB`` → ``price_per_gib``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", field_name.replace("GiB", "Gib")).lower()


class _SignedTypedData:
    """Wire form, EIP-712 hashing, signing and recovery shared by the two handshake messages, over the
    receipt crypto core: the same digest encoding and the same low-s / v checks as receipts.

    Each message names its struct (``_TYPE``); its attributes are the struct's fields in snake case
    and its wire form uses the struct's field names.
    """

    __slots__ = ()
    _TYPE: ClassVar[str]
    signature: str

    def to_json(self) -> dict[str, Any]:
        """Wire form: the struct's fields under their EIP-712 names, then the signature."""
        _, fields = decode_type(self._TYPE)
        return {f["name"]: getattr(self, _attribute(f["name"])) for f in fields} | {"signature": self.signature}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Self:
        """Parse and type-check a wire message; raises ``HandshakeError`` naming the bad field."""
        return cls(**cls._wire_fields(body))

    @classmethod
    def _wire_fields(cls, body: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments from a wire body, each type-checked (``HandshakeError`` names the field)."""
        _, fields = decode_type(cls._TYPE)
        parsed = {_attribute(f["name"]): _PARSERS[f["type"]](body, f["name"]) for f in fields}
        parsed["signature"] = _signature(body)
        return parsed

    def eip712_digest(self, chain_id: int, settlement: str) -> bytes:
        """The 32-byte EIP-712 digest of this message in the relay domain of one deployment."""
        primary, fields = decode_type(self._TYPE)
        wire = self.to_json()
        try:
            struct = hash_static_struct(primary, fields, {f["name"]: wire[f["name"]] for f in fields})
            separator = domain_separator(chain_id, bytes.fromhex(settlement[2:]), _DOMAIN_NAME, _DOMAIN_VERSION)
        except (ValueError, OverflowError) as exc:
            raise HandshakeError(f"{primary} cannot be hashed: {exc}") from None
        return eip712_digest(separator, struct)

    def signed(self, private_key: PrivateKeyLike, chain_id: int, settlement: str) -> Self:
        """A copy carrying the signature of ``private_key`` over this message."""
        sig = sign_digest(self.eip712_digest(chain_id, settlement), private_key)
        return replace(self, signature="0x" + sig.hex())  # type: ignore[type-var]

    def recover(self, chain_id: int, settlement: str) -> str:
        """The address that signed this message; `HandshakeError` for a signature the chain would refuse."""
        digest = self.eip712_digest(chain_id, settlement)
        try:
            return checksum_address(recover_address(digest, bytes.fromhex(self.signature[2:])))
        except (ReceiptError, ValueError) as exc:
            raise HandshakeError(f"signature does not recover ({exc})") from None


@dataclass(frozen=True, slots=True)
class Hello(_SignedTypedData):
    """The consumer's signed session request."""

    _TYPE: ClassVar[str] = HELLO_TYPE
    consumer: str
    node: str
    session_id: str
    price_per_gib: int
    challenge: str
    issued_at: int
    signature: str = ""

    def digest(self, chain_id: int, settlement: str) -> str:
        """The EIP-712 digest (0x-hex) the welcome binds to."""
        return "0x" + self.eip712_digest(chain_id, settlement).hex()


@dataclass(frozen=True, slots=True)
class Welcome(_SignedTypedData):
    """The node's signed acceptance: the session's terms and the channel's starting point."""

    _TYPE: ClassVar[str] = WELCOME_TYPE
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

    def to_json(self) -> dict[str, Any]:
        """Wire form: the signed fields, the signature and the base receipt."""
        # dataclass(slots=True) rebuilds the class, so zero-argument super() would not find it.
        return _SignedTypedData.to_json(self) | {"baseReceipt": self.base_receipt}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Welcome:
        """Parse and type-check a wire welcome; raises ``HandshakeError`` naming the bad field."""
        base_receipt = body.get("baseReceipt")
        if base_receipt is not None and not isinstance(base_receipt, dict):
            raise HandshakeError(f"field 'baseReceipt' is {type(base_receipt).__name__}, expected an object")
        return cls(**cls._wire_fields(body), base_receipt=base_receipt)


@dataclass(frozen=True, slots=True)
class LinkAttestation(_SignedTypedData):
    """The node's registered key vouching for one connection's link key, bound to that connection's challenge."""

    _TYPE: ClassVar[str] = LINK_TYPE
    node: str
    link_key: str
    challenge: str
    signature: str = ""

    @property
    def key_bytes(self) -> bytes:
        """The 32-byte X25519 public key."""
        return bytes.fromhex(self.link_key[2:])
