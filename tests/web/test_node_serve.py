"""``kuota node serve`` as operators run it: a real process with its HTTP service and its log file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.client.conftest import make_home
from tests.web.conftest import free_port


def _serve(k, web_port: int, ready: Path, log_file: Path) -> subprocess.Popen:
    env = {**os.environ, **k.env, "KUOTA_LOG_FILE": str(log_file)}
    env.pop("KUOTA_PASSWORD", None)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "kuota"), "node", "serve", "--node-account", "node",
         "--node-password-file", str(k.password_file), "--no-settle", "--host", "127.0.0.1", "--port", "0",
         "--web-port", str(web_port), "--ready-file", str(ready)],
        env=env, cwd=str(k.home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_node_serve_runs_the_web_service_and_logs_to_a_rotating_file(world, kuota, rpc_url, tmp_path):
    k = make_home(tmp_path, rpc_url, kuota.manifest, {"node": 10})
    web_port = free_port()
    log_file = tmp_path / "logs" / "node.log"
    ready = tmp_path / "ready"
    proc = _serve(k, web_port, ready, log_file)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "kuota node serve did not start"
            time.sleep(0.1)
        base = f"http://127.0.0.1:{web_port}"
        assert requests.get(f"{base}/healthz", timeout=10).text == "ok\n"
        metrics = requests.get(f"{base}/metrics", timeout=10)
        names = {f.name for f in text_string_to_metric_families(metrics.text)}
        assert {"kuota_relay_bytes", "kuota_unsettled_value", "kuota_settlement_transactions"} <= names
        # The dashboard: the page and its API, about this node.
        page = requests.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "uPlot" in page.text
        status = requests.get(f"{base}/api/status", timeout=30)
        assert status.status_code == 200, status.text
        assert k.addresses["node"].lower() in status.text.lower()
        # This home never settled, so it publishes nothing, whatever the fixture's node serves.
        assert requests.get(f"{base}/bundles/{'ab' * 32}", timeout=10).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    text = log_file.read_text()
    assert f"web service on http://127.0.0.1:{web_port}" in text
    assert "relay for node" in text and "relay stopping" in text
    assert k.password_file.read_text().strip() not in text
    with pytest.raises(requests.ConnectionError):  # the port is released on the way out
        requests.get(f"http://127.0.0.1:{web_port}/healthz", timeout=2)
