"""`kuota chain up|down|status`: real Anvil/Ganache processes on free ports, one KUOTA_HOME per test.

Stale-state refusal is tested with real stale states: a chain killed behind our back, a pid that now
belongs to another program, and a recorded URL where a different chain answers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from nodeclient import localchain
from nodeclient.cli.main import cli
from nodeclient.errors import EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_REFUSED
from tests.deploy.conftest import web3_at

KUOTA = str(Path(sys.executable).with_name("kuota"))


def invoke(home: Path, *args: str):
    return CliRunner().invoke(cli, ["chain", *args], env={"KUOTA_HOME": str(home)}, catch_exceptions=False)


def run_kuota(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUOTA_HOME": str(home)}
    return subprocess.run([KUOTA, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def main_error(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run through the real entry point, which maps KuotaError to its exit code."""
    return run_kuota(home, "chain", *args)


def test_up_status_down_through_the_installed_command(tmp_path):
    home = tmp_path / "home"
    started = run_kuota(home, "chain", "up", "--json")
    assert started.returncode == 0, started.stderr
    record = json.loads(started.stdout)
    try:
        assert record["running"] is True and record["kind"] == "anvil" and record["chainId"] == 31337
        assert web3_at(record["url"]).eth.chain_id == 31337
        # The first dev account is the mnemonic's, funded.
        w3 = web3_at(record["url"])
        assert w3.eth.accounts[0] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        assert w3.eth.get_balance(w3.eth.accounts[0]) > 0

        status = run_kuota(home, "chain", "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pid"] == record["pid"]
    finally:
        down = run_kuota(home, "chain", "down")
    assert down.returncode == 0, down.stderr
    assert f"stopped anvil (pid {record['pid']})" in down.stdout
    assert wait_gone(record["pid"])
    after = run_kuota(home, "chain", "status")
    assert after.returncode == EXIT_NOT_FOUND
    assert "no local chain is recorded" in after.stderr


def test_up_refuses_while_its_chain_is_running(tmp_path):
    first = invoke(tmp_path, "up", "--json")
    assert first.exit_code == 0
    pid = json.loads(first.output)["pid"]
    try:
        again = main_error(tmp_path, "up")
        assert again.returncode == EXIT_REFUSED
        assert f"already running at http://127.0.0.1:{json.loads(first.output)['port']} (pid {pid})" in again.stderr
    finally:
        assert invoke(tmp_path, "down").exit_code == 0


def test_up_refuses_a_port_that_is_taken(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        result = main_error(tmp_path, "up", "--port", str(port))
    assert result.returncode == EXIT_REFUSED
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert not localchain.state_path(tmp_path).exists()


@pytest.mark.parametrize("bad", ["80", "0", "70000", "abc", "-5"])
def test_up_rejects_bad_ports(tmp_path, bad):
    result = main_error(tmp_path, "up", "--port", bad)
    assert result.returncode == EXIT_BAD_INPUT
    assert bad in result.stderr
    assert not localchain.state_path(tmp_path).exists()


def test_up_on_a_requested_port_and_chain_id(tmp_path):
    port = localchain.free_port()
    result = invoke(tmp_path, "up", "--port", str(port), "--chain-id", "11155111", "--json")
    assert result.exit_code == 0, result.output
    try:
        record = json.loads(result.output)
        assert record["port"] == port
        assert web3_at(f"http://127.0.0.1:{port}").eth.chain_id == 11155111
    finally:
        invoke(tmp_path, "down")


def test_a_chain_killed_behind_our_back_is_stale_and_down_cleans_up(tmp_path):
    state = localchain.start_chain(home=tmp_path)
    os.kill(state.pid, signal.SIGKILL)
    os.waitpid(state.pid, 0)

    status = main_error(tmp_path, "status")
    assert status.returncode == EXIT_REFUSED
    assert f"process {state.pid} is no longer running" in status.stderr
    with pytest.raises(localchain.StaleChainError, match="no longer running"):
        localchain.attach(tmp_path)

    down = invoke(tmp_path, "down")
    assert down.exit_code == 0
    assert "not stopping anything" in down.output
    assert not localchain.state_path(tmp_path).exists()


def test_up_replaces_a_stale_record(tmp_path):
    state = localchain.start_chain(home=tmp_path)
    os.kill(state.pid, signal.SIGKILL)
    os.waitpid(state.pid, 0)
    fresh = localchain.start_chain(home=tmp_path)
    try:
        assert fresh.pid != state.pid
        assert localchain.attach(tmp_path).pid == fresh.pid
    finally:
        localchain.stop_chain(tmp_path)


def test_a_pid_reused_by_another_program_is_never_killed(tmp_path):
    # A real chain's record, pointed at an unrelated live process: exactly what pid reuse looks like.
    chain_home = tmp_path / "real"
    state = localchain.start_chain(home=chain_home)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        forged = dataclasses.replace(state, pid=sleeper.pid)
        localchain.state_path(tmp_path).write_text(forged.to_json())

        status = main_error(tmp_path, "status")
        assert status.returncode == EXIT_REFUSED
        assert f"pid {sleeper.pid} now belongs to a different program (sleep 60)" in status.stderr

        down = invoke(tmp_path, "down")
        assert down.exit_code == 0
        assert "not stopping anything" in down.output
        time.sleep(0.2)
        assert sleeper.poll() is None, "down killed a process it did not start"
        assert not localchain.state_path(tmp_path).exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        localchain.stop_chain(chain_home)


def test_a_different_chain_on_the_recorded_url_is_refused(tmp_path):
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    a = localchain.start_chain(home=home_a)
    b = localchain.start_chain(home=home_b)
    try:
        # A's process, B's URL: the process is ours, but it is not what answers on that port.
        forged = dataclasses.replace(a, url=b.url, port=b.port)
        localchain.state_path(home_a).write_text(forged.to_json())
        status = main_error(home_a, "status")
        assert status.returncode == EXIT_REFUSED
        assert f"process {a.pid} does not listen on the recorded port {b.port}" in status.stderr
        with pytest.raises(localchain.StaleChainError, match="does not listen"):
            localchain.attach(home_a)
        # The chain behind the URL was reset or replaced (another genesis): refused, naming both.
        other_genesis = "0x" + "ab" * 32
        localchain.state_path(home_a).write_text(dataclasses.replace(a, genesis_hash=other_genesis).to_json())
        status = main_error(home_a, "status")
        assert status.returncode == EXIT_REFUSED
        assert f"has genesis {a.genesis_hash}, not the recorded {other_genesis}" in status.stderr
        # Another chain id at the recorded URL is named as such.
        localchain.state_path(home_a).write_text(dataclasses.replace(a, chain_id=5).to_json())
        with pytest.raises(localchain.StaleChainError, match="is chain 31337, not the recorded 5"):
            localchain.attach(home_a)
    finally:
        localchain.state_path(home_a).write_text(a.to_json())
        localchain.stop_chain(home_a)
        localchain.stop_chain(home_b)


def test_down_stops_only_its_own_chain(tmp_path):
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    a = localchain.start_chain(home=home_a)
    b = localchain.start_chain(home=home_b)
    try:
        assert invoke(home_a, "down").exit_code == 0
        assert wait_gone(a.pid)
        assert localchain.attach(home_b).pid == b.pid
        assert web3_at(b.url).eth.block_number == 0
    finally:
        localchain.stop_chain(home_b)
    assert wait_gone(b.pid)


def test_a_damaged_state_file_is_reported(tmp_path):
    localchain.state_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    localchain.state_path(tmp_path).write_text("{not json")
    result = main_error(tmp_path, "status")
    assert result.returncode == EXIT_BAD_INPUT
    assert "is damaged" in result.stderr and str(localchain.state_path(tmp_path)) in result.stderr


def test_ganache_up_status_down(tmp_path):
    result = invoke(tmp_path, "up", "--ganache", "--chain-id", "1337", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    try:
        assert record["kind"] == "ganache"
        w3 = web3_at(record["url"])
        assert w3.eth.chain_id == 1337
        # Shanghai: blocks carry a withdrawals root, and EIP-1559 base fees exist.
        latest = w3.eth.get_block("latest")
        assert "withdrawalsRoot" in latest and "baseFeePerGas" in latest
        assert w3.eth.accounts[0] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        assert invoke(tmp_path, "status").exit_code == 0
    finally:
        down = invoke(tmp_path, "down")
    assert down.exit_code == 0 and "stopped ganache" in down.output
    assert wait_gone(record["pid"])


def test_managed_chain_stops_on_exception(tmp_path):
    managed = localchain.ManagedChain(tmp_path)
    with pytest.raises(RuntimeError), managed as state:
        pid = state.pid
        raise RuntimeError("boom")
    assert wait_gone(pid)
    assert not localchain.state_path(tmp_path).exists()
