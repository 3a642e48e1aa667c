"""The dashboard's HTTP surface without a browser: assets, headers, path checks, the traffic series,
the vendored uPlot and the wheel that carries it.

Real aiohttp on 127.0.0.1, a real SQLite receipt store and transaction journal, receipts signed by the
consumer's real key.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web
from eth_account import Account

from nodeclient.chain.journal import TxJournal
from nodeclient.dashboard import DashboardSource, TokenUnit, TrafficSeries, add_dashboard, is_public_path
from nodeclient.dashboard.traffic import BUCKET_S
from nodeclient.receipts import Receipt, ReceiptSigner
from nodeclient.receipts.signing import receipt_domain
from nodeclient.receipts.store import ReceiptStore
from tests.conftest import ROOT, anvil_private_key

STATIC = ROOT / "nodeclient" / "dashboard" / "static"
VENDOR = STATIC / "vendor" / "uplot"
NODE = Account.from_key(anvil_private_key(10)).address
DOMAIN = receipt_domain(31337, "0x" + "5e" * 20)
SESSION = "0x" + "33" * 32


def _receipt(signer: ReceiptSigner, nbytes: int, amount: int) -> object:
    return signer.sign(Receipt(consumer=signer.address, node=NODE, session_id=SESSION, cumulative_bytes=nbytes,
                               cumulative_amount=amount, latency_ms=20, issued_at=int(time.time())))


@pytest.fixture
def store(tmp_path) -> Iterator[ReceiptStore]:
    with ReceiptStore(tmp_path / "receipts.sqlite", domain=DOMAIN) as s:
        yield s


@pytest.fixture
def served(store, tmp_path) -> Iterator[str]:
    """A dashboard over an empty journal and ``store``, no relay and no chain, on 127.0.0.1."""
    journal = TxJournal(tmp_path / "journal.sqlite")
    source = DashboardSource(node=NODE, chain_id=31337, token=TokenUnit("mUSD", 6), store=store, journal=journal)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, str]:
        app = web.Application()
        add_dashboard(app, source)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return runner, f"http://{host}:{port}"

    runner, url = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield url
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    journal.close()


async def _get(url: str, raw_path: str) -> tuple[int, dict[str, str], bytes]:
    # A raw request line: the client must not normalise away the ".." the test sends.
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {raw_path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def get(url: str, raw_path: str) -> tuple[int, dict[str, str], bytes]:
    return asyncio.run(_get(url, raw_path))


def test_page_and_assets_are_served_with_a_strict_content_security_policy(served):
    status, headers, body = get(served, "/")
    assert status == 200 and b'id="earnings-chart"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"] and "default-src 'none'" in headers["Content-Security-Policy"]
    status, headers, body = get(served, "/dashboard/static/vendor/uplot/uPlot.iife.min.js")
    assert status == 200 and body == (VENDOR / "uPlot.iife.min.js").read_bytes()
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_only_the_page_and_its_assets_are_public():
    # What the node's web service may let through without its bearer token: no data is in these.
    assert all(is_public_path(p) for p in ("/", "/dashboard", "/dashboard/static/dashboard.js"))
    assert not any(is_public_path(p) for p in ("/api/status", "/api/tx/0x00", "/metrics", "/dashboardx", "/static/x"))


@pytest.mark.parametrize("path", [
    "/dashboard/static/../routes.py",
    "/dashboard/static/%2e%2e/routes.py",
    "/dashboard/static/vendor/..%2f..%2froutes.py",
    "/dashboard/static/%2fetc%2fpasswd",
    "/dashboard/static/vendor",
])
def test_an_asset_path_outside_the_static_directory_is_not_served(served, path):
    status, _, body = get(served, path)
    assert status == 404, (path, status)
    assert b"import" not in body and b"root:" not in body


def test_api_without_relay_or_chain_answers_what_it_has(served, store):
    signer = ReceiptSigner(anvil_private_key(5), DOMAIN)
    store.accept(_receipt(signer, 3 * 2**20, 3000), expected_domain=DOMAIN, expected_node=NODE)

    async def read() -> tuple[dict, dict, int, int]:
        async with aiohttp.ClientSession() as http:
            status = await (await http.get(served + "/api/status")).json()
            traffic = await (await http.get(served + "/api/traffic")).json()
            earnings = (await http.get(served + "/api/earnings")).status
            tx = (await http.get(served + "/api/tx/0x" + "ab" * 32)).status
            limits = [(await http.get(served + f"/api/settlements?limit={n}")).status for n in ("0", "1001", "x", "5")]
            return status, traffic, earnings, tx, limits

    status, traffic, earnings, tx, limits = asyncio.run(read())
    assert limits == [400, 400, 400, 200]
    assert status["relay"] is None and status["today"] == {"bytes": None, "quota": None}
    assert status["unsettled"] == {"amount": "3000", "channels": 1}
    assert traffic["totalBytes"] == str(3 * 2**20) and traffic["totalAmount"] == "3000"
    assert earnings == 404 and tx == 404


def test_traffic_series_counts_each_receipt_increase_once_across_refreshes(store):
    alice, bob = ReceiptSigner(anvil_private_key(5), DOMAIN), ReceiptSigner(anvil_private_key(6), DOMAIN)
    series = TrafficSeries(store, NODE)
    accept = lambda s, b, a: store.accept(_receipt(s, b, a), expected_domain=DOMAIN, expected_node=NODE)
    accept(alice, 1000, 10)
    accept(alice, 5000, 50)
    accept(bob, 700, 7)
    first = series.refresh()
    assert sum(p.bytes for p in first) == 5700 and sum(p.amount for p in first) == 57
    assert sum(p.receipts for p in first) == 3
    accept(alice, 9000, 90)
    second = series.refresh()
    # Only alice's increase since her previous receipt is added (4000 bytes, 40 units), never her total again.
    assert sum(p.bytes for p in second) == 9700 and sum(p.amount for p in second) == 97
    assert all(p.start % BUCKET_S == 0 for p in second)
    assert series.refresh() == second


def test_vendored_uplot_matches_its_checksums_and_pinned_version():
    pinned = re.search(r"^VERSION=(\S+)$", (ROOT / "tools" / "vendor_uplot.sh").read_text(), re.MULTILINE).group(1)
    assert (VENDOR / "VERSION").read_text().strip() == pinned
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (VENDOR / "LICENSE").read_text()


def test_the_wheel_carries_the_page_and_uplot(tmp_path):
    # Built from a copy, so the build leaves nothing in the checkout (build/ is Brownie's).
    src = tmp_path / "src"
    shutil.copytree(ROOT / "nodeclient", src / "nodeclient", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, timeout=300, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"nodeclient/dashboard/static/{p.relative_to(STATIC)}" for p in STATIC.rglob("*") if p.is_file()}
    assert expected and expected <= names, sorted(expected - names)
