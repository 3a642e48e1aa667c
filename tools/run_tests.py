"""Run the test suite against a fresh Anvil on a free loopback port.

Brownie attaches silently to whatever already listens on its configured port (an Anvil orphaned by
an unclean exit keeps 8545 and the next run would test against its stale chain). Choosing a port
that is free right now, and passing it through KUOTA_ANVIL_PORT (read by brownie-config.yaml),
makes every run start its own chain.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    env["KUOTA_ANVIL_PORT"] = str(free_port())
    cmd = [sys.executable, "-m", "pytest", *argv]
    print(f"[tests] Anvil for this run: 127.0.0.1:{env['KUOTA_ANVIL_PORT']}", flush=True)
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
