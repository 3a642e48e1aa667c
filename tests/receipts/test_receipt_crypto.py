"""The shared receipt-crypto core: eth-hash backend choice, the generic static-struct EIP-712 encoder
(handshake and node-key messages) against eth-account, and recovery's OpenZeppelin ECDSA checks."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from nodeclient.receipts import SignatureError
from nodeclient.receipts.crypto import (
    KECCAK_BACKEND,
    RECEIPT_FIELDS,
    RECEIPT_TYPE,
    SECP256K1_N,
    decode_type,
    domain_separator,
    eip712_digest,
    encode_type,
    hash_static_struct,
    keccak256,
    recover_address,
    typed_data,
)
from nodeclient.relay.errors import HandshakeError
from nodeclient.relay.handshake import HELLO_TYPE, WELCOME_TYPE, Hello, Welcome, relay_domain

CONSUMER = Account.from_key(keccak(b"kuota crypto core consumer"))
NODE = Account.from_key(keccak(b"kuota crypto core node"))
SETTLEMENT = "0x" + "5e" * 20
CHAIN_ID = 31337


def _hello() -> Hello:
    return Hello(consumer=CONSUMER.address, node=NODE.address, session_id="0x" + "11" * 32,
                 price_per_gib=10**18, challenge="0x" + "22" * 32, issued_at=1_700_000_000)


def _welcome(hello_digest: str) -> Welcome:
    return Welcome(node=NODE.address, consumer=CONSUMER.address, session_id="0x" + "11" * 32, price_per_gib=10**18,
                   credit_bytes=2**20, receipt_interval_bytes=2**18, base_bytes=5, base_amount=7,
                   hello_digest=hello_digest)


def _eth_account_digest(full_message: dict) -> bytes:
    signable = encode_typed_data(full_message=full_message)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def _eth_account_message(message: Hello | Welcome) -> dict:
    primary, fields = decode_type(message._TYPE)
    wire = message.to_json()
    body = {f["name"]: bytes.fromhex(wire[f["name"]][2:]) if f["type"] == "bytes32" else wire[f["name"]] for f in fields}
    return typed_data(primary, fields, relay_domain(CHAIN_ID, SETTLEMENT), body)


def test_keccak_prefers_the_pysha3_backend_and_env_overrides_it():
    assert keccak256(b"") == keccak(b"")
    assert KECCAK_BACKEND == "pysha3"  # safe-pysha3 is installed in the dev environment
    code = "from nodeclient.receipts.crypto import KECCAK_BACKEND, keccak256; print(KECCAK_BACKEND, keccak256(b'kuota').hex())"
    env = dict(os.environ, ETH_HASH_BACKEND="pycryptodome")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["pycryptodome", keccak(b"kuota").hex()]


def test_encode_type_and_decode_type_are_inverse():
    assert decode_type(RECEIPT_TYPE) == ("Receipt", RECEIPT_FIELDS)
    assert encode_type(*decode_type(HELLO_TYPE)) == HELLO_TYPE
    assert encode_type(*decode_type(WELCOME_TYPE)) == WELCOME_TYPE
    with pytest.raises(ValueError, match="not an EIP-712 struct type"):
        decode_type("Receipt")


@pytest.mark.parametrize("kind", ["hello", "welcome"])
def test_handshake_digest_equals_eth_account_encode_typed_data(kind):
    hello = _hello()
    message = hello if kind == "hello" else _welcome(hello.digest(CHAIN_ID, SETTLEMENT))
    assert message.eip712_digest(CHAIN_ID, SETTLEMENT) == _eth_account_digest(_eth_account_message(message))


def test_handshake_signature_recovers_with_eth_account_and_with_the_core():
    signed = _hello().signed(CONSUMER.key, CHAIN_ID, SETTLEMENT)
    signable = encode_typed_data(full_message=_eth_account_message(signed))
    assert Account.recover_message(signable, signature=signed.signature) == CONSUMER.address
    assert signed.recover(CHAIN_ID, SETTLEMENT) == CONSUMER.address
    # The same key signs the same message identically through eth-account (RFC 6979, low s).
    assert Account.sign_message(signable, CONSUMER.key).signature.hex().removeprefix("0x") == signed.signature[2:]
    assert signed.recover(CHAIN_ID + 1, SETTLEMENT) != CONSUMER.address


def test_handshake_refuses_the_high_s_twin_that_eth_account_would_accept():
    hello = _hello().signed(CONSUMER.key, CHAIN_ID, SETTLEMENT)
    sig = bytes.fromhex(hello.signature[2:])
    s = int.from_bytes(sig[32:64], "big")
    twin = "0x" + (sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - sig[64],))).hex()
    malleated = replace(hello, signature=twin)
    signable = encode_typed_data(full_message=_eth_account_message(hello))
    assert Account.recover_message(signable, signature=twin) == CONSUMER.address  # eth-account: malleable
    with pytest.raises(HandshakeError, match="high s"):
        malleated.recover(CHAIN_ID, SETTLEMENT)


def test_node_key_typed_data_signs_to_the_core_digest():
    _, fields = decode_type("NodeKey(address node,address key,address operator)")
    domain = {"name": "Kuota NodeRegistry", "version": "1", "chainId": CHAIN_ID, "verifyingContract": SETTLEMENT}
    message = {"node": NODE.address, "key": NODE.address, "operator": CONSUMER.address}
    full = typed_data("NodeKey", fields, domain, message)
    separator = domain_separator(CHAIN_ID, bytes.fromhex(SETTLEMENT[2:]), "Kuota NodeRegistry", "1")
    expected = eip712_digest(separator, hash_static_struct("NodeKey", fields, message))
    assert _eth_account_digest(full) == expected
    signature = bytes(NODE.sign_typed_data(full_message=full).signature)
    assert recover_address(expected, signature) == bytes.fromhex(NODE.address[2:])


def test_static_struct_encoder_refuses_dynamic_types_and_out_of_range_values():
    with pytest.raises(ValueError, match="string value 'x' is not a supported static EIP-712 field"):
        hash_static_struct("M", [{"name": "s", "type": "string"}], {"s": "x"})
    with pytest.raises(OverflowError, match="does not fit uint64"):
        hash_static_struct("M", [{"name": "t", "type": "uint64"}], {"t": 2**64})


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda sig: sig[:64], "must be 65 bytes"),
        (lambda sig: sig[:64] + b"\x1d", "has v = 29"),
        (lambda sig: bytes(32) + sig[32:], "r or s outside"),
        (lambda sig: sig[:32] + (SECP256K1_N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + sig[64:],
         "high s"),
        (lambda sig: (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b", "does not recover"),
    ],
)
def test_recover_address_rejects_what_openzeppelin_ecdsa_rejects(mutate, reason):
    digest = keccak(b"kuota digest")
    signature = bytes(Account.unsafe_sign_hash(digest, CONSUMER.key).signature)
    assert recover_address(digest, signature) == bytes.fromhex(CONSUMER.address[2:])
    with pytest.raises(SignatureError, match=reason):
        recover_address(digest, mutate(signature))
