"""EIP-712 signing and signer recovery for receipts, over the shared core `nodeclient.receipts.crypto`.

The digest and recovery are the core's (byte for byte ``eth_account.messages.encode_typed_data`` and
the deployed contract's ``hashReceipt``, as the tests check); this module adds the domain object, key
handling and the pydantic models. Signing uses libsecp256k1 through coincurve: signatures are
deterministic (RFC 6979) and always low-s, exactly what eth-account produces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from coincurve import PrivateKey

from nodeclient.receipts.crypto import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    EIP712_DOMAIN_TYPE,
    EIP712_DOMAIN_TYPEHASH,
    RECEIPT_FIELDS,
    RECEIPT_TYPE,
    RECEIPT_TYPEHASH,
    SECP256K1_N,
    address_of_public_key,
    domain_separator,
    eip712_digest,
    receipt_struct_hash,
    recover_address,
)
from nodeclient.receipts.crypto import typed_data as _typed_data
from nodeclient.receipts.errors import InvalidSignerError, PrivateKeyError, ReceiptFieldError
from nodeclient.receipts.model import (
    UINT256_MAX,
    RawReceipt,
    Receipt,
    SignedReceipt,
    parse_address,
    parse_signature,
    to_checksum_address,
)

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "EIP712_DOMAIN_TYPE",
    "EIP712_DOMAIN_TYPEHASH",
    "RECEIPT_TYPE",
    "RECEIPT_TYPEHASH",
    "HasKey",
    "PrivateKeyLike",
    "ReceiptDomain",
    "ReceiptSigner",
    "address_of_key",
    "digest_raw",
    "receipt_digest",
    "receipt_domain",
    "receipt_struct_hash",
    "recover_signer",
    "recover_signer_bytes",
    "recover_signer_eth_keys",
    "sign_digest",
    "sign_receipt",
    "typed_data",
    "verify_receipt",
]


@dataclass(frozen=True, slots=True)
class ReceiptDomain:
    """The EIP-712 domain receipts are signed under: one ReceiptSettlement on one chain."""

    chain_id: int
    verifying_contract: str
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sep = domain_separator(self.chain_id, bytes.fromhex(self.verifying_contract[2:]), self.name, self.version)
        object.__setattr__(self, "separator", sep)

    def as_eip712(self) -> dict[str, Any]:
        """The domain as eth-account / ethers expect it in typed data."""
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    def describe(self) -> str:
        """Short human form used in error messages: ``chainId 31337, settlement 0x…``."""
        return f"chainId {self.chain_id}, settlement {self.verifying_contract}"


def receipt_domain(chain_id: int, settlement_address: str) -> ReceiptDomain:
    """Domain for the ReceiptSettlement at ``settlement_address`` on chain ``chain_id``."""
    if type(chain_id) is not int or not 0 < chain_id <= UINT256_MAX:
        raise ReceiptFieldError("chainId", chain_id, "must be a positive integer chain id")
    raw = parse_address("verifyingContract", settlement_address)
    return ReceiptDomain(chain_id=chain_id, verifying_contract=to_checksum_address(raw))


def digest_raw(separator: bytes, raw: RawReceipt) -> bytes:
    """EIP-712 digest of a validated `RawReceipt` under a domain separator (the hot path)."""
    return eip712_digest(separator, receipt_struct_hash(raw))


def receipt_digest(receipt: Receipt | RawReceipt, domain: ReceiptDomain) -> bytes:
    """The 32-byte EIP-712 digest, equal to ``ReceiptSettlement.hashReceipt(receipt)`` on ``domain``."""
    raw = receipt if isinstance(receipt, RawReceipt) else receipt.raw
    return digest_raw(domain.separator, raw)


def typed_data(receipt: Receipt, domain: ReceiptDomain) -> dict[str, Any]:
    """The full EIP-712 message (``eth_signTypedData_v4`` shape) for wallets and eth-account."""
    message = receipt.receipt.to_json_dict() if isinstance(receipt, SignedReceipt) else receipt.to_json_dict()
    return _typed_data("Receipt", RECEIPT_FIELDS, domain.as_eip712(), message)


class HasKey(Protocol):
    """Anything holding a raw private key in ``.key`` (e.g. eth-account's ``LocalAccount``)."""

    key: bytes


#: What the signing functions accept as a private key.
PrivateKeyLike = bytes | str | HasKey | PrivateKey


def _private_key(private_key: PrivateKeyLike) -> PrivateKey:
    # Messages here describe the key only by type and length: it must never reach a log line.
    if isinstance(private_key, PrivateKey):
        return private_key
    secret: Any = getattr(private_key, "key", private_key)
    if isinstance(secret, str):
        text = secret[2:] if secret.startswith(("0x", "0X")) else secret
        if len(text) != 64:
            raise PrivateKeyError(f"a hex private key must have 64 hex digits, got {len(text)} characters")
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            raise PrivateKeyError("the private key string is not hexadecimal") from None
    if not isinstance(secret, bytes | bytearray):
        raise PrivateKeyError(f"expected 32 bytes, a hex string or an account with .key, got {type(secret).__name__}")
    if len(secret) != 32:
        raise PrivateKeyError(f"expected 32 bytes, got {len(secret)} bytes")
    if not 0 < int.from_bytes(secret, "big") < SECP256K1_N:
        raise PrivateKeyError("the value is outside 1..n-1 of secp256k1")
    return PrivateKey(bytes(secret))


def address_of_key(private_key: PrivateKeyLike) -> str:
    """Checksummed address of a private key."""
    return to_checksum_address(address_of_public_key(_private_key(private_key).public_key))


def sign_digest(digest: bytes, private_key: PrivateKeyLike) -> bytes:
    """Sign a 32-byte digest: 65 bytes r‖s‖v with v ∈ {27, 28}, low-s, RFC 6979 deterministic."""
    if len(digest) != 32:
        raise ReceiptFieldError("digest", digest, "must be 32 bytes")
    sig = _private_key(private_key).sign_recoverable(digest, hasher=None)
    # libsecp256k1 returns r‖s‖recid with s already normalised low; Ethereum's v is recid + 27.
    return sig[:64] + bytes((sig[64] + 27,))


def sign_receipt(
    receipt: Receipt, private_key: PrivateKeyLike, domain: ReceiptDomain
) -> SignedReceipt:
    """Sign ``receipt`` as its consumer under ``domain``.

    Refuses a key whose address is not ``receipt.consumer``: such a signature could never settle,
    and signing it anyway would only surface as a confusing failure at settlement time.
    """
    key = _private_key(private_key)
    return _sign(receipt, key, to_checksum_address(address_of_public_key(key.public_key)), domain)


def _sign(receipt: Receipt, key: PrivateKey, address: str, domain: ReceiptDomain) -> SignedReceipt:
    if receipt.consumer != address:
        raise InvalidSignerError(receipt.consumer, address)
    sig = sign_digest(receipt_digest(receipt, domain), key)
    base = receipt.receipt if isinstance(receipt, SignedReceipt) else receipt
    return SignedReceipt.model_construct(**base.__dict__, signature="0x" + sig.hex())


class ReceiptSigner:
    """A consumer's signer bound to one key and one domain, for signing many receipts quickly.

    The key lives in a coincurve object; ``repr`` shows the address only.
    """

    __slots__ = ("_key", "address", "domain")

    def __init__(self, private_key: PrivateKeyLike, domain: ReceiptDomain) -> None:
        self._key = _private_key(private_key)
        self.address: str = to_checksum_address(address_of_public_key(self._key.public_key))
        self.domain = domain

    def __repr__(self) -> str:
        return f"ReceiptSigner(address={self.address}, {self.domain.describe()})"

    def __reduce__(self) -> Any:
        # Pickling would copy the key into a byte stream (a worker queue, a cache file): refuse.
        raise TypeError("ReceiptSigner holds a private key and cannot be pickled")

    def sign(self, receipt: Receipt) -> SignedReceipt:
        """Sign ``receipt`` (whose consumer must be this signer's address)."""
        return _sign(receipt, self._key, self.address, self.domain)


def recover_signer_bytes(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte signer address of a 65-byte signature over ``digest``.

    Checks v ∈ {27, 28}, 0 < r < n and 0 < s ≤ n/2 (cheap integer checks, no parsing of strings).
    Raises `SignatureError`.
    """
    return recover_address(digest, signature)


def recover_signer(digest: bytes, signature: bytes | str) -> str:
    """Checksummed address that signed ``digest`` (the crypto core's recovery: rejects malformed, high-s and bad v)."""
    return to_checksum_address(recover_signer_bytes(digest, parse_signature(signature)))


def recover_signer_eth_keys(digest: bytes, signature: bytes | str, *, pure_python: bool = False) -> str:
    """Same as `recover_signer` through eth-keys (the library under eth-account): a reference path.

    ``pure_python=True`` uses eth-keys' own secp256k1 arithmetic instead of libsecp256k1, an
    implementation independent of coincurve for cross-checks (about 100 times slower).
    """
    from eth_keys import KeyAPI
    from eth_keys.backends import NativeECCBackend

    sig = parse_signature(signature)
    api = KeyAPI(NativeECCBackend) if pure_python else KeyAPI()
    signature_obj = api.Signature(signature_bytes=sig[:64] + bytes((sig[64] - 27,)))
    return api.ecdsa_recover(digest, signature_obj).to_checksum_address()


def verify_receipt(signed: SignedReceipt, domain: ReceiptDomain) -> bytes:
    """Check that ``signed`` was signed by its consumer under ``domain``; return its digest.

    Raises `SignatureError` (malformed) or `InvalidSignerError` (another key, or another domain:
    a receipt signed for another chain id or contract recovers to an unrelated address).
    """
    raw = signed.raw
    digest = digest_raw(domain.separator, raw)
    recovered = recover_signer_bytes(digest, raw.signature or b"")
    if recovered != raw.consumer:
        raise InvalidSignerError(signed.consumer, to_checksum_address(recovered))
    return digest
