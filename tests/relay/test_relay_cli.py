"""The relay through its CLI, as operators and consumers run it: `kuota node serve` and `kuota consume fetch`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from eth_account import Account
from relay.conftest import PASSWORD, PRICE_PER_GIB, start_node_process

from nodeclient.relay.pricing import amount_for

KIB = 1024


def _kuota(home, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUOTA_HOME": str(home), "KUOTA_DATA_DIR": str(home / "data")}
    return subprocess.run(
        [sys.executable, "-c", "from nodeclient.cli.main import main; main()", *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def test_consume_fetch_pays_for_the_bytes_and_serve_reports_them(world, origin, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc, host, port = start_node_process(
        world, home, tmp_path / "node.log", "--status-file", str(home / "status.json")
    )
    consumer_keystore = home / "consumer.json"
    consumer_keystore.write_text(json.dumps(Account.encrypt(world.consumer_key, PASSWORD, iterations=2)))
    network = [
        "--rpc-url",
        world.rpc_url,
        "--chain-id",
        str(world.chain_id),
        "--manifest",
        str(home / "manifest.json"),
    ]
    try:
        body_file = tmp_path / "body.bin"
        fetched = _kuota(
            home,
            "consume",
            "fetch",
            origin.url(300 * KIB),
            *network,
            "--keystore",
            str(consumer_keystore),
            "--password-file",
            str(home / "password"),
            "--node",
            world.node.address,
            "--relay",
            f"{host}:{port}",
            "--max-spend",
            "1000000",
            "-o",
            str(body_file),
            "--json",
        )
        assert fetched.returncode == 0, fetched.stderr.decode()[-2000:]
        summary = json.loads(fetched.stdout)
        assert summary["status"] == 200 and summary["bodyBytes"] == 300 * KIB
        assert body_file.stat().st_size == 300 * KIB
        assert summary["signedBytes"] == origin.delivered == summary["ackedBytes"]
        assert summary["spent"] == amount_for(origin.delivered, PRICE_PER_GIB)
        assert summary["lastReceipt"]["cumulativeBytes"] == origin.delivered

        # `kuota consume tunnel --to`: a local TCP forward through a paid session, for --duration seconds.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            local_port = probe.getsockname()[1]
        env = {**os.environ, "KUOTA_HOME": str(home), "KUOTA_DATA_DIR": str(home / "data")}
        tunnel = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from nodeclient.cli.main import main; main()",
                "consume",
                "tunnel",
                *network,
                "--keystore",
                str(consumer_keystore),
                "--password-file",
                str(home / "password"),
                "--node",
                world.node.address,
                "--relay",
                f"{host}:{port}",
                "--listen",
                f"127.0.0.1:{local_port}",
                "--to",
                f"127.0.0.1:{origin.server.server_address[1]}",
                "--duration",
                "8",
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        before = origin.delivered
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", local_port), timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline and tunnel.poll() is None, tunnel.stderr.read().decode()[
                    -2000:
                ]
                time.sleep(0.2)
        with conn:
            conn.sendall(b"GET /bytes/65536 HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        out, err = tunnel.communicate(timeout=60)
        assert tunnel.returncode == 0, err.decode()[-2000:]
        tunnelled = json.loads(out)
        assert len(reply.split(b"\r\n\r\n", 1)[1]) == 65536
        assert tunnelled["connections"] == 1
        assert tunnelled["signedBytes"] == origin.delivered - before == tunnelled["ackedBytes"]

        # Bad input: one clear line and exit code 2 (click's usage errors), before any network use.
        bad_relay = _kuota(
            home,
            "consume",
            "fetch",
            origin.url(1),
            *network,
            "--keystore",
            str(consumer_keystore),
            "--password-file",
            str(home / "password"),
            "--node",
            world.node.address,
            "--relay",
            "nonsense",
        )
        assert bad_relay.returncode == 2 and b"'nonsense' is not HOST:PORT" in bad_relay.stderr
        bad_node = _kuota(
            home,
            "consume",
            "fetch",
            origin.url(1),
            *network,
            "--keystore",
            str(consumer_keystore),
            "--password-file",
            str(home / "password"),
            "--node",
            "0x1234",
            "--relay",
            f"{host}:{port}",
        )
        assert bad_node.returncode == 2 and b"'0x1234' is not an address" in bad_node.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    # The status file is rewritten at exit: it reports the session, its bytes and the stored receipts.
    stats = _kuota(home, "node", "serve", "--stats", "--status-file", str(home / "status.json"), "--json")
    assert stats.returncode == 0, stats.stderr.decode()
    snapshot = json.loads(stats.stdout)
    assert snapshot["sessions"]["total"] == 2 and snapshot["sessions"]["ended"] == {"bye": 2}
    assert (
        snapshot["bytes"]["up"] + snapshot["bytes"]["down"] == origin.delivered == snapshot["bytes"]["paid"]
    )
    assert snapshot["unpaidExposureBytes"] == 0 and snapshot["receipts"]["stored"] >= 1
    log = (tmp_path / "node.log").read_text()
    assert world.node.private_key[2:] not in log and PASSWORD not in log


def test_serve_settles_in_the_background_with_the_gas_aware_policy(world, origin, tmp_path):
    import asyncio
    import time

    from integration.support import anvil_key

    from nodeclient.relay.client import open_session

    home = tmp_path / "home"
    home.mkdir()
    (home / "operator.json").write_text(json.dumps(Account.encrypt(anvil_key(3), PASSWORD, iterations=2)))
    # Policy: any value is worth settling and gas is valued at 0 (the policy's thresholds are tested with
    # the settlement module; here the point is that the relay runs it in the background on its own store).
    policy = {"KUOTA_SETTLEMENT__MIN_VALUE": "1", "KUOTA_SETTLEMENT__NATIVE_PRICE": "0"}
    status = home / "status.json"
    proc, host, port = start_node_process(
        world,
        home,
        tmp_path / "node.log",
        "--settle",
        "--settle-interval",
        "1",
        "--keystore",
        str(home / "operator.json"),
        "--password-file",
        str(home / "password"),
        "--status-file",
        str(status),
        env_extra=policy,
    )
    try:

        async def consume():
            session = await open_session(
                host, port, node=world.node.address, consumer_key=world.consumer_key, chain=world.view()
            )
            await session.fetch(origin.url(3 * 1024 * KIB), sink=lambda data: None)
            await session.close()
            return session

        session = asyncio.run(consume())
        final = session.receipts[-1]
        deadline = time.monotonic() + 60
        settled = (0, 0)
        while time.monotonic() < deadline:
            settled = tuple(
                int(v) for v in world.system.settlement.channelOf(world.consumer, world.node.address)
            )
            if settled[0] >= final.cumulative_amount:
                break
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, (tmp_path / "node.log").read_text()[-3000:]
    assert settled == (final.cumulative_amount, final.cumulative_bytes), (tmp_path / "node.log").read_text()[
        -3000:
    ]
    snapshot = json.loads(status.read_text())
    assert snapshot["settlements"]["count"] >= 1
    assert snapshot["settlements"]["amount"] == final.cumulative_amount
