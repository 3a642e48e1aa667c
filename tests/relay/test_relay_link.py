"""The encrypted, authenticated relay link: what an on-path observer sees, what tampering does, who can
answer for a node, and the link layer itself against the reference Noise implementation."""

from __future__ import annotations

import asyncio
import logging
import os
import struct

import pytest
from eth_account import Account
from noise.connection import Keypair, NoiseConnection
from relay.conftest import PRICE_PER_GIB
from relay.link_support import OnPathProxy, RecordTamper, challenge_body, record_starts

from nodeclient.relay.client import ConsumerConfig, open_session
from nodeclient.relay.config import RelayConfig
from nodeclient.relay.errors import HandshakeError, LinkIntegrityError, RelayConfigError, RemoteError
from nodeclient.relay.framing import FrameType, encode_control, encode_data, encode_frame
from nodeclient.relay.handshake import LinkAttestation, new_challenge
from nodeclient.relay.link import (
    LINK_PROTOCOLS,
    MAX_RECORD,
    Link,
    LinkInitiator,
    LinkKey,
    preferred_link_protocol,
    respond,
)

MIB = 1024 * 1024
_PATTERN_PROBE = bytes(range(64))  # 64 bytes of the origin's body pattern: never in ciphertext by chance


async def _fetch_through(proxy: OnPathProxy, world, url: str, sink=None, **config):
    """Open a session through ``proxy``, fetch ``url`` into ``sink``; returns (session, result or error)."""
    await proxy.start()
    session = await open_session(
        "127.0.0.1",
        proxy.port,
        node=world.node.address,
        consumer_key=world.consumer_key,
        chain=world.view(),
        config=ConsumerConfig(**({"ping_interval": 0.2} | config)),
    )
    try:
        outcome = await session.fetch(url, sink=sink)
    except Exception as exc:  # noqa: BLE001 - the tampering tests expect one, and check which
        outcome = exc
    await session.close()
    await proxy.close()
    return session, outcome


def _secrets(world, origin) -> dict[str, bytes]:
    """What the consumer tells the node that an observer must not learn."""
    port = origin.server.server_address[1]
    return {
        "destination port (OPEN)": f'"port":{port}'.encode(),
        "request line (DATA up)": b"GET /bytes/",
        "response body (DATA down)": _PATTERN_PROBE,
        "consumer address (HELLO, receipts)": world.consumer[2:].lower().encode(),
        "receipt field (RECEIPT)": b"cumulativeBytes",
    }


def _seen_secrets(proxy: OnPathProxy, secrets: dict[str, bytes]) -> list[str]:
    seen = bytes(proxy.seen["up"]) + bytes(proxy.seen["down"])
    return [name for name, probe in secrets.items() if probe in seen.lower() or probe in seen]


@pytest.mark.parametrize("protocol", LINK_PROTOCOLS)
def test_on_path_observer_sees_no_destination_data_or_receipt(world, relay, origin, protocol):
    node = relay(link_protocol=protocol)
    proxy = OnPathProxy((node.host, node.port))
    session, result = asyncio.run(_fetch_through(proxy, world, origin.url(2 * MIB)))
    assert not isinstance(result, Exception), result
    assert result.status == 200 and len(result.body) == 2 * MIB
    assert session.acked and session.acked[-1].cumulative_bytes == origin.delivered
    assert len(proxy.seen["down"]) > 2 * MIB  # the proxy did carry the session
    assert _seen_secrets(proxy, _secrets(world, origin)) == []


def test_the_observer_probe_finds_every_secret_when_the_link_is_left_in_plaintext(
    world, relay, origin, monkeypatch
):
    # The control for the test above: the same probes on the same session find everything once the
    # cipher is never installed, so an empty list there means encryption, not a blind probe.
    monkeypatch.setattr(Link, "secure", lambda self, cipher: None)
    node = relay()
    proxy = OnPathProxy((node.host, node.port))
    _, result = asyncio.run(_fetch_through(proxy, world, origin.url(2 * MIB)))
    assert result.status == 200
    secrets = _secrets(world, origin)
    assert _seen_secrets(proxy, secrets) == list(secrets)


def test_flipped_byte_towards_the_consumer_ends_the_session_before_any_altered_byte_is_delivered(
    world, relay, origin
):
    node = relay()
    # Record 30 is deep inside the response body (each 128 KiB DATA frame is three records).
    proxy = OnPathProxy((node.host, node.port), transform=RecordTamper("down", 30))
    delivered = bytearray()
    session, outcome = asyncio.run(_fetch_through(proxy, world, origin.url(8 * MIB), sink=delivered.extend))
    assert proxy.transform.done
    assert isinstance(outcome, LinkIntegrityError), outcome
    assert "failed authentication" in str(outcome)
    # What reached the application is an unaltered prefix of the body (the pattern repeats every 256).
    body = delivered[delivered.index(b"\r\n\r\n") + 4 :] if b"\r\n\r\n" in delivered else delivered
    assert 0 < len(body) < 8 * MIB
    assert bytes(body) == (bytes(range(256)) * (len(body) // 256 + 1))[: len(body)]
    assert session.ended


def _replayed_hello_record(seen: bytearray) -> bytes:
    """The session's first record (the HELLO), byte for byte: valid once, under an older nonce."""
    starts = record_starts(seen, "up")
    return bytes(seen[starts[0] : starts[1]])


def _forged_record(seen: bytearray) -> bytes:
    """A record of the right shape (length prefix, ciphertext-sized body) that nobody sealed."""
    return struct.pack(">H", 64) + os.urandom(64)


def _plaintext_open(seen: bytearray) -> bytes:
    """A well-formed OPEN frame, as a version-1 link would have carried it."""
    return encode_control(FrameType.OPEN, {"stream": 99, "host": "127.0.0.1", "port": 9})


@pytest.mark.parametrize(
    ("insert", "code"),
    [
        (None, "link"),
        (_replayed_hello_record, "link"),
        (_forged_record, "link"),
        # Read as a record, the frame's first bytes announce 1 KiB (0x0400) that never completes: the node
        # opens nothing, carries nothing more, and ends the session when its pause time-out expires.
        (_plaintext_open, "credit_exhausted"),
    ],
    ids=["flipped", "replayed", "forged", "plaintext-frame"],
)
def test_tampering_towards_the_node_ends_the_session_and_opens_nothing(
    world, relay, origin, caplog, insert, code
):
    caplog.set_level(logging.WARNING, logger="kuota.relay")
    # One receipt per credit window: the node carries 4 MiB, then waits for the first receipt (record 4,
    # after the HELLO, the first PING, the OPEN and the request). Once that receipt is tampered with,
    # nothing more flows and the consumer, without periodic PINGs, sends nothing more until it reads the
    # node's ERROR: no byte of its can reach the socket the node closed, whose reset would race that ERROR.
    node = relay(credit_bytes=4 * MIB, receipt_interval_bytes=4 * MIB)
    tamper = RecordTamper("up", 4, insert=insert)
    proxy = OnPathProxy((node.host, node.port), transform=tamper)
    session, outcome = asyncio.run(
        _fetch_through(proxy, world, origin.url(8 * MIB), sink=lambda data: None, ping_interval=0)
    )
    assert tamper.done
    assert isinstance(outcome, RemoteError), outcome
    assert session.remote_error is not None and session.remote_error.code == code
    if code == "link":
        assert "relay link integrity failure" in session.remote_error.reason
    snap = node.wait_idle()
    assert snap["sessions"]["ended"].get(code) == 1
    assert snap["streamsOpened"] == 1  # the fetch's own stream: an injected OPEN opened nothing
    assert any(f"ending ({code})" in r.getMessage() for r in caplog.records)


# -- who may answer for a node ------------------------------------------------------------------------


async def _fake_node(handler) -> tuple[asyncio.base_events.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _consume(world, port: int):
    return open_session(
        "127.0.0.1", port, node=world.node.address, consumer_key=world.consumer_key, chain=world.view()
    )


def test_impostor_with_another_key_is_refused_before_the_consumer_sends_anything(world):
    impostor = Account.create()
    received: list[bytes] = []

    async def run():
        view = world.view()

        async def handle(reader, writer):
            challenge, key = new_challenge(), LinkKey.generate()
            attestation = LinkAttestation(
                node=world.node.address, link_key="0x" + key.public.hex(), challenge=challenge
            ).signed(impostor.key, view.chain_id, view.settlement_address)
            body = challenge_body(world.node.address, view, PRICE_PER_GIB, challenge, attestation)
            writer.write(encode_control(FrameType.CHALLENGE, body))
            received.append(await reader.read())  # everything until the consumer hangs up
            writer.close()

        server, port = await _fake_node(handle)
        async with server:
            with pytest.raises(HandshakeError) as info:
                await _consume(world, port)
            await asyncio.sleep(0.2)
        return info.value

    error = asyncio.run(run())
    node = world.node.address  # registered with its own address as the signing key
    assert (
        f"the relay's link key is signed by {impostor.address}, not by node {node}'s registered key {node}: "
        "nothing was sent to it"
    ) in str(error)
    assert received == [b""]  # not even the link handshake: nothing left the consumer


def test_relay_that_replays_the_real_nodes_signed_link_key_cannot_complete_the_link(world, relay):
    node = relay()
    received: list[bytes] = []

    async def run():
        async def handle(reader, writer):
            # A man in the middle forwards the genuine CHALLENGE (signed link key and all) but answers the
            # link handshake itself: it does not hold the link key's private half.
            up_reader, up_writer = await asyncio.open_connection(node.host, node.port)
            header = await up_reader.readexactly(5)
            challenge = header + await up_reader.readexactly(struct.unpack(">I", header[1:])[0])
            writer.write(challenge)
            first = await reader.readexactly(5 + 48)
            key = LinkKey.generate()
            try:
                respond(LINK_PROTOCOLS[0], key, challenge, first[5:])
            except HandshakeError:
                pass  # expected: the first message is sealed to the real node's key
            writer.write(encode_frame(FrameType.LINK, os.urandom(48)))
            received.append(await reader.read())
            writer.close()
            up_writer.close()

        server, port = await _fake_node(handle)
        async with server:
            with pytest.raises(HandshakeError) as info:
                await _consume(world, port)
            await asyncio.sleep(0.2)
        return info.value

    error = asyncio.run(run())
    assert "the relay did not prove it holds the link key its node signed" in str(error)
    assert received == [b""]  # no HELLO (nor anything else) followed


def test_consumer_refuses_a_node_of_another_protocol_version_with_a_clear_error(world):
    async def run():
        view = world.view()

        async def handle(reader, writer):
            body = {
                "version": 1,
                "node": world.node.address,
                "chainId": view.chain_id,
                "settlement": view.settlement_address,
                "pricePerGiB": PRICE_PER_GIB,
                "challenge": new_challenge(),
            }
            writer.write(encode_control(FrameType.CHALLENGE, body))
            await reader.read()
            writer.close()

        server, port = await _fake_node(handle)
        async with server:
            with pytest.raises(HandshakeError) as info:
                await _consume(world, port)
        return info.value

    assert "node speaks protocol version 1, this client 2" in str(asyncio.run(run()))


# -- the link layer alone ------------------------------------------------------------------------------


def _reference_responder(protocol: str, key: LinkKey, prologue: bytes) -> NoiseConnection:
    noise = NoiseConnection.from_name(protocol.encode())
    noise.set_prologue(b"kuota relay link v2\n" + prologue)
    noise.set_as_responder()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, key.private)
    noise.start_handshake()
    return noise


@pytest.mark.parametrize("protocol", LINK_PROTOCOLS)
def test_link_records_interoperate_with_the_reference_noise_implementation(protocol):
    key = LinkKey.generate()
    initiator = LinkInitiator(protocol, key.public, b"challenge frame")
    reference = _reference_responder(protocol, key, b"challenge frame")
    reference.read_message(initiator.first_message())
    cipher = initiator.finish(bytes(reference.write_message()))
    frame = encode_data(7, os.urandom(200_000))

    def opened_by_reference(sealed: bytearray) -> tuple[bytes, list[int]]:
        view, opened, pos, sizes = memoryview(sealed), b"", 0, []
        while pos < len(view):
            (length,) = struct.unpack_from(">H", view, pos)
            sizes.append(2 + length)
            opened += reference.decrypt(bytes(view[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        return opened, sizes

    opened, sizes = opened_by_reference(cipher.seal(frame))
    assert opened == frame
    assert sizes[:3] == [2 + MAX_RECORD] * 3 and len(sizes) == 4  # three full records, one partial
    # Header and payload sealed apart (as the node sends DATA): one small record, then the payload's.
    opened, sizes = opened_by_reference(cipher.seal(frame[:9], memoryview(frame)[9:]))
    assert opened == frame
    assert sizes[0] == 2 + 9 + 16 and len(sizes) == 5
    assert cipher.open(reference.encrypt(b"pong")) == b"pong"
    with pytest.raises(LinkIntegrityError, match="failed authentication"):
        sealed = reference.encrypt(b"first")
        cipher.open(sealed[:-1] + bytes([sealed[-1] ^ 0x01]))


def test_link_handshake_fails_on_an_altered_challenge_or_the_wrong_key():
    key = LinkKey.generate()
    initiator = LinkInitiator(LINK_PROTOCOLS[0], key.public, b"challenge as sent")
    with pytest.raises(HandshakeError, match="does not match this connection's link key and challenge"):
        respond(LINK_PROTOCOLS[0], key, b"challenge as altered", initiator.first_message())
    initiator = LinkInitiator(LINK_PROTOCOLS[0], key.public, b"challenge")
    with pytest.raises(HandshakeError, match="does not match"):
        respond(LINK_PROTOCOLS[0], LinkKey.generate(), b"challenge", initiator.first_message())


def test_a_low_order_link_key_is_a_handshake_error_not_a_crash():
    initiator = LinkInitiator(LINK_PROTOCOLS[0], bytes(32), b"challenge")
    with pytest.raises(HandshakeError, match="the node's link key is not usable"):
        initiator.first_message()


def test_link_protocol_is_one_the_clients_accept_and_a_bad_setting_is_named():
    assert preferred_link_protocol() in LINK_PROTOCOLS
    with pytest.raises(RelayConfigError, match="relay setting link_protocol = 'Noise_NN_448"):
        RelayConfig(link_protocol="Noise_NN_448_ChaChaPoly_BLAKE2b")
