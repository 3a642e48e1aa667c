"""Settings precedence (file → env → flags), network profiles, and keystore commands (no chain needed)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner
from eth_account import Account

from nodeclient.cli.main import cli
from nodeclient.config import InvalidSettingError, UnknownNetworkError, load_settings
from nodeclient.errors import ConfigError
from tests.conftest import anvil_private_key


@pytest.fixture
def home(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("KUOTA_") and key != "KUOTA_ANVIL_PORT":
            monkeypatch.delenv(key)
    monkeypatch.delenv("ETH_RPC_URL", raising=False)  # Foundry's, read by the client too
    monkeypatch.setenv("KUOTA_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_local_profile_defaults(home):
    profile = load_settings().profile()
    assert (profile.name, profile.rpc_url, profile.chain_id, profile.confirmations) == ("local", "http://127.0.0.1:8545", 31337, 1)
    assert profile.manifest.name == "31337.json"


def test_file_then_env_then_flags(home, monkeypatch):
    (home / "config.toml").write_text(
        'network = "sepolia"\n[networks.sepolia]\nrpc_url = "https://rpc.example.org"\nchain_id = 11155111\n'
        'manifest = "/srv/kuota/11155111.json"\nconfirmations = 3\n[settlement]\nmin_value = 5000000\n'
    )
    settings = load_settings()
    profile = settings.profile()
    assert (profile.name, profile.rpc_url, profile.chain_id, profile.confirmations) == ("sepolia", "https://rpc.example.org", 11155111, 3)
    assert str(profile.manifest) == "/srv/kuota/11155111.json"
    assert settings.settlement.min_value == 5_000_000
    monkeypatch.setenv("KUOTA_RPC_URL", "https://env.example.org")
    monkeypatch.setenv("KUOTA_SETTLEMENT__MIN_VALUE", "7")
    settings = load_settings()
    assert settings.profile().rpc_url == "https://env.example.org" and settings.settlement.min_value == 7
    assert load_settings(rpc_url="http://flag.example.org:8545", confirmations=9).profile().rpc_url == "http://flag.example.org:8545"
    assert load_settings(confirmations=9).profile().confirmations == 9
    # Overrides apply to the selected profile only: `local` named explicitly keeps its own URL.
    assert load_settings().profile("local").rpc_url == "http://127.0.0.1:8545"


def test_eth_rpc_url_sits_between_the_config_file_and_kuota_rpc_url(home, monkeypatch):
    monkeypatch.setenv("ETH_RPC_URL", "https://foundry.example.org")
    assert load_settings().profile().rpc_url == "https://foundry.example.org"  # over the local default
    (home / "config.toml").write_text(
        'network = "sepolia"\n[networks.sepolia]\nrpc_url = "https://file.example.org"\nchain_id = 11155111\n'
    )
    profile = load_settings().profile()
    assert (profile.name, profile.rpc_url, profile.chain_id) == ("sepolia", "https://foundry.example.org", 11155111)
    monkeypatch.setenv("KUOTA_RPC_URL", "https://kuota.example.org")
    assert load_settings().profile().rpc_url == "https://kuota.example.org"
    assert load_settings(rpc_url="https://flag.example.org").profile().rpc_url == "https://flag.example.org"
    monkeypatch.setenv("ETH_RPC_URL", "")  # set but empty counts as unset, as for KUOTA_*
    monkeypatch.delenv("KUOTA_RPC_URL")
    assert load_settings().profile().rpc_url == "https://file.example.org"


def test_bad_eth_rpc_url_names_the_variable_and_the_value(home, monkeypatch):
    monkeypatch.setenv("ETH_RPC_URL", "localhost:8545")
    with pytest.raises(InvalidSettingError) as caught:
        load_settings()
    assert "environment variable ETH_RPC_URL" in str(caught.value) and "'localhost:8545'" in str(caught.value)
    result = CliRunner().invoke(cli, ["stake", "show", "0x" + "11" * 20],
                                env={"KUOTA_HOME": str(home), "ETH_RPC_URL": "localhost:8545"})
    assert result.exit_code == 2
    assert "ETH_RPC_URL" in result.stderr and "localhost:8545" in result.stderr


def test_local_profile_follows_the_chain_started_by_kuota_chain_up(home):
    state = {
        "kind": "anvil", "pid": 1, "host": "127.0.0.1", "port": 40001, "url": "http://127.0.0.1:40001", "chain_id": 31337,
        "genesis_hash": "0x" + "00" * 32, "started_at": "now", "process_start": "0", "cmdline": [], "log_path": "", "accounts": 20,
    }
    (home / "chain.json").write_text(json.dumps(state))
    assert load_settings().profile().rpc_url == "http://127.0.0.1:40001"


@pytest.mark.parametrize(
    "content, expected",
    [
        ("network = ", "not valid TOML"),
        ("[networks.x]\nrpc_url = \"https://a.b\"\nchain_id = 0\n", "chain_id"),
        ("[networks.x]\nrpc_url = \"gopher://a\"\nchain_id = 5\n", "gopher://a"),
        ("bogus = 1\n", "bogus"),
        ("[settlement]\nmax_gas_share_bps = 20000\n", "max_gas_share_bps"),
        ("[networks.x]\nrpc_url = \"https://a.b\"\nchain_id = 5\nfee_bump_percent = 5\n", "fee_bump_percent"),
    ],
)
def test_bad_config_file_names_file_field_and_value(home, content, expected):
    (home / "config.toml").write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert expected in str(caught.value) and "config" in str(caught.value)
    assert caught.value.exit_code == 2


def test_bad_env_value_names_the_environment(home, monkeypatch):
    monkeypatch.setenv("KUOTA_CONFIRMATIONS", "-1")
    with pytest.raises(InvalidSettingError) as caught:
        load_settings()
    assert "environment" in str(caught.value) and "-1" in str(caught.value)


def test_unknown_network(home):
    with pytest.raises(UnknownNetworkError) as caught:
        load_settings(network="mars").profile()
    assert caught.value.exit_code == 3 and "mars" in str(caught.value)
    # An ad-hoc network needs no file entry: an RPC URL and a chain id are enough.
    adhoc = load_settings(network="mars", rpc_url="https://mars.example", chain_id=424242).profile()
    assert adhoc.chain_id == 424242 and adhoc.manifest.name == "424242.json"


def invoke(home, *args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, env={"KUOTA_HOME": str(home)}, catch_exceptions=False)


def test_account_new_prompts_hidden_confirmed_password_and_writes_0600_scrypt_keystore(home):
    result = invoke(home, "account", "new", "alice", "--json", input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout.strip().splitlines()[-1])
    path = home / "data" / "keystores" / "alice.json"
    assert info["path"] == str(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    keystore = json.loads(path.read_text())
    assert keystore["crypto"]["kdf"] == "scrypt" and keystore["crypto"]["kdfparams"]["n"] == 2**18
    assert "s3cret-pass" not in result.output  # hidden input is not echoed
    Account.decrypt(keystore, "s3cret-pass")  # the standard format opens with the password


def test_account_new_refuses_mismatched_confirmation_and_weak_password(home):
    result = invoke(home, "account", "new", "bob", input="first-pass\nsecond-pass\n")
    assert result.exit_code == 8 and not (home / "data" / "keystores" / "bob.json").exists()
    result = invoke(home, "account", "new", "bob", input="short\nshort\n")
    assert result.exit_code == 2 and "too short" in result.stderr
    assert not (home / "data" / "keystores" / "bob.json").exists()


def test_import_export_and_import_keystore(home, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("password-one\n")
    key = tmp_path / "key"
    key.write_text(anvil_private_key(9))
    assert invoke(home, "account", "import", "carol", "--private-key-file", str(key), "--password-file", str(pw)).exit_code == 0
    out = tmp_path / "carol.json"
    assert invoke(home, "account", "export", "carol", "--out", str(out)).exit_code == 0
    again = invoke(home, "account", "export", "carol", "--out", str(out))
    assert again.exit_code == 2 and "already exists" in again.stderr  # never overwrites
    # Importing the exported keystore into another home checks its password first.
    other = tmp_path / "other"
    other.mkdir()
    wrong = tmp_path / "wrong"
    wrong.write_text("password-two\n")
    result = invoke(other, "account", "import", "c2", "--keystore-file", str(out), "--password-file", str(wrong))
    assert result.exit_code == 2 and "wrong password" in result.stderr
    assert not (other / "data" / "keystores" / "c2.json").exists()
    result = invoke(other, "account", "import", "c2", "--keystore-file", str(out), "--password-file", str(pw), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["address"] == Account.from_key(anvil_private_key(9)).address
    listed = json.loads(invoke(other, "account", "list", "--json").stdout)
    assert [a["alias"] for a in listed["accounts"]] == ["c2"]
