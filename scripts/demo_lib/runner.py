"""Run ``kuota`` commands as the demo's actors: the real click CLI, in this process or as processes.

Each actor (operator, consumer, auditor) has its own ``KUOTA_HOME`` with a ``config.toml`` naming the
demo chain, its own keystores and its own receipt store, exactly as separate machines would. By
default commands run in-process through click's test runner (the same ``kuota`` group, options and
error boundary, without paying ~1 s of interpreter start-up per command); ``--subprocess`` runs each
one as a real ``kuota`` process instead.

Every command's exit code is checked: a step that fails stops the demo with its stderr.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeclient.errors import KuotaError

__all__ = ["Actor", "KuotaRunner", "StepFailed", "StepRecord"]

KUOTA_BIN = Path(sys.executable).with_name("kuota")


class StepFailed(KuotaError):
    """A demo step (one ``kuota`` command) exited non-zero."""

    def __init__(self, step: str, command: str, code: int, stderr: str) -> None:
        self.step = step
        self.code = code
        tail = " | ".join(stderr.strip().splitlines()[-6:]) or "(no output)"
        super().__init__(f"step '{step}' failed: `{command}` exited {code}: {tail}")
        self.exit_code = max(1, code)


@dataclass
class Actor:
    """One participant with its own Kuota home; ``env`` carries its password (never printed)."""

    name: str
    role: str
    home: Path
    env: dict[str, str | None]
    address: str = ""
    node_address: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Actor({self.name!r}, {self.role}, {self.address or '-'})"


@dataclass
class StepRecord:
    """What one command did, for ``--verbose`` and the JSON summary."""

    step: str
    actor: str
    command: str
    seconds: float
    exit_code: int


class KuotaRunner:
    """Runs ``kuota`` as an actor and returns parsed ``--json`` output."""

    def __init__(self, *, subprocess_mode: bool = False, verbose: bool = False, log_dir: Path | None = None) -> None:
        self.subprocess_mode = subprocess_mode
        self.verbose = verbose
        self.log_dir = log_dir
        self.records: list[StepRecord] = []

    def run(
        self,
        step: str,
        actor: Actor | None,
        args: list[str],
        *,
        env: dict[str, str | None] | None = None,
        as_process: bool = False,
    ) -> Any:
        """Run ``kuota <args>``; return the JSON it printed (if any) or its text; raise on failure.

        ``as_process`` runs this one command as a process whatever the mode (its stderr is captured).
        """
        full_env = {**(actor.env if actor else {}), **(env or {})}
        shown = "kuota " + " ".join(shlex.quote(a) for a in args)
        started = time.monotonic()
        if self.subprocess_mode or as_process:
            code, out, err = self._run_process(args, full_env)
        else:
            code, out, err = self._run_inline(args, full_env)
        seconds = time.monotonic() - started
        self.records.append(StepRecord(step, actor.name if actor else "-", shown, seconds, code))
        if self.log_dir is not None:
            with (self.log_dir / "commands.log").open("a") as log:
                log.write(f"$ [{actor.name if actor else '-'}] {shown}\n# exit {code} in {seconds:.2f}s\n{out}{err}\n")
        if self.verbose:
            print(f"  [{seconds:5.2f}s] {actor.name if actor else '-':<9} {shown}", file=sys.stderr, flush=True)
        if code == 130:
            # The kuota boundary turned a Ctrl-C/SIGTERM into exit 130: keep unwinding as an interrupt.
            raise KeyboardInterrupt(step)
        if code != 0:
            raise StepFailed(step, shown, code, err or out)
        text = out.strip()
        if "--json" in args and text:
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                # Commands that log progress on stdout end with the JSON object on its own line.
                return json.loads(text.splitlines()[-1])
        return text

    def _run_inline(self, args: list[str], env: dict[str, str | None]) -> tuple[int, str, str]:
        from click.testing import CliRunner

        from nodeclient.cli.main import cli

        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            # A bug, not a refused step: keep the traceback where the developer will look.
            import traceback

            detail = "".join(traceback.format_exception(result.exception))
            return 1, result.stdout, (result.stderr or "") + detail
        return result.exit_code, result.stdout, result.stderr

    def _run_process(self, args: list[str], env: dict[str, str | None]) -> tuple[int, str, str]:
        merged = {**os.environ, **env}
        # None means "unset" (as for click's runner): the user's own KUOTA_* must not leak in.
        clean = {k: v for k, v in merged.items() if v is not None}
        proc = subprocess.run(
            [str(KUOTA_BIN), *args], env=clean, capture_output=True, text=True, timeout=300, check=False
        )
        return proc.returncode, proc.stdout, proc.stderr
