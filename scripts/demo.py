"""``make demo``: the whole Kuota economy on a local chain, through the real ``kuota`` CLI, in ~a minute.

It starts its own Anvil (free port; stopped on exit, whatever happens), deploys, and runs three node
operators and two consumers through staking, registration, escrow, metered relay traffic with signed
receipts, gas-aware settlement, an epoch, reward claims, a consumer's refund, and an auditor's replay.
It ends with a summary a person reads in ten seconds (``--json`` for scripts) and exits non-zero if
any step failed.

Usage: ``python scripts/demo.py [--json] [--verbose] [--subprocess] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nodeclient.errors import KuotaError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="Print the summary as one JSON object on stdout.")
    parser.add_argument("--verbose", "-v", action="store_true", help="Show every kuota command as it runs (stderr).")
    parser.add_argument(
        "--subprocess", action="store_true", help="Run each kuota command as its own process (slower)."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the work directory (logs, keystores, bundles).")
    parser.add_argument("--workdir", type=Path, default=None, help="Work directory (default: a fresh temporary one).")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit code."""
    args = _parser().parse_args(argv)
    # SIGTERM/SIGHUP (a closed terminal, `timeout`) unwind like Ctrl-C, so the chain and relays stop.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    from scripts.demo_lib.economy import DemoConfig, run_economy
    from scripts.demo_lib.summary import build_summary, render_summary

    config = DemoConfig(subprocess_mode=args.subprocess, verbose=args.verbose, keep=args.keep)
    started = time.monotonic()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        workdir_cm = None
        workdir = args.workdir
    else:
        workdir_cm = tempfile.TemporaryDirectory(prefix="kuota-demo-")
        workdir = Path(workdir_cm.name)
    if not args.json:
        print(f"Kuota demo: local chain, 3 operators, 2 consumers, 1 auditor (work dir {workdir})", file=sys.stderr)
    try:
        economy, collected = run_economy(config, workdir)
        summary = build_summary(economy, collected, wall_seconds=time.monotonic() - started)
    except KuotaError as exc:
        # Keep the work dir of a failed run: its logs are what the developer needs next.
        print(f"Demo failed: {exc}", file=sys.stderr)
        print(f"Logs and keystores (encrypted) kept in {workdir}", file=sys.stderr)
        return exc.exit_code or 1
    except KeyboardInterrupt:
        print(f"Demo interrupted; the chain and relays were stopped. Work dir: {workdir}", file=sys.stderr)
        return 130
    if workdir_cm is not None and not args.keep:
        workdir_cm.cleanup()
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        render_summary(summary)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
