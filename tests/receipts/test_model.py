"""Receipt model validation: every malformed input is refused with an error naming field and value."""

from __future__ import annotations

import json

import pydantic
import pytest
from receipt_helpers import CONSUMER, CONSUMER_KEY, NODE, make_receipt

from nodeclient.errors import ReceiptError
from nodeclient.receipts import (
    UINT128_MAX,
    UINT256_MAX,
    Receipt,
    ReceiptFieldError,
    ReceiptFileError,
    SignatureError,
    SignedReceipt,
    load_receipts,
    parse_raw_receipt,
    parse_receipts_text,
    sign_receipt,
)
from nodeclient.receipts.model import SECP256K1_N


@pytest.fixture(scope="module")
def signed_json(domain) -> dict:
    return sign_receipt(make_receipt(), CONSUMER_KEY, domain).to_json_dict()


def test_json_roundtrip_uses_eip712_names_and_integers(signed_json):
    signed = SignedReceipt.model_validate(signed_json)
    assert set(signed_json) == {"consumer", "node", "sessionId", "cumulativeBytes", "cumulativeAmount",
                                "latencyMs", "issuedAt", "signature"}
    assert isinstance(signed_json["cumulativeAmount"], int)
    assert SignedReceipt.model_validate_json(signed.to_json()) == signed
    assert json.loads(signed.to_json()) == signed_json
    assert signed.receipt == make_receipt()


def test_lower_case_addresses_are_accepted_and_checksummed():
    receipt = Receipt.model_validate({**make_receipt().to_json_dict(), "consumer": CONSUMER.lower(),
                                      "node": NODE.lower()})
    assert receipt.consumer == CONSUMER and receipt.node == NODE


def test_session_id_is_normalised_to_lower_case():
    receipt = make_receipt(session="0x" + "AB" * 32)
    assert receipt.session_id == "0x" + "ab" * 32


def test_model_is_frozen():
    receipt = make_receipt()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        receipt.cumulative_amount = 5  # type: ignore[misc]
    assert receipt.cumulative_amount == 1000


def _bad_checksum(address: str) -> str:
    # Flip the case of the first letter: still mixed case, now a wrong EIP-55 checksum.
    i = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1:]


BAD_FIELDS = [
    ("consumer", "0x" + "0" * 40, "zero address"),
    ("node", "0x" + "0" * 40, "zero address"),
    ("consumer", None, "hex string"),
    ("consumer", 12345, "hex string"),
    ("consumer", CONSUMER[:-1], "20-byte address"),
    ("consumer", CONSUMER + "00", "20-byte address"),
    ("consumer", "0x" + "g" * 40, "20-byte address"),
    ("consumer", CONSUMER[2:] + "00", "20-byte address"),
    ("consumer", _bad_checksum(CONSUMER), "EIP-55 checksum"),
    ("node", _bad_checksum(NODE), "EIP-55 checksum"),
    ("sessionId", "0x" + "11" * 31, "bytes32"),
    ("sessionId", "11" * 32, "bytes32"),
    ("sessionId", 5, "bytes32"),
    ("cumulativeAmount", -1, "negative"),
    ("cumulativeBytes", -5, "negative"),
    ("cumulativeAmount", UINT256_MAX + 1, "uint256 maximum"),
    ("cumulativeAmount", UINT128_MAX + 1, "2**128-1"),
    ("cumulativeBytes", UINT256_MAX, "2**128-1"),
    ("cumulativeAmount", "1000", "JSON integer"),
    ("cumulativeAmount", 10.5, "JSON integer"),
    ("cumulativeAmount", 1e3, "JSON integer"),
    ("cumulativeAmount", True, "JSON integer"),
    ("cumulativeAmount", None, "JSON integer"),
    ("latencyMs", 2**32, "uint32"),
    ("latencyMs", -1, "negative"),
    ("issuedAt", 2**64, "uint64"),
    ("issuedAt", "1700000000", "JSON integer"),
]


@pytest.mark.parametrize(("field", "value", "needle"), BAD_FIELDS)
def test_bad_field_is_refused_naming_field_and_value(field, value, needle):
    data = make_receipt().to_json_dict()
    data[field] = value
    with pytest.raises(ReceiptFieldError) as info:
        Receipt.model_validate(data)
    assert info.value.field == field
    assert f"'{field}'" in str(info.value) and needle in str(info.value)
    shown = repr(value)
    assert shown[:40] in str(info.value)


@pytest.mark.parametrize("field", ["consumer", "node", "sessionId", "cumulativeBytes", "cumulativeAmount",
                                   "latencyMs", "issuedAt"])
def test_missing_field_is_refused(field):
    data = make_receipt().to_json_dict()
    del data[field]
    with pytest.raises(ReceiptFieldError, match=f"'{field}' is missing"):
        Receipt.model_validate(data)


def test_unknown_field_is_refused():
    with pytest.raises(ReceiptFieldError, match="'amount'.*not a receipt field"):
        Receipt.model_validate({**make_receipt().to_json_dict(), "amount": 5})


def test_both_spellings_of_a_field_are_refused():
    data = {**make_receipt().model_dump(), "cumulativeAmount": 7}
    with pytest.raises(ReceiptFieldError, match="given twice"):
        Receipt.model_validate(data)


def test_max_values_are_accepted():
    receipt = Receipt.model_validate({**make_receipt().to_json_dict(), "cumulativeAmount": UINT128_MAX,
                                      "cumulativeBytes": UINT128_MAX, "latencyMs": 2**32 - 1,
                                      "issuedAt": 2**64 - 1})
    assert receipt.cumulative_amount == UINT128_MAX and receipt.issued_at == 2**64 - 1


def _sig_with(signed_json: dict, *, r: int | None = None, s: int | None = None, v: int | None = None) -> str:
    sig = bytes.fromhex(signed_json["signature"][2:])
    r_b = sig[:32] if r is None else r.to_bytes(32, "big")
    s_b = sig[32:64] if s is None else s.to_bytes(32, "big")
    v_b = sig[64:] if v is None else bytes([v])
    return "0x" + (r_b + s_b + v_b).hex()


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda j: j["signature"][:-2], "65 bytes"),
    (lambda j: j["signature"] + "00", "65 bytes"),
    (lambda j: j["signature"][:-1], "130 hex"),
    (lambda j: "0x", "65 bytes"),
    (lambda j: j["signature"][2:], "130 hex"),
    (lambda j: 12, "hex string"),
    (lambda j: _sig_with(j, v=0), "v = 0"),
    (lambda j: _sig_with(j, v=1), "v = 1"),
    (lambda j: _sig_with(j, v=29), "v = 29"),
    (lambda j: _sig_with(j, r=0), "r outside"),
    (lambda j: _sig_with(j, s=0), "s outside"),
    (lambda j: _sig_with(j, r=SECP256K1_N), "r outside"),
    (lambda j: _sig_with(j, s=SECP256K1_N - int(j["signature"][66:130], 16), v=55 - int(j["signature"][130:], 16)),
     "high s"),
])
def test_bad_signature_is_refused(signed_json, mutate, needle):
    data = dict(signed_json)
    data["signature"] = mutate(signed_json)
    with pytest.raises(SignatureError) as info:
        SignedReceipt.model_validate(data)
    assert needle in str(info.value) and "'signature'" in str(info.value)


def test_signed_receipt_requires_signature_and_unsigned_refuses_one(signed_json):
    unsigned = {k: v for k, v in signed_json.items() if k != "signature"}
    with pytest.raises(ReceiptFieldError, match="'signature' is missing"):
        SignedReceipt.model_validate(unsigned)
    with pytest.raises(ReceiptFieldError, match="unsigned receipt has no signature"):
        Receipt.model_validate(signed_json)


def test_not_an_object_is_refused():
    with pytest.raises(ReceiptFieldError, match="must be a JSON object"):
        parse_raw_receipt([1, 2, 3])


def test_errors_are_receipt_errors_not_pydantic():
    with pytest.raises(ReceiptError):
        Receipt.model_validate({"consumer": CONSUMER})


# ---------------------------------------------------------------- files


def _write(tmp_path, text: str):
    path = tmp_path / "receipts.json"
    path.write_text(text)
    return path


def test_file_single_list_and_jsonl_forms(tmp_path, signed_json):
    one = json.dumps(signed_json)
    assert len(load_receipts(_write(tmp_path, one))) == 1
    assert len(load_receipts(_write(tmp_path, json.dumps([signed_json] * 3, indent=2)))) == 3
    assert len(load_receipts(_write(tmp_path, "\n".join([one] * 4) + "\n\n"))) == 4
    assert len(load_receipts(_write(tmp_path, json.dumps(signed_json, indent=2)))) == 1


def test_truncated_json_names_file_and_position(tmp_path, signed_json):
    path = _write(tmp_path, json.dumps([signed_json] * 2)[:-40])
    with pytest.raises(ReceiptFileError) as info:
        load_receipts(path)
    assert str(path) in str(info.value) and "line 1 column" in str(info.value) and "truncated" in str(info.value)


def test_truncated_jsonl_line_names_line(tmp_path, signed_json):
    one = json.dumps(signed_json)
    path = _write(tmp_path, "\n".join([one, one, one[:50], one]))
    with pytest.raises(ReceiptFileError) as info:
        load_receipts(path)
    assert info.value.location == "line 3" and str(path) in str(info.value)


def test_wrong_type_in_list_names_index_and_field(tmp_path, signed_json):
    bad = {**signed_json, "latencyMs": "fast"}
    path = _write(tmp_path, json.dumps([signed_json, signed_json, bad]))
    with pytest.raises(ReceiptFileError) as info:
        load_receipts(path)
    assert info.value.location == "index 2" and info.value.field == "latencyMs"
    assert "'latencyMs' is 'fast'" in str(info.value)


def test_wrong_type_in_jsonl_names_line_and_field(tmp_path, signed_json):
    lines = [json.dumps(signed_json), json.dumps({**signed_json, "cumulativeAmount": -3})]
    with pytest.raises(ReceiptFileError) as info:
        load_receipts(_write(tmp_path, "\n".join(lines)))
    assert info.value.location == "line 2" and info.value.field == "cumulativeAmount"


def test_duplicate_json_key_is_refused(tmp_path, signed_json):
    text = json.dumps(signed_json)[:-1] + ', "cumulativeAmount": 99999}'
    with pytest.raises(ReceiptFileError, match="duplicate key 'cumulativeAmount'"):
        load_receipts(_write(tmp_path, text))


@pytest.mark.parametrize(("text", "needle"), [
    ("", "is empty"),
    ("   \n", "is empty"),
    ("[]", "empty JSON array"),
    ("42", "JSON object or array"),
    ('"receipt"', "JSON object or array"),
    ("[1]", "must be a JSON object"),
    ("{not json", "invalid JSON"),
])
def test_degenerate_files_are_refused(tmp_path, text, needle):
    with pytest.raises(ReceiptFileError, match=needle):
        load_receipts(_write(tmp_path, text))


def test_missing_and_binary_files_are_refused(tmp_path):
    with pytest.raises(ReceiptFileError, match="cannot be read"):
        load_receipts(tmp_path / "absent.json")
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ReceiptFileError, match="not UTF-8"):
        load_receipts(path)


def test_huge_number_text_is_a_clean_error(signed_json):
    text = json.dumps(signed_json).replace(str(signed_json["cumulativeAmount"]), "9" * 5000, 1)
    with pytest.raises(ReceiptFileError):
        parse_receipts_text(text)


def test_unsigned_model_where_signed_expected_reports_missing_signature():
    with pytest.raises(ReceiptFieldError, match="'signature' is missing"):
        SignedReceipt.model_validate(make_receipt())


def test_fuzzed_receipt_text_only_ever_raises_receipt_errors(signed_json):
    # Truncations, byte flips and splices of valid input: each either parses to a valid receipt or
    # raises a ReceiptError (never a KeyError, TypeError, pydantic error, or a crash).
    import random

    rng = random.Random(1234)
    text = json.dumps(signed_json)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(1500):
        mutated = list(text)
        kind = rng.randrange(4)
        if kind == 0:
            mutated = mutated[: rng.randrange(len(mutated))]
        elif kind == 1:
            for _ in range(rng.randint(1, 3)):
                mutated[rng.randrange(len(mutated))] = rng.choice('0123456789abcdefABCDEF"{}[],:-. xe')
        elif kind == 2:
            i = rng.randrange(len(mutated))
            mutated[i:i] = list(rng.choice(['"x":1,', "-", "1e999", "null", "true", "[]", "{}", '"', "\n"]))
        else:
            mutated = list("\n".join([text] * rng.randint(2, 3)))
            mutated[rng.randrange(len(mutated))] = rng.choice("}{,\n")
        try:
            parsed = parse_receipts_text("".join(mutated), source="fuzz")
        except ReceiptError as exc:
            assert str(exc).startswith("fuzz")
            outcomes["refused"] += 1
        else:
            assert all(isinstance(r, SignedReceipt) for r in parsed)
            outcomes["parsed"] += 1
    assert outcomes["refused"] > 1000 and outcomes["parsed"] > 0


def test_model_validate_json_refuses_duplicate_keys_and_bad_json(signed_json):
    text = json.dumps(signed_json)
    assert SignedReceipt.model_validate_json(text).to_json_dict() == signed_json
    assert SignedReceipt.model_validate_json(text.encode()).to_json_dict() == signed_json
    with pytest.raises(ReceiptFileError, match="duplicate key 'cumulativeAmount'"):
        SignedReceipt.model_validate_json(text[:-1] + ', "cumulativeAmount": 1}')
    with pytest.raises(ReceiptFileError, match="invalid JSON"):
        SignedReceipt.model_validate_json(text[:-5])
