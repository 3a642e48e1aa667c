"""The keystore never leaks: debug logging (-vv) through successes and failures, grep every output.

Runs real ``kuota`` subprocesses and in-process CliRunner invocations with ``-vv`` through: account
import and export, a wrong password, a reverted transaction, a successful one, receipt signing, an
RPC that is down, and a private key file with one bad character. Every stdout, stderr and the
Python log output is searched for each private key (hex with and without 0x, any case, and raw
bytes as latin-1) and for the password.
"""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest
from eth_account import Account

from nodeclient.keys import KeyManager, Secret, Signer, WrongPasswordError
from tests.client.conftest import PASSWORD
from tests.conftest import anvil_private_key


def secrets_in(text: str, keys: list[str], password: str) -> list[str]:
    """Which secrets appear in ``text`` (case-insensitive for hex)."""
    lowered = text.lower()
    found = []
    for key in keys:
        body = key.lower().removeprefix("0x")
        if body in lowered:
            found.append(f"key {body[:6]}…")
        if bytes.fromhex(body).decode("latin-1") in text:
            found.append(f"raw key bytes {body[:6]}…")
    if password in text:
        found.append("password")
    return found


def test_keys_and_password_never_appear_in_any_output(funded, tmp_path):
    k = funded
    keys = [anvil_private_key(i) for i in (3, 5, 10, 14)]
    outputs: list[str] = []

    def sub(*args, **kw):
        proc = k.subprocess("-vv", *args, **kw)
        outputs.extend([proc.stdout, proc.stderr])
        return proc

    def run(*args, **kw):
        result = k.run("-vv", *args, **kw)
        outputs.extend([result.stdout, result.stderr])
        return result

    # Import a key from a file, then from a keystore; export it (encrypted).
    key_file = tmp_path / "key.txt"
    key_file.write_text(keys[3] + "\n")
    proc = sub("account", "import", "imported", "--private-key-file", str(key_file), *k.pw())
    assert proc.returncode == 0, proc.stderr
    exported = tmp_path / "exported.json"
    assert sub("account", "export", "imported", "--out", str(exported)).returncode == 0
    assert stat.S_IMODE(os.stat(exported).st_mode) == 0o600
    assert secrets_in(exported.read_text(), keys, PASSWORD) == []  # encrypted, not plain
    assert sub("account", "import", "again", "--keystore-file", str(exported), *k.pw()).returncode == 2  # same address
    # A key file with one wrong character: the error describes the shape, never echoes the value.
    bad_key = tmp_path / "bad.txt"
    bad_key.write_text(keys[3][:-1] + "z")
    proc = sub("account", "import", "badkey", "--private-key-file", str(bad_key), *k.pw())
    assert proc.returncode == 2 and "not hex digits" in proc.stderr
    assert keys[3][2:-1] not in proc.stderr
    # Wrong password, through a subprocess and in-process.
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(PASSWORD + "x\n")
    proc = sub("stake", "add", "1", "--account", "operator", "--password-file", str(wrong), "--yes")
    assert proc.returncode == 2 and "wrong password" in proc.stderr
    assert run("stake", "add", "1", "--account", "operator", "--password-file", str(wrong), "--yes").exit_code == 2
    # A reverted transaction (unbond more than bonded) and a successful one, with debug logs.
    assert run("stake", "unbond", "5", "--account", "operator", *k.pw(), "--yes").exit_code in (4, 5)
    assert sub("stake", "add", "5", "--account", "operator", *k.pw(), "--yes").returncode == 0
    # Password from the environment (the env var itself must not be echoed either).
    proc = sub("stake", "show", "--account", "operator", env_extra={"KUOTA_PASSWORD": PASSWORD})
    assert proc.returncode == 0, proc.stderr
    # RPC down while a keystore is unlocked.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = sub("stake", "add", "1", "--account", "operator", *k.pw(), "--yes", "--rpc-url", f"http://127.0.0.1:{port}")
    assert proc.returncode == 4
    # Receipt signing (the consumer's key is used directly by the signer).
    k.ok("stake", "add", "1000", "--account", "operator", *k.pw(), "--yes")
    k.ok("node", "register", "--account", "operator", "--node-account", "node", "--price", "1", "--capacity", "1",
         "--region", "x", *k.pw(), "--yes")
    proc = sub("receipts", "sign", "--node", k.addresses["node"], "--amount", "1", "--bytes", "10", "--account", "consumer", *k.pw())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["signature"].startswith("0x")

    joined = "\n".join(outputs)
    assert "DEBUG" in joined, "debug logging must have been on"
    assert secrets_in(joined, keys, PASSWORD) == []
    # The keystores themselves are private.
    for path in (k.home / "data" / "keystores").glob("*.json"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(k.home / "data" / "keystores").st_mode) == 0o700


def test_signer_and_secret_reprs_and_tracebacks_hold_no_key(tmp_path):
    key = anvil_private_key(7)
    manager = KeyManager(tmp_path, kdf_iterations=2**10)
    info = manager.import_private_key("a", Secret(key), Secret(PASSWORD))
    signer = manager.unlock(info, Secret(PASSWORD))
    for text in (repr(signer), str(signer), repr(Secret(PASSWORD)), repr(manager), repr(info)):
        assert secrets_in(text, [key], PASSWORD) == []
    with pytest.raises(TypeError):
        __import__("pickle").dumps(signer)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(Secret(PASSWORD))
    wrong = "pw-" + __import__("secrets").token_hex(8)  # not in any source line the traceback quotes
    with pytest.raises(WrongPasswordError) as caught:
        manager.unlock(info, Secret(wrong))
    # The error is raised "from None": no chained exception carries the eth-account frames.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    import traceback

    rendered = "".join(traceback.format_exception(caught.value))
    assert secrets_in(rendered, [key], wrong) == [] and secrets_in(rendered, [key], PASSWORD) == []
    assert isinstance(signer, Signer) and signer.address == Account.from_key(key).address


def test_unlocking_a_world_readable_keystore_warns(tmp_path, caplog):
    manager = KeyManager(tmp_path, kdf_iterations=2**10)
    info = manager.import_private_key("b", Secret(anvil_private_key(8)), Secret(PASSWORD))
    os.chmod(info.path, 0o644)
    with caplog.at_level("WARNING", logger="nodeclient.keys"):
        manager.unlock(info, Secret(PASSWORD))
    assert any("readable by other users" in r.getMessage() and "644" in r.getMessage() for r in caplog.records)
