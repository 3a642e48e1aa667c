"""``make demo`` end to end: a real run, its JSON summary, its exit code, and nothing left running.

The demo owns its chain (Anvil on a free port) and relays; these tests check that every one of them
is gone afterwards, after a clean run and after the demo is stopped by a signal half-way.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil

from tests.deploy.conftest import ROOT

DEMO = ROOT / "scripts" / "demo.py"


def processes_mentioning(text: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(text in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def port_listeners(port: int) -> list[int]:
    pids = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            pids.append(conn.pid)
    return pids


def test_demo_runs_the_economy_and_leaves_nothing_behind(tmp_path):
    workdir = tmp_path / "demo"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(DEMO), "--json", "--workdir", str(workdir)],
        cwd=ROOT, capture_output=True, text=True, timeout=480, check=False,
    )
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout)
    failed = [c for c in summary["checks"] if not c["ok"]]
    assert summary["ok"] is True and failed == []
    assert len(summary["checks"]) >= 25

    nodes = {n["operator"]: n for n in summary["nodes"]}
    assert set(nodes) == {"op-lisbon", "op-ohio", "op-mumbai"}
    for node in nodes.values():
        assert node["gross"] > 0 and node["net"] == node["gross"] - node["fee"]
        # 5 % fee, rounded down per settlement call: at most the fee on the total.
        assert 0 < node["fee"] <= node["gross"] * 500 // 10_000
        assert node["rewardsClaimed"] > 0
        assert node["bytesServed"] > 0
        assert node["withdrawn"] == node["net"] and node["creditLeft"] == 0
    # Different distances are measured as different latencies, and the policy deferred the cheapest node once.
    assert nodes["op-lisbon"]["medianLatencyMs"] < nodes["op-ohio"]["medianLatencyMs"] < nodes["op-mumbai"]["medianLatencyMs"]
    assert [d["round"] for d in nodes["op-mumbai"]["deferred"]] == [1]
    assert nodes["op-mumbai"]["roundsSettled"] == [2]

    consumers = {c["consumer"]: c for c in summary["consumers"]}
    assert consumers["bob"]["refunded"] > 0 and consumers["bob"]["leftInEscrow"] == 0
    assert consumers["alice"]["refunded"] == 0
    assert sum(c["spent"] for c in consumers.values()) == sum(n["gross"] for n in nodes.values())

    assert summary["audit"]["verdict"] == "consistent"
    assert summary["audit"]["mismatches"] == 0
    assert summary["audit"]["bundleReceiptsVerified"] > 0
    assert summary["wallSeconds"] <= wall

    # Nothing left: no process mentions the work dir (relays), nothing listens on the chain's port,
    # the chain's pid is gone, and its state record was removed.
    port = int(summary["chain"]["url"].rsplit(":", 1)[1])
    time.sleep(0.5)
    assert processes_mentioning(str(workdir)) == []
    assert port_listeners(port) == []
    assert not psutil.pid_exists(summary["chain"]["pid"]) or psutil.Process(summary["chain"]["pid"]).status() == psutil.STATUS_ZOMBIE
    assert not (workdir / "chain" / "chain.json").exists()
    # The secrets of the run never reach its output.
    assert "KUOTA_PASSWORD" not in proc.stdout + proc.stderr


def test_demo_stopped_by_sigterm_stops_its_chain_and_relays(tmp_path):
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, str(DEMO), "--json", "--workdir", str(workdir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    state_file = workdir / "chain" / "chain.json"
    ready = workdir / "actors" / "op-mumbai" / "relay.ready"
    deadline = time.monotonic() + 300
    # Wait until the chain and all three relays run, then interrupt.
    while time.monotonic() < deadline and proc.poll() is None and not ready.exists():
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    chain_pid = json.loads(state_file.read_text())["pid"]
    assert len(processes_mentioning(str(workdir))) >= 3
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "the chain and relays were stopped" in err
    time.sleep(0.5)
    assert processes_mentioning(str(workdir)) == []
    assert not psutil.pid_exists(chain_pid) or psutil.Process(chain_pid).status() == psutil.STATUS_ZOMBIE
    assert not state_file.exists()
