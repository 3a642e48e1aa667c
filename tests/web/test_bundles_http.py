"""``/bundles/``: the bundles of the node's real settlements, content-addressed, immutable, bounded ranges."""

from __future__ import annotations

import hashlib
import http.client
import os

import pytest
import requests

from nodeclient.receipts.bundles import check_bundle_bytes
from nodeclient.receipts.signing import receipt_domain
from tests.web.conftest import MAX_RANGE


@pytest.fixture(scope="module")
def published(world) -> dict[str, bytes]:
    bundles = world.store.published_bundles(node=world.node)
    assert len(bundles) == 2  # one per settleMany
    return bundles


def _raw_get(world, path: str) -> int:
    """Status of GET ``path`` sent byte for byte (no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", world.web_port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_bundle_by_content_hash_is_the_exact_file_and_immutable(world, published):
    domain = receipt_domain(world.client.chain_id, world.k.contracts["ReceiptSettlement"])
    for name, root in published.items():
        data = (world.bundle_dir / name).read_bytes()
        sha = name.removesuffix(".json")
        for path in (sha, name):
            response = requests.get(f"{world.base}/bundles/{path}", timeout=10)
            assert response.status_code == 200
            assert response.content == data
            assert hashlib.sha256(response.content).hexdigest() == sha
            assert response.headers["ETag"] == f'"{sha}"'
            assert "immutable" in response.headers["Cache-Control"]
            assert response.headers["Content-Type"].startswith("application/json")
            assert int(response.headers["Content-Length"]) == len(data)
        check = check_bundle_bytes(response.content, expected_name=name, expected_root=root, expected_domain=domain)
        assert check.ok, check.problems


def test_bundle_by_onchain_root_redirects_to_the_content_address(world, published):
    for name, root in published.items():
        response = requests.get(f"{world.base}/bundles/0x{root.hex()}", timeout=10, allow_redirects=False)
        assert response.status_code == 308
        assert response.headers["Location"] == f"/bundles/{name}"
        followed = requests.get(f"{world.base}/bundles/0x{root.hex()}", timeout=10)
        assert followed.content == (world.bundle_dir / name).read_bytes()


def test_conditional_get_answers_304(world, published):
    sha = next(iter(published)).removesuffix(".json")
    response = requests.get(f"{world.base}/bundles/{sha}", headers={"If-None-Match": f'"{sha}"'}, timeout=10)
    assert response.status_code == 304
    assert response.content == b""


def test_single_ranges_are_served(world, published):
    name = next(iter(published))
    data = (world.bundle_dir / name).read_bytes()
    assert len(data) > MAX_RANGE
    url = f"{world.base}/bundles/{name}"
    first = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert first.status_code == 206
    assert first.content == data[:100]
    assert first.headers["Content-Range"] == f"bytes 0-99/{len(data)}"
    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=10)
    assert (tail.status_code, tail.content) == (206, data[-10:])
    rest = requests.get(url, headers={"Range": f"bytes={len(data) - 5}-"}, timeout=10)
    assert (rest.status_code, rest.content) == (206, data[-5:])
    # A stale If-Range means the client's copy is another file: it gets the whole (immutable) one.
    stale = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'}, timeout=10)
    assert (stale.status_code, stale.content) == (200, data)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("bytes=0-9,20-29", 416),  # multi-range
        (f"bytes=0-{MAX_RANGE}", 416),  # one byte over the limit
        ("bytes=999999999-", 416),  # past the end
        ("bytes=-0", 416),
        ("items=0-9", 400),
        ("bytes=9-0", 400),
        ("bytes=abc", 400),
    ],
)
def test_refused_ranges(world, published, header, status):
    name = next(iter(published))
    size = (world.bundle_dir / name).stat().st_size
    response = requests.get(f"{world.base}/bundles/{name}", headers={"Range": header}, timeout=10)
    assert response.status_code == status, response.text
    if status == 416:
        assert response.headers["Content-Range"] == f"bytes */{size}"


def test_unknown_and_unpublished_names_are_404(world, published):
    assert requests.get(f"{world.base}/bundles/{'ab' * 32}", timeout=10).status_code == 404
    assert requests.get(f"{world.base}/bundles/0x{'cd' * 32}", timeout=10).status_code == 404
    assert requests.get(f"{world.base}/bundles/not-a-hash", timeout=10).status_code == 404
    # A correctly named file in the bundle directory that no sent batch names is not published.
    stray = b'{"stray":true}'
    stray_name = hashlib.sha256(stray).hexdigest() + ".json"
    (world.bundle_dir / stray_name).write_bytes(stray)
    try:
        assert requests.get(f"{world.base}/bundles/{stray_name}", timeout=10).status_code == 404
    finally:
        (world.bundle_dir / stray_name).unlink()


@pytest.mark.parametrize(
    "path",
    [
        "/bundles/../receipts",
        "/bundles/..%2F..%2Frelay%2Fstatus.json",
        "/bundles/%2e%2e%2freceipts",
        "/bundles/..%5c..%5cstatus.json",
        "/bundles//etc/passwd",
    ],
)
def test_no_path_traversal(world, published, path):
    assert _raw_get(world, path) == 404


def test_a_damaged_bundle_file_is_not_served(world, published):
    name = next(iter(published))
    path = world.bundle_dir / name
    original = path.read_bytes()
    try:
        path.write_bytes(original.replace(b'"version":1', b'"version":2'))
        response = requests.get(f"{world.base}/bundles/{name}", timeout=10)
        assert response.status_code == 500
        assert original not in response.content
    finally:
        path.write_bytes(original)
        os.utime(path)
    assert requests.get(f"{world.base}/bundles/{name}", timeout=10).content == original
