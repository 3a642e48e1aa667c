"""The relay's wire format, pricing rule and handshake signatures, without a network."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from eth_account import Account

from nodeclient.relay.errors import FrameTooLargeError, HandshakeError, ProtocolError
from nodeclient.relay.framing import (
    FrameType,
    decode_control,
    decode_data,
    encode_control,
    encode_data,
    encode_frame,
    read_frame,
)
from nodeclient.relay.handshake import Hello, Welcome, new_challenge, new_session_id
from nodeclient.relay.pricing import GIB, amount_for, bytes_for_amount, cumulative_amount


def _read(data: bytes, **kwargs):
    async def run():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        frames = []
        while (frame := await read_frame(reader, **kwargs)) is not None:
            frames.append(frame)
        return frames

    return asyncio.run(run())


def test_frames_round_trip():
    wire = (
        encode_control(FrameType.OPEN, {"stream": 7, "host": "example.org", "port": 443})
        + encode_data(7, b"\x00\x01payload")
        + encode_frame(FrameType.PING, b"12345678")
        + encode_frame(FrameType.BYE, b"")
    )
    frames = _read(wire)
    assert [f.type for f in frames] == [FrameType.OPEN, FrameType.DATA, FrameType.PING, FrameType.BYE]
    assert decode_control(frames[0]) == {"stream": 7, "host": "example.org", "port": 443}
    stream_id, data = decode_data(frames[1])
    assert stream_id == 7 and bytes(data) == b"\x00\x01payload"
    assert frames[2].payload == b"12345678" and frames[3].payload == b""


@pytest.mark.parametrize(
    ("wire", "error", "message"),
    [
        (b"\x06\x00\x00", ProtocolError, "inside a frame header after 3 bytes"),
        (b"\x42\x00\x00\x00\x00", ProtocolError, "unknown frame type 0x42"),
        (
            b"\x06\x00\x01\x00\x01",
            FrameTooLargeError,
            "frame of 65537 bytes exceeds the maximum frame size of 65536",
        ),
        (b"\x08\x00\x00\x00\x10{}", ProtocolError, "inside a RECEIPT frame after 2 of 16 bytes"),
    ],
)
def test_malformed_frames_are_refused_with_a_specific_reason(wire, error, message):
    with pytest.raises(error) as info:
        _read(wire, max_frame=65536)
    assert message in str(info.value)


def test_control_payload_must_be_a_json_object_and_data_needs_a_stream_id():
    with pytest.raises(ProtocolError, match="is JSON list, expected an object"):
        decode_control(_read(encode_frame(FrameType.RECEIPT, b"[]"))[0])
    with pytest.raises(ProtocolError, match="not UTF-8 JSON"):
        decode_control(_read(encode_frame(FrameType.RECEIPT, b"\xff\xfe"))[0])
    with pytest.raises(ProtocolError, match="shorter than its stream id"):
        decode_data(_read(encode_frame(FrameType.DATA, b"\x00\x01"))[0])


def test_slow_frame_body_times_out():
    async def run():
        reader = asyncio.StreamReader()
        reader.feed_data(b"\x08\x00\x00\x00\x10{")  # header, then 1 of 16 bytes, then nothing
        await read_frame(reader, idle_timeout=5, body_timeout=0.2)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(run())
    assert time.monotonic() - started < 2


def test_pricing_rule_rounds_down_and_bytes_for_amount_is_its_inverse():
    assert amount_for(GIB, 1_000_000) == 1_000_000
    assert amount_for(GIB - 1, 1_000_000) == 999_999
    assert cumulative_amount(10 * GIB, 5, 11 * GIB, 7) == 12
    with pytest.raises(ValueError, match="below the session base"):
        cumulative_amount(100, 0, 99, 1)
    rng = random.Random(5)
    for _ in range(2000):
        price = rng.choice([1, 3, 999, 10**6, 123_456_789, 2**96 - 1])
        amount = rng.randrange(0, 10**9)
        limit = bytes_for_amount(amount, price)
        assert amount_for(limit, price) <= amount < amount_for(limit + 1, price)


def test_hello_and_welcome_signatures_bind_every_field():
    consumer, node = Account.create(), Account.create()
    settlement = Account.create().address
    hello = Hello(consumer.address, node.address, new_session_id(), 10**6, new_challenge(), int(time.time()))
    signed = hello.signed(consumer.key, 31337, settlement)
    assert Hello.from_json(signed.to_json()).recover(31337, settlement) == consumer.address
    # Another chain, another deployment, or any changed field recovers to someone else.
    assert signed.recover(1, settlement) != consumer.address
    assert signed.recover(31337, node.address) != consumer.address
    tampered = Hello.from_json(signed.to_json() | {"pricePerGiB": 1})
    assert tampered.recover(31337, settlement) != consumer.address
    welcome = Welcome(
        node.address,
        consumer.address,
        hello.session_id,
        10**6,
        2**24,
        2**22,
        0,
        0,
        signed.digest(31337, settlement),
    ).signed(node.key, 31337, settlement)
    assert Welcome.from_json(welcome.to_json()).recover(31337, settlement) == node.address
    inflated = Welcome.from_json(welcome.to_json() | {"baseAmount": 5})
    assert inflated.recover(31337, settlement) != node.address


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("consumer", "0xabc", "field 'consumer' is '0xabc', not an address"),
        ("sessionId", "0x12", "not a 0x-prefixed 32-byte hex string"),
        ("pricePerGiB", True, "field 'pricePerGiB' is True"),
        ("issuedAt", 2**64, "field 'issuedAt' is 18446744073709551616"),
        ("signature", "0x00", "field 'signature'"),
    ],
)
def test_malformed_hello_fields_are_named(field, value, message):
    account = Account.create()
    body = (
        Hello(account.address, account.address, new_session_id(), 1, new_challenge(), 1)
        .signed(account.key, 1, account.address)
        .to_json()
    )
    body[field] = value
    with pytest.raises(HandshakeError) as info:
        Hello.from_json(body)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"credit_bytes": 0}, "relay setting credit_bytes = 0 is invalid: must be positive"),
        ({"receipt_interval_bytes": 2**30}, "relay setting receipt_interval_bytes = 1073741824 is invalid"),
        ({"chunk_bytes": 2**20, "credit_bytes": 2**23}, "plus 4 must fit in max_frame"),
        (
            {"idle_timeout": 0},
            "relay setting idle_timeout = 0 is invalid: must be a positive number of seconds",
        ),
        ({"rate_bytes_per_s": -5.0}, "relay setting rate_bytes_per_s = -5.0 is invalid"),
    ],
)
def test_relay_config_names_the_bad_setting(overrides, message):
    from nodeclient.relay.errors import RelayConfigError
    from nodeclient.relay.server import RelayConfig

    with pytest.raises(RelayConfigError) as info:
        RelayConfig(**overrides)
    assert message in str(info.value)
