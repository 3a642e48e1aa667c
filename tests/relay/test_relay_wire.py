"""Hostile bytes on the wire: each is refused with a specific, logged reason while an honest session keeps working."""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account import Account
from relay.link_support import RawConsumer

from nodeclient.receipts.model import Receipt
from nodeclient.receipts.signing import receipt_domain, sign_receipt
from nodeclient.relay.client import ConsumerConfig, RelaySession, open_session
from nodeclient.relay.framing import FrameType, encode_control, encode_data, encode_frame
from nodeclient.relay.handshake import Hello, new_challenge, new_session_id

MIB = 1024 * 1024


# -- an honest consumer fetching in the background ---------------------------------------------------


@dataclass
class HonestConsumer:
    """Fetches 1 MiB files in a loop through one session until stopped; records what it got."""

    world: object
    node: object
    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    fetched: int = 0
    session: RelaySession | None = None
    error: BaseException | None = None

    def run(self) -> None:
        async def loop() -> None:
            self.session = await open_session(
                self.node.host,
                self.node.port,
                node=self.world.node.address,
                consumer_key=self.world.consumer_key,
                chain=self.world.view(),
            )
            while not self.stop.is_set():
                result = await self.session.fetch(self.url)
                assert result.status == 200 and len(result.body) == MIB
                self.fetched += 1
            await self.session.close()

        try:
            asyncio.run(loop())
        except Exception as exc:  # noqa: BLE001 - reported by the test's assertions
            self.error = exc


# -- raw-socket helpers -------------------------------------------------------------------------------


def _secured(conn: RawConsumer, data: bytes) -> None:
    """Complete the link handshake, then send ``data`` encrypted (what a v2 consumer's HELLO rides on)."""
    conn.secure()
    conn.send(data)


def _hello(world, challenge: str, *, key: str | None = None, **fields) -> bytes:
    view = world.view()
    hello = Hello(
        consumer=world.attacker,
        node=world.node.address,
        session_id=new_session_id(),
        price_per_gib=world.registered_price(),
        challenge=challenge,
        issued_at=int(time.time()),
    )
    signed = hello.signed(key or world.attacker_key, view.chain_id, view.settlement_address).to_json()
    signed.update(fields)
    return encode_control(FrameType.HELLO, signed)


def _pre_handshake_cases(world) -> list[tuple[str, Callable[[RawConsumer, dict], None], str, str]]:
    stranger = Account.create()
    return [
        (
            "http request instead of frames",
            lambda s, c: s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            "protocol",
            "unknown frame type 0x47",
        ),
        (
            "oversized first frame",
            lambda s, c: s.send(struct.pack(">BI", FrameType.LINK, 2**31)),
            "frame_too_large",
            "frame of 2147483648 bytes exceeds the maximum frame size",
        ),
        (
            "plaintext hello from a version-1 client",
            lambda s, c: s.send(_hello(world, c["challenge"])),
            "handshake",
            "the consumer sent a plaintext HELLO, as relay protocol version 1 did; this node speaks version 2",
        ),
        (
            "link handshake that does not match the link key",
            lambda s, c: s.send(encode_frame(FrameType.LINK, b"\x01" * 48)),
            "handshake",
            "the consumer's link handshake does not match this connection's link key and challenge",
        ),
        (
            "hello that is not JSON",
            lambda s, c: _secured(s, encode_frame(FrameType.HELLO, b"{not json")),
            "handshake",
            "not UTF-8 JSON",
        ),
        (
            "hello that is a JSON array",
            lambda s, c: _secured(s, encode_frame(FrameType.HELLO, b"[1,2]")),
            "handshake",
            "expected an object",
        ),
        (
            "hello with a bad address",
            lambda s, c: _secured(s, _hello(world, c["challenge"], consumer="0x1234")),
            "handshake",
            "field 'consumer' is '0x1234', not an address",
        ),
        (
            "hello with a negative price",
            lambda s, c: _secured(s, _hello(world, c["challenge"], pricePerGiB=-1)),
            "handshake",
            "field 'pricePerGiB' is -1",
        ),
        (
            "hello signed by another key",
            lambda s, c: _secured(s, _hello(world, c["challenge"], key=stranger.key)),
            "handshake",
            f"hello is signed by {stranger.address}, not by its consumer {world.attacker}",
        ),
        (
            "hello replayed from another connection",
            lambda s, c: _secured(s, _hello(world, new_challenge())),
            "handshake",
            "not this connection's",
        ),
        (
            "data before the handshake",
            lambda s, c: s.send(encode_data(1, b"x" * 10)),
            "handshake",
            "expected a LINK frame (the link handshake), got DATA",
        ),
        (
            "data on the secured link before the hello",
            lambda s, c: _secured(s, encode_data(1, b"x" * 10)),
            "handshake",
            "expected a HELLO frame, got DATA",
        ),
        (
            "slowloris: two header bytes, then silence",
            lambda s, c: s.send(b"\x0f\x00"),
            "handshake",
            "no valid hello within 2 s",
        ),
    ]


def _signed_receipt_body(
    world, session: RelaySession, *, key: str | None = None, extra_bytes: int = 0, amount_delta: int = 0
) -> dict:
    nbytes = session.base_bytes + session.metered_bytes + extra_bytes
    amount = session.base_amount + nbytes * session.price_per_gib // (1 << 30) + amount_delta
    view = world.view()
    receipt = Receipt(
        consumer=world.attacker,
        node=world.node.address,
        session_id=session.session_id,
        cumulative_bytes=nbytes,
        cumulative_amount=amount,
        latency_ms=1,
        issued_at=int(time.time()),
    )
    signer_key = key or world.attacker_key
    domain = receipt_domain(view.chain_id, view.settlement_address)
    if key is not None:
        # sign_receipt refuses a key that is not the consumer's: sign the digest directly.
        from nodeclient.receipts.signing import receipt_digest, sign_digest

        body = receipt.to_json_dict()
        body["signature"] = "0x" + sign_digest(receipt_digest(receipt, domain), signer_key).hex()
        return body
    return sign_receipt(receipt, signer_key, domain).to_json_dict()


def _post_handshake_cases(world) -> list[tuple[str, Callable[[RelaySession], object], str, str]]:
    other = Account.create()
    return [
        (
            "receipt with fields missing",
            lambda s: s.send_frame(encode_control(FrameType.RECEIPT, {"consumer": world.attacker})),
            "bad_receipt",
            "receipt rejected: Receipt field",
        ),
        (
            "receipt signed by another key",
            lambda s: s.send_frame(
                encode_control(FrameType.RECEIPT, _signed_receipt_body(world, s, key=other.key))
            ),
            "bad_receipt",
            f"recovers to {other.address}",
        ),
        (
            "receipt for bytes never carried",
            lambda s: s.send_frame(
                encode_control(FrameType.RECEIPT, _signed_receipt_body(world, s, extra_bytes=5 * MIB))
            ),
            "bad_receipt",
            "but the node metered only",
        ),
        (
            "receipt with the wrong amount",
            lambda s: s.send_frame(
                encode_control(
                    FrameType.RECEIPT, _signed_receipt_body(world, s, extra_bytes=0, amount_delta=7)
                )
            ),
            "bad_receipt",
            "cumulativeAmount",
        ),
        (
            "oversized frame mid-session",
            lambda s: s.send_frame(struct.pack(">BI", FrameType.DATA, 64 * MIB)),
            "frame_too_large",
            "frame of 67108864 bytes exceeds the maximum frame size",
        ),
        (
            "DATA for a stream never opened",
            lambda s: s.send_frame(encode_data(77, b"payload")),
            "protocol",
            "DATA for unknown stream 77",
        ),
        (
            "slowloris inside a frame",
            lambda s: s.send_frame(struct.pack(">BI", FrameType.RECEIPT, 100) + b"{"),
            "protocol",
            "no complete frame within",
        ),
        (
            "frame of an unknown type",
            lambda s: s.send_frame(b"\xee\x00\x00\x00\x00"),
            "protocol",
            "unknown frame type 0xee",
        ),
    ]


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_bad_wire_input_is_refused_with_a_logged_reason_while_another_session_works(
    world, relay, origin, caplog
):
    caplog.set_level(logging.INFO, logger="kuota.relay")
    node = relay(handshake_timeout=2.0, frame_timeout=1.0, idle_timeout=10.0)
    honest = HonestConsumer(world, node, origin.url(MIB))
    worker = threading.Thread(target=honest.run, name="honest-consumer")
    worker.start()
    try:
        _wait_until(
            lambda: honest.fetched >= 1 or honest.error is not None, 20, "the honest consumer's first fetch"
        )
        refused: list[str] = []
        for name, attack, code, reason in _pre_handshake_cases(world):
            with RawConsumer(node.host, node.port) as conn:
                attack(conn, conn.challenge)
                error = conn.error()
            assert error["code"] == code, (name, error)
            assert reason in error["message"], (name, error)
            assert any(
                reason in r.getMessage() and "refused connection" in r.getMessage() for r in caplog.records
            ), name
            refused.append(name)
            assert honest.error is None, (name, honest.error)

        async def attack_in_session(attack: Callable[[RelaySession], object]) -> RelaySession:
            session = await open_session(
                node.host,
                node.port,
                node=world.node.address,
                consumer_key=world.attacker_key,
                chain=world.view(),
                config=ConsumerConfig(ping_interval=0),
            )
            first = await session.fetch(origin.url(4096))
            assert first.status == 200
            await attack(session)
            deadline = time.monotonic() + 8
            while session._dead is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await session.close()
            return session

        for name, attack, code, reason in _post_handshake_cases(world):
            _wait_until(
                lambda: node.snapshot()["sessions"]["active"] == 1, 10, "the previous attacker session to end"
            )
            session = asyncio.run(attack_in_session(attack))
            assert session.remote_error is not None, name
            assert session.remote_error.code == code, (name, session.remote_error)
            assert reason in session.remote_error.reason, (name, session.remote_error)
            assert any(
                reason in r.getMessage() and f"ending ({code})" in r.getMessage() for r in caplog.records
            ), name
            refused.append(name)
            assert honest.error is None, (name, honest.error)
        fetched_during = honest.fetched
        _wait_until(
            lambda: honest.fetched > fetched_during or honest.error is not None, 20, "one more honest fetch"
        )
    finally:
        honest.stop.set()
        worker.join(30)
    assert honest.error is None, honest.error
    assert len(refused) == 21
    snap = node.snapshot()
    # The honest session paid for everything it received, to the byte, despite the noise.
    assert (
        honest.session is not None
        and honest.session.receipts[-1].cumulative_bytes == honest.session.metered_bytes
    )
    assert snap["receipts"]["rejected"] == 4
    assert sum(snap["sessions"]["refused"].values()) == 13
