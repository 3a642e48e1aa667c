"""CLI conventions a script relies on: ``--json`` errors as one JSON object with the usual exit code,
and shell completion scripts from click (docs/CLI.md). No deployment needed: each failure happens
before any contract is read, or on an RPC that is not there."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nodeclient.cli.main import cli

KUOTA = str(Path(sys.executable).parent / "kuota")
SOMEONE = "0x" + "11" * 20


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A clean installation: no KUOTA_* or ETH_RPC_URL from the developer's shell."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("KUOTA_") and k != "ETH_RPC_URL"}
    return {**base, "KUOTA_HOME": str(tmp_path / "home")}


def _invoke(env: dict[str, str], *args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def _json_error(result) -> dict:
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return json.loads(lines[0])["error"]


@pytest.mark.parametrize(
    "args, exit_code, kind, needle",
    [
        (("stake", "show", "0x11"), 2, "BadValueError", "'0x11'"),
        (("stake", "show", SOMEONE, "--bogus"), 2, "NoSuchOption", "--bogus"),
        (("stake", "show", SOMEONE, "--chain-id", "many"), 2, "BadParameter", "many"),
        (("stake", "show", SOMEONE, "--network", "atlantis"), 3, "UnknownNetworkError", "atlantis"),
        (("account", "new", "../evil"), 2, None, "../evil"),
        (("audit", "replay", "--jobs", "0"), 2, "BadParameter", "--jobs"),
    ],
    ids=["bad-address", "unknown-option", "bad-option-value", "unknown-network", "bad-alias", "audit-bad-jobs"],
)
def test_json_errors_are_one_object_with_the_usual_exit_code(env, args, exit_code, kind, needle):
    human = _invoke(env, *args)
    assert human.exit_code == exit_code and needle in human.stderr
    assert not human.stderr.lstrip().startswith("{")
    error = _json_error(_invoke(env, *args, "--json"))
    assert error["exit_code"] == exit_code and needle in error["message"]
    assert kind is None or error["type"] == kind
    assert not error["message"].startswith("Error:")


def test_json_error_of_an_unreachable_rpc_is_a_chain_error(env):
    url = f"http://127.0.0.1:{_closed_port()}"
    error = _json_error(_invoke(env, "stake", "show", SOMEONE, "--rpc-url", url, "--json"))
    assert error["exit_code"] == 4 and "unreachable" in error["message"]


def test_json_error_of_a_prompt_at_end_of_input_is_refused(env):
    result = _invoke(env, "account", "new", "fresh", "--json", input="")
    assert result.exit_code == 8 and result.stdout == "" and "New password" in result.stderr  # the prompt itself
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error == {"type": "Aborted", "message": "Aborted: nothing was sent.", "exit_code": 8}


def test_json_error_through_the_installed_entry_point(env):
    run = subprocess.run([KUOTA, "stake", "show", "0x11", "--json"], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 2 and run.stdout == ""
    assert json.loads(run.stderr)["error"]["type"] == "BadValueError"


@pytest.mark.parametrize(
    "shell, marker",
    [("bash", "complete -o nosort -F _kuota_completion kuota"), ("zsh", "#compdef kuota"),
     ("fish", "complete --no-files --command kuota")],
)
def test_completion_script_generation(env, shell, marker):
    run = subprocess.run([KUOTA], env={**env, "_KUOTA_COMPLETE": f"{shell}_source"}, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert marker in run.stdout


def test_bash_completion_completes_subcommands_and_options(env):
    def complete(words: str) -> list[str]:
        extra = {"_KUOTA_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        run = subprocess.run([KUOTA], env={**env, **extra}, capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stderr
        return [line.split(",", 1)[1] for line in run.stdout.splitlines()]

    assert complete("kuota au") == ["audit"]
    assert "--progress" in complete("kuota audit replay --pro")


def test_eth_rpc_url_is_the_endpoint_when_kuota_rpc_url_is_not_set(kenv):
    """Foundry's variable reaches the chain: the real endpoint answers, a closed port is unreachable."""
    who = kenv.addresses["operator"]
    unset = {"KUOTA_RPC_URL": "", "ETH_RPC_URL": kenv.rpc_url}
    shown = kenv.ok("stake", "show", who, "--json", extra_env=unset)
    assert shown["operator"] == who
    dead = f"http://127.0.0.1:{_closed_port()}"
    down = kenv.run("stake", "show", who, "--json", extra_env={**unset, "ETH_RPC_URL": dead})
    assert down.exit_code == 4 and dead in json.loads(down.stderr.strip().splitlines()[-1])["error"]["message"]
    # KUOTA_RPC_URL wins over it.
    assert kenv.ok("stake", "show", who, "--json", extra_env={"ETH_RPC_URL": dead})["operator"] == who
