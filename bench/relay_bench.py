"""Relay throughput: the metered Kuota relay against an unmetered asyncio relay, same loopback, same run.

Three processes per measurement, as in real life where they are different machines: an origin that
streams N bytes per request (plain sockets, cheap), the relay (metered ``RelayServer``, or a bare
asyncio TCP forwarder), and the consumer in this process (``RelaySession.fetch``, or a bare asyncio
HTTP GET). The metered relay runs twice: as shipped (every frame on the Noise-encrypted link) and with
the link left in plaintext after its handshake, so the cost of encryption is measured in the same run.
Reported:

- MiB/s through each relay, the ratio metered / unmetered and encrypted / plaintext (best of ``repeats``);
- signatures per GiB (receipts the consumer signed per GiB carried) and pauses per GiB;
- CPU per receipt: consumer signing, node verification, and the durable store's ``accept``
  (SQLite ``synchronous=FULL``: one fsync per receipt), each timed over ``micro_receipts`` receipts;
- node CPU seconds per GiB (metered with the encrypted link, with the plaintext link, unmetered) and
  consumer CPU seconds per GiB (encrypted, plaintext): the cost of encryption in CPU, which a loaded
  machine moves far less than it moves MiB/s.

The chain is read only at the handshake (node record, escrow); pass ``chain`` (a ``ChainView`` of a
deployed system, with the matching ``node_key``/``consumer_key``) to use a real one. Without it a
fixed in-memory view answers those two reads, so the figures are those of the data path alone.

``run(...) -> dict`` is what ``make bench`` imports; ``python bench/relay_bench.py`` prints a table
and the JSON dict. Bounded: well under 90 s with the defaults on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account

from nodeclient.receipts.model import Receipt
from nodeclient.receipts.signing import ReceiptSigner, receipt_domain, verify_receipt
from nodeclient.receipts.store import ReceiptStore
from nodeclient.relay.chainview import NodeInfo, NodeStatus, Web3ChainView
from nodeclient.relay.client import ConsumerConfig, open_session
from nodeclient.relay.link import Link, preferred_link_protocol
from nodeclient.relay.server import RelayConfig, RelayServer
from nodeclient.relay.store import NodeReceiptStore
from nodeclient.relay.targets import TargetPolicy

__all__ = ["StaticChainView", "run"]

MIB = 1024 * 1024
GIB = 1024 * MIB
_PRICE = 1_000_000
_SETTLEMENT = "0x" + "5e" * 20


class StaticChainView:
    """A fixed ``ChainView`` for the data-path benchmark: one active node, a well-funded escrow."""

    chain_id = 31337
    settlement_address = Account.from_key("0x" + "11" * 32).address

    def __init__(self, node: str, signing_key: str, price: int = _PRICE) -> None:
        self._info = NodeInfo(node, node, node, signing_key, price, NodeStatus.ACTIVE)

    async def node_info(self, node: str) -> NodeInfo:
        return self._info

    async def escrow_available(self, consumer: str) -> int:
        return 10**18

    async def channel_settled(self, consumer: str, node: str) -> tuple[int, int]:
        return (0, 0)


@contextlib.contextmanager
def _plaintext_link() -> Iterator[None]:
    """The baseline of the encryption figure: links that complete their handshake but never install the
    cipher, in this process and in the relay process forked inside the block. The product has no such
    switch on purpose (a plaintext mode is a downgrade waiting to happen); only the benchmark patches it."""
    secure = Link.secure
    Link.secure = lambda self, cipher: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Link.secure = secure  # type: ignore[method-assign]


# -- origin: N bytes per request, plain blocking sockets in its own process ----------------------------


def _origin_main(port_queue: Any, stop: Any) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port_queue.put(listener.getsockname()[1])
    block = os.urandom(MIB)

    def serve(conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            path = head.split(b" ", 2)[1].decode()
            size = int(path.rsplit("/", 1)[-1])
            conn.sendall(f"HTTP/1.0 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
            left = size
            try:
                while left:
                    n = min(left, MIB)
                    conn.sendall(block[:n])
                    left -= n
            except OSError:
                pass

    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


# -- relays, each in its own process ---------------------------------------------------------------------


def _unmetered_main(origin_port: int, port_queue: Any, stop: Any, result_queue: Any) -> None:
    async def main() -> None:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            o_reader, o_writer = await asyncio.open_connection("127.0.0.1", origin_port)
            await asyncio.gather(pipe(reader, o_writer), pipe(o_reader, writer), return_exceptions=True)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_queue.put(server.sockets[0].getsockname()[1])
        cpu = time.process_time()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        result_queue.put({"cpu_s": time.process_time() - cpu})

    asyncio.run(main())


def _metered_main(
    node_key: str,
    node: str,
    chain_args: dict[str, Any] | None,
    store_dir: str,
    config: dict[str, Any],
    port_queue: Any,
    stop: Any,
    result_queue: Any,
) -> None:
    async def main() -> None:
        if chain_args is None:
            view: Any = StaticChainView(node, Account.from_key(node_key).address)
        else:
            view = await Web3ChainView.connect(
                chain_args["rpc_url"], chain_args["contracts"], chain_args["chain_id"]
            )
        domain = receipt_domain(view.chain_id, view.settlement_address)
        store = ReceiptStore(Path(store_dir) / "receipts.sqlite", domain=domain)
        server = RelayServer(
            RelayConfig(targets=TargetPolicy(allow_private=True), **config),
            view,
            node,
            node_key,
            NodeReceiptStore(store, domain, node),
        )
        _, port = await server.start()
        port_queue.put(port)
        cpu = time.process_time()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        snap = server.snapshot()
        await server.close()
        if isinstance(view, Web3ChainView):
            await view.close()
        store.close()
        result_queue.put({"cpu_s": time.process_time() - cpu, "snapshot": snap})

    asyncio.run(main())


# -- consumers ------------------------------------------------------------------------------------------


async def _plain_fetch(port: int, size: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /bytes/{size} HTTP/1.0\r\nHost: origin\r\n\r\n".encode())
    await writer.drain()
    total = 0
    while data := await reader.read(262144):
        total += len(data)
    writer.close()
    return total


async def _metered_fetch(
    port: int, origin_port: int, node: str, consumer_key: str, chain: Any, size: int
) -> dict[str, Any]:
    session = await open_session(
        "127.0.0.1",
        port,
        node=node,
        consumer_key=consumer_key,
        chain=chain,
        config=ConsumerConfig(ping_interval=1.0),
    )
    result = await session.fetch(f"http://127.0.0.1:{origin_port}/bytes/{size}", sink=lambda data: None)
    await session.close()
    assert result.body_bytes == size, (result.body_bytes, size)
    return {
        "receipts": len(session.receipts),
        "pauses": len(session.pauses),
        "bytes": session.metered_bytes,
        "latency_ms": session.latency_ms,
    }


def _measure(
    mode: str,
    size: int,
    origin_port: int,
    keys: dict[str, str],
    chain: Any,
    chain_args: Any,
    config: dict[str, Any],
    store_dir: str,
) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    port_queue, result_queue, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    if mode.startswith("metered"):
        args = (keys["node_key"], keys["node"], chain_args, store_dir, config, port_queue, stop, result_queue)
        proc = ctx.Process(target=_metered_main, args=args, daemon=True)
    else:
        proc = ctx.Process(
            target=_unmetered_main, args=(origin_port, port_queue, stop, result_queue), daemon=True
        )
    proc.start()
    try:
        port = port_queue.get(timeout=30)
        started = time.perf_counter()
        consumer_cpu = time.process_time()
        if mode.startswith("metered"):
            extra = asyncio.run(
                _metered_fetch(port, origin_port, keys["node"], keys["consumer_key"], chain, size)
            )
        else:
            got = asyncio.run(_plain_fetch(port, size))
            extra = {"bytes": got}
        seconds = time.perf_counter() - started
        consumer_cpu = time.process_time() - consumer_cpu
        stop.set()
        node = result_queue.get(timeout=30)
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return {
        "seconds": seconds,
        "mib_s": size / MIB / seconds,
        "node_cpu_s": node["cpu_s"],
        "consumer_cpu_s": consumer_cpu,
        **extra,
    }


def _micro(n: int, store_dir: str) -> dict[str, float]:
    """Per-receipt CPU: sign (consumer), verify (node), durable accept (node store, fsync per receipt)."""
    consumer = Account.from_key("0x" + "22" * 32)
    node = Account.from_key("0x" + "33" * 32).address
    domain = receipt_domain(31337, _SETTLEMENT)
    signer = ReceiptSigner(consumer.key, domain)
    receipts = [
        Receipt(
            consumer=consumer.address,
            node=node,
            session_id="0x" + "ab" * 32,
            cumulative_bytes=(i + 1) * MIB,
            cumulative_amount=(i + 1) * 1000,
            latency_ms=5,
            issued_at=1_800_000_000 + i,
        )
        for i in range(n)
    ]
    t0 = time.process_time()
    signed = [signer.sign(r) for r in receipts]
    t1 = time.process_time()
    for s in signed:
        verify_receipt(s, domain)
    t2 = time.process_time()
    store = ReceiptStore(Path(store_dir) / "micro.sqlite", domain=domain)
    wall = time.perf_counter()
    c0 = time.process_time()
    for s in signed:
        store.accept(s, expected_domain=domain, expected_node=node)
    c1 = time.process_time()
    wall = time.perf_counter() - wall
    store.close()
    return {
        "sign_us": (t1 - t0) / n * 1e6,
        "verify_us": (t2 - t1) / n * 1e6,
        "store_accept_cpu_us": (c1 - c0) / n * 1e6,
        "store_accept_wall_ms": wall / n * 1e3,
    }


def run(
    size_mib: int = 256,
    repeats: int = 2,
    *,
    receipt_kib: int = 4096,
    credit_kib: int = 16384,
    micro_receipts: int = 200,
    chain: Any = None,
    chain_args: dict[str, Any] | None = None,
    node_key: str | None = None,
    consumer_key: str | None = None,
    link_protocol: str | None = None,
) -> dict[str, Any]:
    """Measure and return the figures (stable keys). See the module docstring.

    ``link_protocol`` overrides the node's choice of Noise protocol (AES-GCM where the CPU has AES
    instructions, ChaChaPoly elsewhere)."""
    size = size_mib * MIB
    if chain is None:
        node_key = "0x" + "44" * 32
        consumer_key = "0x" + "55" * 32
        node = Account.from_key(node_key).address
        chain = StaticChainView(node, node)
        chain_args = None
    else:
        if node_key is None or consumer_key is None or chain_args is None:
            raise ValueError("with a real chain, pass chain_args, node_key and consumer_key too")
        node = Account.from_key(node_key).address
    keys = {"node_key": node_key, "node": node, "consumer_key": consumer_key}
    config: dict[str, Any] = {"credit_bytes": credit_kib * 1024, "receipt_interval_bytes": receipt_kib * 1024}
    config["link_protocol"] = link_protocol or preferred_link_protocol()
    ctx = mp.get_context("fork")
    port_queue, origin_stop = ctx.Queue(), ctx.Event()
    origin = ctx.Process(target=_origin_main, args=(port_queue, origin_stop), daemon=True)
    origin.start()
    started = time.perf_counter()
    try:
        origin_port = port_queue.get(timeout=30)
        runs: dict[str, list[dict[str, Any]]] = {"unmetered": [], "metered_plaintext": [], "metered": []}
        with tempfile.TemporaryDirectory(prefix="kuota-relay-bench-") as tmp:
            for i in range(repeats):
                for mode, measured in runs.items():
                    store_dir = os.path.join(tmp, f"{mode}-{i}")
                    os.makedirs(store_dir)
                    link = _plaintext_link() if mode == "metered_plaintext" else contextlib.nullcontext()
                    with link:
                        measured.append(
                            _measure(mode, size, origin_port, keys, chain, chain_args, config, store_dir)
                        )
            micro = _micro(micro_receipts, tmp)
    finally:
        origin_stop.set()
        origin.join(5)
        if origin.is_alive():
            origin.kill()
    best = {mode: max(r["mib_s"] for r in rs) for mode, rs in runs.items()}
    metered = runs["metered"]
    gib = size / GIB
    return {
        "size_mib": size_mib,
        "repeats": repeats,
        "receipt_interval_kib": receipt_kib,
        "credit_kib": credit_kib,
        "chain": "static" if chain_args is None else "rpc",
        "link_protocol": config["link_protocol"],
        "unmetered_mib_s": round(best["unmetered"], 1),
        "metered_mib_s": round(best["metered"], 1),
        "metered_plaintext_mib_s": round(best["metered_plaintext"], 1),
        "throughput_ratio": round(best["metered"] / best["unmetered"], 3),
        "encrypted_ratio": round(best["metered"] / best["metered_plaintext"], 3),
        "signatures_per_gib": round(statistics.mean(r["receipts"] for r in metered) / gib, 1),
        "pauses_per_gib": round(statistics.mean(r["pauses"] for r in metered) / gib, 1),
        "node_cpu_s_per_gib_metered": round(statistics.mean(r["node_cpu_s"] for r in metered) / gib, 3),
        "node_cpu_s_per_gib_plaintext": round(
            statistics.mean(r["node_cpu_s"] for r in runs["metered_plaintext"]) / gib, 3
        ),
        "node_cpu_s_per_gib_unmetered": round(
            statistics.mean(r["node_cpu_s"] for r in runs["unmetered"]) / gib, 3
        ),
        "consumer_cpu_s_per_gib_metered": round(
            statistics.mean(r["consumer_cpu_s"] for r in metered) / gib, 3
        ),
        "consumer_cpu_s_per_gib_plaintext": round(
            statistics.mean(r["consumer_cpu_s"] for r in runs["metered_plaintext"]) / gib, 3
        ),
        "sign_us_per_receipt": round(micro["sign_us"], 1),
        "verify_us_per_receipt": round(micro["verify_us"], 1),
        "store_accept_cpu_us_per_receipt": round(micro["store_accept_cpu_us"], 1),
        "store_accept_wall_ms_per_receipt": round(micro["store_accept_wall_ms"], 3),
        "latency_ms": metered[-1]["latency_ms"],
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _table(result: dict[str, Any]) -> str:
    rows = [
        ("unmetered asyncio relay", f"{result['unmetered_mib_s']} MiB/s"),
        ("metered Kuota relay, link in plaintext", f"{result['metered_plaintext_mib_s']} MiB/s"),
        ("metered Kuota relay, encrypted link", f"{result['metered_mib_s']} MiB/s"),
        ("ratio metered (encrypted) / unmetered", f"{result['throughput_ratio']}"),
        ("ratio encrypted / plaintext link", f"{result['encrypted_ratio']}"),
        ("signatures per GiB", f"{result['signatures_per_gib']}"),
        ("pauses per GiB", f"{result['pauses_per_gib']}"),
        ("sign, per receipt (consumer)", f"{result['sign_us_per_receipt']} µs CPU"),
        ("verify, per receipt (node)", f"{result['verify_us_per_receipt']} µs CPU"),
        (
            "durable accept, per receipt",
            f"{result['store_accept_cpu_us_per_receipt']} µs CPU, {result['store_accept_wall_ms_per_receipt']} ms wall",
        ),
        (
            "node CPU per GiB (encrypted / plaintext / unmetered)",
            (
                f"{result['node_cpu_s_per_gib_metered']} / {result['node_cpu_s_per_gib_plaintext']} / "
                f"{result['node_cpu_s_per_gib_unmetered']} s"
            ),
        ),
        (
            "consumer CPU per GiB (encrypted / plaintext)",
            f"{result['consumer_cpu_s_per_gib_metered']} / {result['consumer_cpu_s_per_gib_plaintext']} s",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    head = (
        f"relay bench: {result['size_mib']} MiB x {result['repeats']}, receipt every "
        f"{result['receipt_interval_kib']} KiB, chain {result['chain']}, link {result['link_protocol']}"
    )
    return "\n".join([head, *(f"  {name.ljust(width)}  {value}" for name, value in rows)])


if __name__ == "__main__":
    figures = run(*(int(a) for a in sys.argv[1:2]))
    print(_table(figures))
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, sort_keys=True))
