"""EIP-712 digest and signatures: the fast path equals eth-account, and recovery paths agree."""

from __future__ import annotations

import random

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from receipt_helpers import CONSUMER, CONSUMER2_KEY, CONSUMER_KEY, NODE, SETTLEMENT, make_receipt

from nodeclient.receipts import (
    UINT128_MAX,
    InvalidSignerError,
    PrivateKeyError,
    ReceiptSigner,
    SignatureError,
    receipt_digest,
    receipt_domain,
    recover_signer,
    recover_signer_eth_keys,
    sign_receipt,
    typed_data,
    verify_receipt,
)
from nodeclient.receipts.model import SECP256K1_HALF_N, SECP256K1_N


def _random_receipt(rng: random.Random):
    return make_receipt(
        rng.choice([0, 1, rng.randrange(UINT128_MAX), UINT128_MAX]),
        nbytes=rng.choice([0, rng.randrange(UINT128_MAX), UINT128_MAX]),
        issued_at=rng.choice([0, rng.randrange(2**64), 2**64 - 1]),
        latency=rng.choice([0, rng.randrange(2**32), 2**32 - 1]),
        session="0x" + rng.randbytes(32).hex(),
    )


@pytest.mark.parametrize("chain_id", [1, 31337, 11155111, 2**64])
def test_digest_equals_eth_account_encode_typed_data(chain_id):
    rng = random.Random(chain_id)
    domain = receipt_domain(chain_id, SETTLEMENT)
    for _ in range(25):
        receipt = _random_receipt(rng)
        signable = encode_typed_data(full_message=typed_data(receipt, domain))
        # EIP-191 version 0x01: keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct), hashed by eth-utils.
        expected = keccak(b"\x19" + signable.version + signable.header + signable.body)
        assert receipt_digest(receipt, domain) == expected
        assert signable.header == domain.separator


def test_signature_equals_eth_account_and_recovers(domain):
    rng = random.Random(7)
    for _ in range(20):
        receipt = _random_receipt(rng)
        signed = sign_receipt(receipt, CONSUMER_KEY, domain)
        reference = Account.sign_message(encode_typed_data(full_message=typed_data(receipt, domain)), CONSUMER_KEY)
        assert signed.signature_bytes == bytes(reference.signature)
        digest = receipt_digest(receipt, domain)
        assert recover_signer(digest, signed.signature) == CONSUMER
        assert recover_signer_eth_keys(digest, signed.signature) == CONSUMER
        assert recover_signer_eth_keys(digest, signed.signature, pure_python=True) == CONSUMER
        assert Account.recover_message(encode_typed_data(full_message=typed_data(receipt, domain)),
                                       signature=signed.signature_bytes) == CONSUMER


def test_signatures_are_deterministic_and_low_s(domain):
    receipt = make_receipt(5)
    first = sign_receipt(receipt, CONSUMER_KEY, domain)
    assert sign_receipt(receipt, "0x" + CONSUMER_KEY.hex(), domain) == first
    assert ReceiptSigner(CONSUMER_KEY, domain).sign(receipt) == first
    s = int.from_bytes(first.signature_bytes[32:64], "big")
    assert s <= SECP256K1_HALF_N and first.signature_bytes[64] in (27, 28)


def test_high_s_twin_is_rejected_by_recovery(domain):
    signed = sign_receipt(make_receipt(), CONSUMER_KEY, domain)
    sig = signed.signature_bytes
    twin = sig[:32] + (SECP256K1_N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([55 - sig[64]])
    digest = receipt_digest(signed, domain)
    with pytest.raises(SignatureError, match="high s"):
        recover_signer(digest, twin)
    # The twin is mathematically valid: eth-keys' pure arithmetic recovers the consumer from it.
    from eth_keys import KeyAPI
    from eth_keys.backends import NativeECCBackend

    api = KeyAPI(NativeECCBackend)
    recovered = api.ecdsa_recover(digest, api.Signature(signature_bytes=twin[:64] + bytes([twin[64] - 27])))
    assert recovered.to_checksum_address() == CONSUMER


def test_wrong_domain_or_key_fails_verification(domain):
    signed = sign_receipt(make_receipt(), CONSUMER_KEY, domain)
    assert verify_receipt(signed, domain) == receipt_digest(signed, domain)
    for other in (receipt_domain(1, SETTLEMENT), receipt_domain(31337, NODE)):
        with pytest.raises(InvalidSignerError, match=CONSUMER):
            verify_receipt(signed, other)
    forged = signed.model_copy(update={"signature": sign_receipt(make_receipt(consumer=signed.consumer), CONSUMER_KEY,
                                                                 receipt_domain(1, SETTLEMENT)).signature})
    with pytest.raises(InvalidSignerError):
        verify_receipt(forged, domain)


def test_signing_with_another_key_is_refused(domain):
    with pytest.raises(InvalidSignerError, match="not to its consumer"):
        sign_receipt(make_receipt(), CONSUMER2_KEY, domain)


@pytest.mark.parametrize(("key", "needle"), [
    (b"\x01" * 31, "31 bytes"),
    ("0x1234", "64 hex digits"),
    ("zz" * 32, "not hexadecimal"),
    (b"\x00" * 32, "outside"),
    (SECP256K1_N.to_bytes(32, "big"), "outside"),
    (12345, "got int"),
])
def test_bad_private_key_is_refused_without_echoing_it(domain, key, needle):
    with pytest.raises(PrivateKeyError, match=needle) as info:
        sign_receipt(make_receipt(), key, domain)
    text = str(info.value)
    if isinstance(key, bytes) and any(key):
        assert key.hex() not in text
    if isinstance(key, str):
        assert key not in text


def test_signer_repr_does_not_show_the_key(domain):
    signer = ReceiptSigner(CONSUMER_KEY, domain)
    assert CONSUMER_KEY.hex() not in repr(signer) and CONSUMER in repr(signer)
    assert not hasattr(signer, "__dict__")
    import copy
    import pickle

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(signer)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.deepcopy(signer)


def test_domain_rejects_bad_values():
    from nodeclient.receipts import ReceiptFieldError

    with pytest.raises(ReceiptFieldError, match="chainId"):
        receipt_domain(0, SETTLEMENT)
    with pytest.raises(ReceiptFieldError, match="verifyingContract"):
        receipt_domain(1, "0x" + "0" * 40)


def test_private_key_never_appears_in_errors_or_tracebacks(domain):
    import traceback

    from eth_account import Account as EthAccount

    key_hex = CONSUMER_KEY.hex()
    failures = [
        lambda: sign_receipt(make_receipt(consumer=NODE), CONSUMER_KEY, domain),  # wrong consumer
        lambda: sign_receipt(make_receipt(consumer=NODE), "0x" + key_hex, domain),
        lambda: sign_receipt(make_receipt(consumer=NODE), EthAccount.from_key(CONSUMER_KEY), domain),
        lambda: sign_receipt(make_receipt(), key_hex[:-1] + "g", domain),  # not hex
        lambda: sign_receipt(make_receipt(), key_hex + "00", domain),  # too long
        lambda: ReceiptSigner(CONSUMER_KEY, domain).sign(make_receipt(consumer=NODE)),
    ]
    for fail in failures:
        try:
            fail()
        except Exception:  # noqa: BLE001 - every failure's full traceback is inspected
            text = traceback.format_exc()
        else:  # pragma: no cover
            pytest.fail("expected a failure")
        assert key_hex not in text.lower() and key_hex[:-1] not in text.lower()
