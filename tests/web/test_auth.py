"""Loopback by default; off loopback the service refuses to start without a bearer token; the token gates /metrics."""

from __future__ import annotations

import asyncio
import threading

import pytest
import requests

from nodeclient.config import WebSettings
from nodeclient.web import NodeWebService, WebConfig, WebConfigError, is_loopback, resolve_web_config
from nodeclient.web.bundles_http import BundleLibrary
from nodeclient.web.metrics import MetricSources, NodeMetrics

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_token(host):
    assert is_loopback(host)
    assert WebConfig(host=host).token is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "node.example.org"])
def test_off_loopback_without_token_is_refused(host):
    with pytest.raises(WebConfigError) as err:
        resolve_web_config(WebSettings(host=host))
    message = str(err.value)
    assert host in message and "bearer token" in message and "token_file" in message


def test_off_loopback_with_token_is_accepted_and_the_token_stays_out_of_repr(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = resolve_web_config(WebSettings(host="0.0.0.0", token_file=token_file))
    assert config.token == TOKEN
    assert TOKEN not in repr(config)
    from_env_style = resolve_web_config(WebSettings(host="0.0.0.0", token=TOKEN))
    assert from_env_style.token == TOKEN
    assert TOKEN not in repr(WebSettings(token=TOKEN))


def test_short_or_unreadable_tokens_are_refused(tmp_path):
    with pytest.raises(WebConfigError) as err:
        WebConfig(host="0.0.0.0", token="short-secret")
    assert "short-secret" not in str(err.value) and "12 characters" in str(err.value)
    with pytest.raises(WebConfigError, match="cannot be read"):
        resolve_web_config(WebSettings(token_file=tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(WebConfigError, match="is empty"):
        resolve_web_config(WebSettings(token_file=tmp_path / "empty"))


def test_node_serve_refuses_a_public_web_address_without_token(world):
    result = world.k.run("node", "serve", "--node-account", "node", *world.k.pw(), "--no-settle",
                         "--web-host", "0.0.0.0", "--port", "0", extra_env={"KUOTA_WEB__TOKEN": ""})
    assert result.exit_code == 2, result.output
    assert "web setting host = '0.0.0.0' is invalid" in result.output
    assert "bearer token is required" in result.output


class _Running:
    def __init__(self, service: NodeWebService) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service = service
        self.host, self.port = asyncio.run_coroutine_threadsafe(service.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.service.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def guarded(world):
    """A second service over the world's real store, on loopback but with a token (so the token is enforced)."""

    def start(public_bundles: bool) -> _Running:
        metrics = NodeMetrics(MetricSources(node=world.node, store=world.store))
        config = WebConfig(host="127.0.0.1", port=0, token=TOKEN, public_bundles=public_bundles)
        return _Running(NodeWebService(config, metrics, bundles=BundleLibrary(world.store, world.bundle_dir, world.node)))

    running: list[_Running] = []

    def factory(public_bundles: bool = True) -> str:
        r = start(public_bundles)
        running.append(r)
        return f"http://{r.host}:{r.port}"

    yield factory
    for r in running:
        r.close()


def test_token_gates_metrics(guarded):
    base = guarded()
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 401
    wrong = requests.get(f"{base}/metrics", headers={"Authorization": "Bearer " + "x" * 32}, timeout=10)
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(f"{base}/metrics", headers={"Authorization": f"Basic {TOKEN}"}, timeout=10).status_code == 401
    ok = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code == 200
    assert "kuota_unsettled_value" in ok.text
    assert requests.get(f"{base}/healthz", timeout=10).status_code == 200


def test_bundles_are_public_unless_configured_otherwise(world, guarded):
    name = next(iter(world.store.published_bundles(node=world.node)))
    public = guarded(public_bundles=True)
    assert requests.get(f"{public}/bundles/{name}", timeout=10).status_code == 200
    private = guarded(public_bundles=False)
    assert requests.get(f"{private}/bundles/{name}", timeout=10).status_code == 401
    authorized = requests.get(f"{private}/bundles/{name}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert authorized.content == (world.bundle_dir / name).read_bytes()


def test_public_bundle_prefix_does_not_open_metrics(guarded):
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(guarded())
    for path in ("/bundles/../metrics", "/bundles/%2e%2e/metrics", "/bundles/..%2fmetrics"):
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            response = conn.getresponse()
            assert response.status in (401, 404), (path, response.status)
            assert b"kuota_" not in response.read()
        finally:
            conn.close()


def test_a_port_in_use_is_a_clear_config_error(world):
    metrics = NodeMetrics(MetricSources(node=world.node))
    service = NodeWebService(WebConfig(host="127.0.0.1", port=world.web_port), metrics)
    with pytest.raises(WebConfigError) as err:
        asyncio.run(service.start())
    assert f"127.0.0.1:{world.web_port}" in str(err.value) and "cannot be listened on" in str(err.value)


def test_token_gates_the_dashboard_api_but_not_its_page(world):
    from nodeclient.dashboard import DashboardSource, TokenUnit

    source = DashboardSource(node=world.node, chain_id=1337, token=TokenUnit("USD", 6), store=world.store)
    metrics = NodeMetrics(MetricSources(node=world.node, store=world.store))
    running = _Running(NodeWebService(WebConfig(host="127.0.0.1", port=0, token=TOKEN), metrics, dashboard=source))
    try:
        base = f"http://{running.host}:{running.port}"
        assert requests.get(f"{base}/", timeout=10).status_code == 200
        assert requests.get(f"{base}/api/status", timeout=10).status_code == 401
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 401
    finally:
        running.close()
