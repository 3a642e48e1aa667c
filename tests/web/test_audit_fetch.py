"""``kuota audit replay --fetch``: every bundle named on chain, fetched from the node that published it."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

import pytest

from tests.web.conftest import free_port, metadata_uri


def _audit(world, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = world.k.run("audit", "replay", "--confirmations", "0", "--jobs", "1", "--json", *extra)
    report = json.loads(result.stdout)
    return result.exit_code, report, result.stderr


@pytest.fixture
def operator(world, accounts):
    return accounts.at(world.k.addresses["operator"], force=True)


def test_fetch_verifies_every_bundle_the_node_serves(world):
    code, report, _ = _audit(world, "--fetch")
    assert code == 0, report["findings"]
    assert report["verdict"] == "consistent"
    published = world.store.published_bundles(node=world.node)
    fetch = report["bundleFetch"]
    assert fetch["unreachable"] == []
    assert fetch["metadataProblems"] == {}
    # Fetched by root, landed on the content address the node serves.
    assert sorted(fetch["fetched"]) == sorted(f"{world.base}/bundles/{name}" for name in published)
    counts = report["counts"]
    assert counts["batches_committed"] == counts["bundles_matched"] == counts["bundles_fetched"] == 2
    assert {row["root"] for row in report["bundles"]} == {"0x" + root.hex() for root in published.values()}
    assert all(row["receipts"] == row["verified"] > 0 for row in report["bundles"])


def test_unreachable_endpoint_is_listed_and_fails(world, operator):
    dead = free_port()
    world.set_metadata(metadata_uri({"v": 1, "bundles": f"http://127.0.0.1:{dead}/bundles/"}), operator)
    code, report, _ = _audit(world, "--fetch")
    assert code == 7
    unreachable = report["bundleFetch"]["unreachable"]
    published = world.store.published_bundles(node=world.node)
    assert sorted(u["root"] for u in unreachable) == sorted("0x" + r.hex() for r in published.values())
    assert all(u["url"].startswith(f"http://127.0.0.1:{dead}/bundles/0x") and u["node"] == world.node for u in unreachable)
    assert all("ConnectionError" in u["reason"] for u in unreachable)
    codes = [f["code"] for f in report["findings"] if f["severity"] == "evidence"]
    assert codes.count("bundle-unreachable") == 2 and codes.count("bundle-missing") == 2
    # Without --json the listing goes to stderr, one line per bundle.
    human = world.k.run("audit", "replay", "--confirmations", "0", "--jobs", "1", "--fetch")
    assert human.exit_code == 7
    listed = " ".join(human.stderr.split())
    for u in unreachable:
        assert f"unreachable bundle {u['root']} of node {world.node} at {u['url']}: could not be fetched" in listed


def test_allow_partial_reports_unreachable_as_warnings(world, operator):
    dead = free_port()
    world.set_metadata(metadata_uri({"v": 1, "bundles": f"http://127.0.0.1:{dead}/bundles"}), operator)
    code, report, _ = _audit(world, "--fetch", "--allow-partial")
    assert code == 0
    assert len(report["bundleFetch"]["unreachable"]) == 2
    warnings = [f for f in report["findings"] if f["code"] == "bundle-unreachable"]
    assert len(warnings) == 2 and all(f["severity"] == "warning" for f in warnings)
    assert not [f for f in report["findings"] if f["severity"] == "evidence"]


def test_bundle_source_is_the_fallback_for_nodes_without_a_bundles_url(world, operator):
    world.set_metadata("ipfs://node-metadata", operator)
    code, report, _ = _audit(world, "--fetch")
    assert code == 7
    assert "neither JSON" in report["bundleFetch"]["metadataProblems"][world.node]
    assert all("no --bundle-source" in u["reason"] for u in report["bundleFetch"]["unreachable"])
    code, report, _ = _audit(world, "--fetch", "--bundle-source", f"{world.base}/bundles/")
    assert code == 0, report["findings"]
    assert report["counts"]["bundles_matched"] == 2
    assert [f["code"] for f in report["findings"] if f["code"] == "node-metadata-unreadable"] == ["node-metadata-unreadable"]


def _tampering_server(world) -> http.server.ThreadingHTTPServer:
    """Serves each real bundle, by root, with its last receipt dropped (a root that no longer matches)."""
    by_root = {"0x" + root.hex(): name for name, root in world.store.published_bundles(node=world.node).items()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = by_root[self.path.rsplit("/", 1)[-1]]
            doc = json.loads((world.bundle_dir / name).read_bytes())
            doc["receipts"] = doc["receipts"][:-1]
            body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_fetched_bytes_are_checked_against_hash_and_committed_root(world, operator):
    server = _tampering_server(world)
    try:
        world.set_metadata(metadata_uri({"bundles": f"http://127.0.0.1:{server.server_address[1]}/b/"}), operator)
        code, report, _ = _audit(world, "--fetch")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 7
    assert report["bundleFetch"]["unreachable"] == []
    codes = {f["code"] for f in report["findings"] if f["severity"] == "evidence"}
    assert {"bundle-name", "bundle-root-declared"} <= codes


def test_fetch_options_are_checked(world):
    result = world.k.run("audit", "replay", "--bundle-source", f"{world.base}/bundles/")
    assert result.exit_code == 4 and "only apply with --fetch" in result.output
    result = world.k.run("audit", "replay", "--fetch", "--bundle-source", "ftp://x/")
    assert result.exit_code == 4 and "'ftp://x/' is not an http(s) URL" in result.output
